//! Real clients: librdkafka (through `rdkafka`) and kafka-python (a venv
//! script under tests/clients/), plus the record shape both sides agree on.

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message};

/// The value of record `i`: 1 KiB that names its own index, so a record
/// read back can be checked byte for byte by any client in any language.
pub fn value_for(i: u64) -> Vec<u8> {
    format!("{i:08}").repeat(128).into_bytes()
}

pub fn client_config(bootstrap: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config
}

/// Creates a topic through `bootstrap` (the proxy, usually) with librdkafka's
/// admin client, and waits until the creation is acknowledged.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    create_topic_with(bootstrap, topic, partitions, &[]);
}

/// [`create_topic`] with extra client settings (TLS, SASL).
pub fn create_topic_with(bootstrap: &str, topic: &str, partitions: i32, extra: &[(&str, &str)]) {
    create_topics_with(bootstrap, &[topic], partitions, extra);
}

/// Creates `topics` in one CreateTopics request; one that exists already
/// is left as it is.
pub fn create_topics_with(
    bootstrap: &str,
    topics: &[&str],
    partitions: i32,
    extra: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap, extra)
        .create()
        .expect("admin client");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = runtime
        .block_on(admin.create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(60))),
        ))
        .expect("CreateTopics through the proxy");
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => panic!("creating topic {name} failed: {code:?}"),
        }
    }
}

/// `count` topic names `prefix.0000`, `prefix.0001`, …
pub fn topic_names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}.{i:04}")).collect()
}

/// Creates `topics` of `partitions` partitions, 250 per CreateTopics.
pub fn create_many(bootstrap: &str, topics: &[String], partitions: i32) {
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    for chunk in topics.chunks(250) {
        create_topics_with(bootstrap, chunk, partitions, &[]);
    }
}

/// Writes records `0..records` with an idempotent producer on a thread of
/// its own, record i to topic i % topics, about 1,600 records/s, so that
/// every topic is written before, during and after whatever the caller
/// does meanwhile; the thread ends once every record has its report.
pub fn write_round_robin(
    bootstrap: String,
    topics: Vec<String>,
    records: u64,
) -> std::thread::JoinHandle<std::sync::Arc<Reports>> {
    std::thread::spawn(move || {
        let p = producer(&bootstrap, IDEMPOTENT);
        for i in 0..records {
            queue_record(&p, &topics[(i as usize) % topics.len()], i);
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(12));
            }
        }
        wait_for_reports(&p);
        p.context().clone()
    })
}

/// One delivery report: which record, where it landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub index: u64,
    pub partition: i32,
    pub offset: i64,
}

/// What a producer's delivery reports said: delivered, and failed (with why).
pub type Outcome = (Vec<Delivered>, Vec<(u64, String)>);

/// Records every delivery report of a producer, and how long each record
/// queued through [`queue_record`] waited for its report.
#[derive(Default)]
pub struct Reports {
    pub delivered: Mutex<Vec<Delivered>>,
    pub failed: Mutex<Vec<(u64, String)>>,
    queued: Mutex<std::collections::HashMap<u64, Instant>>,
    pub latencies: Mutex<Vec<Duration>>,
}

impl Reports {
    /// Every acknowledged record as (index, partition, offset).
    pub fn acks(&self) -> Vec<(u64, i32, i64)> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .map(|d| (d.index, d.partition, d.offset))
            .collect()
    }
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<u64>) {
        if let Some(queued) = self.queued.lock().unwrap().remove(&index) {
            self.latencies.lock().unwrap().push(queued.elapsed());
        }
        match result {
            Ok(m) => self.delivered.lock().unwrap().push(Delivered {
                index: *index,
                partition: m.partition(),
                offset: m.offset(),
            }),
            Err((e, _)) => self.failed.lock().unwrap().push((*index, e.to_string())),
        }
    }
}

/// Produces records `range` (keys are the decimal index, values
/// [`value_for`]) and waits for every delivery report. `each` runs after
/// each record is queued, so a test can act mid-stream.
pub fn produce_range(
    producer: &BaseProducer<Reports>,
    topic: &str,
    range: std::ops::Range<u64>,
    mut each: impl FnMut(u64),
) {
    for i in range {
        queue_record(producer, topic, i);
        each(i);
    }
    wait_for_reports(producer);
}

