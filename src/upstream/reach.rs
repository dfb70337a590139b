//! `switchyard check --connect`: each configured cluster reached as the
//! proxy would reach it (TLS and SASL done), its brokers listed, and the
//! virtual node ids they would get checked against the cluster's range.

use std::time::Duration;

use serde::Serialize;

use super::cluster::Cluster;
use crate::config::{Config, Problem, NODE_ID_SPAN};
use crate::domain::ids::ClusterIdx;

/// One cluster as `check --connect` found it.
#[derive(Debug, Clone, Serialize)]
pub struct Reached {
    pub cluster: String,
    /// Logged in and answered metadata.
    pub ok: bool,
    /// Upstream broker ids, and the virtual node id each would get.
    pub brokers: Vec<(i32, i64)>,
    pub problems: Vec<Problem>,
}

/// Reaches every cluster of `config` in turn, each bounded by `within`.
pub async fn reach_all(config: &Config, within: Duration) -> Vec<Reached> {
    let mut out = Vec::new();
    for (i, c) in config.clusters.iter().enumerate() {
        let mut reached = Reached {
            cluster: c.name.clone(),
            ok: false,
            brokers: Vec::new(),
            problems: Vec::new(),
        };
        let key = format!("clusters.{}", c.name);
        let cluster = match Cluster::new(ClusterIdx(i), c.clone(), &config.proxy) {
            Ok(cluster) => cluster,
            Err(e) => {
                reached.problems.push(Problem {
                    key,
                    message: e.to_string(),
                });
                out.push(reached);
                continue;
            }
        };
        match tokio::time::timeout(within, cluster.fetch_metadata(None, false)).await {
            Err(_) => reached.problems.push(Problem {
                key,
                message: format!(
                    "no answer within {within:?} from {}",
                    c.bootstrap.join(", ")
                ),
            }),
            Ok(Err(e)) => reached.problems.push(Problem {
                key,
                message: e.to_string(),
            }),
            Ok(Ok(_)) => {
                reached.ok = true;
                let ids: Vec<i32> = cluster.with_view(|v| v.brokers.keys().map(|b| b.0).collect());
                reached.brokers = ids
                    .iter()
                    .map(|id| (*id, i64::from(c.node_id_base) + i64::from(*id)))
                    .collect();
                reached.problems = out_of_range(&c.name, c.node_id_base, &ids);
            }
        }
        out.push(reached);
    }
    out
}

/// Brokers whose ids put their virtual node outside the cluster's range
/// (`node_id_base` up to `NODE_ID_SPAN` above it), where it could take
/// another cluster's id and is not served.
pub fn out_of_range(name: &str, base: i32, broker_ids: &[i32]) -> Vec<Problem> {
    broker_ids
        .iter()
        .filter(|id| !(0..NODE_ID_SPAN).contains(*id))
        .map(|id| Problem {
            key: format!("clusters.{name}.node_id_base"),
            message: format!(
                "broker {id} of cluster '{name}' would be virtual node {}, outside the \
                 cluster's ids {base}..={}: a cluster's broker ids must be below \
                 {NODE_ID_SPAN}; give this cluster a base at least {} from every other's \
                 and no broker id above that",
                i64::from(base) + i64::from(*id),
                i64::from(base) + i64::from(NODE_ID_SPAN) - 1,
                i64::from(*id) + 1
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_ids_past_the_span_are_named() {
        assert!(out_of_range("old", 10_000, &[1, 2, 999]).is_empty());
        let problems = out_of_range("new", 20_000, &[1, 1001, -1]);
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(problems.len(), 2, "{messages:?}");
        assert_eq!(problems[0].key, "clusters.new.node_id_base");
        assert!(
            messages[0].contains("broker 1001 of cluster 'new' would be virtual node 21001"),
            "{messages:?}"
        );
        assert!(messages[1].contains("broker -1"), "{messages:?}");
    }
}
