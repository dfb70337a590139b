//! `consume`: kafka-consumer-perf-test on librdkafka. A group member reads
//! the topic until it has `--messages` records or none has come for
//! `--timeout` ms, then prints Kafka's data line (or, with
//! `--show-detailed-stats`, a line per reporting interval instead).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;

use crate::props::Props;
use crate::stats::mb;

#[derive(clap::Args)]
pub struct Args {
    /// The server(s) to connect to.
    #[arg(long)]
    bootstrap_server: String,
    /// The topic to consume from.
    #[arg(long)]
    topic: String,
    /// The number of messages to consume.
    #[arg(long)]
    messages: u64,
    /// The group id to consume on (default: perf-consumer-<random>).
    #[arg(long)]
    group: Option<String>,
    /// The amount of data to fetch from one partition in a single request.
    #[arg(long, default_value_t = 1024 * 1024)]
    fetch_size: u32,
    /// With no committed offset, start at the log end, not its start.
    #[arg(long)]
    from_latest: bool,
    /// The size of the TCP receive buffer.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    socket_buffer_size: u32,
    /// Consumer config properties file.
    #[arg(long = "consumer.config", value_name = "CONFIG-FILE")]
    consumer_config: Option<PathBuf>,
    /// Print a line per reporting interval instead of the totals.
    #[arg(long)]
    show_detailed_stats: bool,
    /// The longest wait in milliseconds between records before giving up.
    #[arg(long, default_value_t = 10_000)]
    timeout: u64,
    /// Milliseconds between detailed-stats lines.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    reporting_interval: u64,
    /// Leave out the header line.
    #[arg(long)]
    hide_header: bool,
}

/// Time spent joining the group, as Kafka's tool counts it: from the start
/// (or from partitions being revoked) to partitions being assigned.
struct Joins {
    clock: Mutex<JoinClock>,
}

struct JoinClock {
    since: Instant,
    total_ms: u64,
    /// Join time since the last detailed-stats line.
    this_interval_ms: u64,
}

impl ClientContext for Joins {}

impl ConsumerContext for Joins {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            lock(&self.clock).since = Instant::now();
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            let mut clock = lock(&self.clock);
            let ms = clock.since.elapsed().as_millis() as u64;
            clock.total_ms += ms;
            clock.this_interval_ms += ms;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records and bytes read up to some moment.
#[derive(Debug, Default, Clone, Copy)]
struct Read {
    messages: u64,
    bytes: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.hide_header {
        print_header(args.show_detailed_stats);
    }
    let consumer = consumer(&args)?;
    consumer
        .subscribe(&[&args.topic])
        .with_context(|| format!("subscribing to {}", args.topic))?;

    let start = (SystemTime::now(), Instant::now());
    let read = consume(&consumer, &args);
    let end = (SystemTime::now(), Instant::now());
    let timed_out = read.messages < args.messages;
    if timed_out {
        println!(
            "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) \
             exceeded. You can use the --timeout option to increase the timeout.",
            args.timeout
        );
    }
    let join_ms = lock(&consumer.context().clock).total_ms;
    drop(consumer);
    if !args.show_detailed_stats {
        print_totals(read, start, end, join_ms);
    }
    if timed_out {
        bail!(
            "read {} of {} messages: none came for {} ms",
            read.messages,
            args.messages,
            args.timeout
        );
    }
    Ok(())
}

fn consumer(args: &Args) -> anyhow::Result<BaseConsumer<Joins>> {
    let mut props = Props::from_file(args.consumer_config.as_deref())?;
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("perf-consumer-{}", std::process::id() % 100_000));
    props.set("bootstrap.servers", &args.bootstrap_server);
    props.set("group.id", &group);
    props.set(
        "socket.receive.buffer.bytes",
        &args.socket_buffer_size.to_string(),
    );
    props.set("max.partition.fetch.bytes", &args.fetch_size.to_string());
    let reset = if args.from_latest {
        "latest"
    } else {
        "earliest"
    };
    props.set("auto.offset.reset", reset);
    props.set("check.crcs", "false");
    props.set_default("client.id", "perf-consumer-client");
    let joins = Joins {
        clock: Mutex::new(JoinClock {
            since: Instant::now(),
            total_ms: 0,
            this_interval_ms: 0,
        }),
    };
    props
        .client_config()
        .create_with_context(joins)
        .context("creating the consumer")
}

