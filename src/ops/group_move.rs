//! Moving a consumer group's coordinator to another cluster at runtime:
//! prepare → hold → copy → record → switch.
//!
//! While the group is held, the proxy keeps its requests (joins, heartbeats,
//! commits) from going anywhere, so no commit lands on the old cluster after
//! its offsets are copied. Once switched, every request of the group goes
//! to the target's coordinator: members learn there that their membership
//! is unknown and rejoin, and read their positions from the copied offsets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::domain::gates::RunningGuard;
use crate::domain::groups;
use crate::domain::ids::ClusterIdx;
use crate::domain::routes::RouteTable;
use crate::ops::state::{GroupMoveRecord, State, StateError};
use crate::ops::steps::{self, InstanceSteps, MoveError, StepClock, StepTiming};
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
    /// For a move across the instances sharing a state topic: how long
    /// each took to hold the group and to switch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceSteps>,
    /// The fleet run's id, as the state topic's records name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
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
    #[error("'{pattern}' is not a group pattern: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("no group on cluster(s) {clusters} matches '{pattern}'; nothing was changed")]
    NoGroupMatches { pattern: String, clusters: String },
    /// One group of a move of many stopped them all.
    #[error("move of {count} groups aborted, none of them moved: {source}")]
    Batch {
        count: usize,
        source: Box<GroupMoveError>,
    },
    #[error("move of group '{group}' aborted by instance '{instance}': {reason}; routes unchanged on every instance")]
    FleetAborted {
        group: String,
        instance: String,
        reason: String,
    },
}

/// How long a move waits for offset commits already sent to the old
/// coordinator to be answered.
pub(crate) const INFLIGHT_WAIT: Duration = Duration::from_secs(10);

impl MoveError for GroupMoveError {
    fn outcome(&self) -> (&'static str, &'static str) {
        use GroupMoveError::*;
        match self {
            BadGroup(_) => ("refused", "bad_group"),
            AlreadyRunning(_) => ("refused", "already_running"),
            TargetInUse { .. } => ("refused", "target_in_use"),
            TopicMissing { .. } => ("refused", "topic_missing"),
            InflightTimeout { .. } => ("aborted", "in_flight"),
            CopyMismatch { .. } => ("aborted", "copy_mismatch"),
            Upstream { .. } => ("aborted", "upstream"),
            State { .. } => ("aborted", "state"),
            FleetAborted { .. } => ("aborted", "fleet"),
            BadPattern { .. } => ("refused", "bad_pattern"),
            NoGroupMatches { .. } => ("refused", "no_group_matches"),
            Batch { source, .. } => source.outcome(),
        }
    }

    fn already_running(group: &str) -> Self {
        GroupMoveError::AlreadyRunning(group.to_owned())
    }

    fn still_in_flight(group: &str, cluster: &str, count: usize, waited: Duration) -> Self {
        GroupMoveError::InflightTimeout {
            group: group.to_owned(),
            cluster: cluster.to_owned(),
            count,
            waited,
        }
    }

    fn not_recorded(group: &str, source: StateError) -> Self {
        GroupMoveError::State {
            group: group.to_owned(),
            source,
        }
    }

    fn fleet_aborted(group: &str, instance: String, reason: String) -> Self {
        GroupMoveError::FleetAborted {
            group: group.to_owned(),
            instance,
            reason,
        }
    }
}

/// What a move of many groups did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupMovesReport {
    /// Each group's part, in the order asked; the steps are the batch's.
    pub groups: Vec<GroupMoveReport>,
    pub steps: Vec<StepTiming>,
}

impl GroupMoveError {
    /// This error, as the error of a move of `count` groups.
    fn of_batch(self, count: usize) -> GroupMoveError {
        match self {
            done if count <= 1 => done,
            many @ GroupMoveError::Batch { .. } => many,
            one => GroupMoveError::Batch {
                count,
                source: Box::new(one),
            },
        }
    }
}

