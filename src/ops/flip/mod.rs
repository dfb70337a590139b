//! Moving a topic between clusters at runtime: prepare → fence → check →
//! record → switch. The fence is the proxy's gates
//! ([`crate::domain::gates`]); every decision is [`plan`]'s, and the steps
//! here do the IO it asks for.

mod error;
pub mod plan;

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use self::error::FlipError;
pub use self::plan::Side;
use self::plan::{CopyProgress, Ends, FlipPlan, Transactions};
use crate::domain::gates::RunningGuard;
use crate::domain::ids::ClusterIdx;
use crate::domain::mirror;
use crate::ops::state::{RouteEntry, StitchPoint};
use crate::ops::steps::{self, InstanceSteps, StepClock, StepTiming};
use crate::runtime::proxy::Proxy;
use crate::upstream::Cluster;

/// What a finished flip did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlipReport {
    pub topic: String,
    pub from: RouteEntry,
    pub to: RouteEntry,
    /// False when the topic already routed where the flip asked.
    pub changed: bool,
    pub steps: Vec<StepTiming>,
    pub stitch: Vec<StitchPoint>,
    /// For a flip across the instances sharing a state topic: how long
    /// each took to fence and to switch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceSteps>,
    /// The fleet run's id, as the state topic's records name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

/// Resolves a cluster name for a flip.
pub fn cluster_named(proxy: &Proxy, name: &str) -> Result<ClusterIdx, FlipError> {
    proxy
        .cluster_by_name(name)
        .ok_or_else(|| FlipError::UnknownCluster {
            name: name.to_owned(),
            known: proxy
                .clusters()
                .map(|c| c.name().to_owned())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// What a flip is asked to do.
#[derive(Debug, Clone)]
pub struct FlipAsked {
    pub topic: String,
    pub to: ClusterIdx,
    pub side: Side,
    /// MirrorMaker 2 copies the topic to the target, so the stitch waits
    /// until the copy has caught up with the fenced old log and is taken
    /// after it; copies arriving later would otherwise read as new records.
    pub mirrored: bool,
}

/// Runs one flip to completion, or aborts it leaving routes as they were.
pub async fn flip(proxy: &Arc<Proxy>, asked: &FlipAsked) -> Result<FlipReport, FlipError> {
    let (topic, mirrored) = (asked.topic.as_str(), asked.mirrored);
    let (_running, plan, mut report) = begin(proxy, topic, asked.to, asked.side)?;
    if !report.changed {
        return Ok(report);
    }
    let mut clock = StepClock::start("topic", topic, Instant::now());

    // 0. prepare: the topic exists on the target with the same partitions.
    prepare(proxy, &plan).await?;
    clock.mark(&mut report.steps, "prepare", Instant::now());

    // 1. fence: no new Produce for the topic; wait for those under way.
    // 2. check: the old log is done, and where each log ends.
    let fence = if plan.moves_produce() {
        let fence = steps::fence_and_drain::<FlipError>(
            proxy.gates(),
            topic,
            plan.source_name(),
            plan::INFLIGHT_WAIT,
        )
        .await?;
        clock.mark(&mut report.steps, "fence", Instant::now());
        report.stitch = check(proxy, &plan, mirrored).await?;
        clock.mark(&mut report.steps, "check", Instant::now());
        Some(fence)
    } else {
        None
    };

    // 3. record, durably, before anything switches.
    let mut record = plan.record(report.stitch.clone(), steps::now_ms());
    record.steps = report.steps.clone();
    let next = |state: &_| plan::next_state(state, &record);
    let state = steps::record::<FlipError>(proxy, topic, next).await?;
    clock.mark(&mut report.steps, "record", Instant::now());

    // 4. switch, then let held requests go (they now route to the target).
    proxy.set_routes(plan.switched(&proxy.routes(), &record));
    drop(state);
    drop(fence);
    clock.mark(&mut report.steps, "switch", Instant::now());
    tracing::info!(topic, from = ?report.from, to = ?report.to, "flip done");
    Ok(report)
}

/// What a flip would do now, without doing any of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlipPreview {
    pub topic: String,
    pub from: RouteEntry,
    pub to: RouteEntry,
    /// False when the topic already routes where the flip asks.
    pub changed: bool,
    /// Partitions of the topic on the cluster it leaves.
    pub partitions: usize,
    /// Present when the target lacks the topic: the flip would create it
    /// with these partitions and the source's topic configs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<TopicToCreate>,
    /// The stitch points the flip would record if the logs stood where
    /// they stand now (empty when Produce does not move). A flip fences
    /// first, so it records these plus whatever is written meanwhile.
    pub stitch: Vec<StitchPoint>,
    /// The stitch would wait for MirrorMaker 2's copy.
    pub mirrored: bool,
}

/// A topic a flip would create on its target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicToCreate {
    pub cluster: String,
    pub partitions: usize,
    pub configs: Vec<(String, Option<String>)>,
}

/// Everything a flip would check and record, read now: no fence, no
/// topic created, nothing recorded or switched. Refuses as the flip
/// would (a missing topic, partition counts that differ, …).
pub async fn dry_run(proxy: &Arc<Proxy>, asked: &FlipAsked) -> Result<FlipPreview, FlipError> {
    let topic = asked.topic.as_str();
    // A dry run takes no turn: another flip of the topic may start.
    let (running, plan, report) = begin(proxy, topic, asked.to, asked.side)?;
    drop(running);
    let mut preview = FlipPreview {
        topic: report.topic,
        from: report.from,
        to: report.to,
        changed: report.changed,
        partitions: 0,
        create: None,
        stitch: Vec::new(),
        mirrored: asked.mirrored,
    };
    if !preview.changed {
        return Ok(preview);
    }
    let upstream = FlipError::upstream(topic);
    let (source, target) = (proxy.cluster(plan.source), proxy.cluster(plan.to));
    let (partitions, on_target) = partition_counts(proxy, &plan).await?;
    preview.partitions = partitions;
    match on_target {
        Some(n) => plan.same_partitions(partitions, n)?,
        None => {
            preview.create = Some(TopicToCreate {
                cluster: target.name().to_owned(),
                partitions: preview.partitions,
                configs: source.topic_configs(topic).await.map_err(&upstream)?,
            })
        }
    }
    if plan.moves_produce() {
        let old_ends = source.log_ends(topic).await.map_err(&upstream)?;
        let new_ends = match preview.create {
            Some(_) => Ends::new(),
            None => target.log_ends(topic).await.map_err(&upstream)?,
        };
        preview.stitch = plan::stitch_points(&old_ends, &new_ends);
    }
    Ok(preview)
}

/// What every flip starts with: a valid topic name, no other flip of it
/// running (the guard says so until it drops), the plan from the routes
/// as they are, and the report it will fill.
pub(crate) fn begin<'p>(
    proxy: &'p Proxy,
    topic: &str,
    to: ClusterIdx,
    side: Side,
) -> Result<(RunningGuard<'p>, FlipPlan, FlipReport), FlipError> {
    plan::check_topic(topic)?;
    let running = proxy
        .flips()
        .start(topic)
        .ok_or_else(|| FlipError::AlreadyRunning(topic.to_owned()))?;
    let routes = proxy.routes();
    let plan = FlipPlan::new(
        topic,
        routes.route(topic),
        to,
        side,
        routes.stitches().has_topic(topic),
        |c| proxy.cluster(c).name().to_owned(),
    )?;
    let report = FlipReport {
        topic: topic.to_owned(),
        from: plan.from_entry.clone(),
        to: plan.to_entry.clone(),
        changed: plan.changed(),
        steps: Vec::new(),
        run: None,
        stitch: Vec::new(),
        instances: Vec::new(),
    };
    Ok((running, plan, report))
}

