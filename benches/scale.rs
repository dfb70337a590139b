//! Scale runs at the size of a 20,000-topic migration, each bounded in
//! count and time and printing its figures beside its target:
//!
//! - `metadata`: one Metadata request naming 20,000 topics (200,000
//!   partitions over two clusters of scripted brokers), first and cached;
//! - `flip`: 1,000 topics flipped in one go under an idempotent producer;
//! - `status`: `switchyard status --json` with 1,000 groups on a stitched
//!   topic;
//! - `idle`: 10,000 idle client connections, memory per connection.
//!
//! `cargo bench --bench scale [-- metadata|flip|status|idle ...]` (all by
//! default). Needs what the tests need (`scripts/install-deps.sh`).

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::clients::{
    create_many, produce_range, producer, topic_names, write_round_robin, IDEMPOTENT,
};
use harness::fake::FakeBroker;
use harness::raw::RawClient;
use harness::{Broker, Proxy, ProxySetup};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, GroupId, MetadataRequest, MetadataResponse,
    OffsetCommitRequest, OffsetCommitResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::Producer;
use switchyard::wire::codec;

const PARTS: &[(&str, fn())] = &[
    ("metadata", metadata),
    ("flip", flip),
    ("status", status),
    ("idle", idle),
];

fn main() {
    // `cargo bench` passes `--bench`; names select parts.
    let asked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for name in &asked {
        assert!(
            PARTS.iter().any(|(n, _)| n == name),
            "unknown part {name:?}: expected some of metadata, flip, status, idle"
        );
    }
    for (name, run) in PARTS {
        if asked.is_empty() || asked.iter().any(|a| a == name) {
            let started = Instant::now();
            run();
            println!(
                "  ({name}: {:.1} s in all)",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `q`-quantile of `samples` (sorted in place), by nearest rank.
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// One round trip of an encoded request: the answer and how long it took.
fn round_trip(client: &mut RawClient, request: &[u8]) -> (switchyard::wire::Frame, Duration) {
    let started = Instant::now();
    client.send_bytes(request).expect("send the request");
    let frame = client.read_frame().expect("an answer");
    (frame, started.elapsed())
}

fn metadata() {
    const TOPICS: usize = 10_000;
    const PARTITIONS: i32 = 10;
    const REPEATS: usize = 50;
    const VERSION: i16 = 12;
    let old = FakeBroker::start("a", TOPICS, PARTITIONS);
    let new = FakeBroker::start("b", TOPICS, PARTITIONS);
    let mut setup = ProxySetup::upstreams(vec![("old", old.addr(), 0), ("new", new.addr(), 1000)]);
    // The default refresh, and a cache that outlives the repeats.
    setup.proxy_extra = "metadata_refresh_ms = 10000\nmetadata_cache_ms = 600000\n".into();
    setup.extra =
        "[[routes.topic]]\npattern = \"b.*\"\nproduce = \"new\"\nfetch = \"new\"\n".into();
    let proxy = Proxy::start(setup);
    let rss_before = proxy.rss_kib();

    let topics: Vec<MetadataRequestTopic> = ["a", "b"]
        .iter()
        .flat_map(|p| (0..TOPICS).map(move |i| format!("{p}.{i:05}")))
        .map(|n| MetadataRequestTopic::default().with_name(Some(name(&n))))
        .collect();
    let request = MetadataRequest::default().with_topics(Some(topics));
    let frame = codec::request_frame(ApiKey::Metadata, VERSION, 1, &request).expect("encode");
    let mut client = RawClient::connect(&proxy.bootstrap()).expect("connect");

    let (answer, first) = round_trip(&mut client, &frame);
    let decoded: MetadataResponse =
        codec::decode_response(ApiKey::Metadata, VERSION, &answer).expect("decode the answer");
    let partitions: usize = decoded.topics.iter().map(|t| t.partitions.len()).sum();
    let failed = decoded.topics.iter().filter(|t| t.error_code != 0).count();
    assert_eq!(
        (decoded.topics.len(), failed, partitions),
        (2 * TOPICS, 0, 2 * TOPICS * PARTITIONS as usize),
        "every topic answered, with all its partitions"
    );
    let mut cached: Vec<Duration> = (0..REPEATS)
        .map(|_| round_trip(&mut client, &frame).1)
        .collect();
    let rss_after = proxy.rss_kib();
    for broker in [&old, &new] {
        let unanswered = broker.unanswered();
        assert!(
            unanswered.is_empty(),
            "the proxy asked the scripted broker for api keys {unanswered:?}"
        );
    }

    println!(
        "metadata: {} topics, {partitions} partitions, two clusters; request {} bytes, answer {} bytes (v{VERSION})",
        2 * TOPICS,
        frame.len(),
        answer.0.len(),
    );
    println!("  first (asked upstream)  {:>8.1} ms", ms(first));
    println!(
        "  cached, median of {REPEATS}   {:>8.1} ms   (target <= 50 ms)",
        ms(quantile(&mut cached, 0.5))
    );
    println!(
        "  cached, p99 of {REPEATS}      {:>8.1} ms",
        ms(quantile(&mut cached, 0.99))
    );
    println!("  proxy RSS {rss_before} KiB -> {rss_after} KiB");
}

/// Runs `act` 1.5 s into a round of the round-robin producer over
/// `topics`: what `act` returned and the producer's reports.
fn under_load<T>(
    bootstrap: &str,
    topics: &[String],
    records: u64,
    act: impl FnOnce() -> T,
) -> (T, std::sync::Arc<harness::clients::Reports>) {
    let writer = write_round_robin(bootstrap.to_owned(), topics.to_vec(), records);
    std::thread::sleep(Duration::from_millis(1500));
    let done = act();
    (done, writer.join().expect("the producer"))
}

/// One line of a producer round's delivery latency and errors.
fn delivery_line(round: &str, reports: &harness::clients::Reports) {
    let mut latencies = reports.latencies.lock().unwrap().clone();
    let failed = reports.failed.lock().unwrap().clone();
    println!(
        "  {round:<14} producer p99 {:>7.1} ms, max {:>7.1} ms; delivery errors {}",
        ms(quantile(&mut latencies, 0.99)),
        ms(quantile(&mut latencies, 1.0)),
        failed.len()
    );
    if let Some(first) = failed.first() {
        println!("  first delivery error: {first:?}");
    }
}

fn flip() {
    const TOPICS: usize = 1_000;
    const RECORDS: u64 = 8_000;
    let (_old, _new, proxy) = harness::two_clusters("scale-flip");
    let topics = topic_names("bulk", TOPICS);
    create_many(&proxy.bootstrap(), &topics, 1);

    // The same load without a flip first: what the producer sees anyway.
    let ((), calm) = under_load(&proxy.bootstrap(), &topics, RECORDS, || ());
    let ((out, wall), flipped) = under_load(&proxy.bootstrap(), &topics, RECORDS, || {
        let started = Instant::now();
        let out = proxy.cli(&["flip", "--topics", "bulk.*", "--to", "new", "--json"]);
        (out, started.elapsed())
    });
    assert!(
        out.status.success(),
        "flip --topics failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON answer");

    println!("flip: {TOPICS} topics of 1 partition under an idempotent librdkafka producer ({RECORDS} records a round)");
    let steps = answer["result"]["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for step in &steps {
        println!(
            "  {:<8} {:>8.1} ms",
            step["step"].as_str().unwrap_or("?"),
            step["ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!(
        "  flip command, wall {:>8.1} ms   (target <= 5 s)",
        ms(wall)
    );
    delivery_line("without a flip", &calm);
    delivery_line("with the flip", &flipped);
    println!("  (target: p99 <= 1 s, no delivery error)");
}

/// Commits offset `offset` of partition 0 of `topic` for `group`, outside
/// any membership, straight to the broker at `client`'s end.
fn commit(client: &mut RawClient, group: &str, topic: &str, offset: i64) {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(-1)
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let answer: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 2, &request);
    let code = answer.topics[0].partitions[0].error_code;
    assert_eq!(code, 0, "commit of {group} answered error {code}");
}

fn status() {
    const GROUPS: usize = 1_000;
    const RECORDS: u64 = 200;
    const RUNS: usize = 5;
    let (old, _new, proxy) = harness::two_clusters("scale-status");
    let topic = "drained";
    create_many(&proxy.bootstrap(), &[topic.to_owned()], 1);
    let p = producer(&proxy.bootstrap(), IDEMPOTENT);
    produce_range(&p, topic, 0..RECORDS, |_| {});
    p.flush(Duration::from_secs(30)).expect("flush");
    // Groups spread over the log: some crossed, most still draining.
    let mut client = RawClient::connect(&old.addr()).expect("connect to 'old'");
    for g in 0..GROUPS {
        let offset = (g as u64 * RECORDS / GROUPS as u64) as i64;
        commit(&mut client, &format!("group-{g:04}"), topic, offset);
    }
    proxy.flip(topic, "new");

    let mut took = Vec::new();
    let mut answer = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let out = proxy.cli(&["status", "--json"]);
        took.push(started.elapsed());
        assert!(out.status.success(), "status failed: {out:?}");
        answer = out.stdout;
    }
    let json: serde_json::Value = serde_json::from_slice(&answer).expect("JSON answer");
    let drains = json["result"]["drain"].as_array().map_or(0, Vec::len);
    println!("status: {GROUPS} groups with committed offsets on one stitched topic");
    println!(
        "  status --json, median of {RUNS} {:>8.1} ms, slowest {:.1} ms; answer {} bytes, {drains} group progress entries",
        ms(quantile(&mut took, 0.5)),
        ms(quantile(&mut took, 1.0)),
        answer.len()
    );
}

/// Raises this process's open-file limit to its hard limit, which the
/// proxy it starts inherits; panics when even that is below `need`.
fn raise_open_files(need: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only `limit`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= need,
        "open files limited to {} (hard), {need} needed",
        limit.rlim_cur
    );
}

fn idle() {
    const CONNECTIONS: usize = 10_000;
    raise_open_files(CONNECTIONS as u64 + 1_000);
    let old = Broker::start("scale-idle-old");
    let new = Broker::start("scale-idle-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.proxy_extra = "max_connections = 20000\nmax_connections_per_ip = 20000\n".into();
    let proxy = Proxy::start(setup);
    // Let the start settle before the baseline.
    std::thread::sleep(Duration::from_secs(2));
    let rss_before = proxy.rss_kib();

    let started = Instant::now();
    let held: Vec<RawClient> = (0..CONNECTIONS)
        .map(|i| {
            let mut c = RawClient::connect(&proxy.bootstrap())
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
            let answer: ApiVersionsResponse =
                c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
            assert_eq!(answer.error_code, 0, "connection {i}: ApiVersions");
            c
        })
        .collect();
    let opened = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = proxy.rss_kib();
    let open = proxy.metric("switchyard_client_connections");
    drop(held);

    let per = (rss_after.saturating_sub(rss_before)) as f64 / CONNECTIONS as f64;
    println!(
        "idle: {CONNECTIONS} client connections, each after one ApiVersions (opened in {:.1} s; the proxy counts {open})",
        opened.as_secs_f64()
    );
    println!(
        "  proxy RSS {rss_before} KiB -> {rss_after} KiB: {per:.1} KiB per connection (target <= 64 KiB)"
    );
}
