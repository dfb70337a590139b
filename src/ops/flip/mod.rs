//! Moving a topic between clusters at runtime: prepare → fence → check →
//! record → switch. The fence is the proxy's gates
//! ([`crate::domain::gates`]); every decision is [`plan`]'s, and the steps
//! here do the IO it asks for.

mod error;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use self::error::FlipError;
pub use self::plan::Side;
use self::plan::{CopyProgress, Ends, FlipPlan, Transactions};
use crate::domain::gates::RunningGuard;
use crate::domain::ids::ClusterIdx;
use crate::domain::mirror;
use crate::domain::routes::RouteTable;
use crate::ops::state::{FlipRecord, RouteEntry, StitchPoint};
use crate::ops::steps::{self, InstanceSteps, StepClock, StepTiming};
use crate::runtime::proxy::Proxy;
use crate::upstream::cluster::offsets::TopicEnds;
use crate::upstream::cluster::topics::TopicConfigs;

/// Topics created in one CreateTopics request, at most.
const CREATE_BATCH: usize = 200;

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

/// What a flip of many topics is asked to do: each topic as
/// [`FlipAsked`] says, all of them in one fence, one stillness window and
/// one durable record, or none of them.
#[derive(Debug, Clone)]
pub struct FlipsAsked {
    pub topics: Vec<String>,
    pub to: ClusterIdx,
    pub side: Side,
    pub mirrored: bool,
}

impl From<&FlipAsked> for FlipsAsked {
    fn from(asked: &FlipAsked) -> FlipsAsked {
        FlipsAsked {
            topics: vec![asked.topic.clone()],
            to: asked.to,
            side: asked.side,
            mirrored: asked.mirrored,
        }
    }
}

/// What a finished flip of many topics did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlipsReport {
    /// Each topic's part, in the order asked; the steps are the batch's.
    pub topics: Vec<FlipReport>,
    pub steps: Vec<StepTiming>,
}

/// The topics a flip of many moves: the names `listed` (each once), or
/// with a `pattern` every topic matching it on a cluster other than `to`,
/// the clusters such a flip leaves. Internal topics (`__…`, and
/// MirrorMaker 2's `….internal`) are never matched.
pub async fn select_topics(
    proxy: &Proxy,
    pattern: Option<&str>,
    listed: Vec<String>,
    to: ClusterIdx,
) -> Result<Vec<String>, FlipError> {
    let Some(pattern) = pattern else {
        let mut seen = std::collections::HashSet::new();
        let topics: Vec<String> = listed
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .collect();
        return if topics.is_empty() {
            Err(FlipError::NoTopics)
        } else {
            Ok(topics)
        };
    };
    let matcher =
        crate::domain::pattern::Pattern::new(pattern).map_err(|reason| FlipError::BadPattern {
            pattern: pattern.to_owned(),
            reason,
        })?;
    let mut topics = std::collections::BTreeSet::new();
    let mut clusters = Vec::new();
    for cluster in proxy.clusters().filter(|c| c.idx != to) {
        clusters.push(format!("'{}'", cluster.name()));
        let names = cluster
            .topic_names()
            .await
            .map_err(|source| FlipError::Upstream {
                topic: pattern.to_owned(),
                source,
            })?;
        topics.extend(
            names.into_iter().filter(|t| {
                !t.starts_with("__") && !t.ends_with(".internal") && matcher.matches(t)
            }),
        );
    }
    if topics.is_empty() {
        return Err(FlipError::NoTopicMatches {
            pattern: pattern.to_owned(),
            clusters: clusters.join(", "),
        });
    }
    Ok(topics.into_iter().collect())
}

/// Runs one flip to completion, or aborts it leaving routes as they were.
pub async fn flip(proxy: &Arc<Proxy>, asked: &FlipAsked) -> Result<FlipReport, FlipError> {
    let done = flip_topics(proxy, &asked.into()).await?;
    let mut report = done.topics.into_iter().next().expect("a report per topic");
    report.steps = done.steps;
    Ok(report)
}

/// Runs a flip of many topics to completion, or aborts it leaving every
/// route as it was.
pub async fn flip_topics(proxy: &Arc<Proxy>, asked: &FlipsAsked) -> Result<FlipsReport, FlipError> {
    let count = asked.topics.len();
    flip_all(proxy, asked).await.map_err(|e| e.of_batch(count))
}

