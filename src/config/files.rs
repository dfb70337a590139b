//! What the config names outside itself: TLS certificates, keys and CAs on
//! both sides, and where the proxy's upstream passwords come from. Checked
//! when a config file is loaded, so that `run` refuses them before it opens
//! a listener and `check` lists them with everything else. Each file is
//! read as the TLS set-up reads it (`auth/tls.rs`), and a password as
//! `upstream/security.rs` does, with the same messages; whether a key fits
//! its certificate is left to that set-up, which the CLI also runs before
//! it starts the proxy.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::{Problem, Problems};
use super::typed::{ClientTlsConfig, ClusterConfig, PasswordSource};

pub(super) fn check<'a>(
    client_tls: Option<&ClientTlsConfig>,
    clusters: impl Iterator<Item = &'a ClusterConfig>,
    problems: &mut Problems,
) {
    if let Some(tls) = client_tls {
        certificates(&tls.cert, "proxy.tls.cert", problems);
        private_key(&tls.key, "proxy.tls.key", problems);
        if let Some(ca) = &tls.client_ca {
            certificates(ca, "proxy.tls.client_ca", problems);
        }
    }
    for cluster in clusters {
        let name = &cluster.name;
        if let Some(tls) = &cluster.tls {
            let key = |field: &str| format!("clusters.{name}.tls.{field}");
            if let Some(ca) = &tls.ca {
                certificates(ca, &key("ca"), problems);
            }
            if let Some(cert) = &tls.cert {
                certificates(cert, &key("cert"), problems);
            }
            if let Some(k) = &tls.key {
                private_key(k, &key("key"), problems);
            }
        }
        if let Some(sasl) = &cluster.sasl {
            password(name, &sasl.password, problems);
        }
    }
}

/// A PEM file with at least one certificate.
fn certificates(path: &Path, key: &str, problems: &mut Problems) {
    match CertificateDer::pem_file_iter(path).and_then(|i| i.collect::<Result<Vec<_>, _>>()) {
        Err(e) => problems.push(
            key,
            format!("cannot read certificates from {}: {e}", path.display()),
        ),
        Ok(certs) if certs.is_empty() => problems.push(
            key,
            format!(
                "{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ),
        Ok(_) => {}
    }
}

/// A PEM private key; the message never quotes the file.
fn private_key(path: &Path, key: &str, problems: &mut Problems) {
    if let Err(e) = PrivateKeyDer::from_pem_file(path) {
        problems.push(
            key,
            format!(
                "cannot read a PEM private key from {}: {e}; expected a PKCS#8, PKCS#1 or SEC1 key",
                path.display()
            ),
        );
    }
}

/// The variable is set, or the file readable, and the password not empty.
fn password(cluster: &str, source: &PasswordSource, problems: &mut Problems) {
    if let Err(p) = source.read(cluster) {
        problems.push(p.key, p.message);
    }
}

impl PasswordSource {
    /// The password of cluster `cluster`'s SASL login, read from where
    /// `[clusters.NAME.sasl]` says; not empty. Its error names the key.
    pub fn read(&self, cluster: &str) -> Result<String, Problem> {
        let (field, value) = match self {
            PasswordSource::Env(var) => (
                "password_env",
                std::env::var(var).map_err(|_| {
                    format!(
                        "environment variable {var} is not set (or not UTF-8); export it in the \
                         proxy's environment"
                    )
                }),
            ),
            PasswordSource::File(path) => (
                "password_file",
                std::fs::read_to_string(path)
                    .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
                    .map_err(|e| format!("cannot read {}: {e}", path.display())),
            ),
        };
        let problem = |message| Problem {
            key: format!("clusters.{cluster}.sasl.{field}"),
            message,
        };
        match value {
            Err(message) => Err(problem(message)),
            Ok(password) if password.is_empty() => Err(problem("the password is empty".into())),
            Ok(password) => Ok(password),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::fixtures::{alice, with_security, GOOD};
    use crate::config::Config;

    /// A directory of its own for one test, with `proxy.toml` holding `text`.
    fn config_dir(name: &str, text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("switchyard-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("proxy.toml"), text).unwrap();
        dir
    }

    fn load_err(dir: &std::path::Path) -> String {
        Config::load(&dir.join("proxy.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn missing_tls_files_are_each_named_on_both_sides() {
        let text = with_security(&alice())
            .replace("password_env = \"NEW_PW\"", "password_env = \"PATH\"")
            .replace(
                "server_name = \"b-1.new.example.com\"",
                "server_name = \"b-1.new.example.com\"\nca = \"/nonexistent/new-ca.pem\"",
            );
        let dir = config_dir("tls", &text);
        let e = load_err(&dir);
        for key in [
            "proxy.tls.cert: cannot read certificates from certs/proxy.pem",
            "proxy.tls.key: cannot read a PEM private key from certs/proxy-key.pem",
            "proxy.tls.client_ca: cannot read certificates from certs/ca.pem",
            "clusters.new.tls.ca: cannot read certificates from /nonexistent/new-ca.pem",
        ] {
            assert!(e.contains(key), "{key} in {e}");
        }
    }

    #[test]
    fn a_tls_file_that_is_not_pem_is_named() {
        let dir = config_dir("notpem", "");
        std::fs::write(dir.join("junk.pem"), "not a certificate").unwrap();
        let text = GOOD.replacen(
            "\n[clusters.",
            &format!(
                "\n[proxy.tls]\ncert = \"{0}/junk.pem\"\nkey = \"{0}/junk.pem\"\n\n[clusters.",
                dir.display()
            ),
            1,
        );
        std::fs::write(dir.join("proxy.toml"), text).unwrap();
        let e = load_err(&dir);
        assert!(
            e.contains("proxy.tls.cert:") && e.contains("holds no PEM certificate"),
            "{e}"
        );
        assert!(
            e.contains("proxy.tls.key: cannot read a PEM private key"),
            "{e}"
        );
    }

    #[test]
    fn an_unset_password_variable_and_an_unreadable_password_file_are_named() {
        let sasl = |cluster: &str, source: &str| {
            format!(
                "\n[clusters.{cluster}.sasl]\nmechanism = \"PLAIN\"\nusername = \"sy\"\n{source}\n"
            )
        };
        let text = format!(
            "{GOOD}{}{}",
            sasl("new", "password_env = \"SWITCHYARD_TEST_NEVER_SET_PW\""),
            sasl("old", "password_file = \"/nonexistent/old.password\""),
        );
        let dir = config_dir("passwords", &text);
        let e = load_err(&dir);
        assert!(
            e.contains(
                "clusters.new.sasl.password_env: environment variable SWITCHYARD_TEST_NEVER_SET_PW \
                 is not set"
            ),
            "{e}"
        );
        assert!(
            e.contains("clusters.old.sasl.password_file: cannot read /nonexistent/old.password"),
            "{e}"
        );
    }

    #[test]
    fn readable_passwords_pass() {
        let dir = config_dir("readable", "");
        std::fs::write(dir.join("old.password"), "secret\n").unwrap();
        let text = format!(
            "{GOOD}\n[clusters.old.sasl]\nmechanism = \"PLAIN\"\nusername = \"sy\"\n\
             password_file = \"{}/old.password\"\n",
            dir.display()
        );
        std::fs::write(dir.join("proxy.toml"), text).unwrap();
        let c = Config::load(&dir.join("proxy.toml"));
        assert!(c.is_ok(), "{:?}", c.err());
    }
}
