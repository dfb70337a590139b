//! The perf example (Kafka's perf-test flags and lines on librdkafka), run
//! as the program it is against a tansu broker, straight and through the
//! proxy: every line it prints reads as Kafka's, and the counts are exact.
//!
//! The example is built by `cargo test` (or `cargo build --example perf`);
//! this test only runs it.

mod harness;

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use harness::clients::create_topic;
use harness::{Broker, Scratch};
use regex::Regex;

const RECORDS: u64 = 20_000;
const RECORD_SIZE: u64 = 100;
/// Throttled so the run lasts about two seconds, with a window line every
/// quarter of one.
const RATE: &str = "10000";
const INTERVAL_MS: &str = "250";
const PARTITIONS: i32 = 3;
/// Longest a perf run may take before it is killed.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Kafka's producer window line.
const WINDOW: &str = r"^(\d+) records sent, \d+\.\d records/sec \(\d+\.\d\d MB/sec\), (\d+\.\d) ms avg latency, (\d+\.\d) ms max latency\.$";
/// Kafka's producer totals line.
const TOTAL: &str = r"^(\d+) records sent, \d+\.\d records/sec \(\d+\.\d\d MB/sec\), (\d+\.\d\d) ms avg latency, (\d+\.\d\d) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th\.$";
/// The line of our own after Kafka's totals.
const MICROS: &str =
    r"^latency us: avg (\d+), p50 (\d+), p95 (\d+), p99 (\d+), p99\.9 (\d+), max (\d+)$";
/// Kafka's consumer header and data line.
const CONSUMER_HEADER: &str = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";
const TIME: &str = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}";
const CONSUMER_WARNING: &str = "WARNING: Exiting before consuming the expected number of messages: timeout (2000 ms) exceeded. You can use the --timeout option to increase the timeout.";

#[test]
fn perf_against_a_broker_prints_kafkas_lines_with_exact_counts() {
    let broker = Broker::start("perf-direct");
    let scratch = Scratch::new("perf-direct");
    let bootstrap = broker.addr();
    create_topic(&bootstrap, "perf", PARTITIONS);

    let out = perf(
        &scratch,
        &[
            &[
                "produce",
                "--topic",
                "perf",
                "--bootstrap-server",
                &bootstrap,
            ],
            produce_workload(),
            &["--producer-props", "acks=all", "linger.ms=5"],
        ]
        .concat(),
    );
    check_produce_output(&out);

    let out = perf(
        &scratch,
        &consume_args(&bootstrap, "perf", "g1", RECORDS, "10000"),
    );
    check_consume_output(&out, RECORDS);

    // One more than there is: the consumer stops after 2 s without a
    // record, says so in Kafka's words, and fails.
    let out = perf(
        &scratch,
        &consume_args(&bootstrap, "perf", "g2", RECORDS + 1, "2000"),
    );
    assert!(!out.status.success(), "a short consume must fail: {out:?}");
    assert_eq!(out.lines().len(), 3, "{out:?}");
    assert_eq!(out.lines()[1], CONSUMER_WARNING, "{out:?}");
    check_consumer_data_line(&out.lines()[2], RECORDS);
    assert!(
        out.stderr.contains("none came for 2000 ms"),
        "the error names the timeout: {out:?}"
    );
}

#[test]
fn perf_through_the_proxy_prints_kafkas_lines_with_exact_counts() {
    let (_old, _new, proxy) = harness::two_clusters("perf");
    let scratch = Scratch::new("perf-proxy");
    let bootstrap = proxy.bootstrap();
    create_topic(&bootstrap, "perf", PARTITIONS);

    // The producer's settings as a Kafka tool's properties file, with a
    // Java-only setting the example must leave out.
    let config = scratch.path("producer.properties");
    std::fs::write(
        &config,
        format!(
            "# written by the test\nbootstrap.servers={bootstrap}\nacks = all\n\
             key.serializer=org.apache.kafka.common.serialization.ByteArraySerializer\n"
        ),
    )
    .expect("write producer.properties");
    let config = config.to_str().expect("scratch path is UTF-8");
    let out = perf(
        &scratch,
        &[
            &["produce", "--topic", "perf", "--producer.config", config],
            produce_workload(),
            &["--producer-props", "linger.ms=5"],
        ]
        .concat(),
    );
    check_produce_output(&out);
    assert!(
        out.stderr
            .contains("key.serializer is a Java client setting"),
        "{out:?}"
    );

    let out = perf(
        &scratch,
        &consume_args(&bootstrap, "perf", "g1", RECORDS, "10000"),
    );
    check_consume_output(&out, RECORDS);
}

fn produce_workload() -> &'static [&'static str] {
    const ARGS: [&str; 8] = [
        "--num-records",
        "20000",
        "--record-size",
        "100",
        "--throughput",
        RATE,
        "--reporting-interval",
        INTERVAL_MS,
    ];
    assert_eq!(ARGS[1], RECORDS.to_string());
    assert_eq!(ARGS[3], RECORD_SIZE.to_string());
    &ARGS
}

