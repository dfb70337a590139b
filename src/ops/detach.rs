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

use crate::domain::groups;
use crate::domain::ids::ClusterIdx;
use crate::domain::mirror::{self, Syncs};
use crate::domain::routes::RouteSide;
use crate::domain::stitch::{Segments, Shift, UpstreamOffset, VirtualOffset};
use crate::runtime::proxy::Proxy;
use crate::upstream::cluster::groups::CommittedOffset;
use crate::upstream::UpstreamError;

/// How one committed offset was carried over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DetachedOffset {
    pub topic: String,
    pub partition: i32,
    /// As the group committed it through the proxy.
    pub committed: VirtualOffset,
    /// As written to the target cluster.
    pub translated: UpstreamOffset,
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
        offset: VirtualOffset,
        upstream: UpstreamOffset,
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

/// Writes `group`'s committed offsets into cluster `to`'s offset space.
pub async fn detach(
    proxy: &Arc<Proxy>,
    group: &str,
    to: ClusterIdx,
) -> Result<DetachReport, DetachError> {
    if !groups::valid_group_id(group) {
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
        if !groups::idle(&state) {
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
        let fetch = RouteSide::Fetch.cluster(&routes.route(&c.topic));
        let segments = routes.stitches().get(&c.topic, c.partition);
        let (cluster, upstream_offset) = placement(segments, fetch, c.offset);
        if cluster == to {
            offsets.push(DetachedOffset::exact(c, upstream_offset));
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
        let detached =
            DetachedOffset::mirrored(c, upstream_offset, cluster_syncs).ok_or_else(|| {
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
        offsets.push(detached);
    }
    target
        .commit_group_offsets(group, &writes(&offsets, &committed))
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

/// Where the record at committed (virtual) `offset` lives: the cluster of
/// its stretch of the stitched log (`segments`; the cluster Fetch reads
/// from when the partition is not stitched) and its offset there.
fn placement(
    segments: Option<&Segments>,
    fetch: ClusterIdx,
    offset: VirtualOffset,
) -> (ClusterIdx, UpstreamOffset) {
    let (cluster, shift) = match segments {
        Some(segments) => segments.at(offset),
        None => (fetch, Shift::NONE),
    };
    (cluster, shift.to_upstream(offset))
}

impl DetachedOffset {
    /// `c`, whose stretch lives on the target, at `upstream` there.
    fn exact(c: &CommittedOffset, upstream: UpstreamOffset) -> DetachedOffset {
        DetachedOffset {
            topic: c.topic.clone(),
            partition: c.partition,
            committed: c.offset,
            translated: upstream,
            how: "exact".into(),
        }
    }

    /// `c`, at `upstream` on another cluster, translated by the offset
    /// syncs from there into the target; `None` when none maps it.
    fn mirrored(
        c: &CommittedOffset,
        upstream: UpstreamOffset,
        syncs: &Syncs,
    ) -> Option<DetachedOffset> {
        let partition_syncs = syncs
            .get(&(c.topic.clone(), c.partition))
            .map_or(&[][..], Vec::as_slice);
        Some(DetachedOffset {
            topic: c.topic.clone(),
            partition: c.partition,
            committed: c.offset,
            translated: mirror::translate(partition_syncs, upstream)?,
            how: "mirrormaker2".into(),
        })
    }
}

/// The commits that write `offsets` (translated from `committed`, in the
/// same order) to the target.
fn writes(
    offsets: &[DetachedOffset],
    committed: &[CommittedOffset],
) -> Vec<CommittedOffset<UpstreamOffset>> {
    offsets
        .iter()
        .zip(committed)
        .map(|(o, c)| CommittedOffset {
            topic: c.topic.clone(),
            partition: c.partition,
            offset: o.translated,
            // An epoch of the source log means nothing on the target.
            leader_epoch: -1,
            metadata: c.metadata.clone(),
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mirror::OffsetSync;
    use crate::domain::stitch::Stitches;
    use crate::domain::stitch::{UpstreamOffset as U, VirtualOffset as V};

    const OLD: ClusterIdx = ClusterIdx(0);
    const NEW: ClusterIdx = ClusterIdx(1);

    fn committed(offset: i64) -> CommittedOffset {
        CommittedOffset {
            topic: "t".into(),
            partition: 0,
            offset: V(offset),
            leader_epoch: 3,
            metadata: Some("m".into()),
        }
    }

    #[test]
    fn a_committed_offset_lives_in_the_stretch_it_falls_in() {
        let mut stitches = Stitches::default();
        // 'old' ended at 100; 'new' held 20 already: v 100.. = new 20..
        stitches.record_move("t", OLD, NEW, 1, [(0, U(100), U(20))]);
        let segments = stitches.get("t", 0);
        assert_eq!(placement(segments, OLD, V(99)), (OLD, U(99)));
        assert_eq!(placement(segments, OLD, V(130)), (NEW, U(50)));
        assert_eq!(
            placement(None, NEW, V(130)),
            (NEW, U(130)),
            "not stitched: where Fetch reads"
        );
    }

    #[test]
    fn an_offset_elsewhere_is_translated_by_the_syncs_or_not_at_all() {
        let c = committed(40);
        let syncs = Syncs::from([(
            ("t".to_owned(), 0),
            vec![OffsetSync {
                upstream: U(30),
                downstream: U(300),
            }],
        )]);
        let mirrored = DetachedOffset::mirrored(&c, U(40), &syncs).unwrap();
        assert_eq!((mirrored.committed, mirrored.translated), (V(40), U(301)));
        assert_eq!(mirrored.how, "mirrormaker2");
        assert_eq!(DetachedOffset::mirrored(&c, U(20), &syncs), None);
        assert_eq!(DetachedOffset::mirrored(&c, U(40), &Syncs::new()), None);
        let exact = DetachedOffset::exact(&c, U(15));
        assert_eq!(
            (exact.committed, exact.translated, exact.how.as_str()),
            (V(40), U(15), "exact")
        );
    }

    #[test]
    fn the_writes_carry_the_translated_offsets_without_the_old_epoch() {
        let c = committed(40);
        let written = writes(
            &[DetachedOffset::exact(&c, U(15))],
            std::slice::from_ref(&c),
        );
        assert_eq!(
            written,
            [CommittedOffset {
                topic: "t".into(),
                partition: 0,
                offset: U(15),
                leader_epoch: -1,
                metadata: Some("m".into()),
            }]
        );
    }

    #[test]
    fn a_detached_offset_reads_and_prints_as_before() {
        let exact = DetachedOffset::exact(&committed(40), U(15));
        assert_eq!(
            serde_json::to_string(&exact).unwrap(),
            r#"{"topic":"t","partition":0,"committed":40,"translated":15,"how":"exact"}"#
        );
        let refused = DetachError::NoTranslation {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            offset: V(40),
            upstream: U(40),
            source_cluster: "old".into(),
            cluster: "new".into(),
            syncs_topic: "mm2-offset-syncs.new.internal".into(),
        };
        assert!(
            refused.to_string().starts_with(
                "detach of group 'g' refused: its offset 40 of t-0 is on cluster 'old', and no \
                 MirrorMaker 2 offset sync into 'new' is at or below 40 there"
            ),
            "{refused}"
        );
    }
}
