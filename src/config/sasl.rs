//! `[proxy.sasl]` and `[clusters.NAME.sasl]`: mechanism names, and where the
//! proxy's own password for a cluster is read from: an environment
//! variable or a file, never the config.

use std::path::PathBuf;

use crate::auth::credentials::Mechanism;

use super::error::{invalid, ConfigError};
use super::raw::{RawClusterSasl, RawProxySasl};
use super::typed::{ClientSaslConfig, PasswordSource, UpstreamSaslConfig};

fn mechanism(key: &str, name: &str) -> Result<Mechanism, ConfigError> {
    name.parse().map_err(|e: String| invalid(key, e))
}

pub(super) fn client(raw: RawProxySasl) -> Result<ClientSaslConfig, ConfigError> {
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

pub(super) fn upstream(
    cluster: &str,
    raw: RawClusterSasl,
) -> Result<UpstreamSaslConfig, ConfigError> {
    let key = |field: &str| format!("clusters.{cluster}.sasl.{field}");
    if raw.password.is_some() {
        return Err(invalid(
            key("password"),
            "passwords are never written in the config; use password_env (an environment \
             variable's name) or password_file",
        ));
    }
    let password = password_source(cluster, raw.password_env, raw.password_file)?;
    if raw.username.is_empty() {
        return Err(invalid(key("username"), "must not be empty"));
    }
    Ok(UpstreamSaslConfig {
        mechanism: mechanism(&key("mechanism"), &raw.mechanism)?,
        username: raw.username,
        password,
    })
}

/// Exactly one of `password_env` (not empty) and `password_file`.
fn password_source(
    cluster: &str,
    env: Option<String>,
    file: Option<PathBuf>,
) -> Result<PasswordSource, ConfigError> {
    match (env, file) {
        (Some(var), None) if !var.is_empty() => Ok(PasswordSource::Env(var)),
        (None, Some(path)) => Ok(PasswordSource::File(path)),
        (Some(_), Some(_)) => Err(invalid(
            format!("clusters.{cluster}.sasl"),
            "set one of password_env and password_file, not both",
        )),
        _ => Err(invalid(
            format!("clusters.{cluster}.sasl"),
            "needs password_env (an environment variable's name) or password_file",
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::fixtures::{alice, err_of, with_security};

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
}