/// Queues record `i` of `topic` (key the decimal index, value
/// [`value_for`]), waiting while the producer's queue is full.
pub fn queue_record(producer: &BaseProducer<Reports>, topic: &str, i: u64) {
    let key = i.to_string();
    let value = value_for(i);
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(i))
        .key(&key)
        .payload(&value);
    producer
        .context()
        .queued
        .lock()
        .unwrap()
        .insert(i, Instant::now());
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("queueing record {i} failed: {e}"),
        }
    }
    producer.poll(Duration::ZERO);
}

/// Waits until every queued record has its delivery report.
pub fn wait_for_reports(producer: &BaseProducer<Reports>) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while producer.in_flight_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "deliveries still outstanding after 180 s"
        );
        producer.poll(Duration::from_millis(100));
    }
}

/// A librdkafka producer's settings for a migration: idempotent, acks=all,
/// and time enough to ride out a flip or a broker restart.
pub const IDEMPOTENT: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("linger.ms", "5"),
    ("message.timeout.ms", "120000"),
];

pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseProducer<Reports> {
    client_config(bootstrap, extra)
        .create_with_context(Reports::default())
        .expect("producer")
}

/// Produces records `start..start+count` of `topic` with KafkaJS, in sends
/// of 100 records spread over `partitions` partitions (idempotence off, as
/// KafkaJS has it by default); returns (index, partition, offset) of every
/// acknowledged record.
pub fn kafkajs_produce(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    start: u64,
    count: u64,
    pause: Duration,
) -> Vec<(u64, i32, i64)> {
    let mut node = Command::new("node");
    node.arg(format!(
        "{}/tests/clients/kjs_produce.js",
        env!("CARGO_MANIFEST_DIR")
    ))
    .args(["--bootstrap", bootstrap, "--topic", topic])
    .args(["--partitions", &partitions.to_string()])
    .args(["--start", &start.to_string(), "--count", &count.to_string()])
    .args(["--pause-ms", &pause.as_millis().to_string()])
    .env("NODE_PATH", super::node_modules());
    parse_acks(&run_client(node, "kjs_produce.js"))
}

/// Runs a client script to its end and returns its stdout; a failing
/// script fails the test with its stderr.
fn run_client(mut command: Command, what: &str) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}): run `bash scripts/install-deps.sh`"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Lines `index partition offset`, one per acknowledged record.
pub fn parse_acks(out: &str) -> Vec<(u64, i32, i64)> {
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "bad acknowledgement line {l:?}");
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

/// Runs a kafka-python script from tests/clients and returns its stdout;
/// a failing script fails the test with its stderr.
pub fn python(script: &str, args: &[&str]) -> String {
    python_secured(script, args, "{}")
}

/// [`python`] with extra kafka-python settings (TLS, SASL), given as a
/// JSON object of keyword arguments.
pub fn python_secured(script: &str, args: &[&str], security: &str) -> String {
    let mut python = Command::new(super::python_bin());
    python
        .arg(format!(
            "{}/tests/clients/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(args)
        .env("KP_SECURITY", security);
    run_client(python, &format!("{script} {args:?}"))
}

/// A record as a kafka-python consumer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub index: u64,
    /// The value was exactly [`value_for`] of the key.
    pub value_ok: bool,
}

/// Reads `count` records of `topic` from the beginning with kafka-python.
pub fn kafka_python_consume(bootstrap: &str, topic: &str, count: usize) -> Vec<Consumed> {
    kafka_python_consume_secured(bootstrap, topic, count, "{}")
}

/// [`kafka_python_consume`] with extra kafka-python settings (JSON).
pub fn kafka_python_consume_secured(
    bootstrap: &str,
    topic: &str,
    count: usize,
    security: &str,
) -> Vec<Consumed> {
    kp_consume(bootstrap, topic, count, &[], security)
}

/// Reads `count` records of `topic` with kafka-python as a member of
/// consumer `group` (from its committed offsets, else the beginning),
/// committing after each poll.
pub fn kafka_python_group_consume(
    bootstrap: &str,
    topic: &str,
    group: &str,
    count: usize,
) -> Vec<Consumed> {
    kp_consume(bootstrap, topic, count, &["--group", group], "{}")
}

fn kp_consume(
    bootstrap: &str,
    topic: &str,
    count: usize,
    extra: &[&str],
    security: &str,
) -> Vec<Consumed> {
    let count = count.to_string();
    let mut args = vec![
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--count",
        &count,
        "--timeout",
        "240",
    ];
    args.extend_from_slice(extra);
    parse_consumed(&python_secured("kp_consume.py", &args, security))
}

/// Lines `partition offset index value_ok`, one per record read.
fn parse_consumed(out: &str) -> Vec<Consumed> {
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 4, "bad consumer line {l:?}");
            Consumed {
                partition: f[0].parse().unwrap(),
                offset: f[1].parse().unwrap(),
                index: f[2].parse().unwrap(),
                value_ok: f[3] == "1",
            }
        })
        .collect()
}

