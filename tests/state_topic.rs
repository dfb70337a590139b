//! `[state] store = "kafka"`: the runtime state in a topic on one of the
//! clusters, against real brokers. A restarted proxy takes its routes and
//! stitches from the topic (no state file is written), a deployment that
//! ran on a state file has it imported into the empty topic once, the
//! instances list each other with their leases, and a flip started on one
//! instance moves the writers of another.

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::clients::{
    assert_cluster_holds, client_config, cluster_records, create_topic, indices,
    kafka_python_consume, produce_range, producer,
};
use harness::{Broker, Proxy, ProxySetup};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;

const STATE: &str = "[state]\nstore = \"kafka\"\ncluster = \"new\"\n";

/// Records in the state topic on `cluster`, by its watermarks.
fn state_records(cluster: &str) -> i64 {
    let probe: BaseConsumer = client_config(cluster, &[("group.id", "state-probe")])
        .create()
        .expect("consumer");
    let (low, high) = probe
        .fetch_watermarks("__switchyard_state", 0, Duration::from_secs(10))
        .expect("the state topic exists on its cluster");
    high - low
}

/// Reads `topic` through the proxy and checks the stitched log: every
/// index once, each partition's offsets 0, 1, 2, … in order.
fn assert_stitched(proxy: &Proxy, topic: &str, count: u64) {
    let read = kafka_python_consume(&proxy.bootstrap(), topic, count as usize);
    assert_eq!(indices(&read), (0..count).collect(), "every record once");
    assert_eq!(read.len() as u64, count, "no record twice");
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for r in &read {
        offsets.entry(r.partition).or_default().push(r.offset);
    }
    for (partition, got) in offsets {
        let want: Vec<i64> = (0..got.len() as i64).collect();
        assert_eq!(got, want, "partition {partition}: one contiguous log");
    }
}

