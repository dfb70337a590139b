//! A drain on SIGTERM, under load from librdkafka, kafka-python and a raw
//! connection that pipelines Produce requests: the proxy stops accepting
//! and reading, answers every request it has read, closes its connections
//! and exits 0. Started again, it lets the clients finish: every record a
//! client was told is written is in the cluster once, and nothing is
//! written that its client was not told of.

mod harness;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::clients::{
    client_config, cluster_records, create_topic, producer, queue_record, wait_for_reports,
    Consumed, IDEMPOTENT,
};
use harness::raw::{batch_of, RawClient};
use harness::{wait_for, Broker, Proxy, ProxySetup, Scratch, TANSU_NODE_ID};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use switchyard::wire::codec;

/// Written by librdkafka, on cluster "old".
const LIBRDKAFKA_TOPIC: &str = "drain-rd";
/// Written by kafka-python, on cluster "old".
const PYTHON_TOPIC: &str = "drain-kp";
/// Written by the raw connection, routed to cluster "new".
const RAW_TOPIC: &str = "drain-raw";
const PARTITIONS: i32 = 2;
const GRACE: Duration = Duration::from_secs(20);
/// Produce requests the raw connection pipelines, far more than are
/// answered before the signal.
const RAW_REQUESTS: u64 = 1_000;
/// Answers the raw connection has when the signal is sent.
const RAW_BEFORE_SIGNAL: u64 = 50;
const PRODUCE_VERSION: i16 = 7;

/// An acknowledgement: (index, partition, offset).
type Ack = (u64, i32, i64);
/// What a producer ends with: acknowledgements, and failures (index, why).
type Written = (Vec<Ack>, Vec<(u64, String)>);

/// An idempotent librdkafka producer writing records 0, 1, … until `stop`;
/// its acknowledgements and failures. `delivered` follows its progress.
fn librdkafka_writer(
    bootstrap: String,
    stop: Arc<AtomicBool>,
    delivered: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Written> {
    std::thread::spawn(move || {
        let p = producer(
            &bootstrap,
            &[IDEMPOTENT, &[("reconnect.backoff.max.ms", "500")]].concat(),
        );
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            queue_record(&p, LIBRDKAFKA_TOPIC, i);
            i += 1;
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(5));
                delivered.store(
                    p.context().delivered.lock().unwrap().len() as u64,
                    Ordering::SeqCst,
                );
            }
        }
        wait_for_reports(&p);
        let failed = p.context().failed.lock().unwrap().clone();
        (p.context().acks(), failed)
    })
}

/// Produce request `index` of the raw connection: one record, acks=1.
fn raw_produce(index: u64) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(RAW_TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch_of(-1, -1, 0, index..index + 1)))])])
}

/// Sends [`RAW_REQUESTS`] Produce requests back to back, record `i` with
/// correlation id `i + 1`, until they are all out or the connection
/// refuses more; how many went out.
fn raw_sender(mut client: RawClient) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        for i in 0..RAW_REQUESTS {
            let correlation_id = i32::try_from(i + 1).unwrap();
            let frame = codec::request_frame(
                ApiKey::Produce,
                PRODUCE_VERSION,
                correlation_id,
                &raw_produce(i),
            )
            .unwrap();
            if client.send_bytes(&frame).is_err() {
                return i;
            }
        }
        RAW_REQUESTS
    })
}

/// Reads the raw connection's answers until it ends, asserting that they
/// are answers to its first requests, in order, each a success, and that
/// the connection then ends cleanly between two frames. `signal` runs
/// once [`RAW_BEFORE_SIGNAL`] answers have come. How many came.
fn raw_answers(client: &mut RawClient, mut signal: impl FnMut()) -> u64 {
    let mut answered = 0u64;
    loop {
        let frame = client.next_frame().unwrap_or_else(|e| {
            panic!("after {answered} answers the connection broke instead of closing: {e}")
        });
        let Some(frame) = frame else {
            return answered;
        };
        let expected = i32::try_from(answered + 1).unwrap();
        assert_eq!(
            frame.response_correlation_id(),
            Some(expected),
            "answer {} is not to request {expected}",
            answered + 1
        );
        let response: ProduceResponse =
            codec::decode_response(ApiKey::Produce, PRODUCE_VERSION, &frame)
                .unwrap_or_else(|e| panic!("answer {expected} does not decode: {e}"));
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0, "answer {expected}");
        answered += 1;
        if answered == RAW_BEFORE_SIGNAL {
            signal();
        }
    }
}

/// The high watermarks of `topic` on the broker at `addr`, summed.
fn records_on(addr: &str, topic: &str) -> i64 {
    let c: BaseConsumer = client_config(addr, &[("group.id", "drain-probe")])
        .create()
        .expect("consumer");
    (0..PARTITIONS)
        .filter_map(|p| c.fetch_watermarks(topic, p, Duration::from_secs(5)).ok())
        .map(|(_, high)| high)
        .sum()
}

