//! What an operator sees of a migration: the metric families with values
//! that moved, parsed by Prometheus' own client library; `/health`,
//! `/ready` and `/status.json`; one log line per flip step.

mod harness;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::clients::{
    create_topic, group_behind, produce_range, producer, queue_record, wait_for_reports,
};
use harness::{wait_for, Broker, Proxy, ProxySetup, Scratch};
use rdkafka::producer::Producer;
use serde_json::Value;

const TOPIC: &str = "orders";

/// Every family of `/metrics`, as prometheus_client parsed it: name →
/// {type, help, total, samples}.
fn parsed_metrics(proxy: &Proxy) -> serde_json::Map<String, Value> {
    let (code, text) = proxy.http_get("/metrics");
    assert_eq!(code, 200);
    let scratch = Scratch::new("metrics");
    let path = scratch.path("metrics.txt");
    std::fs::write(&path, &text).unwrap();
    let out = harness::clients::python("prom_parse.py", &[path.to_str().unwrap()]);
    let Value::Object(families) = serde_json::from_str(&out).expect("parser output") else {
        panic!("parser printed {out}");
    };
    // No two families share a name once OpenMetrics suffixes are read off
    // (the parser strips `_total` from counters): count TYPE lines.
    let mut names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(|n| n.strip_suffix("_total").unwrap_or(n))
        .collect();
    let all = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all, "family names clash: {text}");
    families
}

#[test]
fn metrics_health_ready_and_status_show_a_migration() {
    let old = Broker::start("obs-old");
    let mut new = Broker::start("obs-new");
    new.kill();
    let mut setup = ProxySetup::two(&old, &new);
    setup.proxy_extra = "progress_refresh_ms = 500\n".into();
    let proxy = Proxy::spawn(setup);

    // Up, but not ready while one cluster has never been reached.
    wait_for("/health", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", proxy.metrics_port))
            .ok()
            .map(|_| ())
    });
    assert_eq!(proxy.http_get("/health"), (200, "ok\n".to_owned()));
    let (code, body) = proxy.http_get("/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("cluster(s) new"), "{body}");
    assert_eq!(proxy.http_get("/metricsX").0, 404);
    assert_eq!(proxy.http_get("/nothing-here").0, 404);
    new.restart();
    wait_for("/ready", Duration::from_secs(30), || {
        (proxy.http_get("/ready").0 == 200).then_some(())
    });

    create_topic(&proxy.bootstrap(), TOPIC, 1);
    // Again: the cluster answers TOPIC_ALREADY_EXISTS (36), counted.
    create_topic(&proxy.bootstrap(), TOPIC, 1);
    create_topic(&new.addr(), TOPIC, 1);
    let member = group_behind(&proxy.bootstrap(), "billing", TOPIC);

    // A producer keeps writing while the topic flips: the fence holds it.
    let flipping = Arc::new(AtomicBool::new(true));
    let writer = {
        let (bootstrap, flipping) = (proxy.bootstrap(), flipping.clone());
        std::thread::spawn(move || {
            let p = producer(&bootstrap, &[("linger.ms", "0")]);
            let mut i = 1000;
            while flipping.load(Ordering::Acquire) {
                queue_record(&p, TOPIC, i);
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            wait_for_reports(&p);
            let failed = p.context().failed.lock().unwrap().clone();
            assert!(failed.is_empty(), "deliveries failed: {failed:?}");
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    proxy.flip(TOPIC, "new");
    flipping.store(false, Ordering::Release);
    writer.join().unwrap();

    // Five records reach 'old' without the proxy.
    let direct = producer(&old.addr(), &[]);
    produce_range(&direct, TOPIC, 5000..5005, |_| {});

    let status = proxy.json("status");
    let stitch = &status["flips"][0]["stitch"][0];
    let l_old = stitch["l_old"].as_i64().unwrap();
    assert_eq!(stitch["l_new"].as_i64(), Some(0));
    let steps: Vec<&str> = status["flips"][0]["steps"]
        .as_array()
        .expect("the flip record keeps its steps")
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["prepare", "fence", "check"]);

    // The background refresh catches up with the flip and the bypass.
    let families = wait_for("progress metrics", Duration::from_secs(30), || {
        let f = parsed_metrics(&proxy);
        let total = |name: &str| f.get(name).and_then(|v| v["total"].as_f64());
        (total("switchyard_old_cluster_writes_after_flip") == Some(5.0)
            && total("switchyard_group_old_stretch_records") == Some((l_old - 100) as f64))
        .then_some(f)
    });
    let total = |name: &str| families[name]["total"].as_f64().unwrap();
    assert_eq!(total("switchyard_stitch_delta"), l_old as f64);
    assert_eq!(total("switchyard_cluster_reachable"), 2.0);
    for family in [
        "switchyard_build_info",
        "switchyard_client_connections",
        "switchyard_client_connections_accepted",
        "switchyard_client_requests",
        "switchyard_client_request_duration_seconds",
        "switchyard_upstream_connections",
        "switchyard_upstream_requests",
        "switchyard_upstream_request_duration_seconds",
        "switchyard_upstream_errors",
        "switchyard_upstream_sent_bytes",
        "switchyard_upstream_received_bytes",
        "switchyard_flips",
        "switchyard_flip_step_duration_seconds",
        "switchyard_fence_held_produce",
        "switchyard_progress_refreshes",
    ] {
        let f = families
            .get(family)
            .unwrap_or_else(|| panic!("{family} missing"));
        assert!(f["total"].as_f64().unwrap() > 0.0, "{family}: {f}");
        assert!(
            !f["help"].as_str().unwrap().is_empty(),
            "{family} has no help"
        );
    }
    let (_, text) = proxy.http_get("/metrics");
    for line in [
        "switchyard_flips_total{kind=\"topic\",outcome=\"done\",reason=\"\"} 1",
        "switchyard_client_requests_total{api=\"Produce\"}",
        "switchyard_upstream_requests_total{cluster=\"new\",api=\"Produce\"}",
        "switchyard_upstream_errors_total{cluster=\"new\",kind=\"connect\"}",
        "switchyard_upstream_error_codes_total{cluster=\"old\",api=\"CreateTopics\",code=\"36\"} 1\n",
        "switchyard_flip_step_duration_seconds_count{kind=\"topic\",step=\"fence\"} 1",
    ] {
        assert!(text.contains(line), "no {line} in {text}");
    }

    // The Grafana dashboard asks only for what the proxy exports.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/switchyard.json"
        ))
        .expect("deploy/grafana/switchyard.json"),
    )
    .expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "switchyard");
    assert!(dashboard["schemaVersion"].as_i64().is_some());
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queried = BTreeSet::new();
    for panel in panels {
        assert!(
            panel["type"].is_string() && panel["gridPos"]["w"].is_i64(),
            "{panel}"
        );
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            let expr = target["expr"].as_str().expect("a query");
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("switchyard_"))
            {
                queried.insert(name.to_owned());
            }
        }
    }
    let exported: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    for name in &queried {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            exported.contains(family),
            "the dashboard queries {name}, which /metrics lacks"
        );
    }
    assert!(queried.len() >= 15, "{queried:?}");

    // /status.json is what `status --json` prints.
    let (code, body) = proxy.http_get("/status.json");
    assert_eq!(code, 200);
    let served: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(served["flips"], status["flips"]);
    assert_eq!(served["cluster_id"], "switchyard-test");

    // One log line per step.
    let log = proxy.whole_log();
    for step in ["prepare", "fence", "check", "record", "switch"] {
        let line = format!("topic {TOPIC}: {step} done in");
        assert_eq!(log.matches(&line).count(), 1, "{line} in {log}");
    }
    drop(member);
}

