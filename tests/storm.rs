//! A flip storm: one topic flips old ↔ new again and again while an
//! idempotent librdkafka producer and a kafka-python producer write and a
//! librdkafka consumer group reads, all through the proxy. However many
//! flips, the stitched log holds every acknowledged record once, at
//! contiguous offsets, in each producer's order, and the live group reads
//! each record once without an offset reset or an error.
//!
//! The same storm across three instances sharing a state topic: flips
//! started from each in turn, a producer writing through each, the group's
//! members on two of them; every instance presents the same log.
//!
//! `SWITCHYARD_STORM_FLIPS` sets the number of flips (30 by default, 20
//! across the fleet; `scripts/flip-storm.sh` runs 100).

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::clients::{
    client_config, create_topic, producer, queue_record, reader_from_beginning, value_for,
    wait_for_reports,
};
use harness::Proxy;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Message, Offset, TopicPartitionList};

const TOPIC: &str = "storm";
const PARTITIONS: i32 = 3;
const GROUP: &str = "storm-live";
/// kafka-python's records are numbered from here, librdkafka's from 0
/// (and, across the fleet, a second and third librdkafka producer's from
/// [`PRODUCER_SPAN`] and twice that).
const PYTHON_BASE: u64 = 1_000_000_000;
const PRODUCER_SPAN: u64 = 100_000_000;
/// How long the storm waits between flips, so that each stretch gets
/// records.
const BETWEEN_FLIPS: Duration = Duration::from_millis(400);

fn flips(default: usize) -> usize {
    std::env::var("SWITCHYARD_STORM_FLIPS")
        .ok()
        .map(|n| n.parse().expect("SWITCHYARD_STORM_FLIPS is a number"))
        .unwrap_or(default)
}

/// A record as read: (partition, offset, index).
type Read = (i32, i64, u64);
/// An acknowledgement: (index, partition, offset).
type Ack = (u64, i32, i64);
/// What a producer ends with: acknowledgements, failures (index, why) and
/// delivery latencies.
type Written = (Vec<Ack>, Vec<(u64, String)>, Vec<Duration>);

/// Commits offset 0 of every partition for the live group, so that its
/// members' first positions need no reset.
fn commit_zero(bootstrap: &str) {
    let start: BaseConsumer = client_config(bootstrap, &[("group.id", GROUP)])
        .create()
        .unwrap();
    let mut zero = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        zero.add_partition_offset(TOPIC, p, Offset::Offset(0))
            .unwrap();
    }
    start.commit(&zero, CommitMode::Sync).expect("commit 0");
}

/// A member of the live group, with `auto.offset.reset=error`, so any
/// reset during the storm reaches it as an error. It reads until the
/// group's members together (`read`) have `target` (set once the
/// producers are done) records, committing as it goes.
fn live_group(
    bootstrap: String,
    target: Arc<AtomicUsize>,
    read: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<(Vec<Read>, Option<String>)> {
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let error = read_live(&bootstrap, &target, &read, &mut got).err();
        (got, error)
    })
}

/// The loop of one live group member; what it read is in `got` whatever
/// stopped it.
fn read_live(
    bootstrap: &str,
    target: &AtomicUsize,
    read: &AtomicUsize,
    got: &mut Vec<Read>,
) -> Result<(), String> {
    {
        let member = harness::clients::group_member(bootstrap, GROUP, TOPIC, "error");
        let mut last_commit = Instant::now();
        let mut settle: Option<Instant> = None;
        let mut deadline: Option<Instant> = None;
        loop {
            if let Some(result) = member.poll(Duration::from_millis(100)) {
                let m = result.map_err(|e| format!("after {} records: {e}", got.len()))?;
                let key = std::str::from_utf8(m.key().expect("key")).expect("utf-8 key");
                let index: u64 = key.parse().expect("index");
                if m.payload() != Some(&value_for(index)[..]) {
                    return Err(format!("value of record {index} altered"));
                }
                got.push((m.partition(), m.offset(), index));
                read.fetch_add(1, Ordering::SeqCst);
            }
            if last_commit.elapsed() > Duration::from_secs(1) {
                member
                    .commit_consumer_state(CommitMode::Async)
                    .map_err(|e| format!("commit: {e}"))?;
                last_commit = Instant::now();
            }
            let target = target.load(Ordering::SeqCst);
            if target == 0 {
                continue; // the storm goes on
            }
            let deadline = *deadline.get_or_insert(Instant::now() + Duration::from_secs(240));
            match settle {
                None if read.load(Ordering::SeqCst) >= target => {
                    settle = Some(Instant::now() + Duration::from_secs(2))
                }
                Some(t) if Instant::now() > t => return Ok(()),
                _ if Instant::now() > deadline => {
                    let read = read.load(Ordering::SeqCst);
                    return Err(format!("{read} of {target} records after 240 s"));
                }
                _ => {}
            }
        }
    }
}

