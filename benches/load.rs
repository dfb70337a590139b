//! Load harness: the same librdkafka producer workload straight to a tansu
//! broker and through the proxy, so the proxy's cost is a ratio, not a
//! guess. Bounded in count and time; prints a table.
//!
//! `cargo bench --bench load` (records: SWITCHYARD_LOAD_RECORDS, default
//! 200000 of 1 KiB). Needs what the tests need (`scripts/install-deps.sh`).

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::clients::{create_topic, produce_range, producer};
use harness::{Broker, Proxy, ProxySetup};
use rdkafka::producer::Producer;

fn run(bootstrap: &str, topic: &str, records: u64) -> Duration {
    create_topic(bootstrap, topic, 6);
    let p = producer(
        bootstrap,
        &[
            ("acks", "1"),
            ("linger.ms", "5"),
            ("batch.size", "1000000"),
            ("enable.idempotence", "false"),
        ],
    );
    let started = Instant::now();
    produce_range(&p, topic, 0..records, |_| {});
    p.flush(Duration::from_secs(60)).expect("flush");
    let elapsed = started.elapsed();
    let failed = p.context().failed.lock().unwrap().len();
    assert_eq!(failed, 0, "deliveries failed under load");
    elapsed
}

fn main() {
    let records: u64 = std::env::var("SWITCHYARD_LOAD_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let old = Broker::start("load-old");
    let new = Broker::start("load-new");
    let proxy = Proxy::start(ProxySetup::two(&old, &new));
    let rss_before = proxy.rss_kib();

    // A warm-up run, then rounds that alternate, best of each: the broker's
    // own warm-up and drift must not be charged to either side.
    run(&old.addr(), "warmup", records);
    let mut direct = Duration::MAX;
    let mut proxied = Duration::MAX;
    for round in 0..3 {
        direct = direct.min(run(&old.addr(), &format!("direct-{round}"), records));
        proxied = proxied.min(run(
            &proxy.bootstrap(),
            &format!("proxied-{round}"),
            records,
        ));
    }
    let rss_after = proxy.rss_kib();

    let mib = records as f64 / 1024.0; // 1 KiB records
    let row = |name: &str, d: Duration| {
        println!(
            "{name:<10} {:>10.0} records/s {:>8.1} MiB/s {:>8.2} s",
            records as f64 / d.as_secs_f64(),
            mib / d.as_secs_f64(),
            d.as_secs_f64()
        );
    };
    println!("{records} records of 1 KiB, librdkafka, acks=1, 6 partitions, best of 3");
    row("direct", direct);
    row("proxied", proxied);
    println!(
        "proxy throughput {:.0}% of direct; proxy RSS {rss_before} KiB -> {rss_after} KiB",
        100.0 * direct.as_secs_f64() / proxied.as_secs_f64()
    );
}
