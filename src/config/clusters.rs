//! `[clusters.NAME]`: bootstrap addresses, virtual node-id ranges, and each
//! cluster's `tls` and `sasl` tables.

use super::error::{invalid, ConfigError, Problems};
use super::raw::RawCluster;
use super::typed::ClusterConfig;
use super::{sasl, tls};

/// The clusters in name order, the order [`ClusterIdx`] counts in; `None`
/// for one with problems (recorded). Node-id ranges are checked across
/// clusters later, with the ports they lead to (`numbering.rs`).
///
/// [`ClusterIdx`]: crate::domain::ids::ClusterIdx
pub(super) fn validate(
    raw: Vec<(String, Option<RawCluster>)>,
    problems: &mut Problems,
) -> Vec<(String, Option<ClusterConfig>)> {
    if raw.is_empty() {
        problems.push(
            "clusters",
            "no upstream cluster configured; add a [clusters.NAME] table",
        );
    }
    raw.into_iter()
        .map(|(name, c)| {
            let cluster = c.and_then(|c| cluster(name.clone(), c, problems));
            (name, cluster)
        })
        .collect()
}

/// One cluster; every key's problem is recorded.
fn cluster(name: String, raw: RawCluster, problems: &mut Problems) -> Option<ClusterConfig> {
    let bootstrap = problems.take(check_bootstrap(&name, &raw.bootstrap));
    let base = problems.take(check_node_id_base(&name, raw.node_id_base));
    let tls = raw
        .tls
        .map(|t| problems.take(tls::upstream(&name, t)))
        .map_or(Some(None), |t| t.map(Some));
    let sasl = raw
        .sasl
        .map(|s| problems.take(sasl::upstream(&name, s)))
        .map_or(Some(None), |s| s.map(Some));
    bootstrap?;
    base?;
    Some(ClusterConfig {
        name,
        bootstrap: raw.bootstrap,
        node_id_base: raw.node_id_base,
        tls: tls?,
        sasl: sasl?,
    })
}

fn check_bootstrap(name: &str, bootstrap: &[String]) -> Result<(), ConfigError> {
    let key = format!("clusters.{name}.bootstrap");
    if bootstrap.is_empty() {
        return Err(invalid(key, "needs at least one \"host:port\" address"));
    }
    for addr in bootstrap {
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
    Ok(())
}

/// Not negative: virtual node ids are the base plus the upstream id, and
/// negative ids mean "no broker" to clients.
fn check_node_id_base(name: &str, node_id_base: i32) -> Result<(), ConfigError> {
    if node_id_base < 0 {
        return Err(invalid(
            format!("clusters.{name}.node_id_base"),
            "must not be negative",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::fixtures::{err_of, GOOD};

    #[test]
    fn bad_bootstrap_address_is_refused() {
        let e = err_of(&GOOD.replace("127.0.0.1:29092", "nohost"));
        assert_eq!(
            e,
            "clusters.new.bootstrap: 'nohost' is not a \"host:port\" address"
        );
    }

    #[test]
    fn every_cluster_reports_its_problems() {
        let e = err_of(
            &GOOD
                .replace("127.0.0.1:29092", "nohost")
                .replace("127.0.0.1:19092", "old-host")
                .replace("node_id_base = 10000", "node_id_base = -1"),
        );
        for expected in [
            "clusters.new.bootstrap: 'nohost'",
            "clusters.old.bootstrap: 'old-host'",
            "clusters.old.node_id_base: must not be negative",
        ] {
            assert!(e.contains(expected), "{expected} in {e}");
        }
    }
}
