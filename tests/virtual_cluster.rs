//! The virtual cluster: what Metadata, FindCoordinator, DescribeCluster and
//! ApiVersions tell clients, in front of two real clusters whose brokers
//! both call themselves node 111.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::clients::{client_config, create_topic};
use harness::raw::RawClient;
use harness::{Proxy, TANSU_NODE_ID};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeClusterRequest,
    DescribeClusterResponse, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};

fn proxy_ports(proxy: &Proxy) -> BTreeSet<i32> {
    [TANSU_NODE_ID, 1000 + TANSU_NODE_ID]
        .iter()
        .map(|id| i32::from(proxy.virtual_port(*id)))
        .collect()
}

#[test]
fn answers_name_only_proxy_addresses_and_distinct_virtual_ids() {
    let (old, new, proxy) = harness::two_clusters("vc");
    create_topic(&proxy.bootstrap(), "orders", 3);

    let expected_ids: BTreeSet<i32> = [111, 1111].into();
    let upstream_ports = [i32::from(old.port), i32::from(new.port)];
    let mut client = RawClient::connect(&proxy.bootstrap()).unwrap();

    for version in [1, 4, 9, 12] {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("orders"))))]));
        let m: MetadataResponse = client.call(ApiKey::Metadata, version, &request);
        let ids: BTreeSet<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
        assert_eq!(ids, expected_ids, "Metadata v{version} broker ids");
        for b in &m.brokers {
            assert_eq!(b.host.as_str(), "127.0.0.1");
            assert!(
                proxy_ports(&proxy).contains(&b.port),
                "v{version}: port {} is not a proxy port",
                b.port
            );
            assert!(!upstream_ports.contains(&b.port));
        }
        assert_eq!(
            m.controller_id.0, 111,
            "controller is the default cluster's broker, virtualised"
        );
        if version >= 2 {
            assert_eq!(m.cluster_id.as_deref(), Some("switchyard-test"));
        }
        assert_eq!(m.topics.len(), 1);
        let t = &m.topics[0];
        assert_eq!(
            (t.error_code, t.partitions.len()),
            (0, 3),
            "v{version} orders"
        );
        for p in &t.partitions {
            assert_eq!(
                p.leader_id.0, 111,
                "orders routes to 'old', whose broker is virtual 111"
            );
            assert!(p.replica_nodes.iter().all(|r| r.0 == 111));
            assert!(p.isr_nodes.iter().all(|r| r.0 == 111));
        }
    }

    // FindCoordinator, single-key and batched forms.
    let f: FindCoordinatorResponse = client.call(
        ApiKey::FindCoordinator,
        1,
        &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g1")),
    );
    assert_eq!(
        (f.error_code, f.node_id.0, f.host.as_str()),
        (0, 111, "127.0.0.1")
    );
    assert_eq!(f.port, i32::from(proxy.virtual_port(111)));
    let f: FindCoordinatorResponse = client.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default().with_coordinator_keys(vec![
            StrBytes::from_static_str("g1"),
            StrBytes::from_static_str("g2"),
        ]),
    );
    assert_eq!(f.coordinators.len(), 2);
    for c in &f.coordinators {
        assert_eq!(
            (c.error_code, c.node_id.0, c.port),
            (0, 111, i32::from(proxy.virtual_port(111)))
        );
    }

    // DescribeCluster.
    let d: DescribeClusterResponse = client.call(
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    );
    assert_eq!(d.cluster_id.as_str(), "switchyard-test");
    let ids: BTreeSet<i32> = d.brokers.iter().map(|b| b.broker_id.0).collect();
    assert_eq!(ids, expected_ids);
    assert!(d
        .brokers
        .iter()
        .all(|b| b.host.as_str() == "127.0.0.1" && proxy_ports(&proxy).contains(&b.port)));

    // librdkafka sees the same two brokers, and only proxy addresses.
    let consumer: BaseConsumer =
        client_config(&proxy.bootstrap(), &[("group.id", "metadata-check")])
            .create()
            .unwrap();
    let md = consumer
        .fetch_metadata(Some("orders"), Duration::from_secs(10))
        .unwrap();
    let seen: BTreeSet<(i32, String, i32)> = md
        .brokers()
        .iter()
        .map(|b| (b.id(), b.host().to_owned(), b.port()))
        .collect();
    let expected: BTreeSet<(i32, String, i32)> = expected_ids
        .iter()
        .map(|id| {
            (
                *id,
                "127.0.0.1".to_owned(),
                i32::from(proxy.virtual_port(*id)),
            )
        })
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn api_versions_advertises_only_routable_apis_and_answers_too_new_versions() {
    let (_old, _new, proxy) = harness::two_clusters("av");
    let mut client = RawClient::connect(&proxy.bootstrap()).unwrap();
    let a: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(a.error_code, 0);
    let keys: BTreeSet<i16> = a.api_keys.iter().map(|k| k.api_key).collect();
    for must in [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::Metadata,
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::AddPartitionsToTxn,
    ] {
        assert!(keys.contains(&(must as i16)), "{must:?} advertised");
    }
    for never in [
        ApiKey::SaslHandshake,
        // The proxy routes it, but tansu lacks it: not every cluster can.
        ApiKey::EndTxn,
        ApiKey::AlterPartition,
        ApiKey::DeleteRecords,
    ] {
        assert!(
            !keys.contains(&(never as i16)),
            "{never:?} must not be advertised"
        );
    }
    let fetch = a
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Fetch as i16)
        .unwrap();
    assert!(
        fetch.max_version <= 12,
        "Fetch v13+ names topics by id; not advertised"
    );

    // A version the proxy does not speak: v0 body, UNSUPPORTED_VERSION, and
    // the list the client retries from (what Kafka brokers do).
    let frame = switchyard::wire::codec::request_frame(
        ApiKey::ApiVersions,
        3,
        77,
        &ApiVersionsRequest::default(),
    )
    .unwrap();
    let mut bytes = frame.to_vec();
    bytes[6..8].copy_from_slice(&99i16.to_be_bytes());
    client.send_bytes(&bytes).unwrap();
    let response = client.read_frame().unwrap();
    assert_eq!(response.response_correlation_id(), Some(77));
    let v0: ApiVersionsResponse =
        switchyard::wire::codec::decode_response(ApiKey::ApiVersions, 0, &response).unwrap();
    assert_eq!(v0.error_code, 35);
    assert!(!v0.api_keys.is_empty());
}

