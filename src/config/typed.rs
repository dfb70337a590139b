//! The typed form of each `proxy.toml` section, as the rest of the proxy
//! reads it. Values here have passed the section validators: addresses are
//! parsed, patterns compiled, cluster names turned into [`ClusterIdx`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::credentials::{Credential, Mechanism};
use crate::domain::ids::ClusterIdx;
use crate::domain::pattern::Pattern;

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Bootstrap listener; virtual brokers listen on the same IP.
    pub listen: SocketAddr,
    /// Host name or IP that clients are told to connect to.
    pub advertised_host: String,
    pub broker_port_base: u16,
    pub cluster_id: String,
    /// This instance's name among several sharing one state (default: the
    /// host name and the listen port).
    pub instance_id: String,
    pub admin_socket: PathBuf,
    pub state_file: PathBuf,
    pub metrics_listen: Option<SocketAddr>,
    /// `log_format`: how `run` writes its log when `--log-format` is not
    /// given.
    pub log_format: LogFormat,
    /// Largest request frame a client may send, in bytes.
    pub max_frame_bytes: usize,
    /// Largest response frame accepted from an upstream broker, in bytes.
    pub max_upstream_frame_bytes: usize,
    /// Requests a client may have in flight before the proxy stops reading
    /// from it; bounds the memory one client can pin.
    pub max_in_flight: usize,
    pub metadata_refresh: Duration,
    /// How long a topic's upstream metadata may answer clients again (0:
    /// every client request is asked upstream, batched).
    pub metadata_cache: Duration,
    /// How often group progress and old-cluster writes are refreshed for
    /// the metrics.
    pub progress_refresh: Duration,
    /// A client that sends nothing for this long is disconnected.
    pub client_idle_timeout: Duration,
    /// A request frame, once begun, must arrive whole within this.
    pub client_frame_timeout: Duration,
    /// Client connections the proxy holds at once, in all.
    pub max_connections: usize,
    /// Client connections from one source address at once.
    pub max_connections_per_ip: usize,
    pub upstream_connect_timeout: Duration,
    /// How long the proxy waits for an upstream answer to a request it makes
    /// on its own behalf (Metadata, FindCoordinator, ApiVersions).
    pub upstream_request_timeout: Duration,
    /// Largest frame a client may send before it has authenticated.
    pub max_preauth_frame_bytes: usize,
    /// How long a drain (SIGTERM, SIGINT) waits for the requests in flight
    /// to be answered before it closes what is left.
    pub shutdown_grace: Duration,
    /// `[proxy.console] actions`: flips and group moves may be started
    /// from the console page.
    pub console_actions: bool,
    /// `[proxy.tls]`: clients connect with TLS.
    pub tls: Option<ClientTlsConfig>,
    /// `[proxy.sasl]`: clients must authenticate.
    pub sasl: Option<ClientSaslConfig>,
}

/// How the proxy writes its log to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: one line an event, coloured only on a terminal.
    #[default]
    Text,
    /// For log pipelines: one JSON object a line.
    Json,
}

/// `[state]`: where the runtime state (routes, flips, group moves) lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateConfig {
    /// The state file (`proxy.state_file`): one instance.
    File,
    /// A compacted topic on one of the clusters, shared by every instance.
    Kafka(KafkaStateConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaStateConfig {
    /// The cluster holding the topic; its TLS and SASL settings apply.
    pub cluster: ClusterIdx,
    pub topic: String,
    /// How often an instance renews its membership lease.
    pub lease_interval: Duration,
    /// A lease not renewed for this long has expired.
    pub lease_expiry: Duration,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub name: String,
    pub bootstrap: Vec<String>,
    pub node_id_base: i32,
    /// `[clusters.NAME.tls]`: how the proxy reaches this cluster.
    pub tls: Option<UpstreamTlsConfig>,
    /// `[clusters.NAME.sasl]`: the proxy's own credentials there.
    pub sasl: Option<UpstreamSaslConfig>,
}

#[derive(Debug, Clone)]
pub struct ClientTlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Present: client certificates are required and checked against it.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ClientSaslConfig {
    pub mechanisms: Vec<Mechanism>,
}

/// One `[[users]]` entry; `None` allow-lists allow everything.
#[derive(Debug, Clone)]
pub struct UserConfig {
    pub name: String,
    pub credential: Credential,
    /// Compiled once here, used as they are by the allow-lists.
    pub topics: Option<Vec<Pattern>>,
    pub groups: Option<Vec<Pattern>>,
}

#[derive(Debug, Clone)]
pub struct UpstreamTlsConfig {
    /// Absent: the system's root certificates.
    pub ca: Option<PathBuf>,
    /// Absent: the host of each broker address.
    pub server_name: Option<String>,
    /// Client certificate and key, for clusters that require mTLS.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct UpstreamSaslConfig {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: PasswordSource,
}

/// Where the proxy's upstream password is read from when it starts; the
/// config file itself never holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct RoutesConfig {
    pub default: ClusterIdx,
    pub topics: Vec<TopicRouteConfig>,
    /// Consumer groups coordinated by a cluster other than the default.
    pub groups: Vec<GroupRouteConfig>,
    /// Transactional ids whose transactions run on a cluster other than
    /// the default (same shape as a group rule).
    pub transactions: Vec<GroupRouteConfig>,
}

#[derive(Debug, Clone)]
pub struct GroupRouteConfig {
    pub pattern: Pattern,
    pub cluster: ClusterIdx,
}

#[derive(Debug, Clone)]
pub struct TopicRouteConfig {
    pub pattern: Pattern,
    pub produce: ClusterIdx,
    pub fetch: ClusterIdx,
}
