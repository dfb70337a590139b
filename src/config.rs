//! `proxy.toml` → a typed, validated [`Config`].
//!
//! Everything the rest of the proxy reads about its setup comes from here, so
//! every mistake an operator can make in the file is caught once, at start-up,
//! with an error that names the key and says what would be right.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::credentials::{Credential, Mechanism};
use crate::domain::ids::ClusterIdx;
use crate::domain::pattern::Pattern;

/// Why a configuration could not be used; each variant names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The validated configuration of one proxy instance.
#[derive(Debug, Clone)]
pub struct Config {
    pub proxy: ProxyConfig,
    /// Upstream clusters, in name order; [`ClusterIdx`] indexes this.
    pub clusters: Vec<ClusterConfig>,
    pub routes: RoutesConfig,
    /// Users clients may authenticate as (`[[users]]`); empty without SASL.
    pub users: Vec<UserConfig>,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Bootstrap listener; virtual brokers listen on the same IP.
    pub listen: SocketAddr,
    /// Host name or IP that clients are told to connect to.
    pub advertised_host: String,
    pub broker_port_base: u16,
    pub cluster_id: String,
    pub admin_socket: PathBuf,
    pub state_file: PathBuf,
    pub metrics_listen: Option<SocketAddr>,
    /// Largest request frame a client may send, in bytes.
    pub max_frame_bytes: usize,
    /// Largest response frame accepted from an upstream broker, in bytes.
    pub max_upstream_frame_bytes: usize,
    /// Requests a client may have in flight before the proxy stops reading
    /// from it; bounds the memory one client can pin.
    pub max_in_flight: usize,
    pub metadata_refresh: Duration,
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
    /// `[proxy.tls]`: clients connect with TLS.
    pub tls: Option<ClientTlsConfig>,
    /// `[proxy.sasl]`: clients must authenticate.
    pub sasl: Option<ClientSaslConfig>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    proxy: RawProxy,
    clusters: BTreeMap<String, RawCluster>,
    routes: RawRoutes,
    #[serde(default)]
    users: Vec<RawUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    credentials: String,
    topics: Option<Vec<String>>,
    groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxyTls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxySasl {
    mechanisms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClusterTls {
    ca: Option<PathBuf>,
    server_name: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClusterSasl {
    mechanism: String,
    username: String,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    /// Accepted by the parser only to be refused with a clear message.
    password: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    listen: String,
    advertised_host: String,
    broker_port_base: u16,
    cluster_id: String,
    #[serde(default = "default_admin_socket")]
    admin_socket: PathBuf,
    #[serde(default = "default_state_file")]
    state_file: PathBuf,
    metrics_listen: Option<String>,
    #[serde(default = "default_max_frame_bytes")]
    max_frame_bytes: usize,
    #[serde(default = "default_max_frame_bytes")]
    max_upstream_frame_bytes: usize,
    #[serde(default = "default_max_in_flight")]
    max_in_flight: usize,
    #[serde(default = "default_metadata_refresh_ms")]
    metadata_refresh_ms: u64,
    #[serde(default = "default_client_idle_timeout_ms")]
    client_idle_timeout_ms: u64,
    #[serde(default = "default_client_frame_timeout_ms")]
    client_frame_timeout_ms: u64,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_max_connections_per_ip")]
    max_connections_per_ip: usize,
    #[serde(default = "default_connect_timeout_ms")]
    upstream_connect_timeout_ms: u64,
    #[serde(default = "default_request_timeout_ms")]
    upstream_request_timeout_ms: u64,
    #[serde(default = "default_max_preauth_frame_bytes")]
    max_preauth_frame_bytes: usize,
    tls: Option<RawProxyTls>,
    sasl: Option<RawProxySasl>,
}

fn default_max_preauth_frame_bytes() -> usize {
    // SASL messages and ApiVersions are a few hundred bytes; this leaves
    // room for long user names and client software names, no more.
    8 * 1024
}

fn default_admin_socket() -> PathBuf {
    PathBuf::from("/tmp/switchyard.sock")
}
fn default_state_file() -> PathBuf {
    PathBuf::from("switchyard.state.json")
}
fn default_max_frame_bytes() -> usize {
    // Kafka's own socket.request.max.bytes.
    100 * 1024 * 1024
}
fn default_max_in_flight() -> usize {
    128
}
fn default_metadata_refresh_ms() -> u64 {
    10_000
}
fn default_client_idle_timeout_ms() -> u64 {
    // Kafka's own connections.max.idle.ms.
    600_000
}
fn default_client_frame_timeout_ms() -> u64 {
    30_000
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_connections_per_ip() -> usize {
    1_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_request_timeout_ms() -> u64 {
    10_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    bootstrap: Vec<String>,
    node_id_base: i32,
    tls: Option<RawClusterTls>,
    sasl: Option<RawClusterSasl>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutes {
    default: String,
    #[serde(default)]
    topic: Vec<RawTopicRoute>,
    #[serde(default)]
    group: Vec<RawGroupRoute>,
    #[serde(default)]
    transaction: Vec<RawGroupRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroupRoute {
    pattern: String,
    cluster: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopicRoute {
    pattern: String,
    produce: Option<String>,
    fetch: Option<String>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        Config::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        let p = raw.proxy;
        let listen: SocketAddr = p.listen.parse().map_err(|_| {
            invalid(
                "proxy.listen",
                format!(
                    "'{}' is not an IP:port address (e.g. \"127.0.0.1:9092\")",
                    p.listen
                ),
            )
        })?;
        let metrics_listen = p
            .metrics_listen
            .as_deref()
            .map(|m| {
                m.parse().map_err(|_| {
                    invalid(
                        "proxy.metrics_listen",
                        format!("'{m}' is not an IP:port address (e.g. \"127.0.0.1:9644\")"),
                    )
                })
            })
            .transpose()?;
        if p.advertised_host.trim().is_empty() {
            return Err(invalid("proxy.advertised_host", "must not be empty"));
        }
        if p.cluster_id.trim().is_empty() {
            return Err(invalid("proxy.cluster_id", "must not be empty"));
        }
        if p.max_frame_bytes < 1024 {
            return Err(invalid(
                "proxy.max_frame_bytes",
                "must be at least 1024 bytes",
            ));
        }
        if p.max_upstream_frame_bytes < 1024 {
            return Err(invalid(
                "proxy.max_upstream_frame_bytes",
                "must be at least 1024 bytes",
            ));
        }
        for (key, n) in [
            ("proxy.max_in_flight", p.max_in_flight),
            ("proxy.max_connections", p.max_connections),
            ("proxy.max_connections_per_ip", p.max_connections_per_ip),
        ] {
            if n == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        for (key, ms) in [
            ("proxy.metadata_refresh_ms", p.metadata_refresh_ms),
            ("proxy.client_idle_timeout_ms", p.client_idle_timeout_ms),
            ("proxy.client_frame_timeout_ms", p.client_frame_timeout_ms),
            (
                "proxy.upstream_connect_timeout_ms",
                p.upstream_connect_timeout_ms,
            ),
            (
                "proxy.upstream_request_timeout_ms",
                p.upstream_request_timeout_ms,
            ),
        ] {
            if ms == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }

        if raw.clusters.is_empty() {
            return Err(invalid(
                "clusters",
                "no upstream cluster configured; add a [clusters.NAME] table",
            ));
        }
        let mut clusters = Vec::with_capacity(raw.clusters.len());
        for (name, c) in raw.clusters {
            let key = format!("clusters.{name}.bootstrap");
            if c.bootstrap.is_empty() {
                return Err(invalid(key, "needs at least one \"host:port\" address"));
            }
            for addr in &c.bootstrap {
                let valid = addr
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !valid {
                    return Err(invalid(
                        key,
                        format!("'{addr}' is not a \"host:port\" address"),
                    ));
                }
            }
            if c.node_id_base < 0 {
                return Err(invalid(
                    format!("clusters.{name}.node_id_base"),
                    "must not be negative",
                ));
            }
            if let Some(other) = clusters
                .iter()
                .find(|o: &&ClusterConfig| o.node_id_base == c.node_id_base)
            {
                return Err(invalid(
                    format!("clusters.{name}.node_id_base"),
                    format!(
                        "{} is also the node_id_base of cluster '{}'; give each cluster its own \
                         range so their brokers get distinct virtual node ids",
                        c.node_id_base, other.name
                    ),
                ));
            }
            let tls = c.tls.map(|t| upstream_tls(&name, t)).transpose()?;
            let sasl = c.sasl.map(|s| upstream_sasl(&name, s)).transpose()?;
            clusters.push(ClusterConfig {
                name,
                bootstrap: c.bootstrap,
                node_id_base: c.node_id_base,
                tls,
                sasl,
            });
        }

        let lookup = |key: String, name: &str| -> Result<ClusterIdx, ConfigError> {
            clusters
                .iter()
                .position(|c| c.name == name)
                .map(ClusterIdx)
                .ok_or_else(|| {
                    let known: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
                    invalid(
                        key,
                        format!(
                            "names cluster '{name}', which is not configured (known: {})",
                            known.join(", ")
                        ),
                    )
                })
        };
        let default = lookup("routes.default".into(), &raw.routes.default)?;
        let mut topics = Vec::with_capacity(raw.routes.topic.len());
        for (i, t) in raw.routes.topic.into_iter().enumerate() {
            let key = |field: &str| format!("routes.topic[{i}].{field}");
            let pattern = Pattern::new(&t.pattern).map_err(|e| invalid(key("pattern"), e))?;
            if t.produce.is_none() && t.fetch.is_none() {
                return Err(invalid(
                    format!("routes.topic[{i}]"),
                    format!(
                        "rule for '{}' names neither produce nor fetch; set at least one",
                        t.pattern
                    ),
                ));
            }
            let produce = match &t.produce {
                Some(name) => lookup(key("produce"), name)?,
                None => default,
            };
            let fetch = match &t.fetch {
                Some(name) => lookup(key("fetch"), name)?,
                None => default,
            };
            topics.push(TopicRouteConfig {
                pattern,
                produce,
                fetch,
            });
        }

        // Group and transactional-id rules: a pattern and a cluster each.
        let coordinator_rules = |table: &str, raw: Vec<RawGroupRoute>| {
            raw.into_iter()
                .enumerate()
                .map(|(i, g)| {
                    let pattern = Pattern::new(&g.pattern)
                        .map_err(|e| invalid(format!("routes.{table}[{i}].pattern"), e))?;
                    let cluster = lookup(format!("routes.{table}[{i}].cluster"), &g.cluster)?;
                    Ok(GroupRouteConfig { pattern, cluster })
                })
                .collect::<Result<Vec<_>, ConfigError>>()
        };
        let groups = coordinator_rules("group", raw.routes.group)?;
        let transactions = coordinator_rules("transaction", raw.routes.transaction)?;

        if p.max_preauth_frame_bytes < 256 || p.max_preauth_frame_bytes > p.max_frame_bytes {
            return Err(invalid(
                "proxy.max_preauth_frame_bytes",
                "must be at least 256 bytes and at most proxy.max_frame_bytes",
            ));
        }
        let tls = p.tls.map(|t| ClientTlsConfig {
            cert: t.cert,
            key: t.key,
            client_ca: t.client_ca,
        });
        let sasl = p.sasl.map(client_sasl).transpose()?;
        let users = users(raw.users, sasl.as_ref())?;

        Ok(Config {
            users,
            proxy: ProxyConfig {
                max_preauth_frame_bytes: p.max_preauth_frame_bytes,
                tls,
                sasl,
                listen,
                advertised_host: p.advertised_host,
                broker_port_base: p.broker_port_base,
                cluster_id: p.cluster_id,
                admin_socket: p.admin_socket,
                state_file: p.state_file,
                metrics_listen,
                max_frame_bytes: p.max_frame_bytes,
                max_upstream_frame_bytes: p.max_upstream_frame_bytes,
                max_in_flight: p.max_in_flight,
                metadata_refresh: Duration::from_millis(p.metadata_refresh_ms),
                client_idle_timeout: Duration::from_millis(p.client_idle_timeout_ms),
                client_frame_timeout: Duration::from_millis(p.client_frame_timeout_ms),
                max_connections: p.max_connections,
                max_connections_per_ip: p.max_connections_per_ip,
                upstream_connect_timeout: Duration::from_millis(p.upstream_connect_timeout_ms),
                upstream_request_timeout: Duration::from_millis(p.upstream_request_timeout_ms),
            },
            clusters,
            routes: RoutesConfig {
                default,
                topics,
                groups,
                transactions,
            },
        })
    }

    /// The index of the cluster named `name`, if the config has one.
    pub fn cluster_idx(&self, name: &str) -> Option<ClusterIdx> {
        self.clusters
            .iter()
            .position(|c| c.name == name)
            .map(ClusterIdx)
    }

    pub fn cluster(&self, idx: ClusterIdx) -> &ClusterConfig {
        &self.clusters[idx.0]
    }
}

fn mechanism(key: &str, name: &str) -> Result<Mechanism, ConfigError> {
    name.parse().map_err(|e: String| invalid(key, e))
}

fn client_sasl(raw: RawProxySasl) -> Result<ClientSaslConfig, ConfigError> {
    if raw.mechanisms.is_empty() {
        return Err(invalid(
            "proxy.sasl.mechanisms",
            "is empty; list at least one of \"SCRAM-SHA-512\", \"SCRAM-SHA-256\", \"PLAIN\"",
        ));
    }
    let mut mechanisms = Vec::new();
    for name in &raw.mechanisms {
        let m = mechanism("proxy.sasl.mechanisms", name)?;
        if !mechanisms.contains(&m) {
            mechanisms.push(m);
        }
    }
    Ok(ClientSaslConfig { mechanisms })
}

fn users(
    raw: Vec<RawUser>,
    sasl: Option<&ClientSaslConfig>,
) -> Result<Vec<UserConfig>, ConfigError> {
    let Some(sasl) = sasl else {
        if raw.is_empty() {
            return Ok(Vec::new());
        }
        return Err(invalid(
            "users",
            "users are configured but [proxy.sasl] is not, so clients would not be asked to \
             authenticate; add [proxy.sasl] with mechanisms = [...]",
        ));
    };
    if raw.is_empty() {
        return Err(invalid(
            "proxy.sasl",
            "SASL is on but no [[users]] are configured; add one with `switchyard user add NAME`",
        ));
    }
    let mut users: Vec<UserConfig> = Vec::with_capacity(raw.len());
    for (i, u) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("users[{i}].{field}");
        if u.name.is_empty() {
            return Err(invalid(key("name"), "must not be empty"));
        }
        if users.iter().any(|o| o.name == u.name) {
            return Err(invalid(
                key("name"),
                format!("user '{}' is listed twice", u.name),
            ));
        }
        let credential: Credential = u
            .credentials
            .parse()
            .map_err(|e: String| invalid(key("credentials"), e))?;
        if !sasl.mechanisms.iter().any(|m| credential.allows(*m)) {
            return Err(invalid(
                key("credentials"),
                format!(
                    "user '{}' has {} credentials, which none of proxy.sasl.mechanisms can check; \
                     enable {} or PLAIN",
                    u.name,
                    credential.mechanism(),
                    credential.mechanism()
                ),
            ));
        }
        let patterns = |field: &str, list: Option<Vec<String>>| {
            list.map(|l| {
                l.iter()
                    .map(|p| Pattern::new(p).map_err(|e| invalid(key(field), e)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
        };
        users.push(UserConfig {
            name: u.name,
            credential,
            topics: patterns("topics", u.topics)?,
            groups: patterns("groups", u.groups)?,
        });
    }
    Ok(users)
}

fn upstream_tls(cluster: &str, raw: RawClusterTls) -> Result<UpstreamTlsConfig, ConfigError> {
    if raw.cert.is_some() != raw.key.is_some() {
        return Err(invalid(
            format!("clusters.{cluster}.tls"),
            "cert and key go together (mTLS); set both or neither",
        ));
    }
    if raw
        .server_name
        .as_deref()
        .is_some_and(|n| n.trim().is_empty())
    {
        return Err(invalid(
            format!("clusters.{cluster}.tls.server_name"),
            "must not be empty; leave it out to use each broker's host name",
        ));
    }
    Ok(UpstreamTlsConfig {
        ca: raw.ca,
        server_name: raw.server_name,
        cert: raw.cert,
        key: raw.key,
    })
}

fn upstream_sasl(cluster: &str, raw: RawClusterSasl) -> Result<UpstreamSaslConfig, ConfigError> {
    let key = |field: &str| format!("clusters.{cluster}.sasl.{field}");
    if raw.password.is_some() {
        return Err(invalid(
            key("password"),
            "passwords are never written in the config; use password_env (an environment \
             variable's name) or password_file",
        ));
    }
    let password = match (raw.password_env, raw.password_file) {
        (Some(var), None) if !var.is_empty() => PasswordSource::Env(var),
        (None, Some(path)) => PasswordSource::File(path),
        (Some(_), Some(_)) => {
            return Err(invalid(
                format!("clusters.{cluster}.sasl"),
                "set one of password_env and password_file, not both",
            ))
        }
        _ => {
            return Err(invalid(
                format!("clusters.{cluster}.sasl"),
                "needs password_env (an environment variable's name) or password_file",
            ))
        }
    };
    if raw.username.is_empty() {
        return Err(invalid(key("username"), "must not be empty"));
    }
    Ok(UpstreamSaslConfig {
        mechanism: mechanism(&key("mechanism"), &raw.mechanism)?,
        username: raw.username,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example config shipped with the project; keeping it the test
    /// input keeps it valid.
    const GOOD: &str = include_str!("../proxy.toml");

    fn err_of(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn example_config_parses_with_defaults() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.clusters.len(), 2);
        assert_eq!(c.cluster(c.routes.default).name, "old");
        let rule = &c.routes.topics[0];
        assert_eq!(rule.pattern.as_str(), "payments.*");
        assert_eq!(c.cluster(rule.produce).name, "new");
        assert_eq!(c.cluster(rule.fetch).name, "new");
        assert_eq!(c.proxy.max_frame_bytes, 100 * 1024 * 1024);
    }

    #[test]
    fn unknown_cluster_in_route_names_the_key_and_known_clusters() {
        let e = err_of(&GOOD.replace("produce = \"new\"", "produce = \"neww\""));
        assert_eq!(
            e,
            "routes.topic[0].produce: names cluster 'neww', which is not configured (known: new, old)"
        );
    }

    #[test]
    fn produce_and_fetch_may_name_different_clusters() {
        let c = Config::parse(&GOOD.replace("fetch = \"new\"", "fetch = \"old\"")).unwrap();
        let rule = &c.routes.topics[0];
        assert_eq!(c.cluster(rule.produce).name, "new");
        assert_eq!(c.cluster(rule.fetch).name, "old");
    }

    #[test]
    fn group_rule_names_a_known_cluster() {
        let c = Config::parse(&format!(
            "{GOOD}\n[[routes.group]]\npattern = \"billing-*\"\ncluster = \"new\"\n"
        ))
        .unwrap();
        assert_eq!(c.cluster(c.routes.groups[0].cluster).name, "new");
        let e = err_of(&format!(
            "{GOOD}\n[[routes.group]]\npattern = \"g\"\ncluster = \"mars\"\n"
        ));
        assert!(
            e.starts_with("routes.group[0].cluster: names cluster 'mars'"),
            "{e}"
        );
    }

    #[test]
    fn bad_listen_address_names_the_key() {
        let e = err_of(&GOOD.replace("127.0.0.1:9092", "localhost"));
        assert!(
            e.starts_with("proxy.listen: 'localhost' is not an IP:port"),
            "{e}"
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

    #[test]
    fn clashing_node_id_bases_are_refused() {
        let e = err_of(&GOOD.replace("node_id_base = 1000 ", "node_id_base = 0 "));
        assert!(e.starts_with("clusters.old.node_id_base: 0 is also"), "{e}");
    }

    fn with_security(users: &str) -> String {
        let proxy_tables = "[proxy.tls]\ncert = \"certs/proxy.pem\"\nkey = \"certs/proxy-key.pem\"\n\
             client_ca = \"certs/ca.pem\"\n\n[proxy.sasl]\nmechanisms = [\"SCRAM-SHA-512\", \"PLAIN\"]\n\n";
        let text = GOOD.replacen("\n[clusters.", &format!("\n{proxy_tables}[clusters."), 1);
        format!(
            "{text}\n{users}\n[clusters.new.tls]\nserver_name = \"b-1.new.example.com\"\n\n\
             [clusters.new.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"switchyard\"\n\
             password_env = \"NEW_PW\"\n"
        )
    }

    fn alice() -> String {
        let c = Credential::derive(Mechanism::ScramSha512, "pw", vec![1; 16], 4096);
        format!(
            "[[users]]\nname = \"alice\"\ncredentials = \"{}\"\ntopics = [\"orders\", \"payments.*\"]\n",
            c.encode()
        )
    }

    #[test]
    fn security_settings_parse_into_typed_config() {
        let c = Config::parse(&with_security(&alice())).unwrap();
        let tls = c.proxy.tls.as_ref().unwrap();
        assert_eq!(tls.client_ca.as_deref(), Some(Path::new("certs/ca.pem")));
        assert_eq!(
            c.proxy.sasl.as_ref().unwrap().mechanisms,
            vec![Mechanism::ScramSha512, Mechanism::Plain]
        );
        assert_eq!(c.proxy.max_preauth_frame_bytes, 8192);
        assert_eq!(c.users[0].name, "alice");
        assert_eq!(c.users[0].topics.as_ref().unwrap().len(), 2);
        assert!(c.users[0].groups.is_none());
        let new = c.clusters.iter().find(|c| c.name == "new").unwrap();
        let sasl = new.sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanism, Mechanism::ScramSha256);
        assert_eq!(sasl.password, PasswordSource::Env("NEW_PW".into()));
        assert_eq!(
            new.tls.as_ref().unwrap().server_name.as_deref(),
            Some("b-1.new.example.com")
        );
        assert!(c
            .clusters
            .iter()
            .find(|c| c.name == "old")
            .unwrap()
            .sasl
            .is_none());
    }

    #[test]
    fn inline_upstream_password_is_refused() {
        let text =
            with_security(&alice()).replace("password_env = \"NEW_PW\"", "password = \"hunter2\"");
        let e = err_of(&text);
        assert!(
            e.starts_with("clusters.new.sasl.password: passwords are never written"),
            "{e}"
        );
        assert!(!e.contains("hunter2"));
    }

    #[test]
    fn users_and_sasl_need_each_other() {
        let e = err_of(&format!("{GOOD}\n{}", alice()));
        assert!(
            e.starts_with("users: users are configured but [proxy.sasl] is not"),
            "{e}"
        );
        let e = err_of(&with_security(""));
        assert!(
            e.starts_with("proxy.sasl: SASL is on but no [[users]]"),
            "{e}"
        );
    }

    #[test]
    fn bad_credentials_name_the_user_key_without_the_value() {
        let e = err_of(&with_security(
            "[[users]]\nname = \"bob\"\ncredentials = \"PLAIN:hunter2\"\n",
        ));
        assert!(
            e.starts_with("users[0].credentials: PLAIN field without '='"),
            "{e}"
        );
        assert!(!e.contains("hunter2"));
        let sha256 = Credential::derive(Mechanism::ScramSha256, "pw", vec![1; 16], 4096).encode();
        let e = err_of(
            &with_security(&format!(
                "[[users]]\nname = \"c\"\ncredentials = \"{sha256}\"\n"
            ))
            .replace("\"SCRAM-SHA-512\", \"PLAIN\"", "\"SCRAM-SHA-512\""),
        );
        assert!(
            e.contains("has SCRAM-SHA-256 credentials, which none of"),
            "{e}"
        );
    }

    #[test]
    fn bad_bootstrap_address_is_refused() {
        let e = err_of(&GOOD.replace("127.0.0.1:29092", "nohost"));
        assert_eq!(
            e,
            "clusters.new.bootstrap: 'nohost' is not a \"host:port\" address"
        );
    }
}
