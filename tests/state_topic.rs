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
    assert_cluster_holds, client_config, cluster_records, committed, create_topic, group_member,
    indices, kafka_python_consume, poll_members, produce_range, producer,
};
use harness::{Broker, Proxy, ProxySetup};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
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

/// The setup of instance `id` of a fleet sharing the state topic on `new`.
fn fleet_member<'a>(old: &'a Broker, new: &'a Broker, id: &str) -> ProxySetup<'a> {
    let mut setup = ProxySetup::two(old, new);
    setup.extra = format!("{STATE}lease_interval_ms = 300\nlease_expiry_ms = 2000\n");
    setup.proxy_extra = format!("instance_id = \"{id}\"");
    setup
}

/// Instance `id` of a fleet sharing the state topic on `new`.
fn instance(old: &Broker, new: &Broker, id: &str) -> Proxy {
    Proxy::start(fleet_member(old, new, id))
}

/// Writes `range` to `topic` through `proxy`, asserting every record is
/// acknowledged.
fn write(proxy: &Proxy, topic: &str, range: std::ops::Range<u64>) {
    let p = producer(
        &proxy.bootstrap(),
        &[
            ("acks", "all"),
            ("linger.ms", "0"),
            ("message.timeout.ms", "60000"),
        ],
    );
    produce_range(&p, topic, range, |_| {});
    assert!(
        p.context().failed.lock().unwrap().is_empty(),
        "every write acknowledged"
    );
}