/// Step 0, prepare: the topic exists on the target with the same
/// partitions, created there when missing.
pub(crate) async fn prepare(proxy: &Proxy, plan: &FlipPlan) -> Result<(), FlipError> {
    let topic = plan.topic.as_str();
    let upstream = FlipError::upstream(topic);
    let (source, target) = (proxy.cluster(plan.source), proxy.cluster(plan.to));
    let (source_count, on_target) = partition_counts(proxy, plan).await?;
    let target_count = match on_target {
        Some(n) => n,
        None => {
            let configs = source.topic_configs(topic).await.map_err(&upstream)?;
            target
                .create_topic(topic, source_count, &configs)
                .await
                .map_err(&upstream)?;
            tracing::info!(
                topic,
                cluster = target.name(),
                partitions = source_count,
                configs = configs.len(),
                "created topic for flip"
            );
            // Read it back: confirms it, and puts its partitions in the view
            // before any held request is routed there.
            target
                .partition_count(topic)
                .await
                .map_err(&upstream)?
                .unwrap_or(0)
        }
    };
    plan.same_partitions(source_count, target_count)
}

/// The topic's partition count on the cluster it leaves (which must have
/// it) and on the target, if the target has it.
async fn partition_counts(
    proxy: &Proxy,
    plan: &FlipPlan,
) -> Result<(usize, Option<usize>), FlipError> {
    let upstream = FlipError::upstream(&plan.topic);
    let (source, target) = (proxy.cluster(plan.source), proxy.cluster(plan.to));
    let count = source
        .partition_count(&plan.topic)
        .await
        .map_err(&upstream)?;
    let source_count = plan.source_partitions(count)?;
    let target_count = target
        .partition_count(&plan.topic)
        .await
        .map_err(&upstream)?;
    Ok((source_count, target_count))
}