async fn flip_all(proxy: &Arc<Proxy>, asked: &FlipsAsked) -> Result<FlipsReport, FlipError> {
    let (_running, plans, mut reports) = begin_all(proxy, &asked.topics, asked.to, asked.side)?;
    let mut steps = Vec::new();
    let moving: Vec<&FlipPlan> = plans.iter().filter(|p| p.changed()).collect();
    if moving.is_empty() {
        return Ok(FlipsReport {
            topics: reports,
            steps,
        });
    }
    let label = steps::batch_name(moving.iter().map(|p| p.topic.as_str()), "topics");
    let mut clock = StepClock::start("topic", &label, Instant::now());

    // 0. prepare: each topic exists on its target with the same partitions.
    prepare_all(proxy, &moving).await?;
    clock.mark(&mut steps, "prepare", Instant::now());

    // 1. fence: no new Produce for the topics; wait for those under way.
    // 2. check: the old logs are done, and where each log ends.
    let produce: Vec<&FlipPlan> = moving
        .iter()
        .copied()
        .filter(|p| p.moves_produce())
        .collect();
    let mut stitches = BTreeMap::new();
    let fences = if produce.is_empty() {
        Vec::new()
    } else {
        let keys: Vec<(&str, &str)> = produce
            .iter()
            .map(|p| (p.topic.as_str(), p.source_name()))
            .collect();
        let gates = proxy.gates();
        let fences =
            steps::fence_and_drain_all::<FlipError>(gates, &keys, plan::INFLIGHT_WAIT).await?;
        clock.mark(&mut steps, "fence", Instant::now());
        stitches = check_all(proxy, &produce, asked.mirrored).await?;
        clock.mark(&mut steps, "check", Instant::now());
        fences
    };

    // 3. record, durably, before anything switches: all in one.
    let at_ms = steps::now_ms();
    let records: Vec<FlipRecord> = moving
        .iter()
        .map(|plan| {
            let stitch = stitches.remove(&plan.topic).unwrap_or_default();
            let mut record = plan.record(stitch, at_ms);
            record.steps = steps.clone();
            record
        })
        .collect();
    let next = |state: &_| plan::next_state_all(state, &records);
    let state = steps::record::<FlipError>(proxy, &label, next).await?;
    clock.mark(&mut steps, "record", Instant::now());

    // 4. switch, all in one table, then let held requests go (they now
    // route to the targets).
    let mut routes = RouteTable::clone(&proxy.routes());
    for (plan, record) in moving.iter().zip(&records) {
        plan.switch(&mut routes, record);
    }
    proxy.set_routes(routes);
    drop(state);
    drop(fences);
    clock.mark(&mut steps, "switch", Instant::now());
    let mut records = records.into_iter().peekable();
    for report in reports.iter_mut().filter(|r| r.changed) {
        let record = records.next().expect("a record per topic moved");
        tracing::info!(topic = report.topic, from = ?report.from, to = ?report.to, "flip done");
        report.stitch = record.stitch;
    }
    Ok(FlipsReport {
        topics: reports,
        steps,
    })
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
    let previews = dry_run_topics(proxy, &asked.into()).await?;
    Ok(previews.into_iter().next().expect("a preview per topic"))
}

/// [`dry_run`] of a flip of many topics: a preview of each, or the
/// refusal the flip would meet.
pub async fn dry_run_topics(
    proxy: &Arc<Proxy>,
    asked: &FlipsAsked,
) -> Result<Vec<FlipPreview>, FlipError> {
    let count = asked.topics.len();
    preview_all(proxy, asked)
        .await
        .map_err(|e| e.of_batch(count))
}

