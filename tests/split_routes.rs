//! Requests whose partitions live on several upstream brokers are split,
//! sent, and merged in request order: steady state when a topic's Produce
//! and Fetch point at different clusters, and a client's stale metadata
//! after a flip.

mod harness;

use std::collections::BTreeSet;

use harness::clients::{
    assert_cluster_holds, create_topic, indices, kafka_python_consume, produce_range, producer,
};
use harness::raw::{batch_of, RawClient};
use harness::{Broker, Proxy, ProxySetup};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ListOffsetsRequest, ListOffsetsResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::Producer;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

#[test]
fn produce_and_fetch_of_one_topic_can_point_at_different_clusters() {
    let old = Broker::start("sr-old");
    let new = Broker::start("sr-new");
    let mut setup = ProxySetup::two(&old, &new);
    // 'orders' is written to 'new' but still read from 'old' (producers
    // first, consumers later); 'audit' lives on 'new' alone.
    setup.extra = "[[routes.topic]]\npattern = \"orders\"\nproduce = \"new\"\nfetch = \"old\"\n\
                   [[routes.topic]]\npattern = \"audit\"\nproduce = \"new\"\nfetch = \"new\"\n"
        .into();
    let proxy = Proxy::start(setup);
    create_topic(&old.addr(), "orders", 2);
    create_topic(&new.addr(), "orders", 2);
    create_topic(&proxy.bootstrap(), "audit", 2);

    // Records written before the migration, straight to 'old'.
    let direct = producer(&old.addr(), &[("acks", "all")]);
    produce_range(&direct, "orders", 0..300, |_| {});
    let p = producer(&proxy.bootstrap(), &[("acks", "all")]);
    produce_range(&p, "orders", 300..500, |_| {});
    produce_range(&p, "audit", 500..700, |_| {});
    assert!(p.context().failed.lock().unwrap().is_empty());
    assert_cluster_holds(&old.addr(), "orders", 2, 0..300);
    assert_cluster_holds(&new.addr(), "orders", 2, 300..500);

    // Metadata leads both topics from the virtual broker of 'new' (the
    // produce side), so one Fetch asks it for both: 'orders' must come from
    // 'old' and 'audit' from 'new'.
    let before = proxy.metric("switchyard_split_requests_total");
    let read = kafka_python_consume(&proxy.bootstrap(), "orders,audit", 500);
    let expected: BTreeSet<u64> = (0..300).chain(500..700).collect();
    assert_eq!(indices(&read), expected);
    assert_eq!(read.len(), 500, "nothing twice");
    assert!(
        proxy.metric("switchyard_split_requests_total") > before,
        "the Fetch was split across the clusters"
    );
}

#[test]
fn one_request_for_partitions_of_two_clusters_is_split_and_answered_in_order() {
    let old = Broker::start("sp-old");
    let new = Broker::start("sp-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.extra = "[[routes.topic]]\npattern = \"b\"\nproduce = \"new\"\nfetch = \"new\"\n".into();
    let proxy = Proxy::start(setup);
    create_topic(&proxy.bootstrap(), "a", 2);
    create_topic(&proxy.bootstrap(), "b", 1);

    // One Produce, as a client with stale metadata might send it to any
    // broker: a-1 (old), b-0 (new), a partition that exists nowhere, a-0.
    let part = |index: i32, records: std::ops::Range<u64>| {
        PartitionProduceData::default()
            .with_index(index)
            .with_records(Some(batch_of(-1, -1, -1, records)))
    };
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("a"))
                .with_partition_data(vec![part(1, 0..10), part(99, 10..20)]),
            TopicProduceData::default()
                .with_name(name("b"))
                .with_partition_data(vec![part(0, 20..35)]),
            TopicProduceData::default()
                .with_name(name("a"))
                .with_partition_data(vec![part(0, 35..40)]),
        ]);
    let mut client = RawClient::connect(&proxy.bootstrap()).unwrap();
    let response: ProduceResponse = client.call(ApiKey::Produce, 8, &request);
    let answers: Vec<(String, i32, i16, i64)> = response
        .responses
        .iter()
        .flat_map(|t| {
            t.partition_responses
                .iter()
                .map(|p| (t.name.0.to_string(), p.index, p.error_code, p.base_offset))
        })
        .collect();
    assert_eq!(
        answers,
        vec![
            ("a".into(), 1, 0, 0),
            ("a".into(), 99, NOT_LEADER_OR_FOLLOWER, -1),
            ("b".into(), 0, 0, 0),
            ("a".into(), 0, 0, 0),
        ]
    );
    assert_cluster_holds(&old.addr(), "a", 2, (0..10).chain(35..40));
    assert_cluster_holds(&new.addr(), "b", 1, 20..35);

    // ListOffsets (latest) for both clusters' partitions in one request,
    // answered as each cluster answers for its own.
    let topic = |t: &str, ps: &[i32]| {
        ListOffsetsTopic::default()
            .with_name(name(t))
            .with_partitions(
                ps.iter()
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_timestamp(-1)
                    })
                    .collect(),
            )
    };
    let ends = |addr: &str, topics: Vec<ListOffsetsTopic>| -> Vec<(String, i32, i16, i64)> {
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(topics);
        let response: ListOffsetsResponse =
            RawClient::connect(addr)
                .unwrap()
                .call(ApiKey::ListOffsets, 5, &request);
        response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.0.to_string(),
                        p.partition_index,
                        p.error_code,
                        p.offset,
                    )
                })
            })
            .collect()
    };
    let merged = ends(
        &proxy.bootstrap(),
        vec![topic("b", &[0]), topic("a", &[0, 1])],
    );
    let on_new = ends(&new.addr(), vec![topic("b", &[0])]);
    let on_old = ends(&old.addr(), vec![topic("a", &[0, 1])]);
    assert!(on_new.iter().chain(&on_old).all(|e| e.2 == 0 && e.3 > 0));
    assert_eq!(merged, on_new.into_iter().chain(on_old).collect::<Vec<_>>());
}
