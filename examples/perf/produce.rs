//! `produce`: kafka-producer-perf-test on librdkafka. Records go out as fast
//! as `--throughput` allows; each delivery report is timed against its send
//! and printed in Kafka's lines.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::ArgGroup;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::ClientContext;

use crate::props::Props;
use crate::stats::{Clock, Micros, ProduceStats};
use crate::throttle::Throttle;

/// Distinct random payloads cycled through, at most this many bytes of
/// them: generating each record's bytes anew would cost the client more
/// CPU than sending them, on a machine the client shares with what it
/// measures.
const PAYLOAD_POOL_BYTES: usize = 16 << 20;
const PAYLOAD_POOL_MAX: usize = 1024;

#[derive(clap::Args)]
#[command(group(ArgGroup::new("payload").required(true)
    .args(["record_size", "payload_file", "payload_monotonic"])))]
pub struct Args {
    /// Produce messages to this topic.
    #[arg(long)]
    topic: String,
    /// Number of messages to produce.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    num_records: u64,
    /// Message size in bytes (random upper-case letters).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    record_size: Option<u64>,
    /// File of UTF-8 payloads, one picked at random per message.
    #[arg(long)]
    payload_file: Option<PathBuf>,
    /// Delimiter between the payloads of --payload-file.
    #[arg(long, default_value = "\\n")]
    payload_delimiter: String,
    /// Payload is the message's index, in decimal.
    #[arg(long)]
    payload_monotonic: bool,
    /// Throttle to about this many messages/sec; -1 disables throttling.
    #[arg(long, allow_negative_numbers = true)]
    throughput: f64,
    /// Producer properties NAME=VALUE; these win over --producer.config.
    #[arg(long, num_args = 1.., value_name = "PROP-NAME=PROP-VALUE")]
    producer_props: Vec<String>,
    /// Producer config properties file.
    #[arg(long = "producer.config", value_name = "CONFIG-FILE")]
    producer_config: Option<PathBuf>,
    /// The server(s) to connect to; wins over bootstrap.servers elsewhere.
    #[arg(long)]
    bootstrap_server: Option<String>,
    /// Milliseconds between window lines (Kafka's tool: always 5000).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    reporting_interval: u64,
}

/// Delivery reports, timed as they come in on the client's polling thread.
struct Reports {
    clock: Clock,
    stats: Mutex<ProduceStats>,
    failed: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    /// When the record was sent, on the run's clock.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: usize) {
        let now = self.clock.now();
        match result {
            Ok(message) => {
                let bytes = message.payload_len() as u64;
                lock(&self.stats).record(Micros(sent as u64), now, bytes);
            }
            Err((e, _)) => {
                let mut failed = lock(&self.failed);
                failed.count += 1;
                failed.first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.throughput == 0.0 {
        bail!("--throughput 0 would never send: give a positive rate, or -1 for no limit");
    }
    let mut props = Props::from_file(args.producer_config.as_deref())?;
    props.extend_pairs(&args.producer_props)?;
    if let Some(servers) = &args.bootstrap_server {
        props.set("bootstrap.servers", servers);
    }
    if props.get("bootstrap.servers").is_none() {
        bail!("no bootstrap.servers: give --bootstrap-server, --producer-props bootstrap.servers=HOST:PORT or --producer.config FILE");
    }
    props.set_default("client.id", "perf-producer-client");
    let mut payloads = Payloads::new(&args)?;

    let clock = Clock::start();
    let reports = Reports {
        clock,
        stats: Mutex::new(ProduceStats::new(
            clock,
            args.num_records,
            Duration::from_millis(args.reporting_interval),
        )),
        failed: Mutex::default(),
    };
    let producer: ThreadedProducer<Reports> = props
        .client_config()
        .create_with_context(reports)
        .context("creating the producer")?;

    let mut throttle = Throttle::new(args.throughput);
    for i in 0..args.num_records {
        send(&producer, &args.topic, payloads.next(i), clock)?;
        throttle.pace(i);
    }
    // Deliveries end in a report or a failure within message.timeout.ms.
    producer
        .flush(Timeout::Never)
        .context("flushing the producer")?;

    let reports = producer.context();
    lock(&reports.stats).print_total();
    let failed = lock(&reports.failed);
    if failed.count > 0 {
        bail!(
            "{} of {} records were not delivered (first error: {})",
            failed.count,
            args.num_records,
            failed.first.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

/// Hands one record to the client, waiting while its queue is full: the
/// wait counts towards the record's latency, as a blocked send does in
/// Kafka's tool.
fn send(
    producer: &ThreadedProducer<Reports>,
    topic: &str,
    payload: &[u8],
    clock: Clock,
) -> anyhow::Result<()> {
    let sent = clock.now().0 as usize;
    let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, sent).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => return Err(e).context("handing a record to the producer"),
        }
    }
}

/// Where each record's bytes come from.
enum Payloads {
    /// Random upper-case letters, cycled through.
    Random(Vec<Vec<u8>>),
    /// Lines of a file, one picked at random each time.
    File(Vec<Vec<u8>>, XorShift),
    /// The record's index.
    Monotonic(Vec<u8>),
}

impl Payloads {
    fn new(args: &Args) -> anyhow::Result<Payloads> {
        let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
        if let Some(size) = args.record_size {
            let size = usize::try_from(size).context("--record-size")?;
            let count = (PAYLOAD_POOL_BYTES / size).clamp(1, PAYLOAD_POOL_MAX);
            let pool = (0..count)
                .map(|_| (0..size).map(|_| b'A' + random.below(26) as u8).collect())
                .collect();
            return Ok(Payloads::Random(pool));
        }
        if let Some(file) = &args.payload_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading payload file {}", file.display()))?;
            let delimiter = match args.payload_delimiter.as_str() {
                "\\n" => "\n",
                other => other,
            };
            let list: Vec<Vec<u8>> = text
                .split(delimiter)
                .map(|p| p.as_bytes().to_vec())
                .collect();
            if text.is_empty() {
                bail!("payload file {} is empty", file.display());
            }
            return Ok(Payloads::File(list, random));
        }
        Ok(Payloads::Monotonic(Vec::new()))
    }

    fn next(&mut self, index: u64) -> &[u8] {
        match self {
            Payloads::Random(pool) => &pool[index as usize % pool.len()],
            Payloads::File(list, random) => &list[random.below(list.len() as u64) as usize],
            Payloads::Monotonic(buf) => {
                buf.clear();
                buf.extend_from_slice(index.to_string().as_bytes());
                buf
            }
        }
    }
}

/// A small deterministic generator: payloads need to vary, not to be
/// unpredictable.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
