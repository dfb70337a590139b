//! The console page in a real browser (headless Chromium over WebDriver):
//! what it shows of a migration as it happens, and the flips it starts
//! when actions are on (only for a signed-in user where SASL users exist)
//! and refuses when they are off.

mod harness;

use std::path::PathBuf;
use std::time::Duration;

use harness::browser::Browser;
use harness::clients::{create_topic, group_behind, poll_records, produce_range, producer};
use harness::security::user_toml;
use harness::{wait_for, Broker, Proxy, ProxySetup};
use rdkafka::consumer::{CommitMode, Consumer};
use serde_json::{json, Value};
use switchyard::auth::credentials::Mechanism;

const TOPIC: &str = "orders";
const WAIT: Duration = Duration::from_secs(30);

/// Where screenshots go: kept after the run, printed.
fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).expect("artifact directory");
    dir.join(name)
}

fn page(proxy: &Proxy) -> String {
    format!("http://{}:{}/", proxy.host, proxy.metrics_port)
}

/// The route table's row of `topic`: [produce, fetch, stitched, source].
fn route_row(browser: &Browser, topic: &str) -> Value {
    browser.eval(
        "const r = document.querySelector(`tr.route[data-topic=\"${arguments[0]}\"]`);
         return r ? ['produce','fetch','stitched','source']
             .map(c => r.querySelector('td.' + c).textContent.trim()) : null;",
        json!([topic]),
    )
}

/// A consumer group's bar: [value, crossed marker shown, text].
fn drain_bar(browser: &Browser, group: &str, topic: &str) -> Value {
    browser.eval(
        "const d = document.querySelector(
             `div.drain[data-group=\"${arguments[0]}\"][data-topic=\"${arguments[1]}\"]`);
         return d ? [d.querySelector('progress.bar').value,
                     !!d.querySelector('span.crossed'), d.textContent] : null;",
        json!([group, topic]),
    )
}

