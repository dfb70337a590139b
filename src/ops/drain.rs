//! How far each consumer group still is from the newest stretch of each
//! stitched topic: the records it has left on the cluster Produce moved
//! away from. Shown by `switchyard status`, so an operator sees groups
//! cross without waiting for anything; and, refreshed in the background
//! for the metrics, with the records written to an old cluster behind the
//! proxy's back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::ids::ClusterIdx;
use crate::domain::offsets::{Offset, VirtualOffset};
use crate::metrics as m;
pub use crate::ops::journal::Drain;
use crate::ops::journal::Reading;
use crate::ops::steps::now_ms;
use crate::runtime::proxy::Proxy;
use crate::upstream::UpstreamError;

/// Group progress and old-cluster writes are refreshed for the metrics
/// every `proxy.progress_refresh_ms` (default 30 s). Each refresh asks every cluster for its groups and their
/// committed offsets (ListGroups, OffsetFetch per group) and, per stitched
/// topic, each old cluster for its log ends (ListOffsets, then Fetch
/// probes of one record's worth). The first waits this long for the
/// clusters' views to load.
const FIRST_REFRESH: Duration = Duration::from_secs(2);

/// The progress of every group that has committed offsets for a stitched
/// topic, by group then topic.
pub async fn drains(proxy: &Proxy) -> Result<Vec<Drain>, UpstreamError> {
    let routes = proxy.routes();
    let mut out: Vec<Drain> = Vec::new();
    for cluster in proxy.clusters() {
        for group in cluster.list_groups().await? {
            if routes.group_cluster(&group) != cluster.idx {
                continue; // its offsets there are stale: it moved
            }
            for committed in cluster.group_offsets(&group).await? {
                let Some(segments) = routes.stitches().get(&committed.topic, committed.partition)
                else {
                    continue;
                };
                let newest = segments
                    .segments()
                    .last()
                    .map_or(VirtualOffset(0), |s| s.start);
                let left = newest.since(committed.offset).max(0);
                match out
                    .iter_mut()
                    .find(|d| d.group == group && d.topic == committed.topic)
                {
                    Some(d) => d.left = d.left.saturating_add(left),
                    None => out.push(Drain {
                        group: group.clone(),
                        topic: committed.topic.clone(),
                        left,
                        crossed: false,
                    }),
                }
            }
        }
    }
    for d in &mut out {
        d.crossed = d.left == 0;
    }
    out.sort_by(|a, b| (&a.group, &a.topic).cmp(&(&b.group, &b.topic)));
    Ok(out)
}

/// Records written to each stitched topic's old clusters beyond where the
/// proxy stitched: writers that bypass the proxy. By topic.
pub async fn old_cluster_writes(proxy: &Proxy) -> Result<BTreeMap<String, i64>, UpstreamError> {
    let routes = proxy.routes();
    // (topic, cluster) → each partition's end there.
    let mut ends: BTreeMap<(String, usize), Vec<(i32, i64)>> = BTreeMap::new();
    for (topic, partition, segments) in routes.stitches().iter() {
        for (cluster, end) in segments.old_ends() {
            ends.entry((topic.to_owned(), cluster.0))
                .or_default()
                .push((partition, end.0));
        }
    }
    let mut writes: BTreeMap<String, i64> = BTreeMap::new();
    for ((topic, cluster), stitched) in ends {
        let now = proxy.cluster(ClusterIdx(cluster)).log_ends(&topic).await?;
        let beyond: i64 = stitched
            .iter()
            .filter_map(|(p, end)| now.get(p).map(|n| (n.0 - end).max(0)))
            .sum();
        *writes.entry(topic).or_default() += beyond;
    }
    Ok(writes)
}

/// Sets the gauges of every stitched partition's Δ, every group's records
/// left on old stretches, and old-cluster writes, every
/// `proxy.progress_refresh_ms`.
pub async fn refresh_loop(proxy: Arc<Proxy>) {
    let every = proxy.config().proxy.progress_refresh;
    let mut failing = false;
    // Old-cluster writes last warned of, by topic: warned again only when
    // they grow.
    let mut warned: BTreeMap<String, i64> = BTreeMap::new();
    tokio::time::sleep(FIRST_REFRESH.min(every)).await;
    loop {
        for (topic, partition, segments) in proxy.routes().stitches().iter() {
            let delta = segments.segments().last().map_or(0, |s| s.delta);
            metrics::gauge!(m::STITCH_DELTA, "topic" => topic.to_owned(), "partition" => partition.to_string())
                .set(delta as f64);
        }
        let refreshed = async {
            let drains = drains(&proxy).await?;
            for d in &drains {
                metrics::gauge!(m::GROUP_OLD_RECORDS, "group" => d.group.clone(), "topic" => d.topic.clone())
                    .set(d.left as f64);
            }
            let old_writes = old_cluster_writes(&proxy).await?;
            for (topic, &n) in &old_writes {
                metrics::gauge!(m::OLD_CLUSTER_WRITES, "topic" => topic.clone()).set(n as f64);
                if n > warned.get(topic).copied().unwrap_or(0) {
                    tracing::warn!(topic, records = n, "records were written to an old cluster of a flipped topic without going through the proxy");
                    warned.insert(topic.clone(), n);
                }
            }
            Ok::<_, UpstreamError>(Reading {
                at_ms: now_ms(),
                drains,
                old_writes,
            })
        };
        match refreshed.await {
            Ok(reading) => {
                proxy.journal().reading(reading);
                metrics::counter!(m::PROGRESS_REFRESHES, "outcome" => "ok").increment(1);
                failing = false;
            }
            Err(e) => {
                metrics::counter!(m::PROGRESS_REFRESHES, "outcome" => "error").increment(1);
                proxy.journal().refresh_failed(e.to_string());
                if !failing {
                    tracing::warn!(error = %e, "cannot refresh group progress; retrying every {every:?}");
                }
                failing = true;
            }
        }
        tokio::time::sleep(every).await;
    }
}
