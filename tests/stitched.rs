//! The stitched log: once Produce of a topic moves, consumers through the
//! proxy read the old records and then the new ones as one log, at offsets
//! that continue where the old cluster stopped, without a restart, a reset
//! or a rebalance, however many times the topic moves.

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::clients::{
    client_config, create_topic, group_member, kafka_python_consume, kafka_python_group_consume,
    poll_records, produce_range, producer, Delivered,
};
use harness::Proxy;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::Producer;

const TOPIC: &str = "events";

fn flip(proxy: &Proxy, args: &[&str]) {
    let mut all = vec!["flip", TOPIC];
    all.extend_from_slice(args);
    let out = proxy.cli(&all);
    assert!(
        out.status.success(),
        "flip {args:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Asserts that per partition, `records` (partition, offset, index) hold
/// the offsets `from[p]..` with no gap or repeat, indices rising with them;
/// returns where each partition ended.
fn assert_contiguous(records: &[(i32, i64, u64)], from: &BTreeMap<i32, i64>) -> BTreeMap<i32, i64> {
    let mut by_partition: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    for &(p, offset, index) in records {
        by_partition.entry(p).or_default().push((offset, index));
    }
    let mut ends = from.clone();
    for (p, list) in by_partition {
        let start = from.get(&p).copied().unwrap_or(0);
        let offsets: Vec<i64> = list.iter().map(|(o, _)| *o).collect();
        let expected: Vec<i64> = (start..start + list.len() as i64).collect();
        assert_eq!(
            offsets, expected,
            "partition {p}: offsets contiguous from {start}"
        );
        assert!(
            list.windows(2).all(|w| w[0].1 < w[1].1),
            "partition {p}: records in the order they were produced"
        );
        ends.insert(p, start + list.len() as i64);
    }
    ends
}

fn indices(records: &[(i32, i64, u64)]) -> Vec<u64> {
    let mut v: Vec<u64> = records.iter().map(|r| r.2).collect();
    v.sort_unstable();
    v
}

/// The latest offset of each partition, asked of `bootstrap` (the proxy,
/// or a cluster directly).
fn latest(bootstrap: &str, partitions: i32) -> Vec<i64> {
    let probe: BaseConsumer = client_config(bootstrap, &[("group.id", "probe")])
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            probe
                .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
                .expect("watermarks through the proxy")
                .1
        })
        .collect()
}