/// The numbers of the proxy's `drained:` line: (accepted, answered, left
/// unanswered).
fn drained_counts(log: &str) -> (u64, u64, u64) {
    let line = log
        .lines()
        .find_map(|l| l.split_once("drained: ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no `drained:` line in the proxy's log:\n{log}"));
    let numbers: Vec<u64> = line
        .split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(numbers.len() >= 3, "unexpected drained line {line:?}");
    (numbers[0], numbers[1], numbers[2])
}

/// Asserts that `records` (read from the cluster itself) hold each of
/// `expected` exactly once, and nothing else.
fn assert_once(what: &str, records: &[Consumed], expected: &BTreeSet<u64>) {
    assert!(
        records.iter().all(|r| r.value_ok),
        "{what}: a value altered"
    );
    let indices: Vec<u64> = records.iter().map(|r| r.index).collect();
    let unique: BTreeSet<u64> = indices.iter().copied().collect();
    assert_eq!(
        indices.len(),
        unique.len(),
        "{what}: {} records written twice",
        indices.len() - unique.len()
    );
    let missing: Vec<&u64> = expected.difference(&unique).take(10).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} acknowledged records missing, first {missing:?}",
        expected.difference(&unique).count()
    );
    let unacknowledged: Vec<&u64> = unique.difference(expected).take(10).collect();
    assert!(
        unacknowledged.is_empty(),
        "{what}: {} records written that nobody was told of, first {unacknowledged:?}",
        unique.difference(expected).count()
    );
}

#[test]
fn sigterm_answers_every_request_read_then_exits_zero_and_loses_nothing() {
    let old = Broker::start("drain-old");
    let new = Broker::start("drain-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.proxy_extra = format!("shutdown_grace_ms = {}", GRACE.as_millis());
    setup.extra = format!(
        "[[routes.topic]]\npattern = \"{RAW_TOPIC}\"\nproduce = \"new\"\nfetch = \"new\"\n"
    );
    let mut proxy = Proxy::start(setup);
    let bootstrap = proxy.bootstrap();
    create_topic(&bootstrap, LIBRDKAFKA_TOPIC, PARTITIONS);
    create_topic(&bootstrap, PYTHON_TOPIC, PARTITIONS);
    create_topic(&bootstrap, RAW_TOPIC, 1);

    let scratch = Scratch::new("drain");
    let stop_file = scratch.path("stop");
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let librdkafka = librdkafka_writer(bootstrap.clone(), stop.clone(), delivered.clone());
    let kafka_python =
        harness::clients::kafka_python_until(bootstrap.clone(), PYTHON_TOPIC, 0, stop_file.clone());
    wait_for(
        "both producers to be writing",
        Duration::from_secs(60),
        || {
            let python = records_on(&old.addr(), PYTHON_TOPIC);
            (delivered.load(Ordering::SeqCst) >= 500 && python > 0).then_some(())
        },
    );

    // The raw connection goes to the virtual broker of "new", where its
    // topic lives; the signal comes while its requests are in flight.
    let raw_broker = format!("127.0.0.1:{}", proxy.virtual_port(1000 + TANSU_NODE_ID));
    let mut raw = RawClient::connect(&raw_broker).expect("connect to the virtual broker");
    let sender = raw_sender(raw.try_clone().unwrap());
    let mut signalled_at = None;
    let answered = raw_answers(&mut raw, || {
        proxy.terminate();
        signalled_at = Some(Instant::now());
    });
    raw.shutdown(std::net::Shutdown::Both);
    let sent = sender.join().expect("raw sender");
    assert!(
        signalled_at.is_some(),
        "the raw connection closed after {answered} answers, before the signal"
    );

    let status = proxy
        .wait_exit(GRACE + Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "the proxy still runs after the grace period; its log:\n{}",
                proxy.log()
            )
        });
    assert_eq!(status.code(), Some(0), "exit status; log:\n{}", proxy.log());
    let log = proxy.whole_log();
    assert!(
        log.contains("draining: stopped accepting"),
        "the drain says it started; log:\n{}",
        proxy.log()
    );
    let (accepted, answered_all, unanswered) = drained_counts(&log);
    assert_eq!(
        (accepted, unanswered),
        (answered_all, 0),
        "every request read was answered"
    );
    let said: Vec<&str> = log.lines().filter(|l| l.contains("drain")).collect();
    eprintln!(
        "raw connection: {sent} sent, {answered} answered; the proxy said:\n{}",
        said.join("\n")
    );

    // Started again, the proxy lets the producers finish.
    proxy.start_again();
    let at_restart = delivered.load(Ordering::SeqCst);
    wait_for(
        "librdkafka to write through the restarted proxy",
        Duration::from_secs(60),
        || (delivered.load(Ordering::SeqCst) >= at_restart + 500).then_some(()),
    );
    stop.store(true, Ordering::SeqCst);
    std::fs::write(&stop_file, b"").unwrap();
    let (librdkafka_acks, failed) = librdkafka.join().expect("librdkafka producer");
    assert!(
        failed.is_empty(),
        "librdkafka delivery errors: {:?}",
        &failed[..failed.len().min(5)]
    );
    let python_acks = kafka_python.join().expect("kafka-python producer");

    let indices = |acks: &[Ack]| acks.iter().map(|a| a.0).collect::<BTreeSet<u64>>();
    assert_once(
        "librdkafka's records",
        &cluster_records(&old.addr(), LIBRDKAFKA_TOPIC, PARTITIONS),
        &indices(&librdkafka_acks),
    );
    assert_once(
        "kafka-python's records",
        &cluster_records(&old.addr(), PYTHON_TOPIC, PARTITIONS),
        &indices(&python_acks),
    );
    assert_once(
        "the raw connection's records",
        &cluster_records(&new.addr(), RAW_TOPIC, 1),
        &(0..answered).collect(),
    );
}