#[test]
fn a_restarted_proxy_takes_routes_and_stitches_from_the_state_topic() {
    let old = Broker::start("st-old");
    let new = Broker::start("st-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.extra = STATE.to_owned();
    let mut proxy = Proxy::start(setup);
    create_topic(&proxy.bootstrap(), "kept", 2);
    let p = producer(&proxy.bootstrap(), &[("acks", "all"), ("linger.ms", "0")]);
    produce_range(&p, "kept", 0..300, |_| {});
    proxy.flip("kept", "new");
    produce_range(&p, "kept", 300..600, |_| {});
    assert!(p.context().failed.lock().unwrap().is_empty());
    drop(p);
    assert!(!proxy.state_file().exists(), "no state file is written");
    assert!(state_records(&new.addr()) >= 1, "the flip is in the topic");

    proxy.restart();
    assert!(
        proxy.log().contains("state read from the state topic"),
        "{}",
        proxy.log()
    );
    assert_eq!(
        proxy.runtime_routes(),
        vec![("kept".to_owned(), "new".to_owned(), "new".to_owned())]
    );
    assert_cluster_holds(&old.addr(), "kept", 2, 0..300);
    assert_cluster_holds(&new.addr(), "kept", 2, 300..600);
    // The stitch came back too: one log, across both clusters.
    assert_stitched(&proxy, "kept", 600);
    assert!(!proxy.state_file().exists());
}

#[test]
fn a_state_file_is_imported_into_an_empty_state_topic_once() {
    let old = Broker::start("imp-old");
    let new = Broker::start("imp-new");
    let mut proxy = Proxy::start(ProxySetup::two(&old, &new));
    create_topic(&proxy.bootstrap(), "moved", 1);
    let p = producer(&proxy.bootstrap(), &[("acks", "all"), ("linger.ms", "0")]);
    produce_range(&p, "moved", 0..100, |_| {});
    proxy.flip("moved", "new");
    produce_range(&p, "moved", 100..200, |_| {});
    assert!(p.context().failed.lock().unwrap().is_empty());
    drop(p);
    assert!(proxy.state_file().exists(), "one instance: the state file");

    // The deployment switches to the topic: the file is imported.
    let toml = std::fs::read_to_string(&proxy.config_path).unwrap();
    std::fs::write(&proxy.config_path, format!("{toml}\n{STATE}")).unwrap();
    proxy.restart();
    assert!(
        proxy
            .log()
            .contains("imported the state file into the state topic"),
        "{}",
        proxy.log()
    );
    assert_eq!(
        proxy.runtime_routes(),
        vec![("moved".to_owned(), "new".to_owned(), "new".to_owned())]
    );
    assert!(state_records(&new.addr()) >= 3, "claim, flip, done");
    let imports = |proxy: &Proxy| {
        proxy
            .whole_log()
            .matches("imported the state file into the state topic")
            .count()
    };
    assert_eq!(imports(&proxy), 1);

    // The file is still there, but the topic holds the state now: it is
    // not imported again.
    proxy.restart();
    assert_eq!(imports(&proxy), 1, "imported once");
    assert!(
        proxy
            .whole_log()
            .contains("the state file is not read: the state topic holds the state"),
        "{}",
        proxy.log()
    );
    // Without the file, the topic still holds it all.
    std::fs::remove_file(proxy.state_file()).unwrap();
    proxy.restart();
    assert_eq!(
        proxy.runtime_routes(),
        vec![("moved".to_owned(), "new".to_owned(), "new".to_owned())]
    );
    assert_stitched(&proxy, "moved", 200);
}

fn instances(proxy: &Proxy) -> Vec<(String, bool)> {
    proxy.json("status")["instances"]
        .as_array()
        .expect("status lists the instances")
        .iter()
        .map(|i| {
            (
                i["instance"].as_str().unwrap().to_owned(),
                i["live"] == true,
            )
        })
        .collect()
}

/// Instance `id` of a fleet sharing the state topic on `new`.
fn instance(old: &Broker, new: &Broker, id: &str) -> Proxy {
    let mut setup = ProxySetup::two(old, new);
    setup.extra = format!("{STATE}lease_interval_ms = 300\nlease_expiry_ms = 2000\n");
    setup.proxy_extra = format!("instance_id = \"{id}\"");
    Proxy::start(setup)
}

/// Waits until every one of `fleet` lists all of `ids` live.
fn all_live(fleet: &[&Proxy], ids: &[&str]) {
    let want: Vec<(String, bool)> = ids.iter().map(|i| ((*i).to_owned(), true)).collect();
    for proxy in fleet {
        harness::wait_for("every instance live", Duration::from_secs(20), || {
            (instances(proxy) == want).then_some(())
        });
    }
}

#[test]
fn every_instance_lists_the_fleet_with_its_leases() {
    let old = Broker::start("fl-old");
    let new = Broker::start("fl-new");
    let a = instance(&old, &new, "sy-a");
    let b = instance(&old, &new, "sy-b");
    all_live(&[&a, &b], &["sy-a", "sy-b"]);
    // An instance that stops renewing its lease is shown expired.
    drop(b);
    harness::wait_for("sy-b's lease expired", Duration::from_secs(20), || {
        (instances(&a) == vec![("sy-a".to_owned(), true), ("sy-b".to_owned(), false)]).then_some(())
    });
}

#[test]
fn a_flip_on_one_instance_moves_the_writers_of_another() {
    let old = Broker::start("ff-old");
    let new = Broker::start("ff-new");
    let a = instance(&old, &new, "sy-a");
    let b = instance(&old, &new, "sy-b");
    all_live(&[&a, &b], &["sy-a", "sy-b"]);
    create_topic(&a.bootstrap(), "shared", 2);

    // An idempotent producer writes through B while the flip runs on A.
    const N: u64 = 3_000;
    let through_b = b.bootstrap();
    let writer = std::thread::spawn(move || {
        let p = producer(
            &through_b,
            &[
                ("acks", "all"),
                ("linger.ms", "2"),
                ("enable.idempotence", "true"),
                ("message.timeout.ms", "120000"),
            ],
        );
        produce_range(&p, "shared", 0..N, |i| {
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let reports = p.context();
        let failed = reports.failed.lock().unwrap().len();
        let delivered = reports.delivered.lock().unwrap().len();
        (delivered, failed)
    });
    std::thread::sleep(Duration::from_millis(1000));
    let out = a.flip("shared", "new");
    assert!(out.contains("instance sy-a: fenced"), "{out}");
    assert!(out.contains("instance sy-b: fenced"), "{out}");
    assert!(!out.contains("not confirmed"), "{out}");
    let (delivered, failed) = writer.join().unwrap();
    assert_eq!(
        (delivered as u64, failed),
        (N, 0),
        "every record acknowledged"
    );

    // Both instances route the topic to new; writes through either land
    // there.
    for proxy in [&a, &b] {
        assert_eq!(
            proxy.runtime_routes(),
            vec![("shared".to_owned(), "new".to_owned(), "new".to_owned())]
        );
    }
    for (proxy, range) in [(&a, N..N + 500), (&b, N + 500..N + 1_000)] {
        let p = producer(&proxy.bootstrap(), &[("acks", "all"), ("linger.ms", "0")]);
        produce_range(&p, "shared", range, |_| {});
        assert!(p.context().failed.lock().unwrap().is_empty());
    }
    let total = N + 1_000;
    let on_old = indices(&cluster_records(&old.addr(), "shared", 2));
    let on_new = indices(&cluster_records(&new.addr(), "shared", 2));
    assert!(on_old.is_disjoint(&on_new), "no record on both clusters");
    assert!(on_new.iter().all(|i| *i >= N || !on_old.contains(i)));
    assert!(
        (N..total).all(|i| on_new.contains(&i)),
        "every write after the flip is on new"
    );
    assert_eq!(
        on_old.len() + on_new.len(),
        total as usize,
        "every record once, nothing lost"
    );
    // Old holds what was written before the switch, new the rest: the
    // stitched log read through either instance is one and the same.
    let through = |proxy: &Proxy| {
        let mut read: Vec<(i32, i64, u64)> =
            kafka_python_consume(&proxy.bootstrap(), "shared", total as usize)
                .iter()
                .map(|r| (r.partition, r.offset, r.index))
                .collect();
        read.sort();
        read
    };
    let via_a = through(&a);
    assert_eq!(via_a, through(&b), "both instances present the same log");
    assert_stitched(&a, "shared", total);
}

#[test]
fn a_flip_ends_on_every_instance_when_its_initiator_dies() {
    let old = Broker::start("fk-old");
    let new = Broker::start("fk-new");
    let mut a = instance(&old, &new, "sy-a");
    let b = instance(&old, &new, "sy-b");
    all_live(&[&a, &b], &["sy-a", "sy-b"]);
    create_topic(&b.bootstrap(), "orphan", 1);
    let write = |proxy: &Proxy, range: std::ops::Range<u64>| {
        let p = producer(
            &proxy.bootstrap(),
            &[
                ("acks", "all"),
                ("linger.ms", "0"),
                ("message.timeout.ms", "60000"),
            ],
        );
        produce_range(&p, "orphan", range, |_| {});
        assert!(
            p.context().failed.lock().unwrap().is_empty(),
            "every write acknowledged"
        );
    };
    write(&b, 0..100);

    // The initiator dies mid-flip (which step it reached varies).
    let flipping = {
        let config = a.config_path.clone();
        std::thread::spawn(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
                .args(["flip", "orphan", "--to", "new", "-c"])
                .arg(config)
                .output()
        })
    };
    // Killed once B has read the proposal and fences.
    harness::wait_for("B fencing", Duration::from_secs(20), || {
        b.whole_log()
            .contains("fencing for a fleet flip")
            .then_some(())
    });
    a.kill();
    let _ = flipping.join();

    // B is not left fenced: its writers go on.
    write(&b, 100..200);
    harness::wait_for("the flip ended on B", Duration::from_secs(20), || {
        let log = b.whole_log();
        (log.contains("fleet flip aborted") || log.contains("fleet flip switched")).then_some(())
    });
    a.start_again();
    all_live(&[&a, &b], &["sy-a", "sy-b"]);
    // Done or called off, both instances agree.
    harness::wait_for("both instances agree", Duration::from_secs(20), || {
        (a.runtime_routes() == b.runtime_routes()).then_some(())
    });
    let outcome = if a.runtime_routes().is_empty() {
        "called off"
    } else {
        "done"
    };
    eprintln!("the flip whose initiator died ended {outcome}");
    write(&a, 200..300);
    write(&b, 300..400);
    let on_old = indices(&cluster_records(&old.addr(), "orphan", 1));
    let on_new = indices(&cluster_records(&new.addr(), "orphan", 1));
    assert!(on_old.is_disjoint(&on_new), "no record on both clusters");
    assert_eq!(on_old.len() + on_new.len(), 400, "every record once");
    let via_a = kafka_python_consume(&a.bootstrap(), "orphan", 400);
    let via_b = kafka_python_consume(&b.bootstrap(), "orphan", 400);
    let shape = |read: &[harness::clients::Consumed]| -> Vec<(i64, u64)> {
        read.iter().map(|r| (r.offset, r.index)).collect()
    };
    assert_eq!(shape(&via_a), shape(&via_b), "one log through both");
    assert_stitched(&b, "orphan", 400);
}