fn consume_args(
    bootstrap: &str,
    topic: &str,
    group: &str,
    messages: u64,
    timeout_ms: &str,
) -> Vec<String> {
    let args = [
        "consume",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--messages",
        &messages.to_string(),
        "--timeout",
        timeout_ms,
    ];
    args.iter().map(|a| a.to_string()).collect()
}

/// Window lines, then Kafka's totals, then the microsecond line; the
/// counts exact and every set of latencies in order.
fn check_produce_output(out: &Output) {
    assert!(out.status.success(), "produce failed: {out:?}");
    let lines = out.lines();
    assert!(lines.len() >= 3, "window lines, totals, micros: {out:?}");
    let (windows, ends) = lines.split_at(lines.len() - 2);

    let window = Regex::new(WINDOW).unwrap();
    let mut windowed = 0;
    for line in windows {
        let n = numbers(&window, line, out);
        assert!(n[0] > 0.0, "a window line counts records: {line}");
        assert!(n[1] <= n[2], "window average above its max: {line}");
        windowed += n[0] as u64;
    }
    assert!(
        windowed <= RECORDS,
        "windows count {windowed} of {RECORDS} records: {out:?}"
    );

    let total = numbers(&Regex::new(TOTAL).unwrap(), &ends[0], out);
    assert_eq!(total[0] as u64, RECORDS, "{out:?}");
    let (avg_ms, max_ms) = (total[1], total[2]);
    let ms = [total[3], total[4], total[5], total[6], max_ms];
    assert!(avg_ms <= max_ms, "{out:?}");
    assert!(
        ms.windows(2).all(|w| w[0] <= w[1]),
        "ms out of order: {out:?}"
    );

    let micros = numbers(&Regex::new(MICROS).unwrap(), &ends[1], out);
    let us = &micros[1..];
    assert!(micros[0] <= micros[5], "{out:?}");
    assert!(
        us.windows(2).all(|w| w[0] <= w[1]),
        "us out of order: {out:?}"
    );
    // Both lines come from the same records: a whole-millisecond latency
    // is its microseconds' milliseconds, or one more when a millisecond
    // tick fell in between.
    for (ms, us) in ms.iter().zip(us) {
        let floor = (us / 1000.0).floor();
        assert!(
            *ms == floor || *ms == floor + 1.0,
            "{ms} ms against {us} us: {out:?}"
        );
    }
}

/// Kafka's header and one data line counting `messages` read.
fn check_consume_output(out: &Output, messages: u64) {
    assert!(out.status.success(), "consume failed: {out:?}");
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "header and data line: {out:?}");
    assert_eq!(lines[0], CONSUMER_HEADER);
    check_consumer_data_line(&lines[1], messages);
}

fn check_consumer_data_line(line: &str, messages: u64) {
    let data = Regex::new(&format!(
        r"^{TIME}, {TIME}, (\d+\.\d{{4}}), \d+\.\d{{4}}, (\d+), \d+\.\d{{4}}, (\d+), (\d+), \d+\.\d{{4}}, \d+\.\d{{4}}$"
    ))
    .unwrap();
    let caps = data
        .captures(line)
        .unwrap_or_else(|| panic!("not Kafka's consumer data line: {line:?}"));
    let bytes = messages * RECORD_SIZE;
    assert_eq!(&caps[1], format!("{:.4}", bytes as f64 / (1024.0 * 1024.0)));
    assert_eq!(caps[2].parse::<u64>().unwrap(), messages, "{line}");
}

/// The numbers a line's captures hold, asserting the line matches.
fn numbers(re: &Regex, line: &str, out: &Output) -> Vec<f64> {
    let caps = re
        .captures(line)
        .unwrap_or_else(|| panic!("{line:?} does not match {re}: {out:?}"));
    caps.iter()
        .skip(1)
        .map(|c| c.expect("every group matched").as_str().parse().unwrap())
        .collect()
}

/// What one run of the example printed.
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn lines(&self) -> Vec<String> {
        self.stdout.lines().map(str::to_owned).collect()
    }
}

/// The example binary beside this test's: `target/<profile>/examples/perf`.
fn perf_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in target/<profile>/deps")
        .join("examples/perf");
    assert!(
        bin.exists(),
        "the perf example is not built at {}: plain `cargo test` builds it, or run \
         `cargo build --example perf` before `cargo test --test perf_harness`",
        bin.display()
    );
    bin
}

/// Runs the example with `args`, killed if it outlives [`RUN_LIMIT`].
fn perf<S: AsRef<std::ffi::OsStr>>(scratch: &Scratch, args: &[S]) -> Output {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (stdout, stderr) = (
        scratch.path(&format!("perf-{n}.out")),
        scratch.path(&format!("perf-{n}.err")),
    );
    let file = |p: &PathBuf| std::fs::File::create(p).expect("create output file");
    let mut child = Command::new(perf_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(file(&stdout))
        .stderr(file(&stderr))
        .spawn()
        .expect("start the perf example");
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for perf") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "perf ran over {RUN_LIMIT:?}; it printed:\n{}",
                std::fs::read_to_string(&stdout).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &PathBuf| std::fs::read_to_string(p).expect("read perf output");
    Output {
        status,
        stdout: read(&stdout),
        stderr: read(&stderr),
    }
}
