//! The shape of `proxy.toml` as serde reads it: every table and key, with
//! the defaults of those left out. Unknown keys are refused here; everything
//! else is checked by the section validators.
//!
//! Each section is read on its own, so that a mistake in the shape of one
//! (an unknown key, a missing one, a string where a number goes) is
//! reported with its key and the other sections are still checked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::{ConfigError, Problems};
use super::typed::LogFormat;

/// The file's sections; `None` (or a `None` entry) where a section's shape
/// is wrong or a required one is missing, the problem already recorded.
pub(super) struct RawConfig {
    pub(super) proxy: Option<RawProxy>,
    /// Every `[clusters.NAME]` in name order, the order cluster indexes
    /// count in.
    pub(super) clusters: Vec<(String, Option<RawCluster>)>,
    pub(super) routes: Option<RawRoutes>,
    pub(super) users: Vec<Option<RawUser>>,
    pub(super) state: Option<RawState>,
}

const SECTIONS: &str = "[proxy], [clusters.NAME], [routes], [[users]] and [state]";

impl RawConfig {
    /// Parses `text` as TOML and reads each section. Text that is not TOML
    /// at all is the one error returned; the sections' problems go to
    /// `problems`.
    pub(super) fn read(text: &str, problems: &mut Problems) -> Result<RawConfig, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: syntax_message(text, &e),
        })?;
        let proxy = table.remove("proxy");
        let clusters = table.remove("clusters");
        let routes = table.remove("routes");
        let users = table.remove("users");
        let state = table.remove("state");
        for key in table.keys() {
            problems.push(
                key.as_str(),
                format!("unknown table or key; a config has {SECTIONS}"),
            );
        }
        Ok(RawConfig {
            proxy: required("proxy", proxy, problems),
            clusters: clusters_of(clusters, problems),
            routes: required("routes", routes, problems),
            users: users_of(users, problems),
            state: state.and_then(|s| section("state", s, problems)),
        })
    }
}

/// Where TOML that does not parse goes wrong, on one line: the line,
/// column and table, and what the parser expected.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return format!("not valid TOML: {}", e.message());
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let table = before
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            l.starts_with('[')
                .then(|| l.split('#').next().unwrap_or(l).trim())
        })
        .map(|t| format!(" (in {t})"))
        .unwrap_or_default();
    format!(
        "not valid TOML: line {line}, column {column}{table}: {}",
        e.message().trim_end()
    )
}

fn required<T: DeserializeOwned>(
    key: &str,
    value: Option<toml::Value>,
    problems: &mut Problems,
) -> Option<T> {
    match value {
        Some(v) => section(key, v, problems),
        None => {
            problems.push(key, format!("the [{key}] table is missing"));
            None
        }
    }
}

/// `value` read as a `T`; a mistake in its shape is recorded with the full
/// key it is at (`key` and the path inside).
fn section<T: DeserializeOwned>(
    key: &str,
    value: toml::Value,
    problems: &mut Problems,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let message = e.inner().message().to_owned();
            let mut at = match inner.as_str() {
                "." => key.to_owned(),
                p if p.starts_with('[') => format!("{key}{p}"),
                p => format!("{key}.{p}"),
            };
            // A missing key is reported at its table; name the key itself.
            if let Some(field) = field_named(&message, "missing field `") {
                at = format!("{at}.{field}");
            }
            problems.push(at, message);
            None
        }
    }
}

fn field_named<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

fn clusters_of(
    value: Option<toml::Value>,
    problems: &mut Problems,
) -> Vec<(String, Option<RawCluster>)> {
    match value {
        None => Vec::new(),
        Some(toml::Value::Table(t)) => {
            // A BTreeMap: name order, whatever the file's order.
            let sorted: BTreeMap<String, toml::Value> = t.into_iter().collect();
            sorted
                .into_iter()
                .map(|(name, v)| {
                    let raw = section(&format!("clusters.{name}"), v, problems);
                    (name, raw)
                })
                .collect()
        }
        Some(_) => {
            problems.push("clusters", "must be tables: [clusters.NAME]");
            Vec::new()
        }
    }
}

