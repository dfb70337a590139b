//! Detaching a consumer group from the proxy: its committed offsets, which
//! are virtual (stitched) while its clients read through the proxy, are
//! written into one cluster's own offset space, so that those clients can
//! later talk to that cluster directly.
//!
//! An offset in a stretch of the log that lives on the target maps exactly;
//! one in a stretch on another cluster maps through MirrorMaker 2's offset
//! syncs (see [`crate::domain::mirror`]); one that neither can map refuses the
//! whole detach, naming it.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::ids::ClusterIdx;
use crate::domain::mirror::{self, OffsetSync};
use crate::domain::routes::RouteSide;
use crate::domain::stitch::{Shift, VirtualOffset};
use crate::runtime::proxy::Proxy;
use crate::upstream::cluster::groups::CommittedOffset;
use crate::upstream::UpstreamError;

/// How one committed offset was carried over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DetachedOffset {
    pub topic: String,
    pub partition: i32,
    /// As the group committed it through the proxy.
    pub committed: i64,
    /// As written to the target cluster.
    pub translated: i64,
    /// "exact" (the stretch lives on the target) or "mirrormaker2".
    pub how: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DetachReport {
    pub group: String,
    pub cluster: String,
    pub offsets: Vec<DetachedOffset>,
}

#[derive(Debug, thiserror::Error)]
pub enum DetachError {
    #[error("'{0}' is not a consumer group id; give the exact, non-empty id")]
    BadGroup(String),
    #[error(
        "group '{group}' is {state} on cluster '{cluster}'; stop its members before detaching it \
         (their commits would overwrite the translated offsets)"
    )]
    Busy {
        group: String,
        cluster: String,
        state: String,
    },
    #[error(
        "detach of group '{group}' refused: its offset {offset} of {topic}-{partition} is on \
         cluster '{source_cluster}', and no MirrorMaker 2 offset sync into '{cluster}' is at or below \
         {upstream} there (looked in '{syncs_topic}' on both clusters); nothing was written"
    )]
    NoTranslation {
        group: String,
        topic: String,
        partition: i32,
        offset: i64,
        upstream: i64,
        source_cluster: String,
        cluster: String,
        syncs_topic: String,
    },
    #[error("detach of group '{group}' aborted: {source}; nothing was written")]
    Upstream {
        group: String,
        source: UpstreamError,
    },
}

/// Offset syncs by topic and partition.
pub type Syncs = HashMap<(String, i32), Vec<OffsetSync>>;

/// Writes `group`'s committed offsets into cluster `to`'s offset space.
pub async fn detach(
    proxy: &Arc<Proxy>,
    group: &str,
    to: ClusterIdx,
) -> Result<DetachReport, DetachError> {
    if group.is_empty() || group.len() > 255 {
        return Err(DetachError::BadGroup(group.to_owned()));
    }
    let upstream = |source| DetachError::Upstream {
        group: group.to_owned(),
        source,
    };
    let routes = proxy.routes();
    let home = routes.group_cluster(group);
    let target = proxy.cluster(to);
    for cluster in [home, to] {
        let state = proxy
            .cluster(cluster)
            .group_state(group)
            .await
            .map_err(upstream)?;
        if !matches!(state.as_str(), "Empty" | "Dead" | "") {
            return Err(DetachError::Busy {
                group: group.to_owned(),
                cluster: proxy.cluster(cluster).name().to_owned(),
                state,
            });
        }
    }
    let committed = proxy
        .cluster(home)
        .group_offsets(group)
        .await
        .map_err(upstream)?;
    let syncs_topic = mirror::offset_syncs_topic(target.name());
    let mut syncs: HashMap<ClusterIdx, Syncs> = HashMap::new();
    let mut offsets = Vec::with_capacity(committed.len());
    for c in &committed {
        let (cluster, shift) = match routes.stitches().get(&c.topic, c.partition) {
            Some(segments) => segments.at(VirtualOffset(c.offset)),
            None => (
                RouteSide::Fetch.cluster(&routes.route(&c.topic)),
                Shift::NONE,
            ),
        };
        let upstream_offset = shift.to_upstream(c.offset);
        if cluster == to {
            offsets.push(DetachedOffset {
                topic: c.topic.clone(),
                partition: c.partition,
                committed: c.offset,
                translated: upstream_offset,
                how: "exact".into(),
            });
            continue;
        }
        let cluster_syncs = match syncs.entry(cluster) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                offset_syncs(proxy, &syncs_topic, [cluster, to])
                    .await
                    .map_err(upstream)?,
            ),
        };
        let partition_syncs = cluster_syncs
            .get(&(c.topic.clone(), c.partition))
            .map_or(&[][..], Vec::as_slice);
        let translated = mirror::translate(partition_syncs, upstream_offset).ok_or_else(|| {
            DetachError::NoTranslation {
                group: group.to_owned(),
                topic: c.topic.clone(),
                partition: c.partition,
                offset: c.offset,
                upstream: upstream_offset,
                source_cluster: proxy.cluster(cluster).name().to_owned(),
                cluster: target.name().to_owned(),
                syncs_topic: syncs_topic.clone(),
            }
        })?;
        offsets.push(DetachedOffset {
            topic: c.topic.clone(),
            partition: c.partition,
            committed: c.offset,
            translated,
            how: "mirrormaker2".into(),
        });
    }
    let writes: Vec<CommittedOffset> = offsets
        .iter()
        .zip(&committed)
        .map(|(o, c)| CommittedOffset {
            offset: o.translated,
            // An epoch of the source log means nothing on the target.
            leader_epoch: -1,
            ..c.clone()
        })
        .collect();
    target
        .commit_group_offsets(group, &writes)
        .await
        .map_err(upstream)?;
    tracing::info!(
        group,
        cluster = target.name(),
        offsets = offsets.len(),
        "group detached"
    );
    Ok(DetachReport {
        group: group.to_owned(),
        cluster: target.name().to_owned(),
        offsets,
    })
}

/// The offset syncs in `topic` on the first of `clusters` that has any
/// (MirrorMaker 2 keeps them on the source cluster by default, on the
/// target when configured so).
pub async fn offset_syncs(
    proxy: &Proxy,
    topic: &str,
    clusters: [ClusterIdx; 2],
) -> Result<Syncs, UpstreamError> {
    for cluster in clusters {
        let syncs = proxy.cluster(cluster).offset_syncs(topic).await?;
        if !syncs.is_empty() {
            return Ok(syncs);
        }
    }
    Ok(Syncs::new())
}
