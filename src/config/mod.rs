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

pub mod changes;
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

use std::path::{Path, PathBuf};

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
    /// The file it was loaded from (`None` for text parsed as it is).
    pub file: Option<ConfigFile>,
}

/// The file a config was loaded from, and its text as TOML: what a
/// reload compares the file, read again, with.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub table: toml::Table,
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
        let mut config = sections.into_config(problems)?;
        config.file = file.map(|path| ConfigFile {
            path: path.to_owned(),
            // It parsed as TOML a moment ago.
            table: toml::from_str(text).unwrap_or_default(),
        });
        Ok(config)
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
                    file: None,
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

    /// This config with its clusters numbered as in `running`: those both
    /// have keep their index, clusters new here come after them (in name
    /// order). `None` when it lacks one of `running`'s clusters.
    pub fn numbered_like(mut self, running: &Config) -> Option<Config> {
        let mut order: Vec<usize> = running
            .clusters
            .iter()
            .map(|c| self.cluster_idx(&c.name).map(|i| i.0))
            .collect::<Option<_>>()?;
        let added: Vec<usize> = (0..self.clusters.len())
            .filter(|i| !order.contains(i))
            .collect();
        order.extend(added);
        // Where each of this config's indexes goes.
        let mut to = vec![0; order.len()];
        for (at, from) in order.iter().enumerate() {
            to[*from] = at;
        }
        let moved = |c: &mut ClusterIdx| c.0 = to[c.0];
        let routes = &mut self.routes;
        moved(&mut routes.default);
        for rule in &mut routes.topics {
            moved(&mut rule.produce);
            moved(&mut rule.fetch);
        }
        for rule in routes.groups.iter_mut().chain(&mut routes.transactions) {
            moved(&mut rule.cluster);
        }
        if let StateConfig::Kafka(k) = &mut self.state {
            moved(&mut k.cluster);
        }
        let mut clusters: Vec<Option<ClusterConfig>> =
            self.clusters.into_iter().map(Some).collect();
        self.clusters = order.iter().filter_map(|i| clusters[*i].take()).collect();
        Some(self)
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
    fn a_reloaded_config_keeps_the_running_cluster_numbers() {
        let running = Config::parse(GOOD).unwrap();
        let text = format!(
            "{GOOD}\n[clusters.aaa]\nbootstrap = [\"127.0.0.1:9999\"]\nnode_id_base = 40000\n\n\
             [[routes.topic]]\npattern = \"a.*\"\nproduce = \"aaa\"\nfetch = \"new\"\n"
        );
        let reread = Config::parse(&text).unwrap();
        assert_eq!(reread.clusters[0].name, "aaa", "name order first");
        let kept = reread.numbered_like(&running).unwrap();
        let names: Vec<&str> = kept.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["new", "old", "aaa"]);
        assert_eq!(kept.cluster(kept.routes.default).name, "old");
        let rule = kept.routes.topics.last().unwrap();
        assert_eq!(
            (
                kept.cluster(rule.produce).name.as_str(),
                kept.cluster(rule.fetch).name.as_str()
            ),
            ("aaa", "new")
        );
        assert!(
            running.numbered_like(&kept).is_none(),
            "a cluster is missing"
        );
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
