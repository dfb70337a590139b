//! The console page with many topics (default 5,000; SWITCHYARD_CONSOLE_TOPICS):
//! how long headless Chromium takes to load it until the route table's
//! first page shows, to filter it down to one topic, and to turn a page;
//! and how long `/topics.json` and `/console.json` take to answer. Median
//! and slowest of several rounds, in a table. Bounded: a fixed number of
//! rounds, each waiting at most 30 s.
//!
//! `cargo bench --bench console`. Needs what the tests need
//! (`scripts/install-deps.sh`).

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::browser::Browser;
use harness::clients::create_topics_with;
use harness::{wait_for, Broker, Proxy, ProxySetup};
use serde_json::{json, Value};

const ROUNDS: usize = 7;

/// A script that runs `action` in the page, then waits (polling each
/// animation frame, 30 s at most) until `condition` holds, and gives the
/// milliseconds that took: from the navigation's start when
/// `from_navigation` (page loads), else from just before the action. The
/// script's first argument is the text `#route-count` must start with.
fn until(action: &str, condition: &str, from_navigation: bool) -> String {
    let t0 = if from_navigation {
        "0"
    } else {
        "performance.now()"
    };
    format!(
        "const [want, done] = arguments;
         const t0 = {t0};
         {action};
         const check = () => {{
             if ({condition}) return done(performance.now() - t0);
             if (performance.now() - t0 > 30000) return done(null);
             requestAnimationFrame(check);
         }};
         check();"
    )
}

/// `#route-count` says `want` and rows show.
const COUNTED: &str = "(document.querySelector('#route-count')?.textContent || '').startsWith(want)
     && document.querySelectorAll('tr.route').length > 0";

/// Types `text` into the filter, as a user's keystrokes would end.
fn filter_to(text: &str) -> String {
    format!(
        "const f = document.querySelector('#filter'); f.value = '{text}';
         f.dispatchEvent(new Event('input', {{bubbles: true}}))"
    )
}

fn median_and_max(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() - 1])
}

fn ms(v: Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} did not finish in 30 s"))
}

fn main() {
    let topics: usize = std::env::var("SWITCHYARD_CONSOLE_TOPICS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let old = Broker::start("console-bench-old");
    let new = Broker::start("console-bench-new");
    let proxy = Proxy::start(ProxySetup::two(&old, &new));
    let names: Vec<String> = (0..topics).map(|i| format!("topic-{i:05}")).collect();
    for chunk in names.chunks(500) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        create_topics_with(&old.addr(), &chunk, 1, &[]);
    }
    let total = format!("{topics} of {topics} topics");
    wait_for(
        "every topic in the proxy's view",
        Duration::from_secs(120),
        || {
            let (_, body) = proxy.http_get("/topics.json?limit=1");
            let answer: Value = serde_json::from_str(&body).ok()?;
            (answer["total"] == json!(topics)).then_some(())
        },
    );

    let timed_get = |path: &str| {
        (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                let (code, _) = proxy.http_get(path);
                assert_eq!(code, 200, "{path}");
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect::<Vec<f64>>()
    };
    let page_of_all = timed_get("/topics.json?offset=0&limit=100");
    let filtered = timed_get("/topics.json?q=04999&offset=0&limit=100");
    let overview = timed_get("/console.json");

    let browser = Browser::start();
    let url = format!("http://{}:{}/", proxy.host, proxy.metrics_port);
    let (mut load, mut filter, mut next) = (Vec::new(), Vec::new(), Vec::new());
    let first_topic =
        |name: &str| format!("document.querySelector('tr.route')?.dataset.topic === '{name}'");
    for _ in 0..ROUNDS {
        browser.goto("about:blank");
        browser.goto(&url);
        let time = |action: &str, condition: &str, load: bool, want: &str, what: &str| {
            ms(
                browser.eval_async(&until(action, condition, load), json!([want])),
                what,
            )
        };
        load.push(time("", COUNTED, true, &total, "the first page"));
        let one = format!("1 of {topics} topics");
        filter.push(time(
            &filter_to("topic-04999"),
            COUNTED,
            false,
            &one,
            "the filter",
        ));
        // Back to all topics, then the second page.
        let all = format!("{COUNTED} && {}", first_topic("topic-00000"));
        time(&filter_to(""), &all, false, &total, "all topics again");
        let click = "document.querySelector('#next').click()";
        next.push(time(
            click,
            &first_topic("topic-00100"),
            false,
            "",
            "the next page",
        ));
    }
    println!("console with {topics} topics, {ROUNDS} rounds (ms: median, slowest)");
    let rows = [
        ("GET /topics.json, first page of all", page_of_all),
        ("GET /topics.json, filtered to one", filtered),
        ("GET /console.json", overview),
        ("page load until the route table shows", load),
        (
            "filter typed until one topic shows (200 ms debounce)",
            filter,
        ),
        ("next page until it shows", next),
    ];
    for (what, times) in rows {
        let (median, max) = median_and_max(times);
        println!("{what:<56} {median:>8.1} {max:>8.1}");
    }
}