async fn preview_all(
    proxy: &Arc<Proxy>,
    asked: &FlipsAsked,
) -> Result<Vec<FlipPreview>, FlipError> {
    // A dry run takes no turn: another flip of the topics may start.
    let (running, plans, reports) = begin_all(proxy, &asked.topics, asked.to, asked.side)?;
    drop(running);
    let mut previews: Vec<FlipPreview> = reports
        .into_iter()
        .map(|report| FlipPreview {
            topic: report.topic,
            from: report.from,
            to: report.to,
            changed: report.changed,
            partitions: 0,
            create: None,
            stitch: Vec::new(),
            mirrored: asked.mirrored,
        })
        .collect();
    let at: BTreeMap<String, usize> = previews
        .iter()
        .enumerate()
        .map(|(i, p)| (p.topic.clone(), i))
        .collect();
    let moving: Vec<&FlipPlan> = plans.iter().filter(|p| p.changed()).collect();
    for ((source, to), group) in grouped(&moving, |p| (p.source, p.to)) {
        let upstream = FlipError::upstream_of(&group.names);
        let (source, target) = (proxy.cluster(source), proxy.cluster(to));
        let counts = partition_counts(proxy, &group).await?;
        let missing: Vec<String> = counts
            .iter()
            .filter(|(_, (_, on_target))| on_target.is_none())
            .map(|(topic, _)| topic.clone())
            .collect();
        let mut configs = source.topic_configs_of(&missing).await.map_err(&upstream)?;
        for (topic, (partitions, on_target)) in &counts {
            let preview = &mut previews[at[topic]];
            preview.partitions = *partitions;
            if on_target.is_none() {
                preview.create = Some(TopicToCreate {
                    cluster: target.name().to_owned(),
                    partitions: *partitions,
                    configs: configs.remove(topic).unwrap_or_default(),
                });
            }
        }
        let produce: Vec<String> = group
            .plans
            .iter()
            .filter(|p| p.moves_produce())
            .map(|p| p.topic.clone())
            .collect();
        let on_target: Vec<String> = produce
            .iter()
            .filter(|t| !missing.contains(t))
            .cloned()
            .collect();
        let old_ends = source.log_ends_of(&produce).await.map_err(&upstream)?;
        let new_ends = target.log_ends_of(&on_target).await.map_err(&upstream)?;
        for topic in &produce {
            let (old, new) = (ends_of(&old_ends, topic), ends_of(&new_ends, topic));
            previews[at[topic]].stitch = plan::stitch_points(&old, &new);
        }
    }
    Ok(previews)
}

/// One topic's ends from a query of many (none: nothing written yet).
fn ends_of(ends: &TopicEnds, topic: &str) -> Ends {
    ends.get(topic).cloned().unwrap_or_default()
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

/// [`begin`] of every one of `topics`, or the first refusal.
#[allow(clippy::type_complexity)]
fn begin_all<'p>(
    proxy: &'p Proxy,
    topics: &[String],
    to: ClusterIdx,
    side: Side,
) -> Result<(Vec<RunningGuard<'p>>, Vec<FlipPlan>, Vec<FlipReport>), FlipError> {
    let mut begun = (
        Vec::with_capacity(topics.len()),
        Vec::with_capacity(topics.len()),
        Vec::with_capacity(topics.len()),
    );
    for topic in topics {
        let (running, plan, report) = begin(proxy, topic, to, side)?;
        begun.0.push(running);
        begun.1.push(plan);
        begun.2.push(report);
    }
    Ok(begun)
}

/// Flips that ask the same clusters, with their topic names: a batched
/// query asks one cluster about all of them at once.
struct Group<'a> {
    names: Vec<String>,
    plans: Vec<&'a FlipPlan>,
}

/// `plans` grouped by `key` (a cluster, or a pair of them).
fn grouped<'a, K: Ord>(
    plans: &[&'a FlipPlan],
    key: impl Fn(&FlipPlan) -> K,
) -> BTreeMap<K, Group<'a>> {
    let mut groups: BTreeMap<K, Group<'a>> = BTreeMap::new();
    for plan in plans {
        let group = groups.entry(key(plan)).or_insert_with(|| Group {
            names: Vec::new(),
            plans: Vec::new(),
        });
        group.names.push(plan.topic.clone());
        group.plans.push(plan);
    }
    groups
}

/// Step 0, prepare: the topic exists on the target with the same
/// partitions, created there when missing.
pub(crate) async fn prepare(proxy: &Proxy, plan: &FlipPlan) -> Result<(), FlipError> {
    prepare_all(proxy, &[plan]).await
}