/// Starts an idempotent producer writing `range` to `topic` through
/// `bootstrap`, paced so that a flip falls amid it; joins to (acknowledged,
/// failed).
fn paced_writer(
    bootstrap: String,
    topic: &str,
    range: std::ops::Range<u64>,
) -> std::thread::JoinHandle<(u64, usize)> {
    let topic = topic.to_owned();
    std::thread::spawn(move || {
        let p = producer(
            &bootstrap,
            &[
                ("acks", "all"),
                ("linger.ms", "2"),
                ("enable.idempotence", "true"),
                ("message.timeout.ms", "120000"),
            ],
        );
        produce_range(&p, &topic, range, |i| {
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let reports = p.context();
        let failed = reports.failed.lock().unwrap().len();
        let delivered = reports.delivered.lock().unwrap().len();
        (delivered as u64, failed)
    })
}

/// The invariant of a fleet: every one of `total` records is on exactly
/// one cluster, and the stitched log read through each of `fleet` is one
/// and the same contiguous log.
fn assert_one_log(
    old: &Broker,
    new: &Broker,
    fleet: &[&Proxy],
    topic: &str,
    partitions: i32,
    total: u64,
) {
    let on_old = indices(&cluster_records(&old.addr(), topic, partitions));
    let on_new = indices(&cluster_records(&new.addr(), topic, partitions));
    assert!(on_old.is_disjoint(&on_new), "no record on both clusters");
    assert_eq!(
        on_old.len() + on_new.len(),
        total as usize,
        "every record once, nothing lost"
    );
    let through = |proxy: &Proxy| {
        let mut read: Vec<(i32, i64, u64)> =
            kafka_python_consume(&proxy.bootstrap(), topic, total as usize)
                .iter()
                .map(|r| (r.partition, r.offset, r.index))
                .collect();
        read.sort();
        read
    };
    let first = through(fleet[0]);
    for other in &fleet[1..] {
        assert_eq!(
            first,
            through(other),
            "every instance presents the same log"
        );
    }
    assert_stitched(fleet[0], topic, total);
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
    // A flip of many topics is not carried across a fleet: refused,
    // nothing changed on either instance.
    let refused = a.admin(r#"{"cmd":"flip-topics","topics":["t1","t2"],"to":"new"}"#);
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("runs on one instance only")),
        "{refused}"
    );
    assert!(a.runtime_routes().is_empty() && b.runtime_routes().is_empty());
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
    let writer = paced_writer(b.bootstrap(), "shared", 0..N);
    std::thread::sleep(Duration::from_millis(1000));
    let out = a.flip("shared", "new");
    assert!(out.contains("instance sy-a: fenced"), "{out}");
    assert!(out.contains("instance sy-b: fenced"), "{out}");
    assert!(!out.contains("not confirmed"), "{out}");
    assert!(out.contains("fleet run sy-a-"), "the flip's id: {out}");
    let (delivered, failed) = writer.join().unwrap();
    assert_eq!((delivered, failed), (N, 0), "every record acknowledged");
    // Asked again, on the other instance: nothing to do.
    let again = b.flip("shared", "new");
    assert!(again.contains("already routes there"), "{again}");

    // Both instances route the topic to new; writes through either land
    // there.
    for proxy in [&a, &b] {
        assert_eq!(
            proxy.runtime_routes(),
            vec![("shared".to_owned(), "new".to_owned(), "new".to_owned())]
        );
    }
    write(&a, "shared", N..N + 500);
    write(&b, "shared", N + 500..N + 1_000);
    let total = N + 1_000;
    let on_new = indices(&cluster_records(&new.addr(), "shared", 2));
    assert!(
        (N..total).all(|i| on_new.contains(&i)),
        "every write after the flip is on new"
    );
    assert_one_log(&old, &new, &[&a, &b], "shared", 2, total);
}

/// Which instance a test kills in the middle of a flip.
#[derive(Clone, Copy, PartialEq)]
enum Victim {
    Initiator,
    Other,
}

/// A flip on A held at `step` (`SWITCHYARD_FLEET_HOLD`), and `victim`
/// killed there with SIGKILL while an idempotent producer writes through
/// the survivor: the producer loses nothing, the flip ends `done` or not
/// on the survivor, and the victim, restarted, serves the same routes from
/// its first answer and the same log.
fn killed_mid_flip(tag: &str, step: &str, victim: Victim, done: bool) {
    let old = Broker::start(&format!("{tag}-old"));
    let new = Broker::start(&format!("{tag}-new"));
    let mut setup = fleet_member(&old, &new, "sy-a");
    setup.env = vec![("SWITCHYARD_FLEET_HOLD", step.to_owned())];
    let mut a = Proxy::start(setup);
    let mut b = instance(&old, &new, "sy-b");
    all_live(&[&a, &b], &["sy-a", "sy-b"]);
    create_topic(&b.bootstrap(), "t", 2);
    write(&b, "t", 0..200);

    const N: u64 = 2_000;
    let a_config = a.config_path.clone();
    let (killed, survivor) = match victim {
        Victim::Initiator => (&mut a, &b),
        Victim::Other => (&mut b, &a),
    };
    let writer = paced_writer(survivor.bootstrap(), "t", 200..200 + N);
    std::thread::sleep(Duration::from_millis(500));
    let flipping = {
        let config = a_config;
        std::thread::spawn(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
                .args(["flip", "t", "--to", "new", "-c"])
                .arg(config)
                .output()
                .expect("run switchyard flip")
        })
    };
    let initiator_log = || match victim {
        Victim::Initiator => killed.whole_log(),
        Victim::Other => survivor.whole_log(),
    };
    harness::wait_for("the flip held", Duration::from_secs(30), || {
        initiator_log().contains("fleet flip held").then_some(())
    });
    killed.kill();
    let out = flipping.join().unwrap();
    let (delivered, failed) = writer.join().unwrap();
    assert_eq!(
        (delivered, failed),
        (N, 0),
        "the survivor's producer loses nothing"
    );

    let ended = if done {
        "fleet flip switched"
    } else {
        "fleet flip aborted"
    };
    harness::wait_for(
        "the flip ended on the survivor",
        Duration::from_secs(30),
        || survivor.whole_log().contains(ended).then_some(()),
    );
    let want = if done {
        vec![("t".to_owned(), "new".to_owned(), "new".to_owned())]
    } else {
        Vec::new()
    };
    assert_eq!(survivor.runtime_routes(), want, "the survivor's routes");
    if victim == Victim::Other {
        // The initiator lived on: the command says how the flip ended.
        assert_eq!(
            out.status.success(),
            done,
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Restarted, the victim has read the topic before its first answer.
    killed.start_again();
    assert_eq!(
        killed.runtime_routes(),
        want,
        "the restarted instance's routes"
    );
    all_live(&[&a, &b], &["sy-a", "sy-b"]);
    write(&a, "t", 200 + N..400 + N);
    write(&b, "t", 400 + N..600 + N);
    assert_one_log(&old, &new, &[&a, &b], "t", 2, 600 + N);
}

#[test]
fn the_initiator_killed_while_fences_are_confirmed_leaves_the_flip_aborted() {
    killed_mid_flip("kf", "fence", Victim::Initiator, false);
}

#[test]
fn the_initiator_killed_after_its_check_leaves_the_flip_aborted() {
    killed_mid_flip("kc", "check", Victim::Initiator, false);
}

#[test]
fn the_initiator_killed_once_the_flip_is_recorded_leaves_it_done() {
    killed_mid_flip("kr", "record", Victim::Initiator, true);
}

#[test]
fn the_initiator_killed_while_instances_switch_leaves_the_flip_done() {
    killed_mid_flip("ks", "switch", Victim::Initiator, true);
}

#[test]
fn an_instance_killed_mid_flip_does_not_stop_it() {
    killed_mid_flip("ko", "check", Victim::Other, true);
}

#[test]
fn an_instance_cut_off_from_the_state_cluster_writes_nowhere_until_it_has_caught_up() {
    // B runs in a namespace of its own, so that its path to the state
    // cluster alone can be cut.
    let ns = harness::netns::Netns::new("cut");
    let old = Broker::start_on("cut-old", &ns.host_a());
    let new = Broker::start_on("cut-new", &ns.host_b());
    let a = instance(&old, &new, "sy-a");
    let mut setup = fleet_member(&old, &new, "sy-b");
    setup.host = ns.inner();
    setup.netns = Some(ns.name.clone());
    let b = Proxy::start(setup);
    all_live(&[&a, &b], &["sy-a", "sy-b"]);
    create_topic(&a.bootstrap(), "t", 2);
    write(&b, "t", 0..100);

    // B loses the state cluster; A sees its lease expire.
    ns.cut(&new.host);
    harness::wait_for("sy-b's lease expired", Duration::from_secs(20), || {
        (instances(&a) == vec![("sy-a".to_owned(), true), ("sy-b".to_owned(), false)]).then_some(())
    });
    // A producer writes through B all along; the flip runs without B.
    const N: u64 = 1_000;
    let writer = paced_writer(b.bootstrap(), "t", 100..100 + N);
    std::thread::sleep(Duration::from_millis(500));
    let out = a.flip("t", "new");
    assert!(!out.contains("sy-b"), "B takes no part: {out}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        indices(&cluster_records(&old.addr(), "t", 2)),
        (0..100).collect(),
        "nothing written through B on old since it was cut off"
    );
    assert!(
        b.log().contains("Produce is refused"),
        "B says why it refuses: {}",
        b.log()
    );

    // Reconnected, B catches up and its producer's retries land on new.
    ns.mend(&new.host);
    let (delivered, failed) = writer.join().unwrap();
    assert_eq!((delivered, failed), (N, 0), "B's producer loses nothing");
    assert!(b.log().contains("Produce is accepted again"), "{}", b.log());
    assert_eq!(
        b.runtime_routes(),
        vec![("t".to_owned(), "new".to_owned(), "new".to_owned())]
    );
    assert_eq!(
        indices(&cluster_records(&old.addr(), "t", 2)),
        (0..100).collect(),
        "nothing on the wrong side"
    );
    write(&a, "t", 100 + N..200 + N);
    assert_one_log(&old, &new, &[&a, &b], "t", 2, 200 + N);
}

/// The groups `proxy` routes at runtime, as (group, cluster).
fn runtime_groups(proxy: &Proxy) -> Vec<(String, String)> {
    proxy.json("routes")["groups"]
        .as_array()
        .expect("routes lists its groups")
        .iter()
        .filter(|g| g["source"] == "runtime")
        .map(|g| {
            let s = |k: &str| g[k].as_str().unwrap().to_owned();
            (s("pattern"), s("cluster"))
        })
        .collect()
}

#[test]
fn a_group_moves_across_the_fleet_and_everything_survives_a_full_restart() {
    let old = Broker::start("gr-old");
    let new = Broker::start("gr-new");
    let mut a = instance(&old, &new, "sy-a");
    let mut b = instance(&old, &new, "sy-b");
    all_live(&[&a, &b], &["sy-a", "sy-b"]);
    create_topic(&a.bootstrap(), "ledger", 2);
    create_topic(&new.addr(), "ledger", 2);
    create_topic(&a.bootstrap(), "kept", 1);
    write(&b, "kept", 0..100);
    b.flip("kept", "new");
    write(&a, "kept", 100..200);

    // One member of the group on each instance; both read and commit.
    let on_a = group_member(&a.bootstrap(), "payroll", "ledger", "earliest");
    let on_b = group_member(&b.bootstrap(), "payroll", "ledger", "earliest");
    let members = [&on_a, &on_b];
    let split = |g: &[(usize, i32, u64)]| {
        let mut read: Vec<u64> = g.iter().map(|r| r.2).collect();
        read.sort();
        read
    };
    let assigned = |m: &BaseConsumer| m.assignment().is_ok_and(|a| a.count() > 0);
    let joined = poll_members(&members, "both members assigned", |_| {
        members.iter().all(|m| assigned(m))
    });
    assert!(joined.is_empty());
    write(&a, "ledger", 0..300);
    let got = poll_members(&members, "300 records", |g| g.len() >= 300);
    assert_eq!(split(&got), (0..300).collect::<Vec<_>>());
    for m in members {
        m.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    let on_old = committed(&old.addr(), "payroll", "ledger", 2);
    assert_eq!(on_old.iter().sum::<i64>(), 300);

    // Moved from B: both instances hold the group, then send it to new.
    let out = b.cli(&["flip", "--group", "payroll", "--to", "new"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("instance sy-a: fenced"), "{printed}");
    assert!(printed.contains("instance sy-b: fenced"), "{printed}");
    assert!(!printed.contains("not confirmed"), "{printed}");
    let moved = vec![("payroll".to_owned(), "new".to_owned())];
    for proxy in [&a, &b] {
        assert_eq!(runtime_groups(proxy), moved);
    }
    assert_eq!(
        committed(&new.addr(), "payroll", "ledger", 2),
        on_old,
        "offsets copied"
    );

    // Both members rejoin on new and read only what is new.
    write(&b, "ledger", 300..500);
    let got = poll_members(&members, "200 new records", |g| g.len() >= 200);
    assert_eq!(split(&got), (300..500).collect::<Vec<_>>(), "nothing twice");
    for m in members {
        m.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    assert_eq!(
        committed(&new.addr(), "payroll", "ledger", 2)
            .iter()
            .sum::<i64>(),
        500
    );
    assert_eq!(
        committed(&old.addr(), "payroll", "ledger", 2),
        on_old,
        "old no longer told"
    );
    drop((on_a, on_b));

    // Every instance down at once, then up again: routes, stitches and
    // the group move come back from the topic alone.
    a.kill();
    b.kill();
    a.start_again();
    b.start_again();
    for proxy in [&a, &b] {
        assert_eq!(
            proxy.runtime_routes(),
            vec![("kept".to_owned(), "new".to_owned(), "new".to_owned())]
        );
        assert_eq!(runtime_groups(proxy), moved);
    }
    assert!(!a.state_file().exists() && !b.state_file().exists());
    assert_one_log(&old, &new, &[&a, &b], "kept", 1, 200);
    // The group's offsets are read where it moved, through either.
    for proxy in [&a, &b] {
        let through = committed(&proxy.bootstrap(), "payroll", "ledger", 2);
        assert_eq!(through.iter().sum::<i64>(), 500, "the moved commits");
    }
}

#[test]
fn produce_only_and_fetch_only_flips_run_across_the_fleet() {
    let old = Broker::start("pf-old");
    let new = Broker::start("pf-new");
    let a = instance(&old, &new, "sy-a");
    let b = instance(&old, &new, "sy-b");
    all_live(&[&a, &b], &["sy-a", "sy-b"]);

    // Writers move, started on A while a producer writes through B.
    create_topic(&a.bootstrap(), "orders", 2);
    const N: u64 = 2_000;
    let writer = paced_writer(b.bootstrap(), "orders", 0..N);
    std::thread::sleep(Duration::from_millis(500));
    let out = a.cli(&["flip", "orders", "--to", "new", "--produce-only"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("instance sy-b: fenced"), "{printed}");
    assert_eq!(writer.join().unwrap(), (N, 0), "every record acknowledged");
    let produce_only = vec![("orders".to_owned(), "new".to_owned(), "old".to_owned())];
    for proxy in [&a, &b] {
        assert_eq!(proxy.runtime_routes(), produce_only);
    }
    write(&a, "orders", N..N + 100);
    assert_one_log(&old, &new, &[&a, &b], "orders", 2, N + 100);

    // Readers move, started on B: a topic both clusters hold (as a mirror
    // would), each with records of its own, so a read tells them apart.
    create_topic(&old.addr(), "reads", 1);
    create_topic(&new.addr(), "reads", 1);
    let direct = |cluster: &Broker, range: std::ops::Range<u64>| {
        let p = producer(&cluster.addr(), &[("acks", "all"), ("linger.ms", "0")]);
        produce_range(&p, "reads", range, |_| {});
        assert!(p.context().failed.lock().unwrap().is_empty());
    };
    direct(&old, 0..50);
    direct(&new, 1_000..1_050);
    let out = b.cli(&["flip", "reads", "--to", "new", "--fetch-only"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let fetch_only = ("reads".to_owned(), "old".to_owned(), "new".to_owned());
    for proxy in [&a, &b] {
        assert!(proxy.runtime_routes().contains(&fetch_only));
        let read = kafka_python_consume(&proxy.bootstrap(), "reads", 50);
        assert_eq!(indices(&read), (1_000..1_050).collect(), "read from new");
    }
}

#[test]
fn a_producer_moved_between_instances_by_a_load_balancer_keeps_its_id_and_sequences() {
    let old = Broker::start("lb-old");
    let new = Broker::start("lb-new");
    // Two instances on two addresses, on the same ports, behind one
    // balancer that clients know them by.
    let ports = (
        harness::free_port(),
        harness::free_broker_port_base(&[0, 1000]),
    );
    let member = |id: &str, host: &str| {
        let mut setup = fleet_member(&old, &new, id);
        setup.host = host.to_owned();
        setup.advertised_host = Some("127.0.0.1".to_owned());
        setup.ports = Some(ports);
        Proxy::start(setup)
    };
    let a = member("sy-a", "127.0.0.2");
    let b = member("sy-b", "127.0.0.3");
    all_live(&[&a, &b], &["sy-a", "sy-b"]);
    let virtual_ports = [ports.1 + 111, ports.1 + 1111];
    let lb = harness::balancer::Balancer::start(
        "127.0.0.1",
        &[ports.0, virtual_ports[0], virtual_ports[1]],
        &["127.0.0.2", "127.0.0.3"],
    );
    create_topic(&a.bootstrap(), "t", 3);
    a.flip("t", "new"); // its batches now need producer ids of new

    // An idempotent producer writes through the balancer, which moves it
    // from one instance to the other six times, cutting its connections
    // with batches in flight.
    const N: u64 = 6_000;
    let served = |p: &Proxy| p.metric("switchyard_client_connections_accepted_total");
    let (served_a, served_b) = (served(&a), served(&b));
    let through_lb = format!("127.0.0.1:{}", ports.0);
    let writer = paced_writer(through_lb, "t", 0..N);
    for i in 1..=6 {
        std::thread::sleep(Duration::from_millis(400));
        lb.send_to(i % 2);
        lb.cut();
    }
    assert_eq!(writer.join().unwrap(), (N, 0), "every record acknowledged");
    for (proxy, before) in [(&a, served_a), (&b, served_b)] {
        assert!(
            served(proxy) >= before + 3.0,
            "the producer came through both instances"
        );
    }

    // On new: every record once, and each partition written under one
    // producer id with unbroken sequences, whichever instance forwarded
    // each batch.
    let on_new = cluster_records(&new.addr(), "t", 3);
    assert_eq!(indices(&on_new), (0..N).collect(), "every record");
    assert_eq!(on_new.len() as u64, N, "no record twice");
    for partition in 0..3 {
        let stored = harness::raw::stored_records(&new.addr(), "t", partition);
        let ids: std::collections::BTreeSet<i64> = stored.iter().map(|r| r.1).collect();
        assert_eq!(
            ids.len(),
            1,
            "partition {partition}: one producer id, not {ids:?}"
        );
        let sequences: Vec<i32> = stored.iter().map(|r| r.2).collect();
        let want: Vec<i32> = (0..stored.len() as i32).collect();
        assert_eq!(sequences, want, "partition {partition}: sequences unbroken");
    }
    drop(lb);
}

/// A client that sends batches a flip's fence refused again in another
/// order than it first sent them (kafka-python may: it puts each retry
/// back at the front of its queue) gets the later one refused until the
/// earlier one is in: on the new cluster its sequences start at the
/// earlier one, and the stitched log holds its records in order.
#[test]
fn batches_a_fence_refused_land_in_order_however_they_come_back() {
    use harness::raw::{batch_of, init_producer_id, produce};
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    let old = Broker::start("oo-old");
    let new = Broker::start("oo-new");
    // One instance of a fleet: its flip holds the fence for seconds
    // (SWITCHYARD_FLEET_HOLD), longer than Produce is held before it is
    // refused.
    let mut setup = fleet_member(&old, &new, "sy-a");
    setup.env = vec![("SWITCHYARD_FLEET_HOLD", "check".to_owned())];
    let a = Proxy::start(setup);
    all_live(&[&a], &["sy-a"]);
    create_topic(&a.bootstrap(), "ordered", 1);
    let pid = init_producer_id(&a.bootstrap());
    let (id, epoch) = (pid.producer_id.0, pid.producer_epoch);
    let leader = |node: i32| format!("127.0.0.1:{}", a.virtual_port(node));
    let (first, second) = (
        batch_of(id, epoch, 5, 5..10),
        batch_of(id, epoch, 10, 10..15),
    );
    assert_eq!(
        produce(&leader(111), "ordered", batch_of(id, epoch, 0, 0..5)),
        0
    );

    let config = a.config_path.clone();
    let flipping = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["flip", "ordered", "--to", "new", "-c"])
            .arg(config)
            .output()
            .expect("run switchyard flip")
    });
    harness::wait_for("the flip held", Duration::from_secs(30), || {
        a.whole_log().contains("fleet flip held").then_some(())
    });
    for batch in [&first, &second] {
        let code = produce(&leader(111), "ordered", batch.clone());
        assert_eq!(code, NOT_LEADER_OR_FOLLOWER, "fenced, held, then refused");
    }
    let out = flipping.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let on_new = |batch: &bytes::Bytes| produce(&leader(1111), "ordered", batch.clone());
    assert_eq!(
        on_new(&second),
        NOT_LEADER_OR_FOLLOWER,
        "the later batch first: refused, the earlier one is not in"
    );
    assert_eq!(on_new(&first), 0, "the earlier one");
    assert_eq!(on_new(&second), 0, "then the later one");
    let mut read: Vec<(i64, u64)> = kafka_python_consume(&a.bootstrap(), "ordered", 15)
        .iter()
        .map(|r| (r.offset, r.index))
        .collect();
    read.sort();
    let want: Vec<(i64, u64)> = (0..15).map(|i| (i as i64, i)).collect();
    assert_eq!(read, want, "the producer's records in its order, each once");
}