fn users_of(value: Option<toml::Value>, problems: &mut Problems) -> Vec<Option<RawUser>> {
    match value {
        None => Vec::new(),
        Some(toml::Value::Array(users)) => users
            .into_iter()
            .enumerate()
            .map(|(i, u)| section(&format!("users[{i}]"), u, problems))
            .collect(),
        Some(_) => {
            problems.push("users", "must be [[users]] tables");
            Vec::new()
        }
    }
}

/// `[state]`: where the runtime state lives (absent: the state file).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    #[serde(default = "default_store")]
    pub(super) store: String,
    pub(super) cluster: Option<String>,
    #[serde(default = "default_state_topic")]
    pub(super) topic: String,
    #[serde(default = "default_ms::<1_000>")]
    pub(super) lease_interval_ms: u64,
    #[serde(default = "default_ms::<10_000>")]
    pub(super) lease_expiry_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) name: String,
    pub(super) credentials: String,
    pub(super) topics: Option<Vec<String>>,
    pub(super) groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxyTls {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    pub(super) client_ca: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxySasl {
    pub(super) mechanisms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClusterTls {
    pub(super) ca: Option<PathBuf>,
    pub(super) server_name: Option<String>,
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClusterSasl {
    pub(super) mechanism: String,
    pub(super) username: String,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    /// Accepted by the parser only to be refused with a clear message.
    pub(super) password: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub(super) listen: String,
    pub(super) advertised_host: String,
    pub(super) broker_port_base: u16,
    pub(super) cluster_id: String,
    pub(super) instance_id: Option<String>,
    /// Absent: the proxy's own runtime directory
    /// ([`super::paths::default_admin_socket`]).
    pub(super) admin_socket: Option<PathBuf>,
    #[serde(default = "default_state_file")]
    pub(super) state_file: PathBuf,
    pub(super) metrics_listen: Option<String>,
    /// Absent: text; the `--log-format` flag of `run` wins over it.
    #[serde(default)]
    pub(super) log_format: LogFormat,
    #[serde(default = "default_usize::<MAX_FRAME_BYTES>")]
    pub(super) max_frame_bytes: usize,
    #[serde(default = "default_usize::<MAX_FRAME_BYTES>")]
    pub(super) max_upstream_frame_bytes: usize,
    #[serde(default = "default_usize::<128>")]
    pub(super) max_in_flight: usize,
    #[serde(default = "default_ms::<10_000>")]
    pub(super) metadata_refresh_ms: u64,
    #[serde(default = "default_ms::<1_000>")]
    pub(super) metadata_cache_ms: u64,
    #[serde(default = "default_ms::<30_000>")]
    pub(super) progress_refresh_ms: u64,
    #[serde(default = "default_ms::<CLIENT_IDLE_TIMEOUT_MS>")]
    pub(super) client_idle_timeout_ms: u64,
    #[serde(default = "default_ms::<30_000>")]
    pub(super) client_frame_timeout_ms: u64,
    #[serde(default = "default_usize::<10_000>")]
    pub(super) max_connections: usize,
    #[serde(default = "default_usize::<1_000>")]
    pub(super) max_connections_per_ip: usize,
    #[serde(default = "default_ms::<5_000>")]
    pub(super) upstream_connect_timeout_ms: u64,
    #[serde(default = "default_ms::<10_000>")]
    pub(super) upstream_request_timeout_ms: u64,
    #[serde(default = "default_usize::<MAX_PREAUTH_FRAME_BYTES>")]
    pub(super) max_preauth_frame_bytes: usize,
    #[serde(default = "default_ms::<30_000>")]
    pub(super) shutdown_grace_ms: u64,
    pub(super) tls: Option<RawProxyTls>,
    pub(super) sasl: Option<RawProxySasl>,
    #[serde(default)]
    pub(super) console: RawConsole,
}

/// `[proxy.console]`: the page on `metrics_listen`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    /// Flips and group moves from the page; off unless set.
    #[serde(default)]
    pub(super) actions: bool,
}

/// Kafka's own socket.request.max.bytes.
const MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;
/// SASL messages and ApiVersions are a few hundred bytes; this leaves room
/// for long user names and client software names, no more.
const MAX_PREAUTH_FRAME_BYTES: usize = 8 * 1024;
/// Kafka's own connections.max.idle.ms.
const CLIENT_IDLE_TIMEOUT_MS: u64 = 600_000;

fn default_store() -> String {
    "file".to_owned()
}
fn default_state_topic() -> String {
    "__switchyard_state".to_owned()
}
fn default_state_file() -> PathBuf {
    PathBuf::from("switchyard.state.json")
}
/// The default of a size or count key: serde wants a function, this names
/// the value where the key is declared.
fn default_usize<const N: usize>() -> usize {
    N
}
/// The default of a key in milliseconds, as [`default_usize`].
fn default_ms<const MS: u64>() -> u64 {
    MS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) bootstrap: Vec<String>,
    pub(super) node_id_base: i32,
    pub(super) tls: Option<RawClusterTls>,
    pub(super) sasl: Option<RawClusterSasl>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoutes {
    pub(super) default: String,
    #[serde(default)]
    pub(super) topic: Vec<RawTopicRoute>,
    #[serde(default)]
    pub(super) group: Vec<RawGroupRoute>,
    #[serde(default)]
    pub(super) transaction: Vec<RawGroupRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroupRoute {
    pub(super) pattern: String,
    pub(super) cluster: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTopicRoute {
    pub(super) pattern: String,
    pub(super) produce: Option<String>,
    pub(super) fetch: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::fixtures::{err_of, GOOD};
    use crate::config::Config;

    #[test]
    fn left_out_keys_take_their_defaults() {
        let text = GOOD.replace("state_file = \"switchyard.state.json\"", "");
        let p = Config::parse(&text).unwrap().proxy;
        assert_eq!(
            (p.admin_socket, p.state_file),
            (
                crate::config::default_admin_socket(),
                PathBuf::from("switchyard.state.json")
            )
        );
        assert_eq!(p.log_format, crate::config::LogFormat::Text);
        assert_eq!(
            [
                p.max_frame_bytes,
                p.max_upstream_frame_bytes,
                p.max_in_flight,
                p.max_connections,
                p.max_connections_per_ip,
                p.max_preauth_frame_bytes,
            ],
            [
                100 * 1024 * 1024,
                100 * 1024 * 1024,
                128,
                10_000,
                1_000,
                8 * 1024
            ]
        );
        assert_eq!(
            [
                p.metadata_refresh,
                p.client_idle_timeout,
                p.client_frame_timeout,
                p.upstream_connect_timeout,
                p.upstream_request_timeout,
            ]
            .map(|d| d.as_millis()),
            [10_000, 600_000, 30_000, 5_000, 10_000]
        );
    }

    #[test]
    fn missing_field_is_reported_with_its_key() {
        let e = err_of(&GOOD.replace("cluster_id = \"switchyard\"", ""));
        assert!(
            e.starts_with("proxy.cluster_id: missing field `cluster_id`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_is_refused_with_its_key() {
        let e = err_of(&GOOD.replace(
            "node_id_base = 10000 ",
            "node_id_base = 10000\nbootstrp = []\n",
        ));
        assert!(
            e.starts_with("clusters.old.bootstrp: unknown field `bootstrp`"),
            "{e}"
        );
    }

    #[test]
    fn each_section_reports_its_shape_mistakes() {
        let text = GOOD
            .replace("broker_port_base = 9100", "broker_port_base = \"9100\"")
            .replace("node_id_base = 20000", "node_id_base = \"x\"")
            .replace("[[routes.topic]]", "[[routes.topic]]\nproduc = \"new\"")
            + "\n[[users]]\nname = 1\n\n[extra]\n";
        let e = err_of(&text);
        for expected in [
            "proxy.broker_port_base: invalid type: string \"9100\", expected u16",
            "clusters.new.node_id_base: invalid type: string \"x\", expected i32",
            "routes.topic[0].produc: unknown field `produc`",
            "users[0].name: invalid type: integer `1`, expected a string",
            "extra: unknown table or key",
        ] {
            assert!(e.contains(expected), "{expected} in {e}");
        }
    }

    #[test]
    fn text_that_is_not_toml_says_where() {
        let e = err_of(&GOOD.replace("cluster_id = \"switchyard\"", "cluster_id = \"switchyard"));
        assert!(
            e.contains("not valid TOML: line 8, column") && e.contains("(in [proxy])"),
            "{e}"
        );
    }
}
