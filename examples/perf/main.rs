//! Load generator with the flags and output lines of Apache Kafka's
//! `kafka-producer-perf-test` and `kafka-consumer-perf-test`, on librdkafka,
//! so the same workload can be pointed straight at a broker or at the proxy
//! and the two compared line for line (`scripts/perf-compare.sh` does that).
//!
//! `cargo run --release --example perf -- produce --topic T --num-records N
//! --record-size S --throughput -1 --bootstrap-server HOST:PORT`;
//! `... -- consume --bootstrap-server HOST:PORT --topic T --messages N`.
//! Kafka's lines are printed exactly as Kafka prints them; after the
//! producer's totals line comes one line of its own,
//! `latency us: avg A, p50 B, p95 C, p99 D, p99.9 E, max F`, because Kafka's
//! whole-millisecond percentiles cannot show a difference of a tenth of one.

mod consume;
mod produce;
mod props;
mod stats;
mod throttle;

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "perf",
    about = "Kafka's producer and consumer perf tests on librdkafka"
)]
enum Command {
    /// kafka-producer-perf-test: send records, report rate and latency.
    Produce(produce::Args),
    /// kafka-consumer-perf-test: read records, report rate.
    Consume(consume::Args),
}

fn main() -> ExitCode {
    let outcome = match Command::parse() {
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