/// Sends, through the virtual broker of "old", a Fetch of `topic` that
/// waits up to a minute for a record that never comes, and waits until
/// the proxy has read it.
fn held_fetch(proxy: &Proxy, topic: &str) -> RawClient {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest};

    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(60_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let before = proxy.metric("switchyard_client_requests_total");
    let addr = format!("127.0.0.1:{}", proxy.virtual_port(TANSU_NODE_ID));
    let mut client = RawClient::connect(&addr).expect("connect to the virtual broker");
    let frame = codec::request_frame(ApiKey::Fetch, 4, 1, &request).unwrap();
    client.send_bytes(&frame).unwrap();
    wait_for(
        "the proxy to read the Fetch",
        Duration::from_secs(10),
        || (proxy.metric("switchyard_client_requests_total") > before).then_some(()),
    );
    client
}

/// The proxy's `drained:` line, whole.
fn drained_line(proxy: &Proxy) -> String {
    let log = proxy.whole_log();
    log.lines()
        .find(|l| l.contains("drained: "))
        .unwrap_or_else(|| panic!("no `drained:` line in the proxy's log:\n{log}"))
        .to_owned()
}

#[test]
fn a_drain_ends_when_its_grace_runs_out_or_a_second_signal_comes() {
    let old = Broker::start("bound-old");
    let new = Broker::start("bound-new");

    // The grace runs out: the Fetch is left unanswered, and said so.
    let mut setup = ProxySetup::two(&old, &new);
    setup.proxy_extra = "shutdown_grace_ms = 1000".to_owned();
    let mut proxy = Proxy::start(setup);
    create_topic(&proxy.bootstrap(), "held", 1);
    let mut client = held_fetch(&proxy, "held");
    // A SIGHUP reloads the config (unchanged here) and stops nothing.
    proxy.signal(libc::SIGHUP);
    wait_for("the SIGHUP reload", Duration::from_secs(10), || {
        proxy.log().contains("config reloaded").then_some(())
    });
    assert!(
        proxy.wait_exit(Duration::from_millis(200)).is_none(),
        "SIGHUP stopped the proxy"
    );
    proxy.terminate();
    let status = proxy
        .wait_exit(Duration::from_secs(20))
        .expect("the proxy exits once its grace has run out");
    assert_eq!(status.code(), Some(0), "exit status; log:\n{}", proxy.log());
    assert!(
        !matches!(client.next_frame(), Ok(Some(_))),
        "the held Fetch got an answer"
    );
    let line = drained_line(&proxy);
    assert!(
        line.contains("WARN")
            && line.contains(" 1 left unanswered")
            && line.contains("grace of 1s ran out"),
        "{line}"
    );
    drop(proxy);

    // A second signal ends a drain that would wait a minute.
    let mut setup = ProxySetup::two(&old, &new);
    setup.proxy_extra = "shutdown_grace_ms = 60000".to_owned();
    let mut proxy = Proxy::start(setup);
    let _client = held_fetch(&proxy, "held");
    proxy.terminate();
    assert!(
        proxy.wait_exit(Duration::from_secs(1)).is_none(),
        "the drain waits for the held Fetch; log:\n{}",
        proxy.log()
    );
    proxy.terminate();
    let status = proxy
        .wait_exit(Duration::from_secs(20))
        .expect("the proxy exits on the second signal");
    assert_eq!(status.code(), Some(0), "exit status; log:\n{}", proxy.log());
    let line = drained_line(&proxy);
    assert!(
        line.contains("WARN") && line.contains("cut short by a second signal"),
        "{line}"
    );
}
