//! Transactions through the proxy, driven request by request (tansu 0.6.0
//! opens transactions but cannot end one: it has no EndTxn, so no client
//! library runs a transaction against it): transactions live on the
//! default cluster, one that would span clusters is refused with
//! INVALID_TXN_STATE, and a flip of a topic with a transaction open on it
//! waits for it (bounded), then gives up and says so.

mod harness;

use harness::clients::{assert_cluster_holds, create_topic};
use harness::raw::{transactional_batch_of, RawClient};
use harness::{Broker, Proxy, ProxySetup};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, InitProducerIdRequest,
    InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

const INVALID_TXN_STATE: i16 = 48;
const TXN: &str = "ledger-writer";

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn txn_id() -> TransactionalId {
    TransactionalId(StrBytes::from_static_str(TXN))
}

/// A transactional producer speaking the protocol itself.
struct Txn {
    client: RawClient,
    id: ProducerId,
    epoch: i16,
    sequence: i32,
}

impl Txn {
    fn init(proxy: &Proxy) -> Txn {
        let mut client = RawClient::connect(&proxy.bootstrap()).unwrap();
        let pid: InitProducerIdResponse = client.call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id()))
                .with_transaction_timeout_ms(60_000),
        );
        assert_eq!(pid.error_code, 0);
        Txn {
            client,
            id: pid.producer_id,
            epoch: pid.producer_epoch,
            sequence: 0,
        }
    }

    /// Adds partition 0 of `topic`; the error code.
    fn add(&mut self, topic: &str) -> i16 {
        let answer: AddPartitionsToTxnResponse = self.client.call(
            ApiKey::AddPartitionsToTxn,
            3,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id())
                .with_v3_and_below_producer_id(self.id)
                .with_v3_and_below_producer_epoch(self.epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![0])]),
        );
        answer.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
    }

    /// Writes records `indices` to partition 0 of `topic` in the
    /// transaction; the error code.
    fn produce(&mut self, topic: &str, indices: std::ops::Range<u64>) -> i16 {
        let count = (indices.end - indices.start) as i32;
        let batch = transactional_batch_of(self.id.0, self.epoch, self.sequence, indices);
        let answer: ProduceResponse = self.client.call(
            ApiKey::Produce,
            7,
            &ProduceRequest::default()
                .with_transactional_id(Some(txn_id()))
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch))])]),
        );
        let code = answer.responses[0].partition_responses[0].error_code;
        if code == 0 {
            self.sequence += count;
        }
        code
    }
}

#[test]
fn a_flip_waits_for_open_transactions_and_none_spans_clusters() {
    let old = Broker::start("tx-old");
    let new = Broker::start("tx-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.extra =
        "[[routes.topic]]\npattern = \"elsewhere\"\nproduce = \"new\"\nfetch = \"new\"\n".into();
    let proxy = Proxy::start(setup);
    create_topic(&proxy.bootstrap(), "ledger", 1);
    create_topic(&proxy.bootstrap(), "elsewhere", 1);

    let mut txn = Txn::init(&proxy);
    assert_eq!(txn.add("ledger"), 0);
    assert_eq!(txn.produce("ledger", 0..5), 0);

    // Writing to a topic of another cluster in it is refused, both ways in.
    assert_eq!(txn.add("elsewhere"), INVALID_TXN_STATE);
    assert_eq!(txn.produce("elsewhere", 5..6), INVALID_TXN_STATE);
    assert_cluster_holds(&new.addr(), "elsewhere", 1, std::iter::empty());

    // While it stays open, a flip of its topic gives up, naming it.
    let out = proxy.cli(&["flip", "ledger", "--to", "new"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("partition 0 on cluster 'old' still has a transaction open"),
        "{stderr}"
    );

    // The failed flip changed no route.
    let routes = String::from_utf8_lossy(&proxy.cli(&["routes"]).stdout).into_owned();
    assert!(!routes.contains("runtime"), "{routes}");
}

#[test]
fn a_transaction_rule_runs_transactions_on_its_cluster() {
    use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
    let old = Broker::start("tr-old");
    let new = Broker::start("tr-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.extra = format!(
        "[[routes.topic]]\npattern = \"elsewhere\"\nproduce = \"new\"\nfetch = \"new\"\n\
         [[routes.transaction]]\npattern = \"{TXN}\"\ncluster = \"new\"\n"
    );
    let proxy = Proxy::start(setup);
    create_topic(&proxy.bootstrap(), "ledger", 1);
    create_topic(&proxy.bootstrap(), "elsewhere", 1);

    // Its coordinator is a broker of 'new'.
    let found: FindCoordinatorResponse = RawClient::connect(&proxy.bootstrap()).unwrap().call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![StrBytes::from_static_str(TXN)]),
    );
    assert_eq!(found.coordinators[0].node_id.0, 1111);

    // 'new' issued the producer id and accepts the transaction's writes.
    let mut txn = Txn::init(&proxy);
    assert_eq!(txn.add("elsewhere"), 0);
    assert_eq!(txn.produce("elsewhere", 0..5), 0);
    assert_eq!(
        txn.add("ledger"),
        INVALID_TXN_STATE,
        "'ledger' is written to 'old'"
    );
    assert_eq!(txn.produce("ledger", 5..6), INVALID_TXN_STATE);
}
