//! What the console page shows, as JSON: `/console.json` (clusters,
//! instances, the timeline of flips and group moves, group progress,
//! warnings) and `/topics.json` (the route table, filtered and paged on
//! the server so that tens of thousands of topics stay usable). Each
//! answer reads what the proxy already holds (views, routes, state,
//! journal, metrics); none asks an upstream cluster anything.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};

use crate::ops::state::{FlipRecord, GroupMoveRecord, RouteEntry, StepTiming};
use crate::runtime::proxy::Proxy;

/// Most topics one `/topics.json` page holds.
pub const MAX_PAGE: usize = 1000;

/// One cluster's upstream traffic at one instant, read off the metrics
/// text: requests answered, and the duration histogram's cumulative
/// bucket counts (Fetch left out: a Fetch waits for records by design, so
/// its time is not latency).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    pub connections: f64,
    pub requests: f64,
    /// (upper bound in seconds, requests at most that long), by bound.
    pub buckets: Vec<(f64, f64)>,
}

/// Reads every cluster's [`Traffic`] out of Prometheus text.
pub fn traffic(text: &str) -> BTreeMap<String, Traffic> {
    use crate::metrics as m;
    let mut out: BTreeMap<String, Traffic> = BTreeMap::new();
    let bucket = format!("{}_bucket", m::UPSTREAM_REQUEST_DURATION);
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let label = |key: &str| label(labels, key);
        let Some(cluster) = label("cluster") else {
            continue;
        };
        let counted = name == m::UPSTREAM_CONNECTIONS
            || name == m::UPSTREAM_REQUESTS
            || (name == bucket && label("api") != Some("Fetch"));
        if !counted {
            continue;
        }
        let t = out.entry(cluster.to_owned()).or_default();
        if name == m::UPSTREAM_CONNECTIONS {
            t.connections += value;
        } else if name == m::UPSTREAM_REQUESTS {
            t.requests += value;
        } else {
            let Some(le) = label("le").and_then(|l| l.parse::<f64>().ok()) else {
                continue;
            };
            match t.buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, n)) => *n += value,
                None => t.buckets.push((le, value)),
            }
        }
    }
    for t in out.values_mut() {
        t.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// A label's value in `a="x",b="y"}` (values the proxy writes hold no
/// quotes or commas).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels
        .trim_end_matches('}')
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix("=\"")?.strip_suffix('"'))
}

/// Requests per second and the 99th percentile of latency (ms, the upper
/// bound of the bucket it falls in) between two readings; `None` for a
/// percentile with no requests between them.
pub fn rates(before: &Traffic, after: &Traffic, secs: f64) -> (f64, Option<f64>) {
    let per_s = ((after.requests - before.requests) / secs).max(0.0);
    let counts: Vec<(f64, f64)> = after
        .buckets
        .iter()
        .map(|(le, n)| {
            let was = before
                .buckets
                .iter()
                .find(|(b, _)| b == le)
                .map_or(0.0, |(_, n)| *n);
            (*le, n - was)
        })
        .collect();
    let total = counts.last().map_or(0.0, |(_, n)| *n);
    let p99 = (total > 0.0)
        .then(|| {
            counts
                .iter()
                .find(|(_, n)| *n >= total * 0.99)
                .map(|(le, _)| le * 1000.0)
        })
        .flatten()
        .filter(|ms| ms.is_finite());
    (per_s, p99)
}

/// The last two readings of every cluster's traffic, for rates: a new
/// reading replaces the older once at least a second has passed.
#[derive(Default)]
pub struct TrafficRates {
    previous: Option<(Instant, BTreeMap<String, Traffic>)>,
    current: Option<(Instant, BTreeMap<String, Traffic>)>,
}

impl TrafficRates {
    /// Takes in a reading made `now`; gives each cluster's (connections,
    /// requests/s, p99 ms).
    pub fn read(
        &mut self,
        now: Instant,
        reading: BTreeMap<String, Traffic>,
    ) -> BTreeMap<String, (f64, Option<f64>, Option<f64>)> {
        let fresh = self
            .current
            .as_ref()
            .is_none_or(|(at, _)| now.duration_since(*at).as_secs_f64() >= 1.0);
        if fresh {
            self.previous = self.current.take();
            self.current = Some((now, reading));
        }
        let Some((at, current)) = &self.current else {
            return BTreeMap::new();
        };
        current
            .iter()
            .map(|(cluster, t)| {
                let rates = self.previous.as_ref().and_then(|(was_at, was)| {
                    let secs = at.duration_since(*was_at).as_secs_f64();
                    let was = was.get(cluster)?;
                    (secs > 0.0).then(|| rates(was, t, secs))
                });
                let (per_s, p99) = rates.map_or((None, None), |(r, p)| (Some(r), p));
                (cluster.clone(), (t.connections, per_s, p99))
            })
            .collect()
    }
}

/// One entry of the timeline: a flip or group move, done or failed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub kind: &'static str,
    pub name: String,
    pub from: String,
    pub to: String,
    pub at_ms: u64,
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub steps: Vec<StepTiming>,
    pub run: Option<String>,
    pub stitched: bool,
}