/// The groups a move of many moves: every group matching `pattern` on a
/// cluster other than `to`.
pub async fn select_groups(
    proxy: &Proxy,
    pattern: &str,
    to: ClusterIdx,
) -> Result<Vec<String>, GroupMoveError> {
    let matcher = crate::domain::pattern::Pattern::new(pattern).map_err(|reason| {
        GroupMoveError::BadPattern {
            pattern: pattern.to_owned(),
            reason,
        }
    })?;
    let mut groups = std::collections::BTreeSet::new();
    let mut clusters = Vec::new();
    for cluster in proxy.clusters().filter(|c| c.idx != to) {
        clusters.push(format!("'{}'", cluster.name()));
        let listed = cluster.list_groups().await.map_err(upstream(pattern))?;
        groups.extend(listed.into_iter().filter(|g| matcher.matches(g)));
    }
    if groups.is_empty() {
        return Err(GroupMoveError::NoGroupMatches {
            pattern: pattern.to_owned(),
            clusters: clusters.join(", "),
        });
    }
    Ok(groups.into_iter().collect())
}

/// Moves `group` to cluster `to`, or aborts leaving routes as they were.
pub async fn move_group(
    proxy: &Arc<Proxy>,
    group: &str,
    to: ClusterIdx,
) -> Result<GroupMoveReport, GroupMoveError> {
    let done = move_groups(proxy, &[group.to_owned()], to).await?;
    let mut report = done.groups.into_iter().next().expect("a report per group");
    report.steps = done.steps;
    Ok(report)
}

/// Moves every one of `groups` to cluster `to` in one hold, one record
/// and one switch, or aborts leaving every route as it was.
pub async fn move_groups(
    proxy: &Arc<Proxy>,
    groups: &[String],
    to: ClusterIdx,
) -> Result<GroupMovesReport, GroupMoveError> {
    let count = groups.len();
    move_all(proxy, groups, to)
        .await
        .map_err(|e| e.of_batch(count))
}

async fn move_all(
    proxy: &Arc<Proxy>,
    groups: &[String],
    to: ClusterIdx,
) -> Result<GroupMovesReport, GroupMoveError> {
    let mut running = Vec::with_capacity(groups.len());
    let mut begun = Vec::with_capacity(groups.len());
    for group in groups {
        let (guard, from, report) = begin(proxy, group, to)?;
        running.push(guard);
        begun.push((from, report));
    }
    let mut steps = Vec::new();
    let moving: Vec<usize> = (0..begun.len()).filter(|i| begun[*i].1.changed).collect();
    let reports = |begun: Vec<(ClusterIdx, GroupMoveReport)>| begun.into_iter().map(|b| b.1);
    if moving.is_empty() {
        return Ok(GroupMovesReport {
            groups: reports(begun).collect(),
            steps,
        });
    }
    let names = moving.iter().map(|&i| begun[i].1.group.as_str());
    let label = steps::batch_name(names, "groups");
    let mut clock = StepClock::start("group", &label, Instant::now());
    for &i in &moving {
        prepare(proxy, &begun[i].1.group, to).await?;
    }
    clock.mark(&mut steps, "prepare", Instant::now());

    // 1. hold every group's requests; wait for commits under way.
    let keys: Vec<(&str, &str)> = moving
        .iter()
        .map(|&i| (begun[i].1.group.as_str(), begun[i].1.from.as_str()))
        .collect();
    let gates = proxy.group_gates();
    let _fences = steps::fence_and_drain_all::<GroupMoveError>(gates, &keys, INFLIGHT_WAIT).await?;
    clock.mark(&mut steps, "hold", Instant::now());

    // 2. copy each group's committed offsets, and read them back.
    for &i in &moving {
        let (from, report) = &mut begun[i];
        report.offsets = copy(proxy, &report.group, *from, to).await?;
    }
    clock.mark(&mut steps, "copy", Instant::now());

    // 3. record, durably, before anything switches: all in one.
    let records: Vec<GroupMoveRecord> = moving
        .iter()
        .map(|&i| {
            let mut record = begun[i].1.record();
            record.steps = steps.clone();
            record
        })
        .collect();
    let next = |state: &State| next_state_all(state, &records);
    let state = steps::record::<GroupMoveError>(proxy, &label, next).await?;
    clock.mark(&mut steps, "record", Instant::now());

    // 4. switch; the held requests then go to the target's coordinator.
    let mut routes = RouteTable::clone(&proxy.routes());
    for record in &records {
        routes.set_runtime_group(&record.group, to);
    }
    proxy.set_routes(routes);
    drop(state);
    clock.mark(&mut steps, "switch", Instant::now());
    for record in &records {
        let (group, from, to) = (&record.group, &record.from, &record.to);
        tracing::info!(group, from, to, offsets = record.offsets, "group moved");
    }
    Ok(GroupMovesReport {
        groups: reports(begun).collect(),
        steps,
    })
}

