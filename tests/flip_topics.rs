//! Many topics in one flip (`flip --topics PATTERN`, `--topics-file`),
//! against two real clusters: a thousand topics move in one fence under a
//! librdkafka producer's load with every acknowledged record exactly once
//! in each topic's stitched log, a dry run changes nothing, and a failure
//! on any one topic leaves every route as it was.

mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::clients::{
    create_many, create_topics_with, topic_names, value_for, write_round_robin,
};
use harness::Proxy;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;
use serde_json::Value;

/// The topics routed at runtime, by name: (produce cluster, fetch cluster).
fn runtime_routes(proxy: &Proxy) -> BTreeMap<String, (String, String)> {
    proxy
        .runtime_routes()
        .into_iter()
        .map(|(topic, produce, fetch)| (topic, (produce, fetch)))
        .collect()
}

/// Every record of partition 0 of each of `topics` read through
/// `bootstrap` from the beginning, as (topic, offset) → record index, until
/// `count` have come (bounded: two minutes).
fn stitched_logs(bootstrap: &str, topics: &[String], count: usize) -> BTreeMap<(String, i64), u64> {
    let reader: BaseConsumer = harness::clients::client_config(
        bootstrap,
        &[
            ("group.id", "stitched-reader"),
            ("enable.auto.commit", "false"),
        ],
    )
    .create()
    .expect("consumer");
    let mut assignment = rdkafka::TopicPartitionList::new();
    for topic in topics {
        assignment
            .add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
            .expect("partition offset");
    }
    reader.assign(&assignment).expect("assign");
    let mut read = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while read.len() < count && Instant::now() < deadline {
        let Some(message) = reader.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = message.expect("no consume error reaches the application");
        let index: u64 = std::str::from_utf8(m.key().expect("keyed"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            m.payload(),
            Some(&value_for(index)[..]),
            "record {index} intact"
        );
        let at = (m.topic().to_owned(), m.offset());
        if let Some(before) = read.insert(at.clone(), index) {
            panic!("{at:?} read twice: record {before}, then {index}");
        }
    }
    read
}

#[test]
fn a_thousand_topics_move_in_one_flip_under_load_and_lose_nothing() {
    const TOPICS: usize = 1_000;
    const RECORDS: u64 = 8_000;
    let (_old, new, proxy) = harness::two_clusters("ft");
    let topics = topic_names("bulk", TOPICS);
    create_many(&proxy.bootstrap(), &topics, 1);
    // Not matched by the pattern: stays where it is.
    create_many(&proxy.bootstrap(), &["other.one".to_owned()], 1);

    let writer = write_round_robin(proxy.bootstrap(), topics.clone(), RECORDS);

    std::thread::sleep(Duration::from_millis(1500));
    let printed = proxy.cli_ok(&["flip", "--topics", "bulk.*", "--to", "new"]);
    eprintln!("{}", printed.lines().next().unwrap_or_default());
    assert!(
        printed.starts_with("flipped 1000 of 1000 topics in one fence in "),
        "{printed}"
    );
    for step in ["prepare", "fence", "check", "record", "switch"] {
        assert!(printed.lines().next().unwrap().contains(step), "{printed}");
    }
    assert_eq!(printed.lines().count(), 1 + TOPICS, "a line per topic");

    let reports = writer.join().expect("librdkafka producer");
    let delivered = reports.delivered.lock().unwrap().clone();
    let failed = reports.failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} delivery errors reached the application, the first: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(delivered.len() as u64, RECORDS);

    // One record of the flip per topic, all at the same instant: one
    // durable record for the thousand.
    let status = proxy.json("status");
    let flips = status["flips"].as_array().expect("status lists flips");
    assert_eq!(flips.len(), TOPICS);
    assert!(flips.iter().all(|f| f["at_ms"] == flips[0]["at_ms"]));
    let routes = runtime_routes(&proxy);
    assert_eq!(routes.len(), TOPICS, "other.one keeps its configured route");
    assert!(routes
        .values()
        .all(|(produce, fetch)| produce == "new" && fetch == "new"));

    // Every acknowledged record is in its topic's stitched log exactly
    // once, at the offset its acknowledgement gave.
    let acked: BTreeMap<(String, i64), u64> = delivered
        .iter()
        .map(|d| {
            (
                (topics[(d.index as usize) % TOPICS].clone(), d.offset),
                d.index,
            )
        })
        .collect();
    assert_eq!(acked.len() as u64, RECORDS, "no two acks share an offset");
    let read = stitched_logs(&proxy.bootstrap(), &topics, RECORDS as usize);
    assert_eq!(read, acked);
    // Each topic's stitched log is dense: 0, 1, 2, … with old records
    // first, new ones after.
    let mut per_topic: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (topic, offset) in read.keys() {
        per_topic.entry(topic).or_default().push(*offset);
    }
    for (topic, offsets) in &per_topic {
        let dense: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &dense, "{topic}");
    }
    // The flip moved the writes: 'new' holds records of the moved topics.
    let on_new = stitched_logs(&new.addr(), &topics, 1);
    assert!(
        !on_new.is_empty(),
        "records written after the flip are on 'new'"
    );
}

