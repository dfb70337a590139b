//! `proxy.toml` → a typed, validated [`Config`].
//!
//! Everything the rest of the proxy reads about its setup comes from here, so
//! every mistake an operator can make in the file is caught once, at start-up,
//! with an error that names the key and says what would be right. Every
//! mistake found is listed, not only the first: `switchyard check` shows them
//! all at once.
//!
//! `raw.rs` is the file's shape, `typed.rs` what the proxy reads; one
//! validator per section (`proxy.rs`, `clusters.rs`, `routes.rs`, `users.rs`,
//! `state.rs`, with `tls.rs` and `sasl.rs` for the tables inside them) turns
//! one into the other; `numbering.rs` checks node ids and ports across
//! sections, `files.rs` the files and variables the config names, and
//! `paths.rs` knows the default paths and finds the admin socket for the
//! admin commands.

mod clusters;
mod error;
mod files;
#[cfg(test)]
mod fixtures;
mod numbering;
mod paths;
mod proxy;
mod raw;
mod routes;
mod sasl;
mod state;
mod tls;
mod typed;
mod users;

use std::path::Path;

use crate::domain::ids::ClusterIdx;

pub use error::{ConfigError, Problem};
pub use numbering::NODE_ID_SPAN;
pub use paths::{
    admin_socket_of, beside_config, default_admin_socket, prepare_socket_dir, SocketLookupError,
};
pub use typed::{
    ClientSaslConfig, ClientTlsConfig, ClusterConfig, GroupRouteConfig, LogFormat, PasswordSource,
    ProxyConfig, RoutesConfig, TopicRouteConfig, UpstreamSaslConfig, UpstreamTlsConfig, UserConfig,
};
pub use typed::{KafkaStateConfig, StateConfig};

use error::Problems;
use raw::RawConfig;

/// The validated configuration of one proxy instance.
#[derive(Debug, Clone)]
pub struct Config {
    pub proxy: ProxyConfig,
    /// Upstream clusters, in name order; [`ClusterIdx`] indexes this.
    pub clusters: Vec<ClusterConfig>,
    pub routes: RoutesConfig,
    /// Users clients may authenticate as (`[[users]]`); empty without SASL.
    pub users: Vec<UserConfig>,
    /// `[state]`: where routes, flips and group moves are kept.
    pub state: StateConfig,
}

/// Each section as far as it validated: `None` where it has problems.
struct Sections {
    proxy: Option<ProxyConfig>,
    clusters: Vec<(String, Option<ClusterConfig>)>,
    routes: Option<RoutesConfig>,
    users: Option<Vec<UserConfig>>,
    state: Option<StateConfig>,
}

impl Config {
    /// Reads and validates a config file, and checks that the files and
    /// environment variables it names can be read. A relative `state_file`
    /// or `admin_socket` is taken from the config file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_text(&text, Some(path)).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates config text. Paths stay as written, and the
    /// files and variables they name are not looked at.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(text, None)
    }

    /// `file`: where the text was read from, if anywhere.
    fn from_text(text: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut problems = Problems::default();
        let raw = RawConfig::read(text, &mut problems)?;
        let mut sections = Config::validate(raw, &mut problems);
        if let Some(file) = file {
            if let Some(proxy) = &mut sections.proxy {
                proxy.state_file = beside_config(file, &proxy.state_file);
                proxy.admin_socket = beside_config(file, &proxy.admin_socket);
            }
            let clusters = sections.clusters.iter().filter_map(|(_, c)| c.as_ref());
            let client_tls = sections.proxy.as_ref().and_then(|p| p.tls.as_ref());
            files::check(client_tls, clusters, &mut problems);
        }
        sections.into_config(problems)
    }

    /// The sections in the order an operator reads the list of problems:
    /// `[proxy]`'s addresses and limits, the clusters, their node ids and
    /// ports, the routes, then `[proxy]`'s client TLS and SASL next to the
    /// users that depend on them, then `[state]`.
    fn validate(raw: RawConfig, problems: &mut Problems) -> Sections {
        let proxy = raw.proxy.and_then(|p| proxy::check(p, problems));
        let bases: Vec<(String, i32)> = raw
            .clusters
            .iter()
            .filter_map(|(name, c)| Some((name.clone(), c.as_ref()?.node_id_base)))
            .filter(|(_, base)| *base >= 0)
            .collect();
        let clusters = clusters::validate(raw.clusters, problems);
        if let Some(p) = &proxy {
            let listeners = numbering::Listeners {
                broker_port_base: p.broker_port_base(),
                listen: p.listen,
                metrics_listen: p.metrics_listen,
            };
            let bases: Vec<(&str, i32)> = bases.iter().map(|(n, b)| (n.as_str(), *b)).collect();
            numbering::check(&listeners, &bases, problems);
        }
        let names: Vec<&str> = clusters.iter().map(|(n, _)| n.as_str()).collect();
        let routes = raw
            .routes
            .and_then(|r| routes::validate(r, &names, problems));
        let (proxy, sasl) = match proxy.map(|p| p.with_client_security(problems)) {
            Some((proxy, sasl)) => (Some(proxy), sasl),
            None => (None, None),
        };
        let users = sasl.and_then(|s| users::validate(raw.users, s.as_ref(), problems));
        let state = problems.take(state::validate(raw.state, &names));
        Sections {
            proxy,
            clusters,
            routes,
            users,
            state,
        }
    }
}

impl Sections {
    /// The config, when nothing has a problem.
    fn into_config(self, problems: Problems) -> Result<Config, ConfigError> {
        let clusters: Option<Vec<ClusterConfig>> =
            self.clusters.into_iter().map(|(_, c)| c).collect();
        match (self.proxy, clusters, self.routes, self.users, self.state) {
            (Some(proxy), Some(clusters), Some(routes), Some(users), Some(state))
                if problems.is_empty() =>
            {
                Ok(Config {
                    proxy,
                    clusters,
                    routes,
                    users,
                    state,
                })
            }
            _ if problems.is_empty() => Err(ConfigError::Problems(vec![Problem {
                key: "config".to_owned(),
                message: "a section is incomplete".to_owned(),
            }])),
            _ => Err(ConfigError::Problems(problems.into_vec())),
        }
    }
}

impl Config {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::fixtures::{alice, with_security, GOOD};
    use super::*;
    use crate::auth::credentials::Mechanism;

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
}