#[test]
fn consumers_cross_a_produce_flip_in_one_log_exactly_once() {
    const HALF: u64 = 50_000;
    let (_old, new, proxy) = harness::two_clusters("st");
    create_topic(&proxy.bootstrap(), TOPIC, 2);
    let p = producer(&proxy.bootstrap(), &[("acks", "all"), ("linger.ms", "5")]);
    produce_range(&p, TOPIC, 0..HALF, |_| {});

    // A slow group reads a fifth of it before the flip and stays up.
    let live = group_member(&proxy.bootstrap(), "live", TOPIC, "earliest");
    let before = poll_records(&live, 10_000);
    live.commit_consumer_state(CommitMode::Sync).unwrap();
    // Another group reads some, commits and stops.
    let resumed = group_member(&proxy.bootstrap(), "resumed", TOPIC, "earliest");
    let first_run = poll_records(&resumed, 20_000);
    resumed.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(resumed);

    flip(&proxy, &["--to", "new", "--produce-only"]);
    produce_range(&p, TOPIC, HALF..2 * HALF, |_| {});
    let delivered: Vec<Delivered> = p.context().delivered.lock().unwrap().clone();
    assert!(p.context().failed.lock().unwrap().is_empty());
    assert_eq!(delivered.len(), 2 * HALF as usize);

    // `status` shows how far each group is from the new segment.
    let drain = |proxy: &Proxy| -> serde_json::Value {
        let out = proxy.cli(&["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        status["result"]["drain"].clone()
    };
    assert_eq!(
        drain(&proxy),
        serde_json::json!([
            {"group": "live", "topic": TOPIC, "left": HALF - before.len() as u64, "crossed": false},
            {"group": "resumed", "topic": TOPIC, "left": HALF - first_run.len() as u64, "crossed": false},
        ])
    );

    // The live group, never restarted, gets everything once, in order, at
    // contiguous offsets (a reset to the start would repeat records).
    let after = poll_records(&live, (2 * HALF) as usize - before.len());
    live.commit_consumer_state(CommitMode::Sync).unwrap();
    assert_eq!(
        drain(&proxy)[0],
        serde_json::json!({"group": "live", "topic": TOPIC, "left": 0, "crossed": true})
    );
    let all: Vec<_> = before.iter().chain(&after).copied().collect();
    assert_eq!(indices(&all), (0..2 * HALF).collect::<Vec<_>>());
    let ends = assert_contiguous(&all, &BTreeMap::new());

    // The producer was told the same offsets the consumers see.
    let mut acked: Vec<(i32, i64, u64)> = delivered
        .iter()
        .map(|d| (d.partition, d.offset, d.index))
        .collect();
    acked.sort_unstable();
    let mut seen = all.clone();
    seen.sort_unstable();
    assert_eq!(acked, seen, "delivery reports name the virtual offsets");

    // The group that stopped resumes exactly where it committed.
    let committed = assert_contiguous(&first_run, &BTreeMap::new());
    let resumed = group_member(&proxy.bootstrap(), "resumed", TOPIC, "error");
    let second_run = poll_records(&resumed, (2 * HALF) as usize - first_run.len());
    assert_contiguous(&second_run, &committed);
    let both: Vec<_> = first_run.iter().chain(&second_run).copied().collect();
    assert_eq!(indices(&both), (0..2 * HALF).collect::<Vec<_>>());

    // A reader that starts after the flip, with another client, reads the
    // same log from its start.
    let late = kafka_python_consume(&proxy.bootstrap(), TOPIC, (2 * HALF) as usize);
    let late: Vec<(i32, i64, u64)> = late
        .iter()
        .map(|r| {
            assert!(r.value_ok);
            (r.partition, r.offset, r.index)
        })
        .collect();
    assert_eq!(indices(&late), (0..2 * HALF).collect::<Vec<_>>());
    assert_eq!(assert_contiguous(&late, &BTreeMap::new()), ends);

    // ListOffsets (latest) through the proxy is the new cluster's answer
    // moved by the stitch. (tansu answers the base offset of a partition's
    // last batch plus one, not its end, so the test compares with what
    // tansu says rather than with the record count.)
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(proxy.state_file()).unwrap()).unwrap();
    let stitch = &state["flips"][0]["stitch"];
    let on_new = latest(&new.addr(), 2);
    let expected: Vec<i64> = (0..2)
        .map(|p| {
            let point = &stitch[p];
            assert_eq!(point["partition"], p as i64);
            let delta = point["l_old"].as_i64().unwrap() - point["l_new"].as_i64().unwrap();
            on_new[p] + delta
        })
        .collect();
    assert_eq!(latest(&proxy.bootstrap(), 2), expected);
}

#[test]
fn flips_back_and_forth_under_load_keep_one_exact_log() {
    const N: u64 = 12_000;
    let (_old, _new, proxy) = harness::two_clusters("bf");
    create_topic(&proxy.bootstrap(), TOPIC, 3);

    // A kafka-python group reads while an idempotent librdkafka producer
    // writes and the topic moves old → new → old → new.
    let bootstrap = proxy.bootstrap();
    let reader = std::thread::spawn(move || {
        kafka_python_group_consume(&bootstrap, TOPIC, "audit", N as usize)
    });
    let bootstrap = proxy.bootstrap();
    let writer = std::thread::spawn(move || {
        let p = producer(
            &bootstrap,
            &[
                ("acks", "all"),
                ("enable.idempotence", "true"),
                ("linger.ms", "2"),
                ("message.timeout.ms", "120000"),
                // One record per batch: tansu reports a partition's latest
                // offset as its last batch's base offset plus one.
                ("batch.num.messages", "1"),
            ],
        );
        produce_range(&p, TOPIC, 0..N, |i| {
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let failed = p.context().failed.lock().unwrap().clone();
        let delivered = p.context().delivered.lock().unwrap().clone();
        (delivered, failed)
    });
    for to in ["new", "old", "new"] {
        std::thread::sleep(Duration::from_millis(1_500));
        flip(&proxy, &["--to", to]);
    }
    let (delivered, failed) = writer.join().unwrap();
    assert!(failed.is_empty(), "no delivery error: {failed:?}");
    assert_eq!(delivered.len(), N as usize);

    let read = reader.join().unwrap();
    let read: Vec<(i32, i64, u64)> = read
        .iter()
        .map(|r| {
            assert!(r.value_ok);
            (r.partition, r.offset, r.index)
        })
        .collect();
    assert_eq!(
        indices(&read),
        (0..N).collect::<Vec<_>>(),
        "each record once"
    );
    let ends = assert_contiguous(&read, &BTreeMap::new());
    let latest = latest(&proxy.bootstrap(), 3);
    assert_eq!(latest, ends.values().copied().collect::<Vec<_>>());
    assert_eq!(latest.iter().sum::<i64>(), N as i64);

    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(proxy.state_file()).unwrap()).unwrap();
    assert_eq!(state["flips"].as_array().unwrap().len(), 3);
}