#[test]
fn the_page_shows_a_flip_its_steps_and_a_group_crossing_and_offers_no_actions() {
    let old = Broker::start("console-old");
    let new = Broker::start("console-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.proxy_extra = "progress_refresh_ms = 300\n".into();
    let proxy = Proxy::start(setup);

    create_topic(&proxy.bootstrap(), TOPIC, 1);
    let member = group_behind(&proxy.bootstrap(), "billing", TOPIC);

    let browser = Browser::start();
    browser.goto(&page(&proxy));
    // Before any flip: the topic on old, nothing in the timeline.
    wait_for("the route table", WAIT, || {
        (route_row(&browser, TOPIC) == json!(["old", "old", "", "default"])).then_some(())
    });
    assert_eq!(browser.count("tr.cluster"), 2);
    assert_eq!(browser.count("li.event"), 0);
    assert_eq!(browser.text("#mode").as_deref(), Some("read-only"));

    proxy.flip(TOPIC, "new");
    // A flip the proxy refuses, with its reason.
    let refused = proxy.cli(&["flip", "no-such-topic", "--to", "new"]);
    assert!(!refused.status.success());
    wait_for("the flipped route", WAIT, || {
        (route_row(&browser, TOPIC) == json!(["new", "new", "stitched", "runtime"])).then_some(())
    });
    // Five records reach 'old' behind the proxy's back.
    let direct = producer(&old.addr(), &[]);
    produce_range(&direct, TOPIC, 5000..5005, |_| {});
    let steps = browser.wait_until(
        "the flip in the timeline",
        WAIT,
        "const e = document.querySelector(
             'li.event[data-kind=\"topic\"][data-name=\"orders\"][data-outcome=\"done\"]');
         return e && [...e.querySelectorAll('span.step')].map(s => s.dataset.step);",
    );
    assert_eq!(steps, json!(["prepare", "fence", "check"]));
    let reason = browser.wait_until(
        "the refused flip in the timeline",
        WAIT,
        "const e = document.querySelector(
             'li.event[data-name=\"no-such-topic\"][data-outcome=\"refused\"]');
         return e && e.textContent;",
    );
    assert!(
        reason.as_str().unwrap().contains("no-such-topic"),
        "{reason}"
    );
    let warning = browser.wait_until(
        "the old-cluster writes warning",
        WAIT,
        "const w = document.querySelector('li.warning[data-kind=\"old_cluster_writes\"]');
         return w && w.textContent;",
    );
    assert!(warning.as_str().unwrap().contains("5 records"), "{warning}");

    // The group has the 100 records after its commit left on old.
    let bar = wait_for("the group's bar", WAIT, || {
        drain_bar(&browser, "billing", TOPIC)
            .as_array()
            .filter(|b| b[2].as_str().unwrap_or("").contains("100 left"))
            .cloned()
    });
    assert_eq!(bar[0], json!(0));
    assert_eq!(bar[1], json!(false));
    browser.screenshot(&artifact("flipped.png"));

    // It reads them (and nothing written behind the proxy), commits, and
    // crosses.
    let rest: Vec<u64> = poll_records(&member, 100).iter().map(|r| r.2).collect();
    assert_eq!(rest, (100..200).collect::<Vec<_>>());
    member.commit_consumer_state(CommitMode::Sync).unwrap();
    wait_for("the group crossed", WAIT, || {
        let bar = drain_bar(&browser, "billing", TOPIC);
        (bar[0] == json!(100) && bar[1] == json!(true)).then_some(())
    });
    let shot = artifact("crossed.png");
    browser.screenshot(&shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    eprintln!(
        "console screenshots in {}",
        shot.parent().unwrap().display()
    );

    // Read-only: no action anywhere on the page, and the endpoint refuses.
    assert_eq!(browser.count(".action"), 0);
    assert_eq!(browser.count("#login"), 0);
    let (code, _, body) = proxy.http(
        "POST",
        "/console/action",
        &[("content-type", "application/json")],
        r#"{"cmd":"flip","topic":"orders","to":"old"}"#,
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("read-only"), "{body}");
    assert_eq!(
        proxy.runtime_routes(),
        [(TOPIC.to_owned(), "new".to_owned(), "new".to_owned())]
    );
}

const ALICE_PW: &str = "alice-console-secret";