/// Kafka's loop: poll until enough is read or the wait since the last
/// record passes the timeout; detailed lines as records arrive.
fn consume(consumer: &BaseConsumer<Joins>, args: &Args) -> Read {
    let timeout = Duration::from_millis(args.timeout);
    let interval = Duration::from_millis(args.reporting_interval);
    let mut read = Read::default();
    let mut reported = (Instant::now(), read);
    let mut last_record = Instant::now();
    while read.messages < args.messages && last_record.elapsed() <= timeout {
        let message = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => {
                eprintln!("consumer: {e}");
                continue;
            }
            Some(Ok(message)) => message,
        };
        last_record = Instant::now();
        read.messages += 1;
        read.bytes += (message.key_len() + message.payload_len()) as u64;
        if args.show_detailed_stats && reported.0.elapsed() >= interval {
            let join_ms = std::mem::take(&mut lock(&consumer.context().clock).this_interval_ms);
            print_progress(reported, read, join_ms);
            reported = (Instant::now(), read);
        }
    }
    read
}

fn print_header(detailed: bool) {
    let first = if detailed {
        "time, threadId"
    } else {
        "start.time, end.time"
    };
    println!(
        "{first}, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
         rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
    );
}

/// `time, 0, total MB, interval MB/s, total messages, interval messages/s,
/// join ms, fetch ms, fetch MB/s, fetch messages/s` for the interval since
/// `last`.
fn print_progress(last: (Instant, Read), now: Read, join_ms: u64) {
    let elapsed_ms = last.0.elapsed().as_millis() as u64;
    let interval_mb = mb(now.bytes - last.1.bytes);
    let interval_messages = (now.messages - last.1.messages) as f64;
    let per_sec = |v: f64, ms: u64| {
        if ms == 0 {
            0.0
        } else {
            1000.0 * v / ms as f64
        }
    };
    let fetch_ms = elapsed_ms.saturating_sub(join_ms);
    println!(
        "{}, 0, {:.4}, {:.4}, {}, {:.4}, {join_ms}, {fetch_ms}, {:.4}, {:.4}",
        format_time(SystemTime::now()),
        mb(now.bytes),
        per_sec(interval_mb, elapsed_ms),
        now.messages,
        per_sec(interval_messages, elapsed_ms),
        per_sec(interval_mb, fetch_ms),
        per_sec(interval_messages, fetch_ms),
    );
}

/// Kafka's data line: start and end times, MB and messages in all and per
/// second of the whole run, then join time, fetch time (the run less the
/// join) and the rates over the fetch time.
fn print_totals(
    read: Read,
    start: (SystemTime, Instant),
    end: (SystemTime, Instant),
    join_ms: u64,
) {
    let elapsed_ms = end.1.duration_since(start.1).as_millis() as u64;
    let secs = elapsed_ms as f64 / 1000.0;
    let fetch_ms = elapsed_ms as i64 - join_ms as i64;
    let fetch_secs = fetch_ms as f64 / 1000.0;
    let total_mb = mb(read.bytes);
    println!(
        "{}, {}, {total_mb:.4}, {:.4}, {}, {:.4}, {join_ms}, {fetch_ms}, {:.4}, {:.4}",
        format_time(start.0),
        format_time(end.0),
        total_mb / secs,
        read.messages,
        read.messages as f64 / secs,
        total_mb / fetch_secs,
        read.messages as f64 / fetch_secs,
    );
}

/// Kafka's default `--date-format`, `yyyy-MM-dd HH:mm:ss:SSS`, local time.
fn format_time(t: SystemTime) -> String {
    let since_epoch = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs() as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value of that plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads `secs` and writes only into `tm`, both ours
    // and alive for the call.
    unsafe { libc::localtime_r(&secs, &mut tm) };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}:{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        since_epoch.subsec_millis()
    )
}
