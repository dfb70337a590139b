//! Per-topic routes and runtime flips, against two real clusters: records
//! land where the route says, a flip under load loses and duplicates
//! nothing, flips survive a restart, a writer behind the proxy's back aborts
//! a flip, and bad admin requests change nothing.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::clients::{
    assert_cluster_holds, cluster_records, create_topic, indices, kafka_python_consume,
    kafka_python_produce, produce_range, producer, Consumed,
};
use harness::{Broker, Proxy, ProxySetup};
use rdkafka::producer::Producer;
use serde_json::Value;

/// The step names of a flip report, in order.
fn steps(report: &Value) -> Vec<&str> {
    report["result"]["steps"]
        .as_array()
        .expect("a flip report lists its steps")
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect()
}

#[test]
fn each_topic_lands_in_the_cluster_its_route_names() {
    let old = Broker::start("rt-old");
    let new = Broker::start("rt-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.extra = "[[routes.topic]]\npattern = \"b*\"\nproduce = \"new\"\nfetch = \"new\"\n".into();
    let proxy = Proxy::start(setup);
    create_topic(&proxy.bootstrap(), "a", 2);
    // Created through the proxy: it goes to the cluster the topic routes to.
    create_topic(&proxy.bootstrap(), "b1", 2);

    let p = producer(&proxy.bootstrap(), &[("acks", "all")]);
    produce_range(&p, "a", 0..500, |_| {});
    produce_range(&p, "b1", 500..1000, |_| {});
    assert!(p.context().failed.lock().unwrap().is_empty());

    assert_cluster_holds(&old.addr(), "a", 2, 0..500);
    assert_cluster_holds(&new.addr(), "b1", 2, 500..1000);
    assert!(
        cluster_records(&new.addr(), "a", 2).is_empty(),
        "nothing of 'a' on new"
    );
    assert!(
        cluster_records(&old.addr(), "b1", 2).is_empty(),
        "nothing of 'b1' on old"
    );
    let through_proxy = kafka_python_consume(&proxy.bootstrap(), "b1", 500);
    assert_eq!(indices(&through_proxy), (500..1000).collect());

    // One CreateTopics for topics of two clusters is refused, topic by
    // topic, and creates nothing anywhere.
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::types::RDKafkaErrorCode;
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        harness::clients::client_config(&proxy.bootstrap(), &[])
            .create()
            .unwrap();
    let results = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(admin.create_topics(
            &[
                NewTopic::new("a2", 1, TopicReplication::Fixed(1)),
                NewTopic::new("b2", 1, TopicReplication::Fixed(1)),
            ],
            &AdminOptions::new(),
        ))
        .unwrap();
    let codes: Vec<_> = results.into_iter().collect();
    assert_eq!(
        codes,
        vec![
            Err(("a2".to_owned(), RDKafkaErrorCode::InvalidRequest)),
            Err(("b2".to_owned(), RDKafkaErrorCode::InvalidRequest)),
        ]
    );
    // And 'b1', created through the proxy, exists only where it routes.
    for (cluster, topic) in [
        (&old, "a2"),
        (&new, "b2"),
        (&old, "b2"),
        (&new, "a2"),
        (&old, "b1"),
    ] {
        assert!(
            topic_absent(&cluster.addr(), topic),
            "{topic} was not created on {}",
            cluster.name
        );
    }
}

/// Whether the broker at `addr` answers UNKNOWN_TOPIC_OR_PARTITION for
/// `topic`, asked not to create it.
fn topic_absent(addr: &str, topic: &str) -> bool {
    let m: kafka_protocol::messages::MetadataResponse =
        harness::raw::RawClient::connect(addr).unwrap().call(
            kafka_protocol::messages::ApiKey::Metadata,
            4,
            &kafka_protocol::messages::MetadataRequest::default()
                .with_allow_auto_topic_creation(false)
                .with_topics(Some(vec![
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(kafka_protocol::messages::TopicName(
                            kafka_protocol::protocol::StrBytes::from_string(topic.to_owned()),
                        ))),
                ])),
        );
    m.topics[0].error_code == 3
}

/// `flip --dry-run --json`'s answer for `topic`, or the CLI's output when
/// it refused.
fn dry_run(proxy: &Proxy, topic: &str) -> Result<Value, String> {
    let out = proxy.cli(&["flip", topic, "--to", "new", "--dry-run", "--json"]);
    let answer: Value = serde_json::from_slice(&out.stdout).expect("one JSON answer");
    match answer["ok"].as_bool() {
        Some(true) if out.status.success() => Ok(answer["result"].clone()),
        _ => Err(answer["error"].as_str().unwrap_or("?").to_owned()),
    }
}

