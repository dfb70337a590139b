//! What a re-read config file changes against the one the proxy runs
//! with, key by key, and whether each change can apply while clients stay
//! connected. Sans-IO: both files as TOML tables in, a verdict out.
//!
//! What can apply live: the users and their allow-lists, client and
//! upstream TLS and SASL settings (the files they name are read again on
//! every reload, changed or not), topic route rules, and new clusters.
//! Everything else (a listen address, a node id base, the default
//! cluster, ...) shapes what connected clients already hold, and is
//! refused with the reason.

use super::error::Problem;

/// The changes a re-read file makes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Keys whose change applies live, in key order.
    pub live: Vec<String>,
    /// Keys whose change cannot apply while running, each with why.
    pub refused: Vec<Problem>,
}

/// Compares the running file with the re-read one.
pub fn compare(running: &toml::Table, reread: &toml::Table) -> Changes {
    let mut changes = Changes::default();
    let mut path = Vec::new();
    walk(running, reread, &mut path, &mut changes);
    changes
}

/// Records each key that differs between `a` and `b` (tables are walked
/// into; anything else, arrays included, is compared whole). `[clusters]`
/// is walked into even when one side lacks it: its keys are names.
fn walk(a: &toml::Table, b: &toml::Table, path: &mut Vec<String>, changes: &mut Changes) {
    let empty = toml::Table::new();
    let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
    for key in keys {
        path.push(key.clone());
        let named = path.len() == 1 && key == "clusters";
        match (a.get(key), b.get(key)) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => walk(x, y, path, changes),
            (Some(toml::Value::Table(x)), None) if named => walk(x, &empty, path, changes),
            (None, Some(toml::Value::Table(y))) if named => walk(&empty, y, path, changes),
            (x, y) if x != y => classify(path, x.is_some(), y.is_some(), changes),
            _ => {}
        }
        path.pop();
    }
}

fn classify(path: &[String], was: bool, is: bool, changes: &mut Changes) {
    let key = path.join(".");
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match verdict(&path, was, is) {
        Ok(()) => changes.live.push(key),
        Err(reason) => changes.refused.push(Problem {
            key,
            message: reason.to_owned(),
        }),
    }
}

const RESTART: &str = "cannot change while the proxy runs; restart the instance to apply it";

/// Whether a change of the key at `path` (present before: `was`, after:
/// `is`) applies live, or why not.
fn verdict(path: &[&str], was: bool, is: bool) -> Result<(), &'static str> {
    match path {
        ["users"] => Ok(()),
        ["routes", "topic"] => Ok(()),
        ["routes", "group"] => Err(
            "a group rule moves coordinators without the groups' committed offsets; \
             move a group with `switchyard flip --group`, or restart",
        ),
        ["routes", "transaction"] => {
            Err("a transaction rule would cut off transactions in flight; restart to change it")
        }
        ["proxy", "tls"] | ["proxy", "sasl"] => Err(
            "turning client TLS or SASL on or off changes what every connected client speaks; \
             restart to change it",
        ),
        ["proxy", "tls", "cert" | "key" | "client_ca"] => Ok(()),
        ["proxy", "sasl", "mechanisms"] => Ok(()),
        ["clusters", _] if !was && is => Ok(()),
        ["clusters", _] if !is => Err(
            "a cluster cannot be removed while running: routes, stitches and producer ids \
             refer to it; restart without it",
        ),
        ["clusters", _, "tls" | "sasl", ..] => Ok(()),
        _ => Err(RESTART),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    const RUNNING: &str = r#"
[proxy]
listen = "127.0.0.1:9092"
[proxy.tls]
cert = "a.pem"
key = "a.key"
[clusters.old]
bootstrap = ["127.0.0.1:9093"]
node_id_base = 10000
[routes]
default = "old"
[[users]]
name = "alice"
password = "x"
"#;

    #[test]
    fn the_same_file_changes_nothing() {
        assert_eq!(
            compare(&table(RUNNING), &table(RUNNING)),
            Changes::default()
        );
    }

    #[test]
    fn users_certificates_rules_and_new_clusters_apply_live() {
        let reread = RUNNING
            .replace("a.pem", "b.pem")
            .replace("name = \"alice\"", "name = \"bob\"")
            + r#"
[clusters.third]
bootstrap = ["127.0.0.1:9094"]
node_id_base = 30000
[clusters.old.sasl]
mechanism = "PLAIN"
[[routes.topic]]
pattern = "orders"
produce = "third"
"#;
        let changes = compare(&table(RUNNING), &table(&reread));
        assert_eq!(changes.refused, vec![]);
        assert_eq!(
            changes.live,
            [
                "clusters.old.sasl",
                "clusters.third",
                "proxy.tls.cert",
                "routes.topic",
                "users"
            ]
        );
    }

    #[test]
    fn what_clients_hold_is_refused_with_the_reason() {
        let reread = RUNNING
            .replace("9092", "9095")
            .replace("10000", "20000")
            .replace("[proxy.tls]\ncert = \"a.pem\"\nkey = \"a.key\"\n", "")
            + "[[routes.group]]\npattern = \"g\"\ncluster = \"old\"\n";
        let changes = compare(&table(RUNNING), &table(&reread));
        let keys: Vec<&str> = changes.refused.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "clusters.old.node_id_base",
                "proxy.listen",
                "proxy.tls",
                "routes.group"
            ]
        );
        assert!(changes.refused[1].message.contains("restart"));
        assert!(changes.refused[3].message.contains("flip --group"));
        assert!(changes.live.is_empty());
        let without_old = table("[proxy]\nlisten = \"127.0.0.1:9092\"");
        let removed = compare(&table(RUNNING), &without_old);
        assert!(removed
            .refused
            .iter()
            .any(|p| p.key == "clusters.old" && p.message.contains("cannot be removed")));
    }
}
