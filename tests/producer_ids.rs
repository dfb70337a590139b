//! Producer ids belong to one cluster. A client asks any broker for one, so
//! the proxy must get it from the cluster the client's topics live on, or
//! every idempotent batch is refused as coming from an unknown producer.

mod harness;

use bytes::Bytes;
use harness::clients::{cluster_records, create_topic};
use harness::raw::{batch_of, init_producer_id, produce, RawClient};
use harness::{Broker, Proxy, ProxySetup};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

fn idempotent_batch(producer_id: i64, producer_epoch: i16) -> Bytes {
    batch_of(producer_id, producer_epoch, 0, 0..1)
}

#[test]
fn producer_id_asked_of_any_virtual_broker_is_valid_where_the_topic_lives() {
    // 'old' refuses producer ids it did not issue (in sqlite storage, and
    // in memory, the only storage of the later tansu build); 'new' would
    // issue one of its own.
    let old = match harness::tansu_build() {
        harness::TansuBuild::Release => Broker::start_persistent("pid-old"),
        harness::TansuBuild::Main => Broker::start("pid-old"),
    };
    let new = Broker::start("pid-new");
    let proxy = Proxy::start(ProxySetup::two(&old, &new));
    create_topic(&proxy.bootstrap(), "ledger", 1);

    for (listener, port) in [
        (
            "virtual broker 1111 (cluster new)",
            proxy.virtual_port(1111),
        ),
        ("bootstrap", proxy.port),
    ] {
        let mut any = RawClient::connect(&format!("127.0.0.1:{port}")).unwrap();
        let pid: InitProducerIdResponse = any.call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default().with_transaction_timeout_ms(60_000),
        );
        assert_eq!(pid.error_code, 0, "{listener}: InitProducerId");

        let mut leader =
            RawClient::connect(&format!("127.0.0.1:{}", proxy.virtual_port(111))).unwrap();
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("ledger")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(idempotent_batch(
                        pid.producer_id.0,
                        pid.producer_epoch,
                    )))])]);
        let response: ProduceResponse = leader.call(ApiKey::Produce, 7, &request);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            partition.error_code, 0,
            "a producer id asked of the {listener} is accepted by cluster 'old' (59 = UNKNOWN_PRODUCER_ID)"
        );
    }
}

#[test]
fn producer_id_the_new_cluster_gave_someone_else_loses_nothing_after_a_flip() {
    let (old, new, proxy) = harness::two_clusters("pc");
    create_topic(&proxy.bootstrap(), "shared", 1);
    create_topic(&new.addr(), "shared", 1);

    // Our producer's id comes from 'old' (through the proxy); 'new' has
    // issued the very same id to another producer, which wrote 600 records.
    let ours = init_producer_id(&proxy.bootstrap());
    let (pid, epoch) = (ours.producer_id.0, ours.producer_epoch);
    let theirs = harness::wait_for(
        "'new' to issue the same producer id",
        std::time::Duration::from_secs(30),
        || {
            let p = init_producer_id(&new.addr());
            (p.producer_id.0 >= pid).then_some(p)
        },
    );
    assert_eq!(
        theirs.producer_id.0, pid,
        "the premise: a colliding producer id on 'new'"
    );
    assert_eq!(
        produce(
            &new.addr(),
            "shared",
            batch_of(pid, theirs.producer_epoch, 0, 10_000..10_600)
        ),
        0
    );

    let leader = |id: i32| format!("127.0.0.1:{}", proxy.virtual_port(id));
    assert_eq!(
        produce(&leader(111), "shared", batch_of(pid, epoch, 0, 0..100)),
        0
    );
    let out = proxy.cli(&["flip", "shared", "--to", "new"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sequences 100..199 under that id are 'duplicates' to 'new': without
    // per-cluster producer ids they would be acknowledged and never written.
    assert_eq!(
        produce(&leader(1111), "shared", batch_of(pid, epoch, 100, 100..200)),
        0
    );
    assert_eq!(
        produce(&leader(1111), "shared", batch_of(pid, epoch, 200, 200..300)),
        0
    );
    // A retry of the same batch is recognised as one (46:
    // DUPLICATE_SEQUENCE_NUMBER, which clients count as delivered) and not
    // written again (checked below).
    let retry = produce(&leader(1111), "shared", batch_of(pid, epoch, 200, 200..300));
    assert!(matches!(retry, 0 | 46), "retry answered {retry}");

    let on_new: Vec<u64> = cluster_records(&new.addr(), "shared", 1)
        .iter()
        .map(|r| r.index)
        .collect();
    let expected: Vec<u64> = (10_000..10_600).chain(100..300).collect();
    assert_eq!(on_new, expected, "every record once, in order");
    let on_old: Vec<u64> = cluster_records(&old.addr(), "shared", 1)
        .iter()
        .map(|r| r.index)
        .collect();
    assert_eq!(on_old, (0..100).collect::<Vec<_>>());
}