#[test]
fn a_dry_run_says_what_a_flip_would_do_and_changes_nothing() {
    let (old, new, proxy) = harness::two_clusters("dry");
    create_topic(&old.addr(), "both", 3);
    create_topic(&new.addr(), "both", 3);
    create_topic(&old.addr(), "only-old", 2);
    create_topic(&old.addr(), "uneven", 3);
    create_topic(&new.addr(), "uneven", 2);
    let p = producer(&proxy.bootstrap(), &[]);
    produce_range(&p, "both", 0..60, |_| {});
    let mut per_partition: BTreeMap<i32, i64> = BTreeMap::new();
    for d in p.context().delivered.lock().unwrap().iter() {
        *per_partition.entry(d.partition).or_default() += 1;
    }

    // The stitch points are the logs' ends as they stand.
    let preview = dry_run(&proxy, "both").expect("a dry run of 'both'");
    assert_eq!(preview["changed"], true);
    assert_eq!(preview["partitions"], 3);
    assert!(preview.get("create").is_none(), "{preview}");
    let stitch: BTreeMap<i64, (i64, i64)> = preview["stitch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_i64().unwrap();
            (n("partition"), (n("l_old"), n("l_new")))
        })
        .collect();
    let expected: BTreeMap<i64, (i64, i64)> = (0..3)
        .map(|p| (p, (per_partition.get(&(p as i32)).copied().unwrap_or(0), 0)))
        .collect();
    assert_eq!(stitch, expected);
    let text = proxy.cli(&["flip", "both", "--to", "new", "--dry-run"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("nothing was changed"), "{text}");

    // A topic the target lacks would be created; the dry run does not.
    let preview = dry_run(&proxy, "only-old").expect("a dry run of 'only-old'");
    // (A broker that creates topics when asked about them makes the
    // preview find it there: then there is nothing to create.)
    let absent = topic_absent(&new.addr(), "only-old");
    assert_eq!(preview.get("create").is_some(), absent, "{preview}");
    if absent {
        assert_eq!(preview["create"]["cluster"], "new", "{preview}");
        assert_eq!(preview["create"]["partitions"], 2, "{preview}");
    }

    // What the flip would refuse, the dry run refuses.
    let refused = dry_run(&proxy, "uneven").unwrap_err();
    assert!(
        refused.contains("has 3 partitions on cluster 'old' but 2"),
        "{refused}"
    );

    // Nothing moved; the real flip then records the previewed points.
    assert!(proxy.runtime_routes().is_empty());
    assert_eq!(
        proxy.json("status")["flips"].as_array().map(Vec::len),
        Some(0)
    );
    let out = proxy.cli(&["flip", "both", "--to", "new", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["result"]["stitch"], preview_stitch(&expected));
}

/// Stitch points as the JSON of a report lists them.
fn preview_stitch(points: &BTreeMap<i64, (i64, i64)>) -> Value {
    Value::Array(
        points
            .iter()
            .map(|(p, (l_old, l_new))| {
                serde_json::json!({"partition": p, "l_old": l_old, "l_new": l_new})
            })
            .collect(),
    )
}

/// Records `start..start+count` from a librdkafka producer through `bootstrap`,
/// paced to last about 6 s so that flips happen mid-stream.
fn paced_librdkafka(
    bootstrap: String,
    start: u64,
    count: u64,
    config: &'static [(&'static str, &'static str)],
) -> std::thread::JoinHandle<harness::clients::Outcome> {
    std::thread::spawn(move || {
        let mut settings = vec![
            ("acks", "all"),
            ("linger.ms", "2"),
            ("message.timeout.ms", "120000"),
        ];
        settings.extend_from_slice(config);
        let p = producer(&bootstrap, &settings);
        produce_range(&p, "moving", start..start + count, |i| {
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let reports = p.context();
        let delivered = reports.delivered.lock().unwrap().clone();
        let failed = reports.failed.lock().unwrap().clone();
        (delivered, failed)
    })
}

#[test]
fn flip_under_load_loses_nothing_and_duplicates_nothing() {
    // Three producers, told apart by their index ranges.
    const PLAIN: u64 = 0; // librdkafka, idempotence off, one request in flight
    const IDEMPOTENT: u64 = 1_000_000; // librdkafka, idempotence on
    const PYTHON: u64 = 2_000_000; // kafka-python (idempotent by default)
    const N: u64 = 5_000;
    const PY_N: u64 = 3_000;
    let producer_of = |index: u64| index / 1_000_000;
    let (old, new, proxy) = harness::two_clusters("fl");
    create_topic(&proxy.bootstrap(), "moving", 3);

    let plain = paced_librdkafka(
        proxy.bootstrap(),
        PLAIN,
        N,
        &[
            ("enable.idempotence", "false"),
            ("max.in.flight.requests.per.connection", "1"),
        ],
    );
    let idempotent = paced_librdkafka(
        proxy.bootstrap(),
        IDEMPOTENT,
        N,
        &[("enable.idempotence", "true")],
    );
    let bootstrap = proxy.bootstrap();
    let kafka_python =
        std::thread::spawn(move || kafka_python_produce(&bootstrap, "moving", PYTHON, PY_N));

    std::thread::sleep(Duration::from_millis(1500));
    let out = proxy.flip("moving", "new");
    assert!(
        out.starts_with("flipped 'moving': produce old -> new, fetch old -> new in "),
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    proxy.flip("moving", "old");

    let mut acked: BTreeSet<u64> = BTreeSet::new();
    for (name, handle) in [("plain", plain), ("idempotent", idempotent)] {
        let (delivered, failed) = handle.join().expect("librdkafka producer");
        assert!(
            failed.is_empty(),
            "{name}: {} delivery errors reached the application, the first: {:?}",
            failed.len(),
            failed.first()
        );
        assert_eq!(delivered.len() as u64, N, "{name}");
        acked.extend(delivered.iter().map(|d| d.index));
    }
    let python_acks = kafka_python.join().expect("kafka-python producer");
    assert_eq!(python_acks.len() as u64, PY_N);
    acked.extend(python_acks.iter().map(|a| a.0));
    assert_eq!(acked.len() as u64, 2 * N + PY_N);

    let on_old = cluster_records(&old.addr(), "moving", 3);
    let on_new = cluster_records(&new.addr(), "moving", 3);
    let span = |records: &[Consumed], producer: u64| {
        let of = records
            .iter()
            .filter(|r| producer_of(r.index) == producer)
            .map(|r| r.index);
        (of.clone().min(), of.max())
    };
    for producer in [0, 1] {
        let ((first_new, _), (_, last_old)) = (span(&on_new, producer), span(&on_old, producer));
        assert!(
            first_new.is_some(),
            "producer {producer}: the flip moved traffic to 'new'"
        );
        assert!(
            first_new < last_old,
            "producer {producer}: the flip back to 'old' happened under load too"
        );
    }
    let mut copies: BTreeMap<u64, usize> = BTreeMap::new();
    for r in on_old.iter().chain(&on_new) {
        assert!(r.value_ok, "record {} intact", r.index);
        *copies.entry(r.index).or_default() += 1;
    }
    assert_eq!(
        copies.keys().copied().collect::<BTreeSet<_>>(),
        acked,
        "every acknowledged record is stored"
    );
    let duplicated: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "records stored twice: {duplicated:?}"
    );

    // Order: within each cluster's partition, each producer's records keep
    // the order they were produced in.
    for (cluster, records) in [("old", &on_old), ("new", &on_new)] {
        let mut last: BTreeMap<(i32, u64), (i64, u64)> = BTreeMap::new();
        let mut sorted = records.to_vec();
        sorted.sort_by_key(|r| (r.partition, r.offset));
        for r in sorted {
            let key = (r.partition, producer_of(r.index));
            if let Some((offset, index)) = last.insert(key, (r.offset, r.index)) {
                assert!(
                    r.index > index,
                    "{cluster} partition {}: record {} at offset {} follows record {index} at offset {offset}",
                    r.partition,
                    r.index,
                    r.offset
                );
            }
        }
    }
}

#[test]
fn restarted_proxy_keeps_runtime_routes() {
    let old = Broker::start("rs-old");
    let new = Broker::start("rs-new");
    let mut proxy = Proxy::start(ProxySetup::two(&old, &new));
    create_topic(&proxy.bootstrap(), "kept", 2);
    proxy.flip("kept", "new");
    proxy.restart();

    assert_eq!(
        proxy.runtime_routes(),
        vec![("kept".to_owned(), "new".to_owned(), "new".to_owned())]
    );
    let text = proxy.cli(&["routes"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("kept"));
    let p = producer(&proxy.bootstrap(), &[("acks", "all")]);
    produce_range(&p, "kept", 0..200, |_| {});
    assert!(p.context().failed.lock().unwrap().is_empty());
    assert_cluster_holds(&new.addr(), "kept", 2, 0..200);
    assert!(cluster_records(&old.addr(), "kept", 2).is_empty());
}

#[test]
fn flip_aborts_when_something_writes_to_the_old_cluster_directly() {
    let (old, _new, proxy) = harness::two_clusters("wb");
    create_topic(&proxy.bootstrap(), "contested", 1);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, addr) = (stop.clone(), old.addr());
        std::thread::spawn(move || {
            let p = producer(&addr, &[("acks", "1"), ("linger.ms", "0")]);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                produce_range(&p, "contested", i..i + 1, |_| {});
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            i
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let out = proxy.cli(&["flip", "contested", "--to", "new"]);
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an aborted flip exits 1: {stderr}"
    );
    assert!(
        stderr.contains("flip of 'contested' aborted: partition 0 on cluster 'old' grew from"),
        "{stderr}"
    );
    assert!(
        stderr.contains("without going through the proxy"),
        "{stderr}"
    );
    assert!(proxy.runtime_routes().is_empty(), "routes unchanged");
    assert!(!proxy.state_file().exists(), "nothing recorded");
}

#[test]
fn bad_admin_requests_get_clear_errors_and_change_nothing() {
    let (_old, _new, proxy) = harness::two_clusters("ad");
    create_topic(&proxy.bootstrap(), "steady", 1);

    let cases = [
        ("not json", "malformed request"),
        (r#"{"cmd":"explode"}"#, "malformed request"),
        (
            r#"{"cmd":"flip","topic":"steady","to":"new","extra":1}"#,
            "malformed request",
        ),
        (
            r#"{"cmd":"flip","topic":"steady","to":"mars"}"#,
            "unknown cluster 'mars' (known: new, old)",
        ),
        (
            r#"{"cmd":"flip","topic":"steady.*","to":"new"}"#,
            "'steady.*' is not a topic name",
        ),
        (
            r#"{"cmd":"flip","topic":"ghost","to":"new"}"#,
            "topic 'ghost' does not exist on cluster 'old'",
        ),
        (
            r#"{"cmd":"flip","topic":"steady","to":"new","side":"sideways"}"#,
            "malformed request",
        ),
    ];
    for (line, expected) in cases {
        let answer = proxy.admin(line);
        assert_eq!(answer["ok"], false, "{line}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(expected), "{line}: {error}");
        assert!(proxy.runtime_routes().is_empty(), "{line} changed routes");
    }
    assert!(!proxy.state_file().exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(proxy.admin_socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o660,
        "only the proxy's user and group may flip"
    );

    // The CLI says the same, with exit code 1 for a refusal.
    let out = proxy.cli(&["flip", "steady", "--to", "mars"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown cluster 'mars'"));

    // A second flip of a topic while one runs is refused; the first one
    // completes. The first holds the topic for at least its stillness check
    // (half a second), so a second sent 100 ms later meets it.
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| proxy.admin(r#"{"cmd":"flip","topic":"steady","to":"new"}"#));
        std::thread::sleep(Duration::from_millis(100));
        let second = proxy.admin(r#"{"cmd":"flip","topic":"steady","to":"new"}"#);
        (first.join().unwrap(), second)
    });
    assert_eq!(second["ok"], false);
    assert_eq!(
        second["error"],
        "a flip of topic 'steady' is already running"
    );
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(
        steps(&first),
        ["prepare", "fence", "check", "record", "switch"]
    );
    assert_eq!(
        proxy.runtime_routes(),
        vec![("steady".to_owned(), "new".to_owned(), "new".to_owned())]
    );
}

#[test]
fn a_produce_only_flip_moves_writers_and_readers_follow_the_stitched_log() {
    let (old, new, proxy) = harness::two_clusters("os");
    create_topic(&proxy.bootstrap(), "orders", 2);
    let p = producer(&proxy.bootstrap(), &[("acks", "all")]);
    produce_range(&p, "orders", 0..300, |_| {});

    let out = proxy.cli(&["flip", "orders", "--to", "new", "--produce-only"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        proxy.runtime_routes(),
        vec![("orders".to_owned(), "new".to_owned(), "old".to_owned())]
    );
    produce_range(&p, "orders", 300..500, |_| {});
    assert!(p.context().failed.lock().unwrap().is_empty());
    assert_cluster_holds(&old.addr(), "orders", 2, 0..300);
    assert_cluster_holds(&new.addr(), "orders", 2, 300..500);

    // One log through the proxy: the old records, then the new ones, at
    // offsets that continue where 'old' stopped.
    let read = kafka_python_consume(&proxy.bootstrap(), "orders", 500);
    assert_eq!(indices(&read), (0..500).collect());
    for partition in [0, 1] {
        let offsets: Vec<i64> = read
            .iter()
            .filter(|r| r.partition == partition)
            .map(|r| r.offset)
            .collect();
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, expected, "partition {partition} is contiguous");
    }

    // Reads of a stitched topic follow its segments, not a route of their own.
    let refused = proxy.admin(r#"{"cmd":"flip","topic":"orders","to":"new","side":"fetch-only"}"#);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .starts_with("reads of 'orders' follow its stitched log"),
        "{refused}"
    );
}

#[test]
fn cluster_id_topic_id_and_leader_epochs_stay_stable_across_a_flip() {
    use harness::raw::RawClient;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    let (old, new, proxy) = harness::two_clusters("id");
    create_topic(&proxy.bootstrap(), "stable", 2);
    let by_name = || {
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("stable"))))]))
    };
    let describe = |addr: &str, request: &MetadataRequest| -> MetadataResponse {
        RawClient::connect(addr)
            .unwrap()
            .call(ApiKey::Metadata, 12, request)
    };

    let before = describe(&proxy.bootstrap(), &by_name());
    let id = before.topics[0].topic_id;
    assert!(!id.is_nil());
    assert!(before.topics[0]
        .partitions
        .iter()
        .all(|p| p.leader_id.0 == 111 && p.leader_epoch == -1));
    proxy.flip("stable", "new");
    let after = describe(&proxy.bootstrap(), &by_name());
    assert_eq!(after.cluster_id, before.cluster_id);
    assert_eq!(
        after.topics[0].topic_id, id,
        "the topic id clients see survives the flip"
    );
    assert!(after.topics[0]
        .partitions
        .iter()
        .all(|p| p.leader_id.0 == 1111 && p.leader_epoch == -1));

    // It is the proxy's own id, not either cluster's, and it finds the topic.
    for cluster in [&old, &new] {
        let real = describe(&cluster.addr(), &by_name());
        assert_ne!(real.topics[0].topic_id, id);
    }
    let by_id = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_topic_id(id)
    ]));
    let found = describe(&proxy.bootstrap(), &by_id);
    assert_eq!(
        found.topics[0].name.as_deref().map(|n| n.as_str()),
        Some("stable")
    );
    assert_eq!(found.topics[0].error_code, 0);
}