/// `flip --topics-file FILE --dry-run --json`'s answer.
fn answer_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("one JSON answer")
}

#[test]
fn a_failure_on_any_one_topic_leaves_every_route_as_it_was() {
    let (old, new, proxy) = harness::two_clusters("fa");
    let topics = topic_names("mix", 100);
    create_many(&proxy.bootstrap(), &topics, 1);
    // On 'new' with another partition count: the flip must refuse it, and
    // with it the other 99.
    create_topics_with(&new.addr(), &["mix.0050"], 2, &[]);

    let out = proxy.cli(&["flip", "--topics", "mix.*", "--to", "new"]);
    assert!(!out.status.success(), "the flip is refused");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(
            "flip of 100 topics aborted, none of them moved: topic 'mix.0050' has 1 partitions \
             on cluster 'old' but 2 on cluster 'new'"
        ),
        "{said}"
    );
    assert!(runtime_routes(&proxy).is_empty(), "no route changed");
    // Counts are checked before anything is created: no other topic of
    // the batch was made on 'new'.
    let out = proxy.cli(&[
        "flip",
        "--topics",
        "mix.*",
        "--to",
        "new",
        "--dry-run",
        "--json",
    ]);
    assert!(!answer_of(&out)["ok"].as_bool().unwrap());
    let meta: BaseConsumer = harness::clients::client_config(&new.addr(), &[("group.id", "m")])
        .create()
        .unwrap();
    let on_new = meta
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata of 'new'");
    let mix_on_new: Vec<&str> = on_new
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|t| t.starts_with("mix."))
        .collect();
    assert_eq!(mix_on_new, ["mix.0050"]);

    // A file naming the others: a dry run says what would move and moves
    // nothing; then the flip moves exactly those.
    let listed = proxy_scratch_file(
        &proxy,
        "topics.txt",
        &[
            "# moving first",
            "mix.0001",
            "",
            "mix.0002",
            "mix.0003",
            "mix.0002",
        ],
    );
    let out = proxy.cli(&[
        "flip",
        "--topics-file",
        &listed,
        "--to",
        "new",
        "--dry-run",
        "--json",
    ]);
    let preview = answer_of(&out);
    assert_eq!(preview["ok"], true, "{preview}");
    let previewed: Vec<(&str, bool, bool)> = preview["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["topic"].as_str().unwrap(),
                p["changed"].as_bool().unwrap(),
                p["create"].is_object(),
            )
        })
        .collect();
    assert_eq!(
        previewed,
        [
            ("mix.0001", true, true),
            ("mix.0002", true, true),
            ("mix.0003", true, true)
        ],
        "each name once, in file order"
    );
    assert!(
        runtime_routes(&proxy).is_empty(),
        "a dry run changes nothing"
    );

    let printed = proxy.cli_ok(&["flip", "--topics-file", &listed, "--to", "new"]);
    assert!(
        printed.starts_with("flipped 3 of 3 topics in one fence in "),
        "{printed}"
    );
    let moved: Vec<String> = runtime_routes(&proxy).into_keys().collect();
    assert_eq!(moved, ["mix.0001", "mix.0002", "mix.0003"]);

    // A pattern matching nothing, and a topic missing on the cluster it
    // would leave, are refused with the reason.
    let out = proxy.cli(&["flip", "--topics", "nothing.*", "--to", "new"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no topic on cluster(s) 'old' matches 'nothing.*'"),
        "{said}"
    );
    let missing = proxy_scratch_file(&proxy, "missing.txt", &["mix.0004", "absent.topic"]);
    let out = proxy.cli(&["flip", "--topics-file", &missing, "--to", "new"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("flip of 2 topics aborted, none of them moved: topic 'absent.topic' does not exist on cluster 'old'"),
        "{said}"
    );
    assert_eq!(runtime_routes(&proxy).len(), 3, "still only the three");
    drop(old);
}

/// Writes `lines` to `file` beside the proxy's config; its path.
fn proxy_scratch_file(proxy: &Proxy, file: &str, lines: &[&str]) -> String {
    let path = proxy.state_file().with_file_name(file);
    std::fs::write(&path, lines.join("\n")).expect("write topics file");
    path.display().to_string()
}