/// An idempotent librdkafka producer: records `base`, `base` + 1, … until
/// `stop`, about 1,000 a second; its acknowledgements, failures and
/// delivery latencies.
fn librdkafka_writer(
    bootstrap: String,
    base: u64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Written> {
    std::thread::spawn(move || {
        let p = producer(
            &bootstrap,
            &[
                ("acks", "all"),
                ("enable.idempotence", "true"),
                ("linger.ms", "5"),
                ("message.timeout.ms", "300000"),
            ],
        );
        let mut i = base;
        while !stop.load(Ordering::SeqCst) {
            queue_record(&p, TOPIC, i);
            i += 1;
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        wait_for_reports(&p);
        let reports = p.context();
        let acked = reports.acks();
        let failed = reports.failed.lock().unwrap().clone();
        let latencies = reports.latencies.lock().unwrap().clone();
        (acked, failed, latencies)
    })
}

/// Flips the topic `n` times, old → new → old …, each flip started on the
/// next of `initiators` in turn; the wall time of each.
fn storm(initiators: &[&Proxy], n: usize) -> Vec<Duration> {
    (0..n)
        .map(|k| {
            std::thread::sleep(BETWEEN_FLIPS);
            let to = if k % 2 == 0 { "new" } else { "old" };
            let started = Instant::now();
            let out = initiators[k % initiators.len()].cli(&["flip", TOPIC, "--to", to]);
            assert!(
                out.status.success(),
                "flip {} of {n} (to {to}) failed: {}{}",
                k + 1,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
            started.elapsed()
        })
        .collect()
}

/// Asserts that `read` is one exact log of the acknowledged records: each
/// once, where its acknowledgement said, at offsets contiguous from 0 per
/// partition, each producer's records in the order it sent them.
fn assert_exact_log(what: &str, read: &[Read], acked: &[Ack]) {
    let indices: Vec<u64> = read.iter().map(|r| r.2).collect();
    let unique: BTreeSet<u64> = indices.iter().copied().collect();
    assert_eq!(
        unique.len(),
        indices.len(),
        "{what}: {} records read twice",
        indices.len() - unique.len()
    );
    let expected: BTreeSet<u64> = acked.iter().map(|a| a.0).collect();
    let missing: Vec<&u64> = expected.difference(&unique).take(10).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} acknowledged records missing, first {missing:?}",
        expected.difference(&unique).count()
    );
    assert_eq!(unique, expected, "{what}: records nobody acknowledged");

    let mut by_partition: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    for &(p, offset, index) in read {
        by_partition.entry(p).or_default().push((offset, index));
    }
    for (p, mut records) in by_partition {
        records.sort_unstable();
        let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
        let contiguous: Vec<i64> = (0..records.len() as i64).collect();
        assert_eq!(offsets, contiguous, "{what}: partition {p} offsets");
        let producers = [
            0..PRODUCER_SPAN,
            PRODUCER_SPAN..2 * PRODUCER_SPAN,
            2 * PRODUCER_SPAN..PYTHON_BASE,
            PYTHON_BASE..u64::MAX,
        ];
        for producer in producers {
            let order: Vec<u64> = records
                .iter()
                .map(|r| r.1)
                .filter(|i| producer.contains(i))
                .collect();
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "{what}: partition {p}: records of producer {producer:?} out of order"
            );
        }
    }
    let at: BTreeMap<u64, (i32, i64)> = acked.iter().map(|a| (a.0, (a.1, a.2))).collect();
    for &(p, offset, index) in read {
        assert_eq!(
            at[&index],
            (p, offset),
            "{what}: record {index} read where its acknowledgement did not say"
        );
    }
}

/// The storms run one at a time: each alone loads the machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// What a storm left: every acknowledgement, and the librdkafka producers'
/// delivery latencies.
struct Stormed {
    acked: Vec<Ack>,
    /// What the live group read, checked by the caller after the log
    /// itself (so that a failure says which of the two is wrong).
    live: Vec<Read>,
    from_librdkafka: usize,
    latencies: Vec<Duration>,
    flip_times: Vec<Duration>,
}

