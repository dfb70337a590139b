//! MirrorMaker 2 alongside the proxy, its records written by the tests as
//! MirrorMaker 2 would write them: a mirrored flip stitches after the copy
//! has caught up, and detaching a group writes its committed offsets into
//! the new cluster's own offsets, exactly where the stitched log lives
//! there and through the offset syncs where it lives on the old cluster.

mod harness;

use std::time::Duration;

use harness::clients::{
    client_config, create_topic, indices, kafka_python_consume, produce_range, producer, Reports,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
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

/// Writes offset syncs `(upstream, downstream)` for partition 0 of
/// `topic` to `syncs_topic` with `raw`.
fn write_syncs(raw: &BaseProducer<Reports>, syncs_topic: &str, topic: &str, syncs: &[(i64, i64)]) {
    for &(upstream, downstream) in syncs {
        let (key, value) = offset_sync(topic, 0, upstream, downstream);
        raw.send(
            BaseRecord::with_opaque_to(syncs_topic, Box::new(0))
                .key(&key)
                .payload(&value),
        )
        .unwrap();
    }
    raw.flush(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_mirrored_flip_stitches_after_the_copy_has_caught_up() {
    let (old, new, proxy) = harness::two_clusters("mf");
    // Many records per batch, as real producers (and MirrorMaker 2) send.
    let batched = [("acks", "all"), ("linger.ms", "5")];
    create_topic(&proxy.bootstrap(), "orders", 1);
    create_topic(&new.addr(), "orders", 1);
    let syncs_topic = "mm2-offset-syncs.new.internal";
    create_topic(&old.addr(), syncs_topic, 1);
    let p = producer(&proxy.bootstrap(), &batched);
    produce_range(&p, "orders", 0..100, |_| {});

    // MirrorMaker 2 has copied 60 of the 100 records when the flip starts.
    let copier = producer(&new.addr(), &batched);
    let syncs = producer(&old.addr(), &batched);
    produce_range(&copier, "orders", 0..60, |_| {});
    write_syncs(&syncs, syncs_topic, "orders", &[(0, 0)]);
    let copied = std::sync::atomic::AtomicBool::new(false);
    let (out, copied_before) = std::thread::scope(|s| {
        let flip = s.spawn(|| {
            let out = proxy.cli(&[
                "flip",
                "orders",
                "--to",
                "new",
                "--produce-only",
                "--mirrored",
            ]);
            (out, copied.load(std::sync::atomic::Ordering::SeqCst))
        });
        std::thread::sleep(Duration::from_millis(2_000));
        produce_range(&copier, "orders", 60..100, |_| {});
        write_syncs(&syncs, syncs_topic, "orders", &[(99, 99)]);
        copied.store(true, std::sync::atomic::Ordering::SeqCst);
        flip.join().unwrap()
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(copied_before, "the flip waited for the copy");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(proxy.state_file()).unwrap()).unwrap();
    assert_eq!(
        state["flips"][0]["stitch"],
        json!([{"partition": 0, "l_old": 100, "l_new": 100}]),
        "stitched after the copy"
    );

    // Readers see each record once: the copies are not new records.
    produce_range(&p, "orders", 100..150, |_| {});
    let read = kafka_python_consume(&proxy.bootstrap(), "orders", 150);
    assert_eq!(read.len(), 150);
    assert_eq!(indices(&read), (0..150).collect());
    let offsets: Vec<i64> = read.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..150).collect::<Vec<_>>());
}

#[test]
fn detach_writes_exact_and_mirrormaker_translated_offsets_to_the_new_cluster() {
    let (old, new, proxy) = harness::two_clusters("dt");
    // Many records per batch, as real producers (and MirrorMaker 2) send.
    let batched = [("acks", "all"), ("linger.ms", "5")];
    create_topic(&proxy.bootstrap(), "orders", 1);
    create_topic(&proxy.bootstrap(), "logs", 1);
    create_topic(&new.addr(), "orders", 1);

    // 'new' holds 10 records of its own, then MirrorMaker 2's copy of the
    // 100 records written to 'old' through the proxy: copy of offset u sits
    // at u + 10.
    let to_new = producer(&new.addr(), &batched);
    produce_range(&to_new, "orders", 9_000..9_010, |_| {});
    let p = producer(&proxy.bootstrap(), &batched);
    produce_range(&p, "orders", 0..100, |_| {});
    produce_range(&p, "logs", 0..20, |_| {});
    produce_range(&to_new, "orders", 0..100, |_| {});

    // Its offset syncs, on the source cluster (MirrorMaker 2's default).
    let syncs_topic = "mm2-offset-syncs.new.internal";
    create_topic(&old.addr(), syncs_topic, 1);
    let raw = producer(&old.addr(), &batched);
    write_syncs(&raw, syncs_topic, "orders", &[(0, 10), (50, 60)]);

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
