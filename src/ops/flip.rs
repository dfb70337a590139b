//! Moving a topic between clusters at runtime: prepare → fence → check →
//! record → switch. The fence is the proxy's gates
//! ([`crate::domain::gates`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::domain::gates::Unfenced;
use crate::domain::ids::ClusterIdx;
use crate::domain::routes::Route;
use crate::ops::state::{FlipRecord, RouteEntry, StateError, StitchPoint};
use crate::runtime::proxy::Proxy;
use crate::upstream::UpstreamError;

/// Which side of a topic's traffic a flip moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    #[default]
    Both,
    ProduceOnly,
    FetchOnly,
}

/// How long one step of a flip took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepTiming {
    pub step: String,
    pub ms: f64,
}

/// Times the steps of a flip or a group move, each from the end of the
/// one before.
pub struct StepClock(Instant);

impl StepClock {
    pub fn start() -> StepClock {
        StepClock(Instant::now())
    }

    /// Records step `name` as ending now.
    pub fn mark(&mut self, steps: &mut Vec<StepTiming>, name: &str) {
        let now = Instant::now();
        steps.push(StepTiming {
            step: name.to_owned(),
            ms: (now - self.0).as_secs_f64() * 1000.0,
        });
        self.0 = now;
    }
}

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
}

#[derive(Debug, thiserror::Error)]
pub enum FlipError {
    #[error("'{0}' is not a topic name; flip takes one exact topic name (letters, digits, '.', '_', '-')")]
    BadTopic(String),
    #[error("unknown cluster '{name}' (known: {known})")]
    UnknownCluster { name: String, known: String },
    #[error(
        "reads of '{0}' follow its stitched log (old records from the cluster that holds them, new \
         ones from where Produce went), so they cannot be flipped on their own; flip Produce instead"
    )]
    StitchedFetch(String),
    #[error("a flip of topic '{0}' is already running")]
    AlreadyRunning(String),
    #[error("topic '{topic}' does not exist on cluster '{cluster}'")]
    TopicMissing { topic: String, cluster: String },
    #[error(
        "topic '{topic}' has {source_count} partitions on cluster '{source_cluster}' but \
         {target_count} on cluster '{target_cluster}'; give both the same partition count"
    )]
    PartitionMismatch {
        topic: String,
        source_cluster: String,
        source_count: usize,
        target_cluster: String,
        target_count: usize,
    },
    #[error(
        "flip of '{topic}' aborted: {count} produce requests to cluster '{cluster}' still \
         unanswered after {waited:?}; routes unchanged"
    )]
    InflightTimeout {
        topic: String,
        cluster: String,
        count: usize,
        waited: Duration,
    },
    #[error(
        "flip of '{topic}' aborted: partition {partition} on cluster '{cluster}' grew from {before} \
         to {after} while fenced, so something writes to it without going through the proxy; \
         routes unchanged"
    )]
    WriterBehindProxy {
        topic: String,
        cluster: String,
        partition: i32,
        before: i64,
        after: i64,
    },
    #[error(
        "flip of '{topic}' aborted: partition {partition} on cluster '{cluster}' still has a \
         transaction open after {waited:?} (stable up to {stable}, written up to {end}); \
         routes unchanged"
    )]
    OpenTransaction {
        topic: String,
        cluster: String,
        partition: i32,
        stable: i64,
        end: i64,
        waited: Duration,
    },
    #[error(
        "flip of '{topic}' aborted: after {waited:?} MirrorMaker 2's copy on cluster '{cluster}' \
         does not hold partition {partition} up to {l_old} (by its offset syncs it reaches \
         {reached:?}; the copy ends at {end}); check MirrorMaker 2, or flip without --mirrored; \
         routes unchanged"
    )]
    MirrorBehind {
        topic: String,
        cluster: String,
        partition: i32,
        l_old: i64,
        reached: Option<i64>,
        end: i64,
        waited: Duration,
    },
    #[error("flip of '{topic}' aborted: {source}; routes unchanged")]
    Upstream {
        topic: String,
        source: UpstreamError,
    },
    #[error("flip of '{topic}' aborted: {source}; routes unchanged")]
    State { topic: String, source: StateError },
}