/// What a tmux pane shows now.
fn pane(session: &str) -> String {
    let out = std::process::Command::new("tmux")
        .args(["capture-pane", "-p", "-t", session])
        .output()
        .expect("tmux (scripts/install-deps.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_watch_redraws_in_place_as_a_flip_happens() {
    let (_old, _new, proxy) = harness::two_clusters("watch");
    create_topic(&proxy.bootstrap(), TOPIC, 1);
    let session = format!("switchyard-watch-{}", std::process::id());
    let command = format!(
        "{} status --watch --interval 0.5 -c {}",
        env!("CARGO_BIN_EXE_switchyard"),
        proxy.config_path.display()
    );
    let started = std::process::Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "160",
            "-y",
            "40",
            &command,
        ])
        .status()
        .expect("tmux (scripts/install-deps.sh installs it)");
    assert!(started.success(), "tmux new-session");
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = std::process::Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .status();
        }
    }
    let _kill = Kill(session.clone());

    let first = wait_for("the first view", Duration::from_secs(20), || {
        let shown = pane(&session);
        shown.contains("flips so far: 0").then_some(shown)
    });
    assert!(first.contains("cluster old (reachable)"), "{first}");
    proxy.flip(TOPIC, "new");
    let after = wait_for("a redraw showing the flip", Duration::from_secs(20), || {
        let shown = pane(&session);
        shown.contains("flips so far: 1").then_some(shown)
    });
    assert!(
        after.contains(&format!("{TOPIC}: produce old -> new, fetch old -> new")),
        "{after}"
    );
    // Redrawn in place: one view on the screen, not one after another.
    assert_eq!(
        after.matches("cluster id switchyard-test").count(),
        1,
        "{after}"
    );
    assert!(!after.contains("flips so far: 0"), "{after}");
    assert!(after.contains("UTC, every 0.5s; Ctrl-C to stop"), "{after}");
}
