//! The shape of `proxy.toml` as serde reads it: every table and key, with
//! the defaults of those left out. Unknown keys are refused here; everything
//! else is checked by the section validators.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) proxy: RawProxy,
    pub(super) clusters: BTreeMap<String, RawCluster>,
    pub(super) routes: RawRoutes,
    #[serde(default)]
    pub(super) users: Vec<RawUser>,
    pub(super) state: Option<RawState>,
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
    #[serde(default = "default_admin_socket")]
    pub(super) admin_socket: PathBuf,
    #[serde(default = "default_state_file")]
    pub(super) state_file: PathBuf,
    pub(super) metrics_listen: Option<String>,
    #[serde(default = "default_usize::<MAX_FRAME_BYTES>")]
    pub(super) max_frame_bytes: usize,
    #[serde(default = "default_usize::<MAX_FRAME_BYTES>")]
    pub(super) max_upstream_frame_bytes: usize,
    #[serde(default = "default_usize::<128>")]
    pub(super) max_in_flight: usize,
    #[serde(default = "default_ms::<10_000>")]
    pub(super) metadata_refresh_ms: u64,
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
fn default_admin_socket() -> PathBuf {
    PathBuf::from("/tmp/switchyard.sock")
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
        let text = GOOD
            .replace("admin_socket = \"/tmp/switchyard.sock\"", "")
            .replace("state_file = \"switchyard.state.json\"", "");
        let p = Config::parse(&text).unwrap().proxy;
        assert_eq!(
            (p.admin_socket, p.state_file),
            (
                PathBuf::from("/tmp/switchyard.sock"),
                PathBuf::from("switchyard.state.json")
            )
        );
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
    fn missing_field_is_reported_with_its_table() {
        let e = err_of(&GOOD.replace("cluster_id = \"switchyard\"", ""));
        assert!(e.contains("missing field `cluster_id`"), "{e}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let e = err_of(&GOOD.replace("node_id_base = 0 ", "node_id_base = 0\nbootstrp = []\n"));
        assert!(e.contains("unknown field `bootstrp`"), "{e}");
    }
}