/// Runs `n` flips started from `initiators` in turn while a librdkafka
/// producer writes through each of `writers`, kafka-python through the
/// first, and the live group reads through each of `readers`; asserts the
/// group read the exact log, and returns what was written.
fn run_storm(writers: &[&Proxy], readers: &[&Proxy], initiators: &[&Proxy], n: usize) -> Stormed {
    let scratch = harness::Scratch::new("storm");
    let stop_file = scratch.path("stop");
    let target = Arc::new(AtomicUsize::new(0));
    let read = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    commit_zero(&readers[0].bootstrap());
    let group: Vec<_> = readers
        .iter()
        .map(|r| live_group(r.bootstrap(), target.clone(), read.clone()))
        .collect();
    if readers.len() > 1 {
        // Every member in before anything is written: no rebalance hands a
        // partition over mid-storm.
        std::thread::sleep(Duration::from_secs(5));
    }
    let librdkafka: Vec<_> = writers
        .iter()
        .enumerate()
        .map(|(k, w)| librdkafka_writer(w.bootstrap(), k as u64 * PRODUCER_SPAN, stop.clone()))
        .collect();
    let kafka_python = harness::clients::kafka_python_until(
        writers[0].bootstrap(),
        TOPIC,
        PYTHON_BASE,
        stop_file.clone(),
    );

    let flip_times = storm(initiators, n);
    std::thread::sleep(BETWEEN_FLIPS);
    stop.store(true, Ordering::SeqCst);
    std::fs::write(&stop_file, b"").unwrap();
    let mut acked = Vec::new();
    let mut latencies = Vec::new();
    for writer in librdkafka {
        let (a, failed, l) = writer.join().expect("librdkafka producer");
        assert!(failed.is_empty(), "delivery errors: {failed:?}");
        assert!(!a.is_empty());
        acked.extend(a);
        latencies.extend(l);
    }
    let from_librdkafka = acked.len();
    acked.extend(kafka_python.join().expect("kafka-python producer"));
    assert!(acked.len() > from_librdkafka);
    target.store(acked.len(), Ordering::SeqCst);

    // The live group, never restarted, read the same log as it grew.
    let mut live = Vec::new();
    let mut errors = Vec::new();
    for member in group {
        let (got, error) = member.join().expect("live group");
        live.extend(got);
        errors.extend(error);
    }
    if !errors.is_empty() {
        // Where the records it lacks were acknowledged, and whether a
        // fresh read through each instance finds them.
        let seen: BTreeSet<u64> = live.iter().map(|r| r.2).collect();
        let lacking: Vec<&Ack> = acked.iter().filter(|a| !seen.contains(&a.0)).collect();
        let mut highest: BTreeMap<i32, i64> = BTreeMap::new();
        for r in &live {
            let h = highest.entry(r.0).or_insert(-1);
            *h = (*h).max(r.1);
        }
        let fresh: Vec<String> = readers
            .iter()
            .map(|r| {
                let log = stitched_log_within(r, acked.len());
                let found = lacking
                    .iter()
                    .filter(|a| log.iter().any(|l| l.2 == a.0))
                    .count();
                format!(
                    "{}: {} read, {found} of the lacking",
                    r.bootstrap(),
                    log.len()
                )
            })
            .collect();
        // Each flip's stitch point of the first lacking record's
        // partition, as each instance holds it.
        let partition = lacking.first().map_or(0, |a| a.1);
        let stitches: Vec<String> = readers
            .iter()
            .map(|r| {
                let flips = r.json("status")["flips"].clone();
                let points: Vec<String> = flips
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| {
                        let point = f["stitch"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .find(|s| s["partition"] == partition)
                            .map_or("-".to_owned(), |s| format!("{}/{}", s["l_old"], s["l_new"]));
                        format!("{}@{}", f["to"]["produce"].as_str().unwrap_or("?"), point)
                    })
                    .collect();
                points.join(" ")
            })
            .collect();
        panic!(
            "the live group: {errors:?}; lacking (index, partition, offset), first 10: {:?}; \
             highest offset read per partition: {highest:?}; read afresh: {fresh:?}; \
             partition {partition}'s stitch points (to@l_old/l_new) per reader: {stitches:?}",
            &lacking[..lacking.len().min(10)]
        );
    }
    latencies.sort_unstable();
    Stormed {
        acked,
        live,
        from_librdkafka,
        latencies,
        flip_times,
    }
}