/// Metadata queries the proxy has sent to upstream clusters so far.
fn upstream_metadata_queries(proxy: &Proxy) -> f64 {
    let (_, text) = proxy.http_get("/metrics");
    text.lines()
        .filter(|l| l.starts_with("switchyard_upstream_requests_total{"))
        .filter(|l| l.contains("api=\"Metadata\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_metadata_storm_costs_the_upstream_cluster_a_handful_of_queries() {
    let (_old, _new, proxy) = harness::two_clusters("storm-md");
    create_topic(&proxy.bootstrap(), "orders", 3);
    const CLIENTS: usize = 200;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("orders"))))]));
    // Every client connected first; then all ask at once, twice.
    let mut clients: Vec<RawClient> = (0..CLIENTS)
        .map(|_| RawClient::connect(&proxy.bootstrap()).expect("connect"))
        .collect();
    let before = upstream_metadata_queries(&proxy);
    for round in 0..2 {
        let barrier = std::sync::Barrier::new(CLIENTS);
        std::thread::scope(|s| {
            for c in clients.iter_mut() {
                let (barrier, request) = (&barrier, &request);
                s.spawn(move || {
                    barrier.wait();
                    let answer: MetadataResponse = c.call(ApiKey::Metadata, 1, request);
                    assert_eq!(answer.topics.len(), 1, "round {round}");
                    let topic = &answer.topics[0];
                    assert_eq!(topic.error_code, 0, "round {round}");
                    assert_eq!(topic.partitions.len(), 3, "round {round}");
                });
            }
        });
    }
    let queries = upstream_metadata_queries(&proxy) - before;
    // 400 client requests; the batched queries, and the views' own
    // refresh (every second per cluster in these tests), reach upstream.
    assert!(
        queries <= 8.0,
        "{queries} upstream Metadata queries for {} client requests",
        2 * CLIENTS
    );
    assert!(queries >= 1.0);
}
