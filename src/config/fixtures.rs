//! Config texts the unit tests of every section start from, and a helper
//! that gives the error a text is refused with.

use crate::auth::credentials::{Credential, Mechanism};

use super::Config;

/// The example config shipped with the project; keeping it the test
/// input keeps it valid.
pub(super) const GOOD: &str = include_str!("../../proxy.toml");

pub(super) fn err_of(text: &str) -> String {
    Config::parse(text).unwrap_err().to_string()
}

pub(super) fn with_security(users: &str) -> String {
    let proxy_tables = "[proxy.tls]\ncert = \"certs/proxy.pem\"\nkey = \"certs/proxy-key.pem\"\n\
         client_ca = \"certs/ca.pem\"\n\n[proxy.sasl]\nmechanisms = [\"SCRAM-SHA-512\", \"PLAIN\"]\n\n";
    let text = GOOD.replacen("\n[clusters.", &format!("\n{proxy_tables}[clusters."), 1);
    format!(
        "{text}\n{users}\n[clusters.new.tls]\nserver_name = \"b-1.new.example.com\"\n\n\
         [clusters.new.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"switchyard\"\n\
         password_env = \"NEW_PW\"\n"
    )
}

pub(super) fn alice() -> String {
    let c = Credential::derive(Mechanism::ScramSha512, "pw", vec![1; 16], 4096);
    format!(
        "[[users]]\nname = \"alice\"\ncredentials = \"{}\"\ntopics = [\"orders\", \"payments.*\"]\n",
        c.encode()
    )
}