/// How long a flip waits for Produce requests already sent to the old
/// cluster to be answered.
const INFLIGHT_WAIT: Duration = Duration::from_secs(10);
/// How long a flip waits for transactions open on the old log to end.
const TXN_WAIT: Duration = Duration::from_secs(10);
/// How long the old log must stay still, after the fence, to show that
/// nobody writes to it behind the proxy's back.
const STILLNESS_WINDOW: Duration = Duration::from_millis(500);

fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Resolves a cluster name for a flip.
pub fn cluster_named(proxy: &Proxy, name: &str) -> Result<ClusterIdx, FlipError> {
    proxy
        .cluster_by_name(name)
        .ok_or_else(|| FlipError::UnknownCluster {
            name: name.to_owned(),
            known: proxy
                .clusters
                .iter()
                .map(|c| c.name().to_owned())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Runs one flip to completion, or aborts it leaving routes as they were.
///
/// `mirrored`: MirrorMaker 2 copies the topic to the target, so the stitch
/// waits until the copy has caught up with the fenced old log and is taken
/// after it; copies arriving later would otherwise read as new records.
pub async fn flip(
    proxy: &Arc<Proxy>,
    topic: &str,
    to: ClusterIdx,
    side: Side,
    mirrored: bool,
) -> Result<FlipReport, FlipError> {
    if !valid_topic_name(topic) {
        return Err(FlipError::BadTopic(topic.to_owned()));
    }
    let _running = proxy
        .flips
        .start(topic)
        .ok_or_else(|| FlipError::AlreadyRunning(topic.to_owned()))?;
    let upstream = |source| FlipError::Upstream {
        topic: topic.to_owned(),
        source,
    };
    let from = proxy.routes().route(topic);
    let target = match side {
        Side::Both => Route {
            produce: to,
            fetch: to,
        },
        Side::ProduceOnly => Route {
            produce: to,
            ..from
        },
        Side::FetchOnly => Route { fetch: to, ..from },
    };
    if side == Side::FetchOnly && proxy.routes().stitches().has_topic(topic) {
        return Err(FlipError::StitchedFetch(topic.to_owned()));
    }
    let mut report = FlipReport {
        topic: topic.to_owned(),
        from: proxy.route_entry(from),
        to: proxy.route_entry(target),
        changed: from != target,
        steps: Vec::new(),
        stitch: Vec::new(),
    };
    if !report.changed {
        return Ok(report);
    }
    let moves_produce = from.produce != target.produce;
    let mut clock = StepClock::start();

    // 0. prepare: the topic exists on the target with the same partitions.
    let source = if moves_produce {
        from.produce
    } else {
        from.fetch
    };
    let (source_cluster, target_cluster) = (proxy.cluster(source), proxy.cluster(to));
    let source_count = source_cluster
        .partition_count(topic)
        .await
        .map_err(upstream)?
        .ok_or_else(|| FlipError::TopicMissing {
            topic: topic.to_owned(),
            cluster: source_cluster.name().to_owned(),
        })?;
    let target_count = match target_cluster
        .partition_count(topic)
        .await
        .map_err(upstream)?
    {
        Some(n) => n,
        None => {
            let configs = source_cluster
                .topic_configs(topic)
                .await
                .map_err(upstream)?;
            target_cluster
                .create_topic(topic, source_count, &configs)
                .await
                .map_err(upstream)?;
            tracing::info!(
                topic,
                cluster = target_cluster.name(),
                partitions = source_count,
                configs = configs.len(),
                "created topic for flip"
            );
            // Read it back: confirms it, and puts its partitions in the view
            // before any held request is routed there.
            target_cluster
                .partition_count(topic)
                .await
                .map_err(upstream)?
                .unwrap_or(0)
        }
    };
    if target_count != source_count {
        return Err(FlipError::PartitionMismatch {
            topic: topic.to_owned(),
            source_cluster: source_cluster.name().to_owned(),
            source_count,
            target_cluster: target_cluster.name().to_owned(),
            target_count,
        });
    }
    clock.mark(&mut report.steps, "prepare");

    // 1. fence: no new Produce for the topic; wait for those under way.
    let fence = if moves_produce {
        let fence = proxy
            .gates
            .fence_and_drain(topic, INFLIGHT_WAIT)
            .await
            .map_err(|unfenced| match unfenced {
                Unfenced::AlreadyFenced => FlipError::AlreadyRunning(topic.to_owned()),
                Unfenced::StillInFlight(count) => FlipError::InflightTimeout {
                    topic: topic.to_owned(),
                    cluster: source_cluster.name().to_owned(),
                    count,
                    waited: INFLIGHT_WAIT,
                },
            })?;
        clock.mark(&mut report.steps, "fence");
        Some(fence)
    } else {
        None
    };

    // 2. check: no transaction open on the old log, and the log stands
    // still while fenced.
    if moves_produce {
        let started = Instant::now();
        loop {
            let open = source_cluster
                .open_transactions(topic)
                .await
                .map_err(upstream)?;
            let Some(&(partition, stable, end)) = open.first() else {
                break;
            };
            if started.elapsed() > TXN_WAIT {
                return Err(FlipError::OpenTransaction {
                    topic: topic.to_owned(),
                    cluster: source_cluster.name().to_owned(),
                    partition,
                    stable,
                    end,
                    waited: TXN_WAIT,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Any append moves what a broker reports (Kafka's high watermark,
        // tansu's last batch), so reported ends tell stillness; the stitch
        // points are then verified by fetching there.
        let before = source_cluster
            .reported_ends(topic)
            .await
            .map_err(upstream)?;
        tokio::time::sleep(STILLNESS_WINDOW).await;
        let reported = source_cluster
            .reported_ends(topic)
            .await
            .map_err(upstream)?;
        if let Some((partition, b, a)) = moved(&before, &reported) {
            return Err(FlipError::WriterBehindProxy {
                topic: topic.to_owned(),
                cluster: source_cluster.name().to_owned(),
                partition,
                before: b,
                after: a,
            });
        }
        let after = source_cluster.log_ends(topic).await.map_err(upstream)?;
        let ends_new = if mirrored {
            caught_up_copy(proxy, topic, from.produce, to, &after).await?
        } else {
            target_cluster.log_ends(topic).await.map_err(upstream)?
        };
        report.stitch = after
            .iter()
            .map(|(p, l_old)| StitchPoint {
                partition: *p,
                l_old: *l_old,
                l_new: ends_new.get(p).copied().unwrap_or(0),
            })
            .collect();
        clock.mark(&mut report.steps, "check");
    }

    // 3. record, durably, before anything switches.
    let mut state = proxy.state.lock().await;
    let mut next = state.clone();
    next.routes.insert(topic.to_owned(), report.to.clone());
    let record = FlipRecord {
        topic: topic.to_owned(),
        from: report.from.clone(),
        to: report.to.clone(),
        at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        stitch: report.stitch.clone(),
    };
    next.flips.push(record.clone());
    proxy.store.save(&next).map_err(|source| FlipError::State {
        topic: topic.to_owned(),
        source,
    })?;
    *state = next;
    clock.mark(&mut report.steps, "record");

    // 4. switch, then let held requests go (they now route to the target).
    let mut routes = proxy.routes().with_runtime_route(topic, target);
    if moves_produce {
        // Readers continue from the old log into the new one.
        routes = routes.with_stitch(
            topic,
            from.produce,
            target.produce,
            record.at_ms,
            record.stitch_points(),
        );
    }
    proxy.set_routes(routes);
    drop(state);
    drop(fence);
    clock.mark(&mut report.steps, "switch");
    tracing::info!(topic, from = ?report.from, to = ?report.to, "flip done");
    Ok(report)
}

/// How long a mirrored flip waits for MirrorMaker 2's copy to catch up.
const MIRROR_WAIT: Duration = Duration::from_secs(60);

/// The log ends of `topic` on cluster `to` once MirrorMaker 2's copy holds
/// every record below `old_ends` (the fenced old log), and stays put for
/// the stillness window (the copy is done). Where a partition's copy has
/// reached is read from its latest offset sync, carried forward one for
/// one to the copy's end (MirrorMaker 2 copies records in order).
async fn caught_up_copy(
    proxy: &Proxy,
    topic: &str,
    from: ClusterIdx,
    to: ClusterIdx,
    old_ends: &BTreeMap<i32, i64>,
) -> Result<BTreeMap<i32, i64>, FlipError> {
    let upstream = |source| FlipError::Upstream {
        topic: topic.to_owned(),
        source,
    };
    let target = proxy.cluster(to);
    let syncs_topic = crate::domain::mirror::offset_syncs_topic(target.name());
    let started = Instant::now();
    let mut previous: Option<BTreeMap<i32, i64>> = None;
    loop {
        let syncs = crate::ops::detach::offset_syncs(proxy, &syncs_topic, [from, to])
            .await
            .map_err(upstream)?;
        let ends = target.log_ends(topic).await.map_err(upstream)?;
        let behind = old_ends.iter().find_map(|(p, l_old)| {
            if *l_old == 0 {
                return None; // nothing to copy
            }
            let partition_syncs = syncs
                .get(&(topic.to_owned(), *p))
                .map_or(&[][..], Vec::as_slice);
            let end = ends.get(p).copied().unwrap_or(0);
            let reached = partition_syncs
                .iter()
                .max()
                .map(|s| s.upstream.saturating_add(end.saturating_sub(s.downstream)));
            match reached {
                Some(reached) if reached >= *l_old => None,
                reached => Some((*p, *l_old, reached, end)),
            }
        });
        match behind {
            None if previous.as_ref() == Some(&ends) => return Ok(ends),
            None => previous = Some(ends),
            Some((partition, l_old, reached, end)) => {
                previous = None;
                if started.elapsed() > MIRROR_WAIT {
                    return Err(FlipError::MirrorBehind {
                        topic: topic.to_owned(),
                        cluster: target.name().to_owned(),
                        partition,
                        l_old,
                        reached,
                        end,
                        waited: MIRROR_WAIT,
                    });
                }
            }
        }
        tokio::time::sleep(STILLNESS_WINDOW).await;
    }
}

/// The first partition whose log end differs between two readings.
fn moved(before: &BTreeMap<i32, i64>, after: &BTreeMap<i32, i64>) -> Option<(i32, i64, i64)> {
    after.iter().find_map(|(p, a)| match before.get(p) {
        Some(b) if b == a => None,
        b => Some((*p, b.copied().unwrap_or(-1), *a)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_that_moved_while_fenced_is_named_with_both_readings() {
        let before = BTreeMap::from([(0, 100), (1, 40)]);
        assert_eq!(
            moved(&before, &before.clone()),
            None,
            "still: the flip goes on"
        );
        let after = BTreeMap::from([(0, 100), (1, 41)]);
        assert_eq!(moved(&before, &after), Some((1, 40, 41)));
        // A partition that appeared between the readings moved too.
        let grown = BTreeMap::from([(0, 100), (1, 40), (2, 3)]);
        assert_eq!(moved(&before, &grown), Some((2, -1, 3)));
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        for good in ["orders", "payments.eu-1", "a_b", &"x".repeat(249)] {
            assert!(valid_topic_name(good), "{good}");
        }
        for bad in ["", ".", "..", "with space", "slash/y", &"x".repeat(250)] {
            assert!(!valid_topic_name(bad), "{bad:?}");
        }
    }
}
