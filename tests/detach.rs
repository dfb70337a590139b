//! Detaching consumer groups: their committed offsets, virtual while they
//! read through the proxy, are written into the new cluster's own offsets,
//! exactly where the stitched log lives there, and through MirrorMaker 2's
//! offset syncs (records the test writes, as MirrorMaker 2 would) where it
//! lives on the old cluster.

mod harness;

use std::time::Duration;

use harness::clients::{client_config, create_topic, produce_range, producer};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

/// Commits `offset` for partition 0 of `topic` as group `group`, through
/// `bootstrap`, without joining (as tools and simple consumers do).
fn commit(bootstrap: &str, group: &str, topic: &str, offset: i64) {
    let c: BaseConsumer = client_config(bootstrap, &[("group.id", group)])
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).unwrap();
}

/// The committed offset of partition 0 of `topic` for `group`, asked of
/// `bootstrap`; -1 for none.
fn committed(bootstrap: &str, group: &str, topic: &str) -> i64 {
    let c: BaseConsumer = client_config(bootstrap, &[("group.id", group)])
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    match got.find_partition(topic, 0).unwrap().offset() {
        Offset::Offset(o) => o,
        _ => -1,
    }
}

/// An offset-sync record as MirrorMaker 2 writes it: key `topic STRING,
/// partition INT32`, value `upstreamOffset INT64, offset INT64`.
fn offset_sync(topic: &str, partition: i32, upstream: i64, downstream: i64) -> (Vec<u8>, Vec<u8>) {
    let mut key = (topic.len() as i16).to_be_bytes().to_vec();
    key.extend_from_slice(topic.as_bytes());
    key.extend_from_slice(&partition.to_be_bytes());
    let value = [upstream.to_be_bytes(), downstream.to_be_bytes()].concat();
    (key, value)
}

#[test]
fn detach_writes_exact_and_mirrormaker_translated_offsets_to_the_new_cluster() {
    let (old, new, proxy) = harness::two_clusters("dt");
    // One record per batch keeps tansu's reported log ends exact.
    let single = [("acks", "all"), ("batch.num.messages", "1")];
    create_topic(&proxy.bootstrap(), "orders", 1);
    create_topic(&proxy.bootstrap(), "logs", 1);
    create_topic(&new.addr(), "orders", 1);

    // 'new' holds 10 records of its own, then MirrorMaker 2's copy of the
    // 100 records written to 'old' through the proxy: copy of offset u sits
    // at u + 10.
    let to_new = producer(&new.addr(), &single);
    produce_range(&to_new, "orders", 9_000..9_010, |_| {});
    let p = producer(&proxy.bootstrap(), &single);
    produce_range(&p, "orders", 0..100, |_| {});
    produce_range(&p, "logs", 0..20, |_| {});
    produce_range(&to_new, "orders", 0..100, |_| {});

    // Its offset syncs, on the source cluster (MirrorMaker 2's default).
    let syncs_topic = "mm2-offset-syncs.new.internal";
    create_topic(&old.addr(), syncs_topic, 1);
    let raw = producer(&old.addr(), &single);
    for (upstream, downstream) in [(0, 10), (50, 60)] {
        let (key, value) = offset_sync("orders", 0, upstream, downstream);
        raw.send(
            BaseRecord::with_opaque_to(syncs_topic, Box::new(0))
                .key(&key)
                .payload(&value),
        )
        .unwrap();
    }
    raw.flush(Duration::from_secs(10)).unwrap();

    // Groups commit through the proxy, on 'old' (the default coordinator).
    commit(&proxy.bootstrap(), "billing", "orders", 30);
    commit(&proxy.bootstrap(), "mid", "orders", 50);
    commit(&proxy.bootstrap(), "orphan", "logs", 5);

    // Produce moves: virtual 100.. continues on 'new' at 110...
    let out = proxy.cli(&["flip", "orders", "--to", "new", "--produce-only"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    produce_range(&p, "orders", 100..150, |_| {});
    commit(&proxy.bootstrap(), "late", "orders", 140);

    let detach = |group: &str| -> Value {
        let out = proxy.cli(&["detach", group, "--cluster", "new", "--json"]);
        serde_json::from_slice(&out.stdout).expect("detach --json prints JSON")
    };
    let offsets = |answer: &Value| answer["result"]["offsets"].clone();

    // Below the stitch: MirrorMaker 2's rule (latest sync at or below, one
    // past it unless exactly synced).
    let billing = detach("billing");
    assert_eq!(
        offsets(&billing),
        json!([{"topic": "orders", "partition": 0, "committed": 30, "translated": 11,
                "how": "mirrormaker2"}]),
        "{billing}"
    );
    let mid = detach("mid");
    assert_eq!(offsets(&mid)[0]["translated"], 60, "{mid}");
    assert_eq!(offsets(&mid)[0]["how"], "mirrormaker2");
    // Above it: exact, in the new cluster's own offsets.
    let late = detach("late");
    assert_eq!(
        offsets(&late),
        json!([{"topic": "orders", "partition": 0, "committed": 140, "translated": 150,
                "how": "exact"}]),
        "{late}"
    );
    for (group, expected) in [("billing", 11), ("mid", 60), ("late", 150)] {
        assert_eq!(
            committed(&new.addr(), group, "orders"),
            expected,
            "{group} on 'new'"
        );
    }

    // No sync can translate 'logs' (never copied): refused, nothing written.
    let orphan = detach("orphan");
    assert_eq!(orphan["ok"], false);
    let error = orphan["error"].as_str().unwrap();
    assert!(
        error.contains(
            "its offset 5 of logs-0 is on cluster 'old', and no MirrorMaker 2 offset sync"
        ),
        "{error}"
    );
    assert_eq!(committed(&new.addr(), "orphan", "logs"), -1);

    // The group's offsets behind the proxy are untouched.
    assert_eq!(committed(&proxy.bootstrap(), "billing", "orders"), 30);
}
