//! Records through the proxy, written by one client library and read back by
//! another: nothing lost, nothing reordered, not a byte changed.

mod harness;

use std::collections::{BTreeMap, HashMap};

use harness::clients::{create_topic, kafka_python_consume, produce_range, producer};
use rdkafka::producer::Producer;

const RECORDS: u64 = 100_000;
const PARTITIONS: i32 = 3;

#[test]
fn librdkafka_writes_100k_and_kafka_python_reads_them_back_exactly() {
    let (_old, _new, proxy) = harness::two_clusters("pc");
    create_topic(&proxy.bootstrap(), "bulk", PARTITIONS);

    let p = producer(
        &proxy.bootstrap(),
        &[
            ("acks", "all"),
            ("linger.ms", "5"),
            ("enable.idempotence", "true"),
        ],
    );
    produce_range(&p, "bulk", 0..RECORDS, |_| {});
    p.flush(std::time::Duration::from_secs(30)).unwrap();
    let reports = p.context();
    assert_eq!(
        *reports.failed.lock().unwrap(),
        vec![],
        "no delivery may fail"
    );
    let delivered = reports.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len() as u64, RECORDS);
    let placed: HashMap<u64, (i32, i64)> = delivered
        .iter()
        .map(|d| (d.index, (d.partition, d.offset)))
        .collect();
    assert_eq!(placed.len() as u64, RECORDS, "each record delivered once");

    let consumed = kafka_python_consume(&proxy.bootstrap(), "bulk", RECORDS as usize);
    assert_eq!(consumed.len() as u64, RECORDS, "exact count");
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut seen = vec![false; RECORDS as usize];
    for c in &consumed {
        assert!(
            c.value_ok,
            "record {} came back with different bytes",
            c.index
        );
        assert_eq!(
            placed.get(&c.index),
            Some(&(c.partition, c.offset)),
            "record {} read where the producer was told it landed",
            c.index
        );
        assert!(!seen[c.index as usize], "record {} read twice", c.index);
        seen[c.index as usize] = true;
        // Per-partition order: offsets strictly increase.
        if let Some(prev) = last_offset.insert(c.partition, c.offset) {
            assert!(
                c.offset > prev,
                "partition {} went from {prev} to {}",
                c.partition,
                c.offset
            );
        }
    }
    assert_eq!(
        last_offset.len() as i32,
        PARTITIONS,
        "every partition was used"
    );
    // Within each partition, a key produced later sits at a higher offset.
    let mut by_partition: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    for c in &consumed {
        by_partition
            .entry(c.partition)
            .or_default()
            .push((c.offset, c.index));
    }
    for (partition, mut rows) in by_partition {
        rows.sort();
        assert!(
            rows.windows(2).all(|w| w[0].1 < w[1].1),
            "partition {partition} holds records out of production order"
        );
    }
}