#[test]
fn consumer_keeps_consuming_across_a_flip_without_an_offset_reset() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::Message;

    let (old, new, proxy) = harness::two_clusters("cf");
    create_topic(&proxy.bootstrap(), "mirrored", 1);
    create_topic(&new.addr(), "mirrored", 1);
    // The same records at the same offsets on both clusters, as a
    // replicator would leave them.
    for cluster in [&old, &new] {
        let p = producer(&cluster.addr(), &[("acks", "all")]);
        produce_range(&p, "mirrored", 0..1000, |_| {});
        assert!(p.context().failed.lock().unwrap().is_empty());
    }

    let consumer: BaseConsumer = harness::clients::client_config(
        &proxy.bootstrap(),
        &[
            ("group.id", "follower"),
            ("enable.auto.commit", "false"),
            // Any reset to earliest or latest would surface as an error.
            ("auto.offset.reset", "error"),
        ],
    )
    .create()
    .unwrap();
    let start = rdkafka::TopicPartitionList::from_topic_map(
        &[(("mirrored".to_owned(), 0), rdkafka::Offset::Beginning)].into(),
    )
    .unwrap();
    consumer.assign(&start).unwrap();
    let mut read: Vec<(i64, u64)> = Vec::new();
    let poll_until = |count: usize, read: &mut Vec<(i64, u64)>| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while read.len() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "stuck at {} records",
                read.len()
            );
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                let m = m
                    .unwrap_or_else(|e| panic!("consumer error after {} records: {e}", read.len()));
                let key = std::str::from_utf8(m.key().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                read.push((m.offset(), key));
            }
        }
    };
    poll_until(500, &mut read);
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    proxy.flip("mirrored", "new");
    poll_until(1000, &mut read);
    // New records go to 'new' now, and the consumer reads them there.
    let p = producer(&proxy.bootstrap(), &[("acks", "all")]);
    produce_range(&p, "mirrored", 1000..1100, |_| {});
    poll_until(1100, &mut read);
    let expected: Vec<(i64, u64)> = (0..1100).map(|i| (i as i64, i)).collect();
    assert_eq!(
        read, expected,
        "every record once, contiguous offsets, no reset"
    );
    assert_eq!(cluster_records(&new.addr(), "mirrored", 1).len(), 1100);
    assert_eq!(cluster_records(&old.addr(), "mirrored", 1).len(), 1000);
}
