//! Consumer groups through the proxy: the group coordinator is reached
//! through a virtual broker, partitions are split and rebalanced, and
//! committed offsets are where a fresh member resumes.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use harness::clients::{
    client_config, committed, create_topic, group_member, poll_members, produce_range, producer,
};
use harness::{Broker, Proxy, ProxySetup};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::Producer;

const TOPIC: &str = "grouped";
const GROUP: &str = "billing";

fn member(bootstrap: &str) -> BaseConsumer {
    let c: BaseConsumer = client_config(
        bootstrap,
        &[
            ("group.id", GROUP),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "500"),
        ],
    )
    .create()
    .expect("consumer");
    c.subscribe(&[TOPIC]).expect("subscribe");
    c
}

fn partitions(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|a| a.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

fn indices(got: &[(usize, i32, u64)]) -> Vec<u64> {
    let mut v: Vec<u64> = got.iter().map(|g| g.2).collect();
    v.sort();
    v
}

#[test]
fn group_splits_rebalances_and_resumes_from_commits() {
    let (_old, _new, proxy) = harness::two_clusters("cg");
    let bootstrap = proxy.bootstrap();
    create_topic(&bootstrap, TOPIC, 4);
    let p = producer(&bootstrap, &[("acks", "all")]);

    // Two members split the four partitions between them.
    let a = member(&bootstrap);
    let b = member(&bootstrap);
    let all: BTreeSet<i32> = (0..4).collect();
    let split = poll_members(&[&a, &b], "the two members to split the partitions", |_| {
        let (pa, pb) = (partitions(&a), partitions(&b));
        !pa.is_empty() && !pb.is_empty() && pa.is_disjoint(&pb) && &pa | &pb == all
    });
    assert!(split.is_empty(), "nothing was produced yet");
    let (pa, pb) = (partitions(&a), partitions(&b));

    produce_range(&p, TOPIC, 0..400, |_| {});
    assert!(p.context().failed.lock().unwrap().is_empty());
    let first = poll_members(&[&a, &b], "400 records", |g| g.len() >= 400);
    assert_eq!(
        indices(&first),
        (0..400).collect::<Vec<_>>(),
        "every record once"
    );
    let mut by_member: BTreeMap<usize, BTreeSet<i32>> = BTreeMap::new();
    for (m, partition, _) in &first {
        by_member.entry(*m).or_default().insert(*partition);
    }
    assert!(
        by_member.get(&0).is_none_or(|s| s.is_subset(&pa)),
        "a read only its partitions"
    );
    assert!(
        by_member.get(&1).is_none_or(|s| s.is_subset(&pb)),
        "b read only its partitions"
    );
    a.commit_consumer_state(CommitMode::Sync)
        .expect("a commits");
    b.commit_consumer_state(CommitMode::Sync)
        .expect("b commits");

    // b leaves: a takes over all four partitions, from b's commits.
    drop(b);
    let rebalanced = poll_members(&[&a], "a to own every partition", |_| partitions(&a) == all);
    assert!(rebalanced.is_empty(), "nothing new was produced");
    produce_range(&p, TOPIC, 400..440, |_| {});
    let second = poll_members(&[&a], "40 new records", |g| g.len() >= 40);
    assert_eq!(
        indices(&second),
        (400..440).collect::<Vec<_>>(),
        "a resumes b's partitions at b's commits: only the new records"
    );
    a.commit_consumer_state(CommitMode::Sync)
        .expect("a commits");
    drop(a);

    // A fresh member of the group resumes exactly where the group left off.
    produce_range(&p, TOPIC, 440..460, |_| {});
    let c = member(&bootstrap);
    let third = poll_members(&[&c], "20 records after the commits", |g| g.len() >= 20);
    assert_eq!(indices(&third), (440..460).collect::<Vec<_>>());
    assert!(p.context().failed.lock().unwrap().is_empty());
}

#[test]
fn group_rule_puts_coordination_and_commits_on_the_named_cluster() {
    use harness::raw::RawClient;
    use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
    use kafka_protocol::protocol::StrBytes;
    use rdkafka::{Offset, TopicPartitionList};

    let old = Broker::start("gr-old");
    let new = Broker::start("gr-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.extra = "[[routes.group]]\npattern = \"billing-*\"\ncluster = \"new\"\n".into();
    let proxy = Proxy::start(setup);
    create_topic(&proxy.bootstrap(), "ledger", 1);
    create_topic(&new.addr(), "ledger", 1);
    let p = producer(&proxy.bootstrap(), &[("acks", "all")]);
    produce_range(&p, "ledger", 0..50, |_| {});

    // Batched FindCoordinator: each key answered by its own cluster.
    let f: FindCoordinatorResponse = RawClient::connect(&proxy.bootstrap()).unwrap().call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default().with_coordinator_keys(vec![
            StrBytes::from_static_str("audit"),
            StrBytes::from_static_str("billing-eu"),
        ]),
    );
    let found: Vec<(&str, i32)> = f
        .coordinators
        .iter()
        .map(|c| (c.key.as_str(), c.node_id.0))
        .collect();
    assert_eq!(found, [("audit", 111), ("billing-eu", 1111)]);

    let c: BaseConsumer = client_config(
        &proxy.bootstrap(),
        &[
            ("group.id", "billing-eu"),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
        ],
    )
    .create()
    .unwrap();
    c.subscribe(&["ledger"]).unwrap();
    let got = poll_members(&[&c], "50 records", |g| g.len() >= 50);
    assert_eq!(indices(&got), (0..50).collect::<Vec<_>>());
    c.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(c);

    let committed_on = |cluster: &Broker| {
        let direct: BaseConsumer = client_config(&cluster.addr(), &[("group.id", "billing-eu")])
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("ledger", 0);
        let offsets = direct
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap();
        offsets.find_partition("ledger", 0).unwrap().offset()
    };
    assert_eq!(
        committed_on(&new),
        Offset::Offset(50),
        "the group's commits live on 'new'"
    );
    assert_eq!(committed_on(&old), Offset::Invalid, "and nowhere else");
    let routes = proxy.cli(&["routes", "--json"]);
    let routes: serde_json::Value = serde_json::from_slice(&routes.stdout).unwrap();
    assert_eq!(
        routes["result"]["groups"],
        serde_json::json!([{"pattern": "billing-*", "cluster": "new", "source": "config"}]),
        "the route table shows the group rule"
    );
}

/// Committed offsets of `group` for `topic`'s partitions, read from one
/// cluster directly.
#[test]
fn a_group_moves_to_another_cluster_with_its_offsets_while_its_member_runs() {
    const PAYROLL: &str = "payroll";
    let (old, new, mut proxy) = harness::two_clusters("gm");
    create_topic(&proxy.bootstrap(), "ledger", 2);
    let p = producer(&proxy.bootstrap(), &[("acks", "all")]);
    produce_range(&p, "ledger", 0..300, |_| {});

    // A member reads everything and commits, on 'old' (the default).
    let live: BaseConsumer = client_config(
        &proxy.bootstrap(),
        &[
            ("group.id", PAYROLL),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "500"),
        ],
    )
    .create()
    .unwrap();
    live.subscribe(&["ledger"]).unwrap();
    let got = poll_members(&[&live], "300 records", |g| g.len() >= 300);
    assert_eq!(indices(&got), (0..300).collect::<Vec<_>>());
    live.commit_consumer_state(CommitMode::Sync).unwrap();
    let on_old = committed(&old.addr(), PAYROLL, "ledger", 2);
    assert_eq!(on_old.iter().sum::<i64>(), 300);

    // The group cannot move where its topic is missing...
    let refused = proxy.admin(r#"{"cmd":"flip-group","group":"payroll","to":"new"}"#);
    assert_eq!(
        refused["error"],
        "group 'payroll' has committed offsets for topic 'ledger', which cluster 'new' lacks \
         (or has fewer partitions of); flip or create the topic there first; routes unchanged"
    );
    let refused =
        proxy.admin(r#"{"cmd":"flip-group","group":"payroll","to":"new","dry_run":true}"#);
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("which cluster 'new' lacks")),
        "the dry run refuses as the move would: {refused}"
    );
    create_topic(&new.addr(), "ledger", 2);

    // A dry run says which offsets the move would copy, and moves nothing.
    let out = proxy.cli(&[
        "flip",
        "--group",
        PAYROLL,
        "--to",
        "new",
        "--dry-run",
        "--json",
    ]);
    let preview: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let previewed: Vec<(i64, i64)> = preview["result"]["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"].as_i64().unwrap(),
                o["offset"].as_i64().unwrap(),
            )
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        previewed,
        on_old
            .iter()
            .enumerate()
            .map(|(p, o)| (p as i64, *o))
            .collect::<Vec<_>>(),
        "{preview}"
    );
    assert_eq!(preview["result"]["from"], "old");
    assert!(
        committed(&new.addr(), PAYROLL, "ledger", 2)
            .iter()
            .all(|o| *o < 0),
        "nothing copied"
    );
    let text = proxy.cli(&["flip", "--group", PAYROLL, "--to", "new", "--dry-run"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("would copy 2 committed offsets from 'old' to 'new'")
            && text.contains("nothing was changed"),
        "{text}"
    );

    // ...and moves, once it is there, while its member stays subscribed.
    let out = proxy.cli(&["flip", "--group", PAYROLL, "--to", "new", "--json"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["result"]["offsets"], 2, "{report}");
    let steps: Vec<&str> = report["result"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["prepare", "hold", "copy", "record", "switch"]);
    assert_eq!(
        committed(&new.addr(), PAYROLL, "ledger", 2),
        on_old,
        "offsets copied"
    );

    // The member rejoins at the copied offsets, without an error reaching
    // it (poll_until fails on any), and reads only what is new. (It learns
    // of the move at its next heartbeat; records it read before rejoining
    // and never committed it would read again, as after any rebalance.)
    for _ in 0..2 {
        let during = poll_members(&[&live], "the member to rejoin", |_| true);
        assert!(during.is_empty(), "nothing new yet: {during:?}");
    }
    produce_range(&p, "ledger", 300..500, |_| {});
    assert!(p.context().failed.lock().unwrap().is_empty());
    let got = poll_members(&[&live], "200 new records", |g| g.len() >= 200);
    assert_eq!(
        indices(&got),
        (300..500).collect::<Vec<_>>(),
        "nothing twice"
    );
    live.commit_consumer_state(CommitMode::Sync).unwrap();
    assert_eq!(
        committed(&new.addr(), PAYROLL, "ledger", 2)
            .iter()
            .sum::<i64>(),
        500
    );
    assert_eq!(
        committed(&old.addr(), PAYROLL, "ledger", 2),
        on_old,
        "'old' no longer told"
    );
    drop(live);

    // The move outlives a restart, and moving again is a no-op.
    proxy.restart();
    let routes = proxy.cli(&["routes", "--json"]);
    let routes: serde_json::Value = serde_json::from_slice(&routes.stdout).unwrap();
    assert_eq!(
        routes["result"]["groups"],
        serde_json::json!([{"pattern": PAYROLL, "cluster": "new", "source": "runtime"}])
    );
    let again = proxy.admin(r#"{"cmd":"flip-group","group":"payroll","to":"new"}"#);
    assert_eq!(again["result"]["changed"], false, "{again}");
    let bad = proxy.admin(r#"{"cmd":"flip-group","group":"payroll","to":"mars"}"#);
    assert_eq!(bad["error"], "unknown cluster 'mars' (known: new, old)");
}

#[test]
fn groups_matching_a_pattern_move_in_one_hold_or_not_at_all() {
    let (old, new, proxy) = harness::two_clusters("gp");
    create_topic(&proxy.bootstrap(), "journal", 1);
    let p = producer(&proxy.bootstrap(), &[("acks", "all")]);
    produce_range(&p, "journal", 0..40, |_| {});

    // Three billing groups and one other, each reading a different number
    // of records and committing there, all on 'old'.
    let groups = ["billing.a", "billing.b", "billing.c", "shipping"];
    let mut members = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let member = group_member(&proxy.bootstrap(), group, "journal", "earliest");
        poll_members(&[&member], "every record", |g| g.len() >= 40);
        let mut at = rdkafka::TopicPartitionList::new();
        at.add_partition_offset("journal", 0, rdkafka::Offset::Offset(10 + i as i64))
            .unwrap();
        member.commit(&at, CommitMode::Sync).unwrap();
        assert_eq!(committed(&old.addr(), group, "journal", 1), [10 + i as i64]);
        members.push(member);
    }
    let moves = |proxy: &Proxy| {
        proxy.json("status")["group_moves"]
            .as_array()
            .unwrap()
            .len()
    };

    // 'new' lacks the topic: the first group's refusal stops all three.
    let out = proxy.cli(&["flip", "--groups", "billing.*", "--to", "new"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(
            "move of 3 groups aborted, none of them moved: group 'billing.a' has committed \
             offsets for topic 'journal', which cluster 'new' lacks"
        ),
        "{said}"
    );
    assert_eq!(moves(&proxy), 0, "no group moved");
    assert_eq!(committed(&new.addr(), "billing.b", "journal", 1), [-1]);

    proxy.flip("journal", "new");
    let out = proxy.cli(&["flip", "--groups", "billing.*", "--to", "new", "--dry-run"]);
    let previewed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        previewed.starts_with("a move now would move 3 of 3 groups, in one hold and one record"),
        "{previewed}"
    );
    assert_eq!(moves(&proxy), 0, "a dry run moves nothing");

    let printed = proxy.cli_ok(&["flip", "--groups", "billing.*", "--to", "new"]);
    assert!(
        printed.starts_with("moved 3 of 3 groups in one hold in "),
        "{printed}"
    );
    for (i, group) in ["billing.a", "billing.b", "billing.c"].iter().enumerate() {
        assert!(
            printed.contains(&format!("'{group}': old -> new, 1 committed offsets")),
            "{printed}"
        );
        assert_eq!(
            committed(&new.addr(), group, "journal", 1),
            [10 + i as i64],
            "{group}'s offset went with it"
        );
    }
    let status = proxy.json("status");
    let moved = status["group_moves"].as_array().unwrap();
    let moved: Vec<&str> = moved.iter().map(|m| m["group"].as_str().unwrap()).collect();
    assert_eq!(moved, ["billing.a", "billing.b", "billing.c"]);
    // The other group stays on 'old', its offset untouched.
    assert_eq!(committed(&old.addr(), "shipping", "journal", 1), [13]);
    assert_eq!(committed(&new.addr(), "shipping", "journal", 1), [-1]);

    let out = proxy.cli(&["flip", "--groups", "nobody.*", "--to", "new"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no group on cluster(s) 'old' matches 'nobody.*'"),
        "{said}"
    );
    drop(members);
}