/// A kafka-python producer (idempotent by default) writing records
/// `start..` of `topic` in its own thread until `stop_file` exists; the
/// thread returns (index, partition, offset) of every acknowledged record,
/// and fails the test if any record it sent is not acknowledged.
pub fn kafka_python_until(
    bootstrap: String,
    topic: &'static str,
    start: u64,
    stop_file: std::path::PathBuf,
) -> std::thread::JoinHandle<Vec<(u64, i32, i64)>> {
    std::thread::spawn(move || {
        let out = python(
            "kp_produce.py",
            &[
                "--bootstrap",
                &bootstrap,
                "--topic",
                topic,
                "--start",
                &start.to_string(),
                "--count",
                "10000000",
                "--stop-file",
                &stop_file.display().to_string(),
            ],
        );
        parse_acks(&out)
    })
}

/// Produces records `start..start+count` with kafka-python; returns
/// (index, partition, offset) of every acknowledged record.
pub fn kafka_python_produce(
    bootstrap: &str,
    topic: &str,
    start: u64,
    count: u64,
) -> Vec<(u64, i32, i64)> {
    kafka_python_produce_secured(bootstrap, topic, start, count, "{}")
}

/// [`kafka_python_produce`] with extra kafka-python settings (JSON).
pub fn kafka_python_produce_secured(
    bootstrap: &str,
    topic: &str,
    start: u64,
    count: u64,
    security: &str,
) -> Vec<(u64, i32, i64)> {
    let out = python_secured(
        "kp_produce.py",
        &[
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--start",
            &start.to_string(),
            "--count",
            &count.to_string(),
        ],
        security,
    );
    parse_acks(&out)
}

/// A librdkafka consumer (no group) assigned every partition of `topic`
/// from its beginning.
pub fn reader_from_beginning(bootstrap: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let c: BaseConsumer = client_config(bootstrap, &[("group.id", "unused-reader")])
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("partition offset");
    }
    c.assign(&tpl).expect("assign");
    c
}

/// Every record of `topic` that one cluster holds, read from the cluster
/// itself (not through the proxy) until nothing more comes: a count taken
/// from its watermarks would be wrong where the broker misreports its log
/// ends (tansu does, for batches of more than one record).
pub fn cluster_records(cluster: &str, topic: &str, partitions: i32) -> Vec<Consumed> {
    // Watermarks tell an empty (or missing) topic from one with records,
    // and how many it holds at least, even where they misreport how many.
    let probe: BaseConsumer = client_config(cluster, &[("group.id", "record-count")])
        .create()
        .expect("consumer");
    let at_least: i64 = (0..partitions)
        .filter_map(|p| {
            let (low, high) = probe
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .ok()?;
            Some(high - low)
        })
        .sum();
    if at_least == 0 {
        return Vec::new();
    }
    let at_least = at_least.to_string();
    let args = [
        "--bootstrap",
        cluster,
        "--topic",
        topic,
        "--count",
        "0",
        "--at-least",
        &at_least,
        "--until-idle",
        "5",
        "--timeout",
        "240",
    ];
    parse_consumed(&python_secured("kp_consume.py", &args, "{}"))
}

/// The record indices a read returned, each value checked intact.
pub fn indices(records: &[Consumed]) -> std::collections::BTreeSet<u64> {
    assert!(
        records.iter().all(|r| r.value_ok),
        "a value came back altered"
    );
    records.iter().map(|r| r.index).collect()
}

/// Asserts that one cluster holds exactly records `expected` of `topic`,
/// read from the cluster itself.
pub fn assert_cluster_holds(
    cluster: &str,
    topic: &str,
    partitions: i32,
    expected: impl IntoIterator<Item = u64>,
) {
    assert_eq!(
        indices(&cluster_records(cluster, topic, partitions)),
        expected.into_iter().collect(),
        "records of '{topic}' on cluster {cluster}"
    );
}

