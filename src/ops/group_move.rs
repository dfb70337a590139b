//! Moving a consumer group's coordinator to another cluster at runtime:
//! prepare → hold → copy → record → switch.
//!
//! While the group is held, the proxy keeps its requests (joins, heartbeats,
//! commits) from going anywhere, so no commit lands on the old cluster after
//! its offsets are copied. Once switched, every request of the group goes
//! to the target's coordinator: members learn there that their membership
//! is unknown and rejoin, and read their positions from the copied offsets.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::domain::gates::Unfenced;
use crate::domain::ids::ClusterIdx;
use crate::ops::flip::{StepClock, StepTiming};
use crate::ops::state::{GroupMoveRecord, StateError};
use crate::runtime::proxy::Proxy;
use crate::upstream::cluster::groups::CommittedOffset;
use crate::upstream::UpstreamError;

/// What a finished group move did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupMoveReport {
    pub group: String,
    pub from: String,
    pub to: String,
    /// False when the group was already coordinated by the target.
    pub changed: bool,
    pub steps: Vec<StepTiming>,
    /// Committed offsets copied, one per partition.
    pub offsets: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GroupMoveError {
    #[error("'{0}' is not a consumer group id; give the exact, non-empty id")]
    BadGroup(String),
    #[error("a move of group '{0}' is already running")]
    AlreadyRunning(String),
    #[error(
        "group '{group}' is {state} on cluster '{cluster}', so its offsets there cannot be \
         replaced; stop its members on '{cluster}' (or delete the group there) and move again"
    )]
    TargetInUse {
        group: String,
        cluster: String,
        state: String,
    },
    #[error(
        "move of group '{group}' aborted: {count} offset commits to cluster '{cluster}' still \
         unanswered after {waited:?}; routes unchanged"
    )]
    InflightTimeout {
        group: String,
        cluster: String,
        count: usize,
        waited: Duration,
    },
    #[error(
        "group '{group}' has committed offsets for topic '{topic}', which cluster '{cluster}' \
         lacks (or has fewer partitions of); flip or create the topic there first; routes unchanged"
    )]
    TopicMissing {
        group: String,
        topic: String,
        cluster: String,
    },
    #[error(
        "move of group '{group}' aborted: the offsets read back from cluster '{cluster}' differ \
         from those copied; routes unchanged"
    )]
    CopyMismatch { group: String, cluster: String },
    #[error("move of group '{group}' aborted: {source}; routes unchanged")]
    Upstream {
        group: String,
        source: UpstreamError,
    },
    #[error("move of group '{group}' aborted: {source}; routes unchanged")]
    State { group: String, source: StateError },
}

/// How long a move waits for offset commits already sent to the old
/// coordinator to be answered.
const INFLIGHT_WAIT: Duration = Duration::from_secs(10);

/// Moves `group` to cluster `to`, or aborts leaving routes as they were.
pub async fn move_group(
    proxy: &Arc<Proxy>,
    group: &str,
    to: ClusterIdx,
) -> Result<GroupMoveReport, GroupMoveError> {
    if group.is_empty() || group.len() > 255 {
        return Err(GroupMoveError::BadGroup(group.to_owned()));
    }
    let _running = proxy
        .group_moves
        .start(group)
        .ok_or_else(|| GroupMoveError::AlreadyRunning(group.to_owned()))?;
    let upstream = |source| GroupMoveError::Upstream {
        group: group.to_owned(),
        source,
    };
    let from = proxy.routes().group_cluster(group);
    let (source, target) = (proxy.cluster(from), proxy.cluster(to));
    let mut report = GroupMoveReport {
        group: group.to_owned(),
        from: source.name().to_owned(),
        to: target.name().to_owned(),
        changed: from != to,
        steps: Vec::new(),
        offsets: 0,
    };
    if !report.changed {
        return Ok(report);
    }
    let mut clock = StepClock::start();

    // 0. prepare: the target must not have a live group of that name.
    let state = target.group_state(group).await.map_err(upstream)?;
    if !matches!(state.as_str(), "Empty" | "Dead" | "") {
        return Err(GroupMoveError::TargetInUse {
            group: group.to_owned(),
            cluster: target.name().to_owned(),
            state,
        });
    }
    clock.mark(&mut report.steps, "prepare");

    // 1. hold the group's requests; wait for commits under way.
    let _fence = proxy
        .group_gates
        .fence_and_drain(group, INFLIGHT_WAIT)
        .await
        .map_err(|unfenced| match unfenced {
            Unfenced::AlreadyFenced => GroupMoveError::AlreadyRunning(group.to_owned()),
            Unfenced::StillInFlight(count) => GroupMoveError::InflightTimeout {
                group: group.to_owned(),
                cluster: source.name().to_owned(),
                count,
                waited: INFLIGHT_WAIT,
            },
        })?;
    clock.mark(&mut report.steps, "hold");

    // 2. copy the committed offsets, and read them back.
    let offsets: Vec<CommittedOffset> = source.group_offsets(group).await.map_err(upstream)?;
    // A coordinator keeps offsets only for partitions its cluster has.
    let mut topics: Vec<&str> = offsets.iter().map(|o| o.topic.as_str()).collect();
    topics.dedup();
    for topic in topics {
        let needed = offsets
            .iter()
            .filter(|o| o.topic == topic)
            .map(|o| o.partition + 1)
            .max()
            .unwrap_or(0);
        let has = target.partition_count(topic).await.map_err(upstream)?;
        if has.is_none_or(|n| (n as i64) < i64::from(needed)) {
            return Err(GroupMoveError::TopicMissing {
                group: group.to_owned(),
                topic: topic.to_owned(),
                cluster: target.name().to_owned(),
            });
        }
    }
    target
        .commit_group_offsets(group, &offsets)
        .await
        .map_err(upstream)?;
    let copied = target.group_offsets(group).await.map_err(upstream)?;
    let key = |o: &CommittedOffset| (o.topic.clone(), o.partition, o.offset);
    if !offsets
        .iter()
        .all(|o| copied.iter().any(|c| key(c) == key(o)))
    {
        return Err(GroupMoveError::CopyMismatch {
            group: group.to_owned(),
            cluster: target.name().to_owned(),
        });
    }
    report.offsets = offsets.len();
    clock.mark(&mut report.steps, "copy");

    // 3. record, durably, before anything switches.
    let mut state = proxy.state.lock().await;
    let mut next = state.clone();
    next.groups.insert(group.to_owned(), report.to.clone());
    next.group_moves.push(GroupMoveRecord {
        group: group.to_owned(),
        from: report.from.clone(),
        to: report.to.clone(),
        at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        offsets: report.offsets,
    });
    proxy
        .store
        .save(&next)
        .map_err(|source| GroupMoveError::State {
            group: group.to_owned(),
            source,
        })?;
    *state = next;
    clock.mark(&mut report.steps, "record");

    // 4. switch; the held requests then go to the target's coordinator.
    proxy.set_routes(proxy.routes().with_runtime_group(group, to));
    drop(state);
    clock.mark(&mut report.steps, "switch");
    tracing::info!(group, from = %report.from, to = %report.to, offsets = report.offsets, "group moved");
    Ok(report)
}
