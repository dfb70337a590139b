//! An upstream broker dies mid-stream and comes back: clients see only
//! errors they retry, the proxy stays up, and traffic resumes by itself.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::clients::{
    client_config, create_topic, kafka_python_consume, produce_range, producer, IDEMPOTENT,
};
use harness::{Broker, Proxy, ProxySetup};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;

const RECORDS: u64 = 20_000;
const KILL_AT: u64 = 8_000;
const RESTART_AT: u64 = 11_000;

#[test]
fn upstream_broker_killed_and_restarted_mid_stream_fails_no_delivery() {
    let mut old = Broker::start_persistent("br-old");
    let new = Broker::start("br-new");
    let mut proxy = Proxy::start(ProxySetup::two(&old, &new));
    let bootstrap = proxy.bootstrap();
    create_topic(&bootstrap, "durable", 2);

    let p = producer(
        &bootstrap,
        &[IDEMPOTENT, &[("reconnect.backoff.max.ms", "500")]].concat(),
    );
    let mut delivered_at_kill = 0;
    produce_range(&p, "durable", 0..RECORDS, |i| {
        if i == KILL_AT {
            // Let part of the stream land first, so the kill is mid-stream.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while p.context().delivered.lock().unwrap().len() < 1_000 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no progress before the kill; failures so far: {:?}",
                    p.context().failed.lock().unwrap().first()
                );
                p.poll(Duration::from_millis(50));
            }
            old.kill();
            delivered_at_kill = p.context().delivered.lock().unwrap().len() as u64;
        }
        if i == RESTART_AT {
            // Records keep being produced while the broker is down.
            std::thread::sleep(Duration::from_secs(2));
            assert!(
                proxy.is_running(),
                "the proxy survives its upstream broker dying"
            );
            old.restart();
        }
    });
    p.flush(Duration::from_secs(60)).expect("flush");

    let reports = p.context();
    assert_eq!(
        *reports.failed.lock().unwrap(),
        vec![],
        "every failure was retried by the client, none reached the application"
    );
    let delivered: BTreeSet<u64> = reports
        .delivered
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.index)
        .collect();
    assert_eq!(
        delivered.len() as u64,
        RECORDS,
        "every record delivered exactly once"
    );
    assert!(proxy.is_running());
    assert!(delivered_at_kill < RECORDS, "the broker died mid-stream");
    assert!(
        proxy.metric("switchyard_upstream_errors_total") > 0.0,
        "the proxy saw the upstream broker go away"
    );

    // Everything is there, once, and readable through the proxy.
    let watermarks: BaseConsumer = client_config(&bootstrap, &[("group.id", "br-check")])
        .create()
        .unwrap();
    let total: i64 = (0..2)
        .map(|partition| {
            let (low, high) = watermarks
                .fetch_watermarks("durable", partition, Duration::from_secs(10))
                .expect("ListOffsets through the proxy");
            high - low
        })
        .sum();
    assert_eq!(
        total as u64, RECORDS,
        "no duplicate was written by the retries"
    );
    let consumed = kafka_python_consume(&bootstrap, "durable", RECORDS as usize);
    let read: BTreeSet<u64> = consumed.iter().map(|c| c.index).collect();
    assert_eq!(read, (0..RECORDS).collect::<BTreeSet<_>>());
    assert!(consumed.iter().all(|c| c.value_ok));
    proxy.restart(); // the proxy itself also restarts cleanly
}