/// A librdkafka member of consumer `group`, subscribed to `topic`, that
/// commits only when told; `reset` is its `auto.offset.reset` ("earliest"
/// for a new group, "error" to make any reset fail the test).
pub fn group_member(bootstrap: &str, group: &str, topic: &str, reset: &str) -> BaseConsumer {
    let c: BaseConsumer = client_config(
        bootstrap,
        &[
            ("group.id", group),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", reset),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "500"),
        ],
    )
    .create()
    .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

/// A member of `group` that has read and committed records 0..100 of
/// one-partition `topic`, with 100..200 written after them: 100 records
/// behind.
pub fn group_behind(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let p = producer(bootstrap, &[("linger.ms", "0")]);
    produce_range(&p, topic, 0..100, |_| {});
    let member = group_member(bootstrap, group, topic, "earliest");
    assert_eq!(poll_records(&member, 100).len(), 100);
    member
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
    produce_range(&p, topic, 100..200, |_| {});
    member
}

/// Polls `consumer` until `count` records came, then a second longer to
/// catch any extra; every record as (partition, offset, index). Any error
/// reaching the consumer (an offset reset included, with
/// `auto.offset.reset=error`) fails the test.
pub fn poll_records(consumer: &BaseConsumer, count: usize) -> Vec<(i32, i64, u64)> {
    let mut got = Vec::with_capacity(count);
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut settle: Option<Instant> = None;
    loop {
        if let Some(result) = consumer.poll(Duration::from_millis(100)) {
            let m = result.unwrap_or_else(|e| {
                panic!("consumer error after {} of {count} records: {e}", got.len())
            });
            let key = std::str::from_utf8(m.key().expect("key")).expect("utf-8 key");
            let value_ok = m.payload() == Some(&value_for(key.parse().expect("index"))[..]);
            assert!(value_ok, "value of record {key} altered");
            got.push((m.partition(), m.offset(), key.parse().unwrap()));
        }
        match settle {
            None if got.len() >= count => settle = Some(Instant::now() + Duration::from_secs(1)),
            Some(t) if Instant::now() > t => return got,
            _ => {}
        }
        if Instant::now() >= deadline {
            // Per partition: records seen and the highest offset, which
            // tells a stall (low offset) from a skip (full offset range).
            let mut seen: std::collections::BTreeMap<i32, (usize, i64)> = Default::default();
            for (p, offset, _) in &got {
                let entry = seen.entry(*p).or_default();
                entry.0 += 1;
                entry.1 = entry.1.max(*offset);
            }
            panic!(
                "{} of {count} records after 240 s; per partition (records, highest offset): {seen:?}",
                got.len()
            );
        }
    }
}

/// Polls every member until `done` holds for what they consumed so far,
/// then a little longer to catch anything extra. Returns (member index,
/// partition, record index) per record.
pub fn poll_members(
    members: &[&BaseConsumer],
    what: &str,
    mut done: impl FnMut(&[(usize, i32, u64)]) -> bool,
) -> Vec<(usize, i32, u64)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut settle_until: Option<Instant> = None;
    loop {
        for (i, m) in members.iter().enumerate() {
            if let Some(result) = m.poll(Duration::from_millis(50)) {
                let msg = result
                    .unwrap_or_else(|e| panic!("consumer error while waiting for {what}: {e}"));
                let key = std::str::from_utf8(msg.key().expect("key")).unwrap();
                got.push((i, msg.partition(), key.parse().unwrap()));
            }
        }
        match settle_until {
            None if done(&got) => settle_until = Some(Instant::now() + Duration::from_secs(2)),
            Some(t) if Instant::now() > t => return got,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; got {} records",
            got.len()
        );
    }
}

/// The offsets `group` committed on the cluster at `cluster` for each
/// partition of `topic` (-1: none).
pub fn committed(cluster: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::{Offset, TopicPartitionList};
    let direct: BaseConsumer = client_config(cluster, &[("group.id", group)])
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let offsets = direct
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    (0..partitions)
        .map(
            |p| match offsets.find_partition(topic, p).unwrap().offset() {
                Offset::Offset(o) => o,
                _ => -1,
            },
        )
        .collect()
}
