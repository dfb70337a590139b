//! The proxy's metrics: their names, their help text, the recorder, and
//! the handles the per-request paths keep so that counting costs an atomic
//! add, not a registry lookup.
//!
//! Families are Prometheus-named: counters end in `_total`, durations are
//! seconds, sizes bytes; no gauge shares a counter's family name. The text
//! is served by [`crate::runtime::http`].

use std::sync::OnceLock;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use metrics::{Counter, Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// One family: its name, its unit and its help text.
struct Family {
    name: &'static str,
    kind: Kind,
    unit: Unit,
    help: &'static str,
}

enum Kind {
    Counter,
    Gauge,
    Histogram,
}

macro_rules! families {
    ($($(#[$doc:meta])* $const:ident = $name:literal, $kind:ident, $unit:ident, $help:literal;)*) => {
        $( $(#[$doc])* #[doc = $help] pub const $const: &str = $name; )*
        const FAMILIES: &[Family] = &[
            $( Family { name: $name, kind: Kind::$kind, unit: Unit::$unit, help: $help }, )*
        ];
    };
}

families! {
    BUILD_INFO = "switchyard_build_info", Gauge, Count,
        "Always 1; labels `version` and `instance` say which build runs where.";
    CLIENT_CONNECTIONS = "switchyard_client_connections", Gauge, Count,
        "Client connections open now, by `listener` (bootstrap or broker).";
    CLIENT_CONNECTIONS_ACCEPTED = "switchyard_client_connections_accepted_total", Counter, Count,
        "Client connections accepted, by `listener`.";
    CLIENT_CONNECTIONS_REFUSED = "switchyard_client_connections_refused_total", Counter, Count,
        "Client connections refused because a connection cap was reached.";
    CLIENT_PROTOCOL_ERRORS = "switchyard_client_protocol_errors_total", Counter, Count,
        "Client connections closed for sending something that is not Kafka, by `reason`.";
    CLIENT_AUTH_FAILURES = "switchyard_client_auth_failures_total", Counter, Count,
        "Client SASL exchanges that failed: wrong password, unknown user, unsupported mechanism, malformed messages.";
    CLIENT_TLS_FAILURES = "switchyard_client_tls_failures_total", Counter, Count,
        "Client connections closed during the TLS handshake.";
    CLIENT_REQUESTS = "switchyard_client_requests_total", Counter, Count,
        "Requests read from clients, by `api`.";
    CLIENT_REQUEST_DURATION = "switchyard_client_request_duration_seconds", Histogram, Seconds,
        "From a client request read to its answer written, by `api`.";
    CLIENT_ERRORS = "switchyard_client_errors_total", Counter, Count,
        "Error answers the proxy itself gives clients (fences, refusals, moved coordinators, allow-lists), by `api` and Kafka error `code`.";
    SPLIT_REQUESTS = "switchyard_split_requests_total", Counter, Count,
        "Requests whose partitions lived on several upstream brokers, split into one request per broker and their answers merged.";
    UPSTREAM_CONNECTIONS = "switchyard_upstream_connections", Gauge, Count,
        "Connections to upstream brokers open now, by `cluster`.";
    UPSTREAM_REQUESTS = "switchyard_upstream_requests_total", Counter, Count,
        "Requests sent to upstream brokers, by `cluster` and `api`.";
    UPSTREAM_REQUEST_DURATION = "switchyard_upstream_request_duration_seconds", Histogram, Seconds,
        "From a request written to an upstream broker to its answer read, by `cluster` and `api`.";
    UPSTREAM_ERRORS = "switchyard_upstream_errors_total", Counter, Count,
        "Upstream connections that failed or were lost, and requests that timed out, by `cluster` and `kind`.";
    UPSTREAM_ERROR_CODES = "switchyard_upstream_error_codes_total", Counter, Count,
        "Kafka error codes in upstream brokers' answers (the answer's own, and each topic's, partition's or group's in it), by `cluster`, `api` and `code`.";
    UPSTREAM_BYTES_SENT = "switchyard_upstream_sent_bytes_total", Counter, Bytes,
        "Bytes of requests sent to upstream brokers, by `cluster`.";
    UPSTREAM_BYTES_RECEIVED = "switchyard_upstream_received_bytes_total", Counter, Bytes,
        "Bytes of answers read from upstream brokers, by `cluster`.";
    CLUSTER_REACHABLE = "switchyard_cluster_reachable", Gauge, Count,
        "1 while the proxy's last metadata query to `cluster` succeeded, else 0.";
    FLIPS = "switchyard_flips_total", Counter, Count,
        "Flips of topics and moves of groups (`kind`), by `outcome`: done, unchanged, or aborted with its `reason`.";
    FLIP_STEP_DURATION = "switchyard_flip_step_duration_seconds", Histogram, Seconds,
        "How long each step of a flip or group move (`kind`) took, by `step`.";
    FENCE_HELD = "switchyard_fence_held_produce_total", Counter, Count,
        "Produce requests held by a flip's fence.";
    FENCE_REFUSED = "switchyard_fence_refused_produce_total", Counter, Count,
        "Produce requests answered NOT_LEADER_OR_FOLLOWER after a fence's hold, so that the client retries.";
    STITCH_DELTA = "switchyard_stitch_delta", Gauge, Count,
        "For each stitched `topic` and `partition`, the newest segment's Δ: virtual offset minus the cluster's own offset.";
    GROUP_OLD_RECORDS = "switchyard_group_old_stretch_records", Gauge, Count,
        "For each consumer `group` and stitched `topic`, the records it has left on the old stretches; 0 once it has crossed.";
    OLD_CLUSTER_WRITES = "switchyard_old_cluster_writes_after_flip", Gauge, Count,
        "For each flipped `topic`, records on the cluster Produce left beyond the flip's stitch point: something writes there without going through the proxy.";
    PROGRESS_REFRESHES = "switchyard_progress_refreshes_total", Counter, Count,
        "Background refreshes of group progress and old-cluster writes, by `outcome` (ok or error).";
}

/// Histogram buckets for request and step durations, in seconds: from
/// 100 µs (a proxied Produce on loopback) to 60 s (a slow flip step).
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Installs the recorder, describes every family and sets the build
/// info; `None` when a recorder is already installed (in tests).
pub fn install(instance: &str) -> Option<PrometheusHandle> {
    let installed = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
        .and_then(|b| b.install_recorder());
    let handle = match installed {
        Ok(handle) => handle,
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            return None;
        }
    };
    for f in FAMILIES {
        match f.kind {
            Kind::Counter => metrics::describe_counter!(f.name, f.unit, f.help),
            Kind::Gauge => metrics::describe_gauge!(f.name, f.unit, f.help),
            Kind::Histogram => metrics::describe_histogram!(f.name, f.unit, f.help),
        }
    }
    metrics::gauge!(
        BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "instance" => instance.to_owned()
    )
    .set(1.0);
    Some(handle)
}

/// The `api` label of a request's api key: Kafka's name for it.
pub fn api_name(key: i16) -> &'static str {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..=API_SLOTS as i16)
            .map(|k| match ApiKey::try_from(k) {
                Ok(api) => &*Box::leak(format!("{api:?}").trim_end_matches("Key").into()),
                Err(()) => "Unknown",
            })
            .collect()
    });
    usize::try_from(key)
        .ok()
        .and_then(|k| names.get(k).copied())
        .unwrap_or("Unknown")
}

/// Api keys get a slot each below this; any other shares the last.
const API_SLOTS: usize = 96;

/// A request counter and duration histogram per api key, for one set of
/// base labels (a cluster, or the client side), each made on first use.
pub struct ApiMeters {
    labels: Vec<(&'static str, String)>,
    requests: &'static str,
    duration: &'static str,
    slots: Box<[OnceLock<(Counter, Histogram)>]>,
}

impl ApiMeters {
    fn new(
        requests: &'static str,
        duration: &'static str,
        labels: Vec<(&'static str, String)>,
    ) -> Self {
        ApiMeters {
            labels,
            requests,
            duration,
            slots: (0..=API_SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Client-facing requests, by api.
    pub fn client() -> &'static ApiMeters {
        static CLIENT: OnceLock<ApiMeters> = OnceLock::new();
        CLIENT.get_or_init(|| ApiMeters::new(CLIENT_REQUESTS, CLIENT_REQUEST_DURATION, Vec::new()))
    }

    /// Requests to one upstream cluster, by api.
    pub fn upstream(cluster: &str) -> ApiMeters {
        ApiMeters::new(
            UPSTREAM_REQUESTS,
            UPSTREAM_REQUEST_DURATION,
            vec![("cluster", cluster.to_owned())],
        )
    }

    fn slot(&self, api: i16) -> &(Counter, Histogram) {
        let idx = usize::try_from(api).map_or(API_SLOTS, |a| a.min(API_SLOTS));
        self.slots[idx].get_or_init(|| {
            let mut labels: Vec<metrics::Label> = self
                .labels
                .iter()
                .map(|(k, v)| metrics::Label::new(*k, v.clone()))
                .collect();
            labels.push(metrics::Label::new("api", api_name(api)));
            (
                metrics::counter!(self.requests, labels.clone()),
                metrics::histogram!(self.duration, labels),
            )
        })
    }

    /// One request of `api` seen.
    pub fn request(&self, api: i16) {
        self.slot(api).0.increment(1);
    }

    /// One request of `api` answered after `took`.
    pub fn answered(&self, api: i16, took: Duration) {
        self.slot(api).1.record(took.as_secs_f64());
    }
}

/// The per-cluster handles an upstream connection counts with.
pub struct ClusterMeters {
    pub api: ApiMeters,
    pub sent: Counter,
    pub received: Counter,
    pub connections: metrics::Gauge,
    cluster: String,
    /// Set when an answer's error code says a partition's leadership
    /// moved; the cluster's cached metadata is then forgotten.
    moved: std::sync::atomic::AtomicBool,
}

/// Error codes that say the metadata a client holds is out of date.
const LEADERSHIP_MOVED: [i16; 7] = {
    use kafka_protocol::ResponseError as E;
    [
        E::UnknownTopicOrPartition.code(),
        E::LeaderNotAvailable.code(),
        E::NotLeaderOrFollower.code(),
        E::NotController.code(),
        E::FencedLeaderEpoch.code(),
        E::UnknownLeaderEpoch.code(),
        E::UnknownTopicId.code(),
    ]
};

impl ClusterMeters {
    pub fn new(cluster: &str) -> ClusterMeters {
        let label = || cluster.to_owned();
        ClusterMeters {
            api: ApiMeters::upstream(cluster),
            sent: metrics::counter!(UPSTREAM_BYTES_SENT, "cluster" => label()),
            received: metrics::counter!(UPSTREAM_BYTES_RECEIVED, "cluster" => label()),
            connections: metrics::gauge!(UPSTREAM_CONNECTIONS, "cluster" => label()),
            cluster: label(),
            moved: Default::default(),
        }
    }

    /// Whether an answer said leadership moved since this was last asked.
    pub fn leadership_moved(&self) -> bool {
        self.moved.swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// An upstream failure of `kind`: connect, lost, timeout, protocol.
    pub fn error(&self, kind: &'static str) {
        metrics::counter!(UPSTREAM_ERRORS, "cluster" => self.cluster.clone(), "kind" => kind)
            .increment(1);
    }

    /// An upstream answer to a request of `api` carried error `code`.
    pub fn error_code(&self, api: i16, code: i16) {
        if LEADERSHIP_MOVED.contains(&code) {
            self.moved.store(true, std::sync::atomic::Ordering::Release);
        }
        metrics::counter!(
            UPSTREAM_ERROR_CODES,
            "cluster" => self.cluster.clone(),
            "api" => api_name(api),
            "code" => code.to_string()
        )
        .increment(1);
    }

    pub fn reachable(&self, up: bool) {
        metrics::gauge!(CLUSTER_REACHABLE, "cluster" => self.cluster.clone()).set(if up {
            1.0
        } else {
            0.0
        });
    }
}

/// An error answer the proxy itself gave to a request of `api`.
pub fn client_error(api: i16, code: i16) {
    metrics::counter!(CLIENT_ERRORS, "api" => api_name(api), "code" => code.to_string())
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_labels_are_kafkas_names() {
        assert_eq!(api_name(0), "Produce");
        assert_eq!(api_name(1), "Fetch");
        assert_eq!(api_name(3), "Metadata");
        assert_eq!(api_name(-1), "Unknown");
        assert_eq!(api_name(30_000), "Unknown");
    }

    #[test]
    fn families_are_prometheus_named_and_distinct() {
        for f in FAMILIES {
            assert!(f.name.starts_with("switchyard_"), "{}", f.name);
            assert_eq!(
                matches!(f.kind, Kind::Counter),
                f.name.ends_with("_total"),
                "{}",
                f.name
            );
            if matches!(f.kind, Kind::Histogram) {
                assert!(f.name.ends_with("_seconds"), "{}", f.name);
            }
            // No family is another's name plus a suffix OpenMetrics adds.
            for g in FAMILIES {
                for suffix in ["_total", "_count", "_sum", "_bucket", "_info", "_created"] {
                    assert_ne!(format!("{}{suffix}", g.name), f.name, "{} clashes", f.name);
                }
            }
            assert!(!f.help.is_empty());
        }
    }
}
