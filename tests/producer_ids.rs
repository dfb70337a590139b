//! Producer ids belong to one cluster. A client asks any broker for one, so
//! the proxy must get it from the cluster the client's topics live on, or
//! every idempotent batch is refused as coming from an unknown producer.

mod harness;

use bytes::{Bytes, BytesMut};
use harness::clients::create_topic;
use harness::raw::RawClient;
use harness::{Broker, Proxy, ProxySetup};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

fn idempotent_batch(producer_id: i64, producer_epoch: i16) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: 0,
        timestamp: 0,
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from_static(b"v")),
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &options).expect("encode batch");
    buf.freeze()
}

#[test]
fn producer_id_asked_of_any_virtual_broker_is_valid_where_the_topic_lives() {
    // 'old' keeps producer state in sqlite and refuses producer ids it did
    // not issue; 'new' would issue one of its own.
    let old = Broker::start_persistent("pid-old");
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