/// What a move of each of `groups` to `to` would do now (see
/// [`dry_run`]), or the refusal the move would meet.
pub async fn dry_run_groups(
    proxy: &Arc<Proxy>,
    groups: &[String],
    to: ClusterIdx,
) -> Result<Vec<GroupMovePreview>, GroupMoveError> {
    let mut previews = Vec::with_capacity(groups.len());
    for group in groups {
        let preview = dry_run(proxy, group, to).await;
        previews.push(preview.map_err(|e| e.of_batch(groups.len()))?);
    }
    Ok(previews)
}

/// Starts a move of `group` to `to`: the guard against a second move of
/// it here, the cluster it moves from, and the report so far (`changed`
/// false when there is nothing to move).
pub(crate) fn begin<'p>(
    proxy: &'p Proxy,
    group: &str,
    to: ClusterIdx,
) -> Result<(RunningGuard<'p>, ClusterIdx, GroupMoveReport), GroupMoveError> {
    if !groups::valid_group_id(group) {
        return Err(GroupMoveError::BadGroup(group.to_owned()));
    }
    let running = proxy
        .group_moves()
        .start(group)
        .ok_or_else(|| GroupMoveError::AlreadyRunning(group.to_owned()))?;
    let from = proxy.routes().group_cluster(group);
    let report = GroupMoveReport {
        group: group.to_owned(),
        from: proxy.cluster(from).name().to_owned(),
        to: proxy.cluster(to).name().to_owned(),
        changed: from != to,
        steps: Vec::new(),
        offsets: 0,
        instances: Vec::new(),
        run: None,
    };
    Ok((running, from, report))
}

fn upstream(group: &str) -> impl Fn(UpstreamError) -> GroupMoveError + '_ {
    move |source| GroupMoveError::Upstream {
        group: group.to_owned(),
        source,
    }
}

/// Step 0: the target must not have a live group of that name.
pub(crate) async fn prepare(
    proxy: &Proxy,
    group: &str,
    to: ClusterIdx,
) -> Result<(), GroupMoveError> {
    let target = proxy.cluster(to);
    let state = target.group_state(group).await.map_err(upstream(group))?;
    if !groups::idle(&state) {
        return Err(GroupMoveError::TargetInUse {
            group: group.to_owned(),
            cluster: target.name().to_owned(),
            state,
        });
    }
    Ok(())
}

/// Step 2, with the group held: copies its committed offsets from `from`
/// to `to` and reads them back; how many were copied.
pub(crate) async fn copy(
    proxy: &Proxy,
    group: &str,
    from: ClusterIdx,
    to: ClusterIdx,
) -> Result<usize, GroupMoveError> {
    let upstream = upstream(group);
    let (source, target) = (proxy.cluster(from), proxy.cluster(to));
    let offsets: Vec<CommittedOffset> = source.group_offsets(group).await.map_err(&upstream)?;
    target_keeps(proxy, group, &offsets, to).await?;
    target
        .commit_group_offsets(group, &offsets)
        .await
        .map_err(&upstream)?;
    let copied = target.group_offsets(group).await.map_err(&upstream)?;
    if !copied_all(&offsets, &copied) {
        return Err(GroupMoveError::CopyMismatch {
            group: group.to_owned(),
            cluster: target.name().to_owned(),
        });
    }
    Ok(offsets.len())
}

/// A coordinator keeps offsets only for partitions its cluster has: the
/// target must have every partition `offsets` names.
async fn target_keeps(
    proxy: &Proxy,
    group: &str,
    offsets: &[CommittedOffset],
    to: ClusterIdx,
) -> Result<(), GroupMoveError> {
    let target = proxy.cluster(to);
    for (topic, needed) in partitions_needed(offsets) {
        let has = target
            .partition_count(topic)
            .await
            .map_err(upstream(group))?;
        if has.is_none_or(|n| n < needed) {
            return Err(GroupMoveError::TopicMissing {
                group: group.to_owned(),
                topic: topic.to_owned(),
                cluster: target.name().to_owned(),
            });
        }
    }
    Ok(())
}

/// What a move would do now, without doing any of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupMovePreview {
    pub group: String,
    pub from: String,
    pub to: String,
    /// False when the group is already coordinated by the target.
    pub changed: bool,
    /// The committed offsets the move would copy, as they stand now (the
    /// move holds the group first, so commits meanwhile add to them).
    pub offsets: Vec<PreviewOffset>,
}