/// Step 2, check, while fenced: no transaction open on the old log, and
/// the log stands still; then the stitch points, at each log's true end.
pub(crate) async fn check(
    proxy: &Proxy,
    plan: &FlipPlan,
    mirrored: bool,
) -> Result<Vec<StitchPoint>, FlipError> {
    let topic = plan.topic.as_str();
    let upstream = FlipError::upstream(topic);
    let source = proxy.cluster(plan.source);
    transactions_closed(source, plan).await?;
    // Any append moves what a broker reports (Kafka's high watermark,
    // tansu's last batch), so reported ends tell stillness; the stitch
    // points are then verified by fetching there.
    let before = source.reported_ends(topic).await.map_err(&upstream)?;
    tokio::time::sleep(plan::STILLNESS_WINDOW).await;
    let reported = source.reported_ends(topic).await.map_err(&upstream)?;
    plan.still(&before, &reported)?;
    let old_ends = source.log_ends(topic).await.map_err(&upstream)?;
    let new_ends = if mirrored {
        caught_up_copy(proxy, plan, &old_ends).await?
    } else {
        let target = proxy.cluster(plan.to);
        target.log_ends(topic).await.map_err(&upstream)?
    };
    Ok(plan::stitch_points(&old_ends, &new_ends))
}

/// Waits (bounded) until no transaction is open on the topic's old log.
async fn transactions_closed(source: &Cluster, plan: &FlipPlan) -> Result<(), FlipError> {
    let started = Instant::now();
    loop {
        let open = source
            .open_transactions(&plan.topic)
            .await
            .map_err(FlipError::upstream(&plan.topic))?;
        match plan.transactions(&open, started.elapsed())? {
            Transactions::Closed => return Ok(()),
            Transactions::Open => tokio::time::sleep(plan::TXN_POLL).await,
        }
    }
}

/// The log ends of the topic on the target once MirrorMaker 2's copy holds
/// every record below `old_ends` (the fenced old log) and stays put (see
/// [`FlipPlan::mirror_copy`]).
async fn caught_up_copy(
    proxy: &Proxy,
    plan: &FlipPlan,
    old_ends: &Ends,
) -> Result<Ends, FlipError> {
    let upstream = FlipError::upstream(&plan.topic);
    let target = proxy.cluster(plan.to);
    let syncs_topic = mirror::offset_syncs_topic(target.name());
    let started = Instant::now();
    let mut seen = None;
    loop {
        let syncs = crate::ops::detach::offset_syncs(proxy, &syncs_topic, [plan.source, plan.to])
            .await
            .map_err(&upstream)?;
        let ends = target.log_ends(&plan.topic).await.map_err(&upstream)?;
        match plan.mirror_copy(old_ends, &syncs, ends, seen, started.elapsed())? {
            CopyProgress::CaughtUp(ends) => return Ok(ends),
            CopyProgress::Wait { seen: next } => seen = next,
        }
        tokio::time::sleep(plan::STILLNESS_WINDOW).await;
    }
}