/// Step 0 of a flip of many topics: every topic's partition counts are
/// checked before any topic is created, so a mismatch anywhere creates
/// nothing; then the missing ones are created on their targets.
pub(crate) async fn prepare_all(proxy: &Proxy, plans: &[&FlipPlan]) -> Result<(), FlipError> {
    let groups = grouped(plans, |p| (p.source, p.to));
    let mut creates = Vec::new();
    for (&key, group) in &groups {
        let counts = partition_counts(proxy, group).await?;
        let missing: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(_, (_, on_target))| on_target.is_none())
            .map(|(topic, (count, _))| (topic, count))
            .collect();
        if !missing.is_empty() {
            creates.push((key, missing));
        }
    }
    for (key, missing) in creates {
        let names: Vec<String> = missing.iter().map(|(t, _)| t.clone()).collect();
        let upstream = FlipError::upstream_of(&names);
        let (source, target) = (proxy.cluster(key.0), proxy.cluster(key.1));
        let mut configs = source.topic_configs_of(&names).await.map_err(&upstream)?;
        let wanted: Vec<(String, usize, TopicConfigs)> = missing
            .iter()
            .map(|(topic, count)| {
                let configs = configs.remove(topic).unwrap_or_default();
                (topic.clone(), *count, configs)
            })
            .collect();
        for batch in wanted.chunks(CREATE_BATCH) {
            target.create_topics(batch).await.map_err(&upstream)?;
        }
        for (topic, count, configs) in &wanted {
            tracing::info!(
                topic,
                cluster = target.name(),
                partitions = count,
                configs = configs.len(),
                "created topic for flip"
            );
        }
        // Read them back: confirms them, and puts their partitions in the
        // view before any held request is routed there.
        let created = target.partition_counts(&names).await.map_err(&upstream)?;
        for plan in &groups[&key].plans {
            if let Some((_, count)) = missing.iter().find(|(t, _)| *t == plan.topic) {
                let made = created.get(&plan.topic).copied().unwrap_or(0);
                plan.same_partitions(*count, made)?;
            }
        }
    }
    Ok(())
}

/// Each topic's partition count on the cluster it leaves (which must have
/// it) and on the target, if the target has it; a count that differs is
/// the flip's refusal.
async fn partition_counts(
    proxy: &Proxy,
    group: &Group<'_>,
) -> Result<BTreeMap<String, (usize, Option<usize>)>, FlipError> {
    let Some(first) = group.plans.first() else {
        return Ok(BTreeMap::new());
    };
    let upstream = FlipError::upstream_of(&group.names);
    let (source, target) = (proxy.cluster(first.source), proxy.cluster(first.to));
    let on_source = source
        .partition_counts(&group.names)
        .await
        .map_err(&upstream)?;
    let on_target = target
        .partition_counts(&group.names)
        .await
        .map_err(&upstream)?;
    let mut counts = BTreeMap::new();
    for plan in &group.plans {
        let count = plan.source_partitions(on_source.get(&plan.topic).copied())?;
        let there = on_target.get(&plan.topic).copied();
        if let Some(there) = there {
            plan.same_partitions(count, there)?;
        }
        counts.insert(plan.topic.clone(), (count, there));
    }
    Ok(counts)
}

/// Step 2, check, while fenced: no transaction open on the old log, and
/// the log stands still; then the stitch points, at each log's true end.
pub(crate) async fn check(
    proxy: &Proxy,
    plan: &FlipPlan,
    mirrored: bool,
) -> Result<Vec<StitchPoint>, FlipError> {
    let mut stitches = check_all(proxy, &[plan], mirrored).await?;
    Ok(stitches.remove(&plan.topic).unwrap_or_default())
}

