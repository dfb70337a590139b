//! Gaps in a partition's offsets, met by a consumer through the proxy.
//!
//! A broker may answer a Fetch with records past offsets it has given out
//! and not yet stored (tansu moves a partition's end before it stores the
//! batch): a client handed the later records skips the earlier ones for
//! good. The proxy holds the records past such a gap back until it fills,
//! and lets them through once it has stood long enough to be offsets that
//! are gone (compacted away). A scripted broker shows both on demand.

mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::clients::client_config;
use harness::fake::{FakeBatch, FakeBroker};
use harness::{Proxy, ProxySetup};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

const TOPIC: &str = "gapped.00000";

/// Reads partitions 0 and 1 of [`TOPIC`] from offset 0 through
/// `bootstrap` until `want` records came (or 30 s passed): each record's
/// offset and value, by partition.
fn read(bootstrap: &str, want: usize) -> BTreeMap<i32, Vec<(i64, String)>> {
    let consumer: BaseConsumer = client_config(
        bootstrap,
        &[
            ("group.id", "gaps"),
            ("enable.auto.commit", "false"),
            ("fetch.wait.max.ms", "50"),
        ],
    )
    .create()
    .expect("a consumer");
    let mut assigned = TopicPartitionList::new();
    for p in 0..2 {
        assigned
            .add_partition_offset(TOPIC, p, Offset::Offset(0))
            .unwrap();
    }
    consumer.assign(&assigned).expect("assign");
    let mut got: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.values().map(Vec::len).sum::<usize>() < want && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = message.expect("no error reaches the consumer");
        let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
        got.entry(m.partition())
            .or_default()
            .push((m.offset(), value));
    }
    got
}

fn records(offsets: &[i64]) -> Vec<(i64, String)> {
    offsets
        .iter()
        .map(|o| (*o, format!("record {o}")))
        .collect()
}

/// A broker whose partition 0 holds offsets 0..3, stored 200 ms after
/// the partition is first read, and 3 at once; and partition 1 `second`.
fn late_records_then(second: Vec<FakeBatch>) -> FakeBroker {
    let late = FakeBatch {
        hidden_for: Duration::from_millis(200),
        ..FakeBatch::at(0, 3)
    };
    FakeBroker::with_logs("gapped", vec![vec![late, FakeBatch::at(3, 1)], second])
}

#[test]
fn records_past_offsets_still_being_written_wait_for_them_and_a_gap_that_stands_passes() {
    // Partition 1: 0 and 5, nothing between, ever.
    let broker = late_records_then(vec![FakeBatch::at(0, 1), FakeBatch::at(5, 1)]);
    let proxy = Proxy::start(ProxySetup::upstreams(vec![("old", broker.addr(), 0)]));
    let got = read(&proxy.bootstrap(), 6);
    assert_eq!(
        got.get(&0).cloned().unwrap_or_default(),
        records(&[0, 1, 2, 3]),
        "partition 0: the late records first, none skipped"
    );
    assert_eq!(
        got.get(&1).cloned().unwrap_or_default(),
        records(&[0, 5]),
        "partition 1: past the gap that stood"
    );
    assert_eq!(
        broker.unanswered(),
        Vec::<i16>::new(),
        "only what the fake answers"
    );
    assert!(
        proxy.whole_log().contains("taken as gone"),
        "the proxy says when it lets records past a gap"
    );
}

/// The same broker straight to the consumer: the late records are lost,
/// which is what the proxy is there to prevent (the scripted fault is
/// real).
#[test]
fn without_the_proxy_the_late_records_are_skipped() {
    let broker = late_records_then(vec![FakeBatch::at(0, 1)]);
    let got = read(&broker.addr(), 2);
    assert_eq!(
        got.get(&0).cloned().unwrap_or_default(),
        records(&[3]),
        "partition 0 read directly: 0..3 skipped"
    );
}