/// A route's two sides as one phrase: "new", or "produce new, fetch old".
fn sides(entry: &RouteEntry) -> String {
    if entry.produce == entry.fetch {
        entry.produce.clone()
    } else {
        format!("produce {}, fetch {}", entry.produce, entry.fetch)
    }
}

/// Flips, group moves and failed attempts, newest first.
pub fn timeline(proxy: &Proxy, flips: &[FlipRecord], moves: &[GroupMoveRecord]) -> Vec<Event> {
    let routes = proxy.routes();
    let mut events: Vec<Event> = flips
        .iter()
        .map(|f| Event {
            kind: "topic",
            name: f.topic.clone(),
            from: sides(&f.from),
            to: sides(&f.to),
            at_ms: f.at_ms,
            outcome: "done",
            reason: None,
            steps: f.steps.clone(),
            run: f.run.clone(),
            stitched: !f.stitch.is_empty(),
        })
        .chain(moves.iter().map(|g| Event {
            kind: "group",
            name: g.group.clone(),
            from: g.from.clone(),
            to: g.to.clone(),
            at_ms: g.at_ms,
            outcome: "done",
            reason: None,
            steps: g.steps.clone(),
            run: g.run.clone(),
            stitched: false,
        }))
        .chain(proxy.journal().failed_moves().into_iter().map(|f| {
            Event {
                kind: f.kind,
                from: match f.kind {
                    "topic" => sides(&proxy.route_entry(routes.route(&f.name))),
                    _ => proxy
                        .cluster(routes.group_cluster(&f.name))
                        .name()
                        .to_owned(),
                },
                name: f.name,
                to: f.to,
                at_ms: f.at_ms,
                outcome: f.outcome,
                reason: Some(f.reason),
                steps: Vec::new(),
                run: None,
                stitched: false,
            }
        }))
        .collect();
    // Stable: a flip and its failed retry in the same millisecond keep
    // their order.
    events.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
    events
}

/// `/console.json`. `traffic`: each cluster's (connections, requests/s,
/// p99 ms); `actions` and `auth` as the config sets them.
pub async fn overview(
    proxy: &Proxy,
    traffic: &BTreeMap<String, (f64, Option<f64>, Option<f64>)>,
    actions: bool,
    auth: Option<&str>,
) -> Value {
    let config = proxy.config();
    let mut warnings: Vec<Value> = Vec::new();
    let warn = |warnings: &mut Vec<Value>, kind: &str, message: String| {
        warnings.push(json!({"kind": kind, "message": message}));
    };
    let clusters: Vec<Value> = proxy
        .clusters()
        .map(|c| {
            let (connections, per_s, p99) = traffic.get(c.name()).copied().unwrap_or_default();
            c.with_view(|v| {
                json!({
                    "name": c.name(),
                    "bootstrap": c.config.bootstrap,
                    "reachable": v.reachable,
                    "last_error": v.last_error,
                    "brokers": v.brokers.len(),
                    "connections": connections,
                    "requests_per_s": per_s,
                    "p99_ms": p99,
                })
            })
        })
        .collect();
    for c in &clusters {
        if c["reachable"] != true {
            let why = c["last_error"].as_str().unwrap_or("never reached");
            warn(
                &mut warnings,
                "unreachable",
                format!("cluster '{}' is unreachable: {why}", text(&c["name"])),
            );
        }
    }
    let instances = proxy.store().instances();
    for i in instances.iter().filter(|i| !i.live) {
        warn(
            &mut warnings,
            "instance_missing",
            format!(
                "instance '{}' ({}) has not renewed its lease for {:.0} s: it is left out of flips",
                i.instance,
                i.address,
                i.lease_age_ms as f64 / 1000.0
            ),
        );
    }
    let (flips, moves) = {
        let state = proxy.state().lock().await;
        (state.flips.clone(), state.group_moves.clone())
    };
    let timeline = timeline(proxy, &flips, &moves);
    for e in timeline.iter().filter(|e| e.outcome == "aborted") {
        warn(
            &mut warnings,
            "aborted",
            format!(
                "the {} move of '{}' to '{}' was aborted: {}",
                if e.kind == "topic" { "topic" } else { "group" },
                e.name,
                e.to,
                e.reason.as_deref().unwrap_or_default()
            ),
        );
    }
    let latest = proxy.journal().latest();
    for (topic, n) in latest.iter().flat_map(|r| &r.old_writes) {
        if *n > 0 {
            warn(
                &mut warnings,
                "old_cluster_writes",
                format!(
                    "{n} records were written to the old cluster of flipped topic '{topic}' \
                     without going through the proxy; no reader through the proxy sees them"
                ),
            );
        }
    }
    json!({
        "instance": config.proxy.instance_id,
        "cluster_id": config.proxy.cluster_id,
        "at_ms": crate::ops::steps::now_ms(),
        "actions": actions,
        "auth": auth,
        "clusters": clusters,
        "instances": instances,
        "timeline": timeline,
        "groups": {
            "at_ms": latest.as_ref().map(|r| r.at_ms),
            "error": proxy.journal().refresh_error(),
            "drains": proxy.journal().progress(),
        },
        "warnings": warnings,
    })
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// One topic of the route table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopicLine {
    pub topic: String,
    pub produce: String,
    pub fetch: String,
    pub stitched: bool,
    pub source: crate::domain::routes::RouteSource,
}

