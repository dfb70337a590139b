//! `proxy.toml` → a typed, validated [`Config`].
//!
//! Everything the rest of the proxy reads about its setup comes from here, so
//! every mistake an operator can make in the file is caught once, at start-up,
//! with an error that names the key and says what would be right.
//!
//! `raw.rs` is the file's shape, `typed.rs` what the proxy reads; one
//! validator per section (`proxy.rs`, `clusters.rs`, `routes.rs`, `users.rs`,
//! with `tls.rs` and `sasl.rs` for the tables inside them) turns one into the
//! other.

mod clusters;
mod error;
#[cfg(test)]
mod fixtures;
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

pub use error::ConfigError;
pub use typed::{
    ClientSaslConfig, ClientTlsConfig, ClusterConfig, GroupRouteConfig, PasswordSource,
    ProxyConfig, RoutesConfig, TopicRouteConfig, UpstreamSaslConfig, UpstreamTlsConfig, UserConfig,
};
pub use typed::{KafkaStateConfig, StateConfig};

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

    /// The sections in turn. Only the first mistake is reported, so this order
    /// is the order an operator meets them in: `[proxy]`'s client TLS, SASL
    /// and pre-auth limit come after the routes, next to the users that
    /// depend on them.
    fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        let proxy = proxy::check(raw.proxy)?;
        let clusters = clusters::validate(raw.clusters)?;
        let routes = routes::validate(raw.routes, &clusters)?;
        let proxy = proxy.with_client_security()?;
        let users = users::validate(raw.users, proxy.sasl.as_ref())?;
        let state = state::validate(raw.state, &clusters)?;
        Ok(Config {
            proxy,
            clusters,
            routes,
            users,
            state,
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
