//! The stitched log: once Produce of a topic moves, consumers through the
//! proxy read the old records and then the new ones as one log, at offsets
//! that continue where the old cluster stopped, without a restart, a reset
//! or a rebalance, however many times the topic moves.

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::clients::{
    client_config, create_topic, group_member, kafka_python_consume, kafka_python_group_consume,
    kafkajs_produce, poll_records, produce_range, producer, reader_from_beginning, Delivered,
};
use harness::{Proxy, TansuBuild};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

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
    // A group reads the first 20,000, commits and stops. (Its commits fall
    // where a batch ends: tansu 0.6.0 answers a Fetch at an offset inside a
    // batch with later batches only, so a consumer resuming there would
    // skip the rest of that batch, directly as through the proxy.)
    produce_range(&p, TOPIC, 0..20_000, |_| {});
    let resumed = group_member(&proxy.bootstrap(), "resumed", TOPIC, "earliest");
    let first_run = poll_records(&resumed, 20_000);
    resumed.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(resumed);
    produce_range(&p, TOPIC, 20_000..HALF, |_| {});

    // A slow group reads a fifth of it before the flip and stays up.
    let live = group_member(&proxy.bootstrap(), "live", TOPIC, "earliest");
    let before = poll_records(&live, 10_000);
    live.commit_consumer_state(CommitMode::Sync).unwrap();

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
    // (A fast reader may have read the whole first stretch already.)
    let left = |read: usize| HALF.saturating_sub(read as u64);
    let (live_left, resumed_left) = (left(before.len()), left(first_run.len()));
    assert_eq!(
        drain(&proxy),
        serde_json::json!([
            {"group": "live", "topic": TOPIC, "left": live_left, "crossed": live_left == 0},
            {"group": "resumed", "topic": TOPIC, "left": resumed_left, "crossed": resumed_left == 0},
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
    assert_eq!(
        latest(&proxy.bootstrap(), 2),
        shifted_latest(&proxy, &new.addr(), 2)
    );
}

#[test]
fn flips_back_and_forth_under_load_keep_one_exact_log() {
    const N: u64 = 12_000;
    let (_old, new, proxy) = harness::two_clusters("bf");
    create_topic(&proxy.bootstrap(), TOPIC, 3);

    // A kafka-python group reads while an idempotent librdkafka producer
    // writes and the topic moves old → new → old → new.
    let bootstrap = proxy.bootstrap();
    let reader = std::thread::spawn(move || match harness::tansu_build() {
        TansuBuild::Release => kafka_python_group_consume(&bootstrap, TOPIC, "audit", N as usize),
        // kafka-python's group join does not complete against the later
        // build, even directly: it reads assigned partitions there.
        TansuBuild::Main => kafka_python_consume(&bootstrap, TOPIC, N as usize),
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
    assert_eq!(ends.values().sum::<i64>(), N as i64);
    // ListOffsets (latest) through the proxy is the newest stretch's
    // answer (on 'new') moved by the stitch.
    assert_eq!(
        latest(&proxy.bootstrap(), 3),
        shifted_latest(&proxy, &new.addr(), 3)
    );

    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(proxy.state_file()).unwrap()).unwrap();
    assert_eq!(state["flips"].as_array().unwrap().len(), 3);
}

/// What ListOffsets (latest) of each partition through the proxy should
/// say: what the newest stretch's cluster (`newest`, asked directly)
/// reports, moved by that stretch's Δ, replayed from every flip's stitch
/// points (each stretch starts at `l_old` of the one before, moved by its
/// Δ; its own Δ is that start minus `l_new`).
fn shifted_latest(proxy: &Proxy, newest: &str, partitions: i32) -> Vec<i64> {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(proxy.state_file()).unwrap()).unwrap();
    let mut delta: BTreeMap<i32, i64> = BTreeMap::new();
    for flip in state["flips"].as_array().unwrap() {
        for point in flip["stitch"].as_array().unwrap() {
            let p = point["partition"].as_i64().unwrap() as i32;
            let before = delta.get(&p).copied().unwrap_or(0);
            let start = point["l_old"].as_i64().unwrap() + before;
            delta.insert(p, start - point["l_new"].as_i64().unwrap());
        }
    }
    let direct = latest(newest, partitions);
    (0..partitions)
        .map(|p| direct[p as usize] + delta.get(&p).copied().unwrap_or(0))
        .collect()
}

/// The stitch points recorded by the `n`th flip: (partition, l_old, l_new).
fn stitch_points(proxy: &Proxy, n: usize) -> Vec<(i32, i64, i64)> {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(proxy.state_file()).unwrap()).unwrap();
    state["flips"][n]["stitch"]
        .as_array()
        .expect("stitch points")
        .iter()
        .map(|s| {
            (
                s["partition"].as_i64().unwrap() as i32,
                s["l_old"].as_i64().unwrap(),
                s["l_new"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Records per partition among `records` (partition, offset, index).
fn per_partition(records: &[(i32, i64, u64)]) -> BTreeMap<i32, i64> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.0).or_insert(0) += 1;
    }
    counts
}

fn triples(records: &[harness::clients::Consumed]) -> Vec<(i32, i64, u64)> {
    records
        .iter()
        .map(|r| {
            assert!(r.value_ok, "value of record {} altered", r.index);
            (r.partition, r.offset, r.index)
        })
        .collect()
}

/// Reads the whole stitched log of `TOPIC` through the proxy with
/// librdkafka and with kafka-python, and asserts both read records
/// `0..count` exactly once at contiguous offsets from 0, the same offsets
/// the producers were told (`acked`: index, partition, offset).
fn assert_read_back_exactly(proxy: &Proxy, partitions: i32, count: u64, acked: &[(u64, i32, i64)]) {
    let reader = reader_from_beginning(&proxy.bootstrap(), TOPIC, partitions);
    let by_librdkafka = poll_records(&reader, count as usize);
    assert_eq!(indices(&by_librdkafka), (0..count).collect::<Vec<_>>());
    let ends = assert_contiguous(&by_librdkafka, &BTreeMap::new());
    let by_kafka_python = triples(&kafka_python_consume(
        &proxy.bootstrap(),
        TOPIC,
        count as usize,
    ));
    assert_eq!(indices(&by_kafka_python), (0..count).collect::<Vec<_>>());
    assert_eq!(assert_contiguous(&by_kafka_python, &BTreeMap::new()), ends);
    let mut told: Vec<(i32, i64, u64)> = acked.iter().map(|&(i, p, o)| (p, o, i)).collect();
    told.sort_unstable();
    let mut read = by_librdkafka;
    read.sort_unstable();
    assert_eq!(told, read, "acknowledgements name the offsets readers see");
}

#[test]
fn batched_writes_across_a_flip_are_read_back_exactly() {
    const HALF: u64 = 5_000;
    let (old, _new, proxy) = harness::two_clusters("bw");
    create_topic(&proxy.bootstrap(), TOPIC, 3);
    // linger.ms=5: many records per batch, as every real producer sends.
    let p = producer(&proxy.bootstrap(), &[("acks", "all"), ("linger.ms", "5")]);
    produce_range(&p, TOPIC, 0..HALF, |_| {});
    flip(&proxy, &["--to", "new"]);
    produce_range(&p, TOPIC, HALF..2 * HALF, |_| {});
    assert!(p.context().failed.lock().unwrap().is_empty());
    let acked = p.context().acks();
    assert_eq!(acked.len(), 2 * HALF as usize);

    // Each stitch point is where the old log really ends: past every
    // record written there, whatever the broker reported.
    let on_old = triples(&kafka_python_consume(&old.addr(), TOPIC, HALF as usize));
    assert_eq!(indices(&on_old), (0..HALF).collect::<Vec<_>>());
    let old_counts = per_partition(&on_old);
    let points: BTreeMap<i32, i64> = stitch_points(&proxy, 0)
        .into_iter()
        .map(|(p, l_old, _)| (p, l_old))
        .collect();
    assert_eq!(points, old_counts, "l_old per partition = records on 'old'");

    assert_read_back_exactly(&proxy, 3, 2 * HALF, &acked);
}

#[test]
fn a_kafkajs_producer_across_a_flip_is_read_back_exactly() {
    const N: u64 = 4_000;
    let (_old, _new, proxy) = harness::two_clusters("kj");
    create_topic(&proxy.bootstrap(), TOPIC, 3);
    let bootstrap = proxy.bootstrap();
    // 40 sends of 100 records, 100 ms apart: the flip lands mid-stream.
    let writer = std::thread::spawn(move || {
        kafkajs_produce(&bootstrap, TOPIC, 3, 0, N, Duration::from_millis(100))
    });
    harness::wait_for("KafkaJS to write", Duration::from_secs(60), || {
        (latest(&proxy.bootstrap(), 3).iter().sum::<i64>() > 0).then_some(())
    });
    flip(&proxy, &["--to", "new"]);
    let acked = writer.join().expect("KafkaJS producer");
    assert_eq!(acked.len(), N as usize, "every record acknowledged");

    let before: i64 = stitch_points(&proxy, 0).iter().map(|p| p.1).sum();
    assert!(
        0 < before && before < N as i64,
        "the flip came mid-stream: {before} of {N} records before it"
    );
    assert_read_back_exactly(&proxy, 3, N, &acked);
}

#[test]
fn a_fetch_waiting_on_the_old_cluster_across_a_flip_gets_nothing_written_there_after_it() {
    let (old, _new, proxy) = harness::two_clusters("wait");
    create_topic(&proxy.bootstrap(), TOPIC, 1);
    let p = producer(&proxy.bootstrap(), &[("linger.ms", "0")]);
    produce_range(&p, TOPIC, 0..100, |_| {});
    // Caught up on 'old', its next Fetch waits there for up to 10 s.
    let reader: BaseConsumer = client_config(
        &proxy.bootstrap(),
        &[("group.id", "unused"), ("fetch.wait.max.ms", "10000")],
    )
    .create()
    .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    reader.assign(&tpl).unwrap();
    assert_eq!(
        indices(&poll_records(&reader, 100)),
        (0..100).collect::<Vec<_>>()
    );
    flip(&proxy, &["--to", "new"]);
    // Written behind the proxy while that Fetch still waits: beyond the
    // stitch point, so in no reader's log.
    produce_range(&producer(&old.addr(), &[]), TOPIC, 5000..5005, |_| {});
    produce_range(&p, TOPIC, 100..110, |_| {});
    let rest = poll_records(&reader, 10);
    assert_eq!(indices(&rest), (100..110).collect::<Vec<_>>());
    assert_contiguous(&rest, &BTreeMap::from([(0, 100)]));
}

#[test]
fn a_consumer_resetting_to_earliest_after_a_flip_reads_from_offset_zero() {
    let (_old, _new, proxy) = harness::two_clusters("re");
    create_topic(&proxy.bootstrap(), TOPIC, 1);
    let p = producer(&proxy.bootstrap(), &[("acks", "all"), ("linger.ms", "5")]);
    produce_range(&p, TOPIC, 0..100, |_| {});
    flip(&proxy, &["--to", "new"]);
    produce_range(&p, TOPIC, 100..120, |_| {});
    assert_eq!(stitch_points(&proxy, 0), vec![(0, 100, 0)]);

    // A reader that has fetched from the new stretch has been told the log
    // start by those Fetch answers; librdkafka caches it and resets to it.
    let c: BaseConsumer = client_config(&proxy.bootstrap(), &[("group.id", "unused")])
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Offset(100))
        .unwrap();
    c.assign(&tpl).unwrap();
    let newest = poll_records(&c, 20);
    assert_eq!(indices(&newest), (100..120).collect::<Vec<_>>());
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let all = poll_records(&c, 120);
    assert_eq!(all.first().map(|r| r.1), Some(0), "starts at offset 0");
    assert_eq!(indices(&all), (0..120).collect::<Vec<_>>());
    assert_contiguous(&all, &BTreeMap::new());

    // A new group that joins after the flip starts from 0 as well.
    let late = group_member(&proxy.bootstrap(), "late", TOPIC, "earliest");
    let all = poll_records(&late, 120);
    assert_eq!(indices(&all), (0..120).collect::<Vec<_>>());
    assert_contiguous(&all, &BTreeMap::new());
}

#[test]
fn a_member_resetting_after_a_group_move_reads_the_whole_stitched_log() {
    let (_old, _new, proxy) = harness::two_clusters("rg");
    create_topic(&proxy.bootstrap(), TOPIC, 2);
    let p = producer(&proxy.bootstrap(), &[("acks", "all"), ("linger.ms", "5")]);
    produce_range(&p, TOPIC, 0..400, |_| {});
    flip(&proxy, &["--to", "new"]);
    produce_range(&p, TOPIC, 400..600, |_| {});

    // The member reads both stretches of both partitions, then commits
    // partition 0 only: partition 1 has no committed offset.
    let member = group_member(&proxy.bootstrap(), "movers", TOPIC, "earliest");
    let first = poll_records(&member, 600);
    assert_eq!(indices(&first), (0..600).collect::<Vec<_>>());
    let ends = assert_contiguous(&first, &BTreeMap::new());
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(TOPIC, 0, Offset::Offset(ends[&0]))
        .unwrap();
    member.commit(&commit, CommitMode::Sync).unwrap();

    let out = proxy.cli(&["flip", "--group", "movers", "--to", "new"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );

    // Rejoining, partition 0 resumes at its commit (nothing new), and
    // partition 1 resets to earliest: its whole stitched log, from 0.
    let again = poll_records(&member, ends[&1] as usize);
    assert!(again.iter().all(|r| r.0 == 1), "only partition 1 again");
    assert_eq!(assert_contiguous(&again, &BTreeMap::new())[&1], ends[&1]);
}