/// `/topics.json`: every topic a cluster reports or a runtime route
/// names, in name order, those whose name contains `filter` (ignoring
/// case), `limit` from `offset`.
pub fn topics(proxy: &Proxy, filter: &str, offset: usize, limit: usize) -> Value {
    let routes = proxy.routes();
    let mut names: BTreeSet<String> = routes.runtime_routes().map(|(t, _)| t.to_owned()).collect();
    for c in proxy.clusters() {
        c.with_view(|v| names.extend(v.topics.keys().cloned()));
    }
    let total = names.len();
    let needle = filter.to_lowercase();
    let matched: Vec<&String> = names
        .iter()
        .filter(|t| needle.is_empty() || t.to_lowercase().contains(&needle))
        .collect();
    let limit = limit.clamp(1, MAX_PAGE);
    let page: Vec<TopicLine> = matched
        .iter()
        .skip(offset)
        .take(limit)
        .map(|topic| {
            let (route, source) = routes.route_and_source(topic);
            let RouteEntry { produce, fetch } = proxy.route_entry(route);
            TopicLine {
                topic: (*topic).clone(),
                produce,
                fetch,
                stitched: routes.stitches().has_topic(topic),
                source,
            }
        })
        .collect();
    json!({
        "total": total,
        "matched": matched.len(),
        "offset": offset,
        "limit": limit,
        "topics": page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE switchyard_upstream_requests_total counter
switchyard_upstream_requests_total{cluster="old",api="Produce"} 90
switchyard_upstream_requests_total{cluster="old",api="Fetch"} 10
switchyard_upstream_requests_total{cluster="new",api="Metadata"} 4
switchyard_upstream_connections{cluster="old"} 3
switchyard_upstream_request_duration_seconds_bucket{cluster="old",api="Produce",le="0.001"} 80
switchyard_upstream_request_duration_seconds_bucket{cluster="old",api="Produce",le="0.01"} 89
switchyard_upstream_request_duration_seconds_bucket{cluster="old",api="Produce",le="+Inf"} 90
switchyard_upstream_request_duration_seconds_bucket{cluster="old",api="Fetch",le="0.001"} 0
switchyard_upstream_request_duration_seconds_bucket{cluster="old",api="Fetch",le="+Inf"} 10
"#;

    #[test]
    fn traffic_is_read_per_cluster_without_fetch_waits() {
        let t = traffic(TEXT);
        let old = &t["old"];
        assert_eq!((old.connections, old.requests), (3.0, 100.0));
        assert_eq!(
            old.buckets,
            vec![(0.001, 80.0), (0.01, 89.0), (f64::INFINITY, 90.0)]
        );
        assert_eq!(t["new"].requests, 4.0);
        assert!(t["new"].buckets.is_empty());
    }

    #[test]
    fn rates_and_p99_come_from_the_difference_of_two_readings() {
        let before = traffic(TEXT);
        let after = traffic(
            &TEXT
                .replace("Produce\"} 90", "Produce\"} 290")
                .replace("le=\"0.001\"} 80", "le=\"0.001\"} 277")
                .replace("le=\"0.01\"} 89", "le=\"0.01\"} 289")
                .replace("le=\"+Inf\"} 90", "le=\"+Inf\"} 290"),
        );
        let (per_s, p99) = rates(&before["old"], &after["old"], 2.0);
        assert_eq!(per_s, 100.0);
        // 197 of 200 within 1 ms, 200 within 10 ms: p99 ≤ 10 ms.
        assert_eq!(p99, Some(10.0));
        // Nothing between two equal readings: no percentile.
        assert_eq!(rates(&before["old"], &before["old"], 1.0), (0.0, None));
        let mut r = TrafficRates::default();
        let t0 = Instant::now();
        assert_eq!(r.read(t0, before.clone())["old"], (3.0, None, None));
        let later = t0 + std::time::Duration::from_secs(2);
        assert_eq!(
            r.read(later, after.clone())["old"],
            (3.0, Some(100.0), Some(10.0))
        );
        // Within a second of the last reading: the same rates again.
        let soon = later + std::time::Duration::from_millis(100);
        assert_eq!(r.read(soon, before)["old"], (3.0, Some(100.0), Some(10.0)));
    }

    #[test]
    fn sides_read_as_one_phrase() {
        let e = |p: &str, f: &str| RouteEntry {
            produce: p.into(),
            fetch: f.into(),
        };
        assert_eq!(sides(&e("new", "new")), "new");
        assert_eq!(sides(&e("new", "old")), "produce new, fetch old");
    }
}