/// What a fresh read through `proxy` finds within a minute, up to
/// `records` (fewer when some are missing).
fn stitched_log_within(proxy: &Proxy, records: usize) -> Vec<Read> {
    let reader = reader_from_beginning(&proxy.bootstrap(), TOPIC, PARTITIONS);
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while log.len() < records && Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) {
            let key = std::str::from_utf8(m.key().unwrap_or_default()).unwrap_or_default();
            log.push((m.partition(), m.offset(), key.parse().unwrap_or(u64::MAX)));
        }
    }
    log
}

/// The whole stitched log, read afresh through `proxy`.
fn stitched_log(proxy: &Proxy, records: usize) -> Vec<Read> {
    let reader = reader_from_beginning(&proxy.bootstrap(), TOPIC, PARTITIONS);
    let mut log = harness::clients::poll_records(&reader, records);
    log.sort_unstable();
    log
}

#[test]
fn a_flip_storm_under_load_keeps_one_exact_log() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let n = flips(30);
    let (_old, _new, proxy) = harness::two_clusters("storm");
    create_topic(&proxy.bootstrap(), TOPIC, PARTITIONS);
    let Stormed {
        acked,
        live,
        from_librdkafka,
        latencies,
        mut flip_times,
    } = run_storm(&[&proxy], &[&proxy], &[&proxy], n);
    assert_exact_log(
        "the stitched log",
        &stitched_log(&proxy, acked.len()),
        &acked,
    );
    assert_exact_log("the live group", &live, &acked);

    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(proxy.state_file()).unwrap()).unwrap();
    assert_eq!(state["flips"].as_array().unwrap().len(), n);

    flip_times.sort_unstable();
    println!(
        "flip storm: {n} flips, {} records acknowledged ({from_librdkafka} librdkafka, \
         {} kafka-python), 0 missing, 0 duplicated; librdkafka delivery latency \
         p50 {:?} p99 {:?} max {:?}; flip time median {:?} max {:?}",
        acked.len(),
        acked.len() - from_librdkafka,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        percentile(&flip_times, 0.5),
        flip_times.last().copied().unwrap_or_default(),
    );
}

#[test]
fn a_fleet_flip_storm_across_three_instances_keeps_one_exact_log() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let n = flips(20);
    let old = harness::Broker::start("fleet-old");
    let new = harness::Broker::start("fleet-new");
    let instance = |id: &str| {
        let mut setup = harness::ProxySetup::two(&old, &new);
        setup.extra = "[state]\nstore = \"kafka\"\ncluster = \"new\"\n\
                       lease_interval_ms = 1000\nlease_expiry_ms = 5000\n"
            .to_owned();
        setup.proxy_extra = format!("instance_id = \"{id}\"");
        Proxy::start(setup)
    };
    let fleet = [instance("sy-a"), instance("sy-b"), instance("sy-c")];
    let [a, b, c] = [&fleet[0], &fleet[1], &fleet[2]];
    for proxy in &fleet {
        harness::wait_for("three live instances", Duration::from_secs(20), || {
            let live = proxy.json("status")["instances"]
                .as_array()
                .map_or(0, |i| i.iter().filter(|i| i["live"] == true).count());
            (live == 3).then_some(())
        });
    }
    create_topic(&a.bootstrap(), TOPIC, PARTITIONS);
    let Stormed {
        acked,
        live,
        from_librdkafka,
        mut flip_times,
        ..
    } = run_storm(&[a, b, c], &[a, b], &[a, b, c], n);

    // Every instance presents the one exact log, record for record.
    let via_a = stitched_log(a, acked.len());
    assert_exact_log("the stitched log through sy-a", &via_a, &acked);
    for other in [b, c] {
        assert_eq!(
            stitched_log(other, acked.len()),
            via_a,
            "one log through every instance"
        );
    }
    assert_exact_log("the live group", &live, &acked);
    for proxy in &fleet {
        let flipped = proxy.json("status")["flips"].as_array().map_or(0, Vec::len);
        assert_eq!(flipped, n, "every instance took every flip");
    }
    flip_times.sort_unstable();
    println!(
        "fleet flip storm: 3 instances, {n} flips, {} records acknowledged \
         ({from_librdkafka} librdkafka), 0 missing, 0 duplicated; flip time median {:?} max {:?}",
        acked.len(),
        percentile(&flip_times, 0.5),
        flip_times.last().copied().unwrap_or_default(),
    );
}