/// Step 2 of a flip of many topics: as [`check`], every topic's logs read
/// at once and one stillness window for all; the stitch points by topic.
pub(crate) async fn check_all(
    proxy: &Proxy,
    plans: &[&FlipPlan],
    mirrored: bool,
) -> Result<BTreeMap<String, Vec<StitchPoint>>, FlipError> {
    let by_source = grouped(plans, |p| p.source);
    transactions_closed(proxy, &by_source).await?;
    // Any append moves what a broker reports (Kafka's high watermark,
    // tansu's last batch), so reported ends tell stillness; the stitch
    // points are then verified by fetching there.
    let mut before = Vec::with_capacity(by_source.len());
    for (&source, group) in &by_source {
        let reported = proxy.cluster(source).reported_ends_of(&group.names).await;
        before.push(reported.map_err(FlipError::upstream_of(&group.names))?);
    }
    tokio::time::sleep(plan::STILLNESS_WINDOW).await;
    let mut old_ends = TopicEnds::new();
    for ((&source, group), before) in by_source.iter().zip(&before) {
        let upstream = FlipError::upstream_of(&group.names);
        let source = proxy.cluster(source);
        let reported = source
            .reported_ends_of(&group.names)
            .await
            .map_err(&upstream)?;
        for plan in &group.plans {
            plan.still(
                &ends_of(before, &plan.topic),
                &ends_of(&reported, &plan.topic),
            )?;
        }
        old_ends.extend(source.log_ends_of(&group.names).await.map_err(&upstream)?);
    }
    let new_ends = if mirrored {
        caught_up_copies(proxy, plans, &old_ends).await?
    } else {
        let mut new_ends = TopicEnds::new();
        for (&to, group) in &grouped(plans, |p| p.to) {
            let ends = proxy.cluster(to).log_ends_of(&group.names).await;
            new_ends.extend(ends.map_err(FlipError::upstream_of(&group.names))?);
        }
        new_ends
    };
    Ok(plans
        .iter()
        .map(|p| {
            let (old, new) = (ends_of(&old_ends, &p.topic), ends_of(&new_ends, &p.topic));
            (p.topic.clone(), plan::stitch_points(&old, &new))
        })
        .collect())
}

/// Waits (bounded) until no transaction is open on any topic's old log.
async fn transactions_closed(
    proxy: &Proxy,
    by_source: &BTreeMap<ClusterIdx, Group<'_>>,
) -> Result<(), FlipError> {
    let started = Instant::now();
    for (&source, group) in by_source {
        let upstream = FlipError::upstream_of(&group.names);
        loop {
            let open = proxy
                .cluster(source)
                .open_transactions_of(&group.names)
                .await
                .map_err(&upstream)?;
            let mut waiting = false;
            for plan in &group.plans {
                let open = open.get(&plan.topic).map_or(&[][..], Vec::as_slice);
                match plan.transactions(open, started.elapsed())? {
                    Transactions::Closed => {}
                    Transactions::Open => waiting = true,
                }
            }
            if !waiting {
                break;
            }
            tokio::time::sleep(plan::TXN_POLL).await;
        }
    }
    Ok(())
}

/// The log ends of each topic on its target once MirrorMaker 2's copy
/// holds every record below `old_ends` (the fenced old logs) and stays put
/// (see [`FlipPlan::mirror_copy`]).
async fn caught_up_copies(
    proxy: &Proxy,
    plans: &[&FlipPlan],
    old_ends: &TopicEnds,
) -> Result<TopicEnds, FlipError> {
    let started = Instant::now();
    let mut seen: BTreeMap<String, Ends> = BTreeMap::new();
    let mut caught_up = TopicEnds::new();
    loop {
        let waiting: Vec<&FlipPlan> = plans
            .iter()
            .copied()
            .filter(|p| !caught_up.contains_key(&p.topic))
            .collect();
        if waiting.is_empty() {
            return Ok(caught_up);
        }
        for (&(source, to), group) in &grouped(&waiting, |p| (p.source, p.to)) {
            let upstream = FlipError::upstream_of(&group.names);
            let target = proxy.cluster(to);
            let syncs_topic = mirror::offset_syncs_topic(target.name());
            let syncs = crate::ops::detach::offset_syncs(proxy, &syncs_topic, [source, to])
                .await
                .map_err(&upstream)?;
            let ends = target.log_ends_of(&group.names).await.map_err(&upstream)?;
            for plan in &group.plans {
                let (old, now) = (ends_of(old_ends, &plan.topic), ends_of(&ends, &plan.topic));
                let last = seen.remove(&plan.topic);
                match plan.mirror_copy(&old, &syncs, now, last, started.elapsed())? {
                    CopyProgress::CaughtUp(ends) => {
                        caught_up.insert(plan.topic.clone(), ends);
                    }
                    CopyProgress::Wait { seen: Some(ends) } => {
                        seen.insert(plan.topic.clone(), ends);
                    }
                    CopyProgress::Wait { seen: None } => {}
                }
            }
        }
        if caught_up.len() < plans.len() {
            tokio::time::sleep(plan::STILLNESS_WINDOW).await;
        }
    }
}
