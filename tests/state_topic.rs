//! `[state] store = "kafka"`: the runtime state in a topic on one of the
//! clusters, against real brokers. A restarted proxy takes its routes and
//! stitches from the topic (no state file is written), and a deployment
//! that ran on a state file has it imported into the empty topic once.

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::clients::{
    assert_cluster_holds, client_config, create_topic, indices, kafka_python_consume,
    produce_range, producer,
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

#[test]
fn every_instance_lists_the_fleet_with_its_leases() {
    let old = Broker::start("fl-old");
    let new = Broker::start("fl-new");
    let fleet = format!("{STATE}lease_interval_ms = 300\nlease_expiry_ms = 2000\n");
    let instance = |id: &str| {
        let mut setup = ProxySetup::two(&old, &new);
        setup.extra = fleet.clone();
        setup.proxy_extra = format!("instance_id = \"{id}\"");
        Proxy::start(setup)
    };
    let a = instance("sy-a");
    let b = instance("sy-b");
    let both = vec![("sy-a".to_owned(), true), ("sy-b".to_owned(), true)];
    for proxy in [&a, &b] {
        harness::wait_for("both instances live", Duration::from_secs(20), || {
            (instances(proxy) == both).then_some(())
        });
    }
    // An instance that stops renewing its lease is shown expired.
    drop(b);
    harness::wait_for("sy-b's lease expired", Duration::from_secs(20), || {
        (instances(&a) == vec![("sy-a".to_owned(), true), ("sy-b".to_owned(), false)]).then_some(())
    });
}