#[test]
fn with_actions_on_a_signed_in_user_flips_from_the_page_and_nobody_else_can() {
    let old = Broker::start("console-act-old");
    let new = Broker::start("console-act-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.secured = true;
    setup.proxy_extra = "[proxy.sasl]\nmechanisms = [\"SCRAM-SHA-256\"]\n\
                         [proxy.console]\nactions = true\n"
        .into();
    setup.extra = format!(
        "{}\n{}topics = [\"other-*\"]\n",
        user_toml("alice", Mechanism::ScramSha256, ALICE_PW),
        user_toml("carol", Mechanism::ScramSha256, "carol-pw")
    );
    let proxy = Proxy::start(setup);
    // The topic is written straight to old: the proxy's clients would
    // need SASL, and the page does not.
    create_topic(&old.addr(), TOPIC, 2);
    produce_range(&producer(&old.addr(), &[]), TOPIC, 0..10, |_| {});

    let browser = Browser::start();
    browser.goto(&page(&proxy));
    wait_for("the route table", WAIT, || {
        (route_row(&browser, TOPIC) == json!(["old", "old", "", "default"])).then_some(())
    });
    assert_eq!(browser.text("#mode").as_deref(), Some("actions enabled"));
    let flip_button = r#"tr.route[data-topic="orders"] button.action.flip[data-to="new"]"#;

    // Not signed in: the dry run is refused and nothing can be confirmed.
    browser.click(flip_button);
    let error = browser.wait_until(
        "the sign-in refusal",
        WAIT,
        "const e = document.querySelector('#confirm-error'); return e && e.textContent.trim();",
    );
    assert!(error.as_str().unwrap().contains("sign in"), "{error}");
    assert_eq!(browser.count("#confirm-go:not([disabled])"), 0);
    browser.click("#confirm-cancel");

    // The endpoint itself: no credentials, a wrong password, a user whose
    // allow-list leaves the topic out, a body not sent as JSON, a command
    // the console does not run.
    let flip = r#"{"cmd":"flip","topic":"orders","to":"new"}"#;
    let post = |credentials: Option<(&str, &str)>, content_type: &str, body: &str| {
        use base64::Engine;
        let basic = credentials.map(|(user, pw)| {
            let pair = format!("{user}:{pw}");
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        let mut headers = vec![("content-type", content_type)];
        headers.extend(basic.as_deref().map(|b| ("authorization", b)));
        proxy.http("POST", "/console/action", &headers, body)
    };
    let json_type = "application/json";
    let (code, head, body) = post(None, json_type, flip);
    assert_eq!(code, 401, "{body}");
    assert!(
        head.to_lowercase().contains("www-authenticate: basic"),
        "{head}"
    );
    let (code, _, body) = post(Some(("alice", "guess")), json_type, flip);
    assert_eq!(code, 401, "{body}");
    let (code, _, body) = post(Some(("carol", "carol-pw")), json_type, flip);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("may not use topic 'orders'"), "{body}");
    let alice = Some(("alice", ALICE_PW));
    let (code, _, body) = post(alice, "text/plain", flip);
    assert_eq!(code, 415, "{body}");
    let (code, _, body) = post(alice, json_type, r#"{"cmd":"reload"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(proxy.runtime_routes().is_empty());

    // Signed in: the confirmation shows the dry run, and the flip runs.
    browser.type_into("#login-user", "alice");
    browser.type_into("#login-password", ALICE_PW);
    browser.click("#login-go");
    browser.click(flip_button);
    let summary = browser.wait_until(
        "the dry run's summary",
        WAIT,
        "const s = document.querySelector('#confirm-summary');
         return s && s.textContent.includes('→') && s.textContent;",
    );
    let summary = summary.as_str().unwrap();
    assert!(summary.contains("produce old → new"), "{summary}");
    assert!(summary.contains("2 partitions"), "{summary}");
    assert!(summary.contains("creates the topic on new"), "{summary}");
    // The dry run changed nothing.
    assert!(proxy.runtime_routes().is_empty());
    browser.click("#confirm-go");
    let result = browser.wait_until(
        "the flip's result",
        WAIT,
        "const r = document.querySelector('#action-result');
         return r && r.textContent.trim().length > 0 && r.textContent.trim();",
    );
    assert!(result.as_str().unwrap().starts_with("done: "), "{result}");
    assert_eq!(
        proxy.runtime_routes(),
        [(TOPIC.to_owned(), "new".to_owned(), "new".to_owned())]
    );
    wait_for("the flipped route on the page", WAIT, || {
        (route_row(&browser, TOPIC) == json!(["new", "new", "stitched", "runtime"])).then_some(())
    });
    browser.screenshot(&artifact("flipped-from-the-page.png"));

    // And back, from the same page.
    browser.click(r#"tr.route[data-topic="orders"] button.action.flip[data-to="old"]"#);
    browser.wait_until(
        "the flip back's dry run",
        WAIT,
        "const s = document.querySelector('#confirm-summary');
         return s && s.textContent.includes('produce new → old');",
    );
    browser.click("#confirm-go");
    let back = browser.wait_until(
        "the flip back's result",
        WAIT,
        &format!(
            "const r = document.querySelector('#action-result');
             const t = r ? r.textContent.trim() : '';
             return t.length > 0 && t !== {result} && t;"
        ),
    );
    assert!(back.as_str().unwrap().starts_with("done: "), "{back}");
    assert_eq!(
        proxy.runtime_routes(),
        [(TOPIC.to_owned(), "old".to_owned(), "old".to_owned())]
    );
    assert_eq!(proxy.log().matches("console action").count(), 2);
}
