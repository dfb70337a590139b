//! `[clusters.NAME]`: bootstrap addresses, virtual node-id ranges, and each
//! cluster's `tls` and `sasl` tables.

use std::collections::BTreeMap;

use super::error::{invalid, ConfigError};
use super::raw::RawCluster;
use super::typed::ClusterConfig;
use super::{sasl, tls};

/// The clusters in name order, the order [`ClusterIdx`] counts in.
///
/// [`ClusterIdx`]: crate::domain::ids::ClusterIdx
pub(super) fn validate(
    raw: BTreeMap<String, RawCluster>,
) -> Result<Vec<ClusterConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(invalid(
            "clusters",
            "no upstream cluster configured; add a [clusters.NAME] table",
        ));
    }
    let mut clusters = Vec::with_capacity(raw.len());
    for (name, c) in raw {
        let cluster = cluster(name, c, &clusters)?;
        clusters.push(cluster);
    }
    Ok(clusters)
}

/// One cluster, checked against those before it in name order.
fn cluster(
    name: String,
    raw: RawCluster,
    earlier: &[ClusterConfig],
) -> Result<ClusterConfig, ConfigError> {
    check_bootstrap(&name, &raw.bootstrap)?;
    check_node_id_base(&name, raw.node_id_base, earlier)?;
    let tls = raw.tls.map(|t| tls::upstream(&name, t)).transpose()?;
    let sasl = raw.sasl.map(|s| sasl::upstream(&name, s)).transpose()?;
    Ok(ClusterConfig {
        name,
        bootstrap: raw.bootstrap,
        node_id_base: raw.node_id_base,
        tls,
        sasl,
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

/// Not negative, and not another cluster's: each cluster's brokers get
/// virtual node ids from their own range.
fn check_node_id_base(
    name: &str,
    node_id_base: i32,
    earlier: &[ClusterConfig],
) -> Result<(), ConfigError> {
    let key = format!("clusters.{name}.node_id_base");
    if node_id_base < 0 {
        return Err(invalid(key, "must not be negative"));
    }
    if let Some(other) = earlier.iter().find(|o| o.node_id_base == node_id_base) {
        return Err(invalid(
            key,
            format!(
                "{} is also the node_id_base of cluster '{}'; give each cluster its own \
                 range so their brokers get distinct virtual node ids",
                node_id_base, other.name
            ),
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
    fn clashing_node_id_bases_are_refused() {
        let e = err_of(&GOOD.replace("node_id_base = 1000 ", "node_id_base = 0 "));
        assert!(e.starts_with("clusters.old.node_id_base: 0 is also"), "{e}");
    }
}