/// One committed offset a move would copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Everything a move of `group` to `to` would check and copy, read now:
/// nothing held, copied, recorded or switched. Refuses as the move would
/// (a live group of that name on the target, a topic it lacks).
pub async fn dry_run(
    proxy: &Arc<Proxy>,
    group: &str,
    to: ClusterIdx,
) -> Result<GroupMovePreview, GroupMoveError> {
    // A dry run takes no turn: a move of the group may start meanwhile.
    let (running, from, report) = begin(proxy, group, to)?;
    drop(running);
    let mut preview = GroupMovePreview {
        group: report.group,
        from: report.from,
        to: report.to,
        changed: report.changed,
        offsets: Vec::new(),
    };
    if !preview.changed {
        return Ok(preview);
    }
    prepare(proxy, group, to).await?;
    let source = proxy.cluster(from);
    let offsets = source.group_offsets(group).await.map_err(upstream(group))?;
    target_keeps(proxy, group, &offsets, to).await?;
    preview.offsets = offsets
        .into_iter()
        .map(|o| PreviewOffset {
            topic: o.topic,
            partition: o.partition,
            offset: o.offset.0,
        })
        .collect();
    Ok(preview)
}

impl GroupMoveReport {
    /// The record of this move, as the state keeps it.
    pub(crate) fn record(&self) -> GroupMoveRecord {
        GroupMoveRecord {
            group: self.group.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            at_ms: steps::now_ms(),
            offsets: self.offsets,
            run: None,
            steps: self.steps.clone(),
        }
    }
}

/// Each topic the group has committed offsets for, with how many
/// partitions the target must have to keep them.
fn partitions_needed(offsets: &[CommittedOffset]) -> Vec<(&str, usize)> {
    let mut needed: Vec<(&str, usize)> = Vec::new();
    for o in offsets {
        let count = usize::try_from(o.partition).map_or(0, |p| p + 1);
        match needed.iter_mut().find(|(t, _)| *t == o.topic) {
            Some((_, n)) => *n = (*n).max(count),
            None => needed.push((&o.topic, count)),
        }
    }
    needed
}

/// Whether every offset `copied` back matches one copied out.
fn copied_all(offsets: &[CommittedOffset], copied: &[CommittedOffset]) -> bool {
    let key = |o: &CommittedOffset| (o.topic.clone(), o.partition, o.offset);
    offsets
        .iter()
        .all(|o| copied.iter().any(|c| key(c) == key(o)))
}

/// The state once every one of `records` is saved: each group coordinated
/// by its target, and the moves appended to the record of moves.
fn next_state_all(state: &State, records: &[GroupMoveRecord]) -> State {
    let mut next = state.clone();
    for record in records {
        next.groups.insert(record.group.clone(), record.to.clone());
        next.group_moves.push(record.clone());
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::offsets::VirtualOffset;

    fn committed(topic: &str, partition: i32, offset: i64) -> CommittedOffset {
        CommittedOffset {
            topic: topic.into(),
            partition,
            offset: VirtualOffset(offset),
            leader_epoch: -1,
            metadata: None,
        }
    }

    #[test]
    fn the_target_needs_every_partition_the_group_committed_for() {
        let offsets = [
            committed("a", 0, 5),
            committed("a", 3, 1),
            committed("b", 0, 9),
        ];
        assert_eq!(partitions_needed(&offsets), [("a", 4), ("b", 1)]);
        assert!(partitions_needed(&[]).is_empty());
    }

    #[test]
    fn a_copy_is_confirmed_only_when_every_offset_reads_back() {
        let offsets = [committed("a", 0, 5), committed("a", 1, 7)];
        let mut copied = offsets.to_vec();
        copied.push(committed("other", 0, 1));
        assert!(copied_all(&offsets, &copied));
        copied[1].offset = VirtualOffset(6);
        assert!(!copied_all(&offsets, &copied));
    }

    #[test]
    fn a_recorded_move_routes_the_group_to_its_target() {
        let record = GroupMoveRecord {
            group: "billing".into(),
            from: "old".into(),
            to: "new".into(),
            at_ms: 7,
            offsets: 2,
            run: None,
            steps: Vec::new(),
        };
        let next = next_state_all(&State::default(), std::slice::from_ref(&record));
        assert_eq!(next.groups["billing"], "new");
        assert_eq!(next.group_moves, [record]);
    }
}
