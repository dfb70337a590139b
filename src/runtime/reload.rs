//! `switchyard reload` and SIGHUP: the config file read again and put in
//! place without dropping a client connection, or refused whole, with
//! every reason, changing nothing.
//!
//! What applies live (see [`crate::config::changes`]): users and their
//! allow-lists (for connected clients too, at their next request; a
//! removed user's connections close), client TLS certificates (for new
//! connections), each cluster's TLS and SASL settings (for new upstream
//! connections), topic route rules, and new clusters. The files a config
//! names are read again on every reload, so a certificate renewed in place
//! takes effect too.

use std::sync::Arc;

use serde::Serialize;

use super::proxy::Proxy;
use super::views;
use crate::auth::ClientSecurity;
use crate::config::changes;
use crate::config::{Config, Problem};
use crate::domain::ids::ClusterIdx;
use crate::domain::routes::RouteTable;
use crate::upstream::{Cluster, UpstreamSecurity};

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    /// The keys whose change was applied, in key order.
    pub changed: Vec<String>,
    /// Clusters the reload added.
    pub added_clusters: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the proxy was started without a config file to read again")]
    NoFile,
    /// The file has problems; nothing changed.
    #[error("the config file has problems; nothing changed:\n{}", list(.0))]
    Invalid(Vec<Problem>),
    /// The file is fine, but some change cannot apply while running.
    #[error("refused; nothing changed:\n{}", list(.0))]
    Refused(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    lines.join("\n")
}

/// Reads the config file again and applies it, or refuses it whole.
pub async fn reload(proxy: &Arc<Proxy>) -> Result<Reloaded, ReloadError> {
    // No flip or group move switches while the route table is rebuilt.
    let _state = proxy.state().lock().await;
    let running = proxy.config();
    let file = running.file.as_ref().ok_or(ReloadError::NoFile)?;
    let reread = Config::load(&file.path).map_err(|e| ReloadError::Invalid(e.problems()))?;
    let table = reread
        .file
        .as_ref()
        .map(|f| f.table.clone())
        .unwrap_or_default();
    let changes = changes::compare(&file.table, &table);
    if !changes.refused.is_empty() {
        return Err(ReloadError::Refused(changes.refused));
    }
    let Some(reread) = reread.numbered_like(&running) else {
        return Err(ReloadError::Refused(vec![Problem {
            key: "clusters".into(),
            message: "a cluster the proxy runs with is missing".into(),
        }]));
    };
    let mut refused = Vec::new();
    let security = ClientSecurity::from_config(&reread).map_err(|e| refused.extend(e.problems()));
    let kept = running.clusters.len();
    let mut upstream = Vec::with_capacity(kept);
    for cluster in &reread.clusters[..kept] {
        match UpstreamSecurity::from_config(cluster) {
            Ok(s) => upstream.push(s),
            Err(e) => refused.extend(e.problems()),
        }
    }
    let mut added = Vec::new();
    for (i, cluster) in reread.clusters.iter().enumerate().skip(kept) {
        match Cluster::new(ClusterIdx(i), cluster.clone(), &reread.proxy) {
            Ok(c) => added.push(Arc::new(c)),
            Err(e) => refused.extend(e.problems()),
        }
    }
    let before = proxy.routes();
    let routes = before.with_topic_rules(&reread.routes);
    refused.extend(moved_topics(proxy, &before, &routes, &reread));
    let security = match security {
        Ok(s) if refused.is_empty() => s,
        _ => return Err(ReloadError::Refused(refused)),
    };
    let added_clusters: Vec<String> = added.iter().map(|c| c.name().to_owned()).collect();
    proxy.apply_reload(reread, security, upstream, added.clone(), routes);
    for cluster in added {
        tokio::spawn(views::refresh_loop(proxy.clone(), cluster));
    }
    let reloaded = Reloaded {
        changed: changes.live,
        added_clusters,
    };
    tracing::info!(
        changed = ?reloaded.changed,
        added_clusters = ?reloaded.added_clusters,
        "config reloaded; certificates and password files read again"
    );
    Ok(reloaded)
}

/// A topic rule change must not move a topic that exists: its records
/// would split between clusters with no stitch, and its producers would
/// switch without a fence. Such a topic is flipped, not re-ruled.
fn moved_topics(
    proxy: &Proxy,
    before: &RouteTable,
    after: &RouteTable,
    config: &Config,
) -> Vec<Problem> {
    let mut topics: Vec<String> = proxy
        .clusters()
        .flat_map(|c| c.with_view(|v| v.topics.keys().cloned().collect::<Vec<_>>()))
        .collect();
    topics.sort();
    topics.dedup();
    let name = |idx: ClusterIdx| config.cluster(idx).name.clone();
    topics
        .into_iter()
        .filter(|t| before.route(t) != after.route(t))
        .map(|t| {
            let (from, to) = (before.route(&t), after.route(&t));
            Problem {
                key: "routes.topic".into(),
                message: format!(
                    "topic '{t}' exists, and the new rules would move it (produce {} -> {}, fetch {} -> {}) without a flip; flip it with `switchyard flip {t} --to {}`, then change the rule",
                    name(from.produce),
                    name(to.produce),
                    name(from.fetch),
                    name(to.fetch),
                    name(to.produce),
                ),
            }
        })
        .collect()
}
