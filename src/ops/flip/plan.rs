//! A flip's decisions, apart from its IO: the steps in [`super`] read the
//! routes, partition counts, log ends and offset syncs, pass them here with
//! the time that has passed, and do what the answer says. Pure: no clock,
//! socket or proxy, so each decision is tested on its own.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::FlipError;
use crate::domain::ids::ClusterIdx;
use crate::domain::log_end::LogEnds;
use crate::domain::mirror::{self, Syncs};
use crate::domain::offsets::UpstreamOffset;
use crate::domain::routes::{Route, RouteTable};
use crate::ops::state::{FlipRecord, RouteEntry, State, StitchPoint};

/// Which side of a topic's traffic a flip moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    #[default]
    Both,
    ProduceOnly,
    FetchOnly,
}

/// How long a flip waits for Produce requests already sent to the old
/// cluster to be answered.
pub const INFLIGHT_WAIT: Duration = Duration::from_secs(10);
/// How long a flip waits for transactions open on the old log to end.
pub const TXN_WAIT: Duration = Duration::from_secs(10);
/// How often a flip asks again whether those transactions ended.
pub const TXN_POLL: Duration = Duration::from_millis(20);
/// How long the old log must stay still, after the fence, to show that
/// nobody writes to it behind the proxy's back; a mirrored flip reads the
/// copy again after as long.
pub const STILLNESS_WINDOW: Duration = Duration::from_millis(500);
/// How long a mirrored flip waits for MirrorMaker 2's copy to catch up.
pub const MIRROR_WAIT: Duration = Duration::from_secs(60);

/// Each partition's log end, on one cluster.
pub type Ends = LogEnds;

pub use crate::domain::log_end::OpenTransaction;

fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A flip takes one exact topic name, by Kafka's rules for them.
pub fn check_topic(topic: &str) -> Result<(), FlipError> {
    if valid_topic_name(topic) {
        Ok(())
    } else {
        Err(FlipError::BadTopic(topic.to_owned()))
    }
}

/// One flip: what it moves where, decided from the route before it, and
/// the names its answers use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlipPlan {
    pub topic: String,
    pub from: Route,
    pub target: Route,
    /// The cluster the topic is read from to prepare and check: where
    /// Produce goes when Produce moves, else where Fetch reads.
    pub source: ClusterIdx,
    /// The cluster the flip moves to.
    pub to: ClusterIdx,
    /// `from` and `target` by cluster name.
    pub from_entry: RouteEntry,
    pub to_entry: RouteEntry,
    source_name: String,
    target_name: String,
}

impl FlipPlan {
    /// The flip of `topic`, routed `from` now, to cluster `to`. Reads of
    /// a `stitched` topic follow its stitched log, so a flip of Fetch alone
    /// is refused. `name` names a cluster.
    pub fn new(
        topic: &str,
        from: Route,
        to: ClusterIdx,
        side: Side,
        stitched: bool,
        name: impl Fn(ClusterIdx) -> String,
    ) -> Result<FlipPlan, FlipError> {
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
        if side == Side::FetchOnly && stitched {
            return Err(FlipError::StitchedFetch(topic.to_owned()));
        }
        let source = if from.produce != target.produce {
            from.produce
        } else {
            from.fetch
        };
        let entry = |route: Route| RouteEntry {
            produce: name(route.produce),
            fetch: name(route.fetch),
        };
        Ok(FlipPlan {
            topic: topic.to_owned(),
            from,
            target,
            source,
            to,
            from_entry: entry(from),
            to_entry: entry(target),
            source_name: name(source),
            target_name: name(to),
        })
    }

    /// False when the topic already routes where the flip asks: nothing
    /// to do.
    pub fn changed(&self) -> bool {
        self.from != self.target
    }

    /// Whether Produce moves, so the flip fences, checks and stitches.
    pub fn moves_produce(&self) -> bool {
        self.from.produce != self.target.produce
    }

    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The source's partition count (`None`: no such topic there).
    pub fn source_partitions(&self, count: Option<usize>) -> Result<usize, FlipError> {
        count.ok_or_else(|| FlipError::TopicMissing {
            topic: self.topic.clone(),
            cluster: self.source_name.clone(),
        })
    }

    /// The prepare step's verdict: both sides have the same partitions.
    pub fn same_partitions(&self, source: usize, target: usize) -> Result<(), FlipError> {
        if source == target {
            return Ok(());
        }
        Err(FlipError::PartitionMismatch {
            topic: self.topic.clone(),
            source_cluster: self.source_name.clone(),
            source_count: source,
            target_cluster: self.target_name.clone(),
            target_count: target,
        })
    }

    /// Whether the check step may go on, `waited` after it first asked,
    /// with these transactions `open` on the old log.
    pub fn transactions(
        &self,
        open: &[OpenTransaction],
        waited: Duration,
    ) -> Result<Transactions, FlipError> {
        let Some(&(partition, stable, end)) = open.first() else {
            return Ok(Transactions::Closed);
        };
        if waited <= TXN_WAIT {
            return Ok(Transactions::Open);
        }
        Err(FlipError::OpenTransaction {
            topic: self.topic.clone(),
            cluster: self.source_name.clone(),
            partition,
            stable,
            end,
            waited: TXN_WAIT,
        })
    }

    /// The fenced old log stood still between the two readings, or the
    /// flip aborts: something writes to it without the proxy.
    pub fn still(&self, before: &Ends, after: &Ends) -> Result<(), FlipError> {
        match moved(before, after) {
            None => Ok(()),
            Some((partition, before, after)) => Err(FlipError::WriterBehindProxy {
                topic: self.topic.clone(),
                cluster: self.source_name.clone(),
                partition,
                before,
                after,
            }),
        }
    }

    /// Whether MirrorMaker 2's copy on the target holds every record below
    /// `old_ends` (the fenced old log), from its offset `syncs` and the
    /// copy's `ends` now, `waited` after the first reading. `seen` is what
    /// the last answer said to compare with: a copy that has caught up is
    /// taken once its ends stay put for one more reading (it is done).
    pub fn mirror_copy(
        &self,
        old_ends: &Ends,
        syncs: &Syncs,
        ends: Ends,
        seen: Option<Ends>,
        waited: Duration,
    ) -> Result<CopyProgress, FlipError> {
        let behind = old_ends.iter().find_map(|(p, l_old)| {
            if *l_old == UpstreamOffset(0) {
                return None; // nothing to copy
            }
            let partition_syncs = syncs
                .get(&(self.topic.clone(), *p))
                .map_or(&[][..], Vec::as_slice);
            let end = ends.get(p).copied().unwrap_or_default();
            match mirror::reached(partition_syncs, end) {
                Some(reached) if reached >= *l_old => None,
                reached => Some((*p, *l_old, reached, end)),
            }
        });
        match behind {
            None if seen.as_ref() == Some(&ends) => Ok(CopyProgress::CaughtUp(ends)),
            None => Ok(CopyProgress::Wait { seen: Some(ends) }),
            Some(_) if waited <= MIRROR_WAIT => Ok(CopyProgress::Wait { seen: None }),
            Some((partition, l_old, reached, end)) => Err(FlipError::MirrorBehind {
                topic: self.topic.clone(),
                cluster: self.target_name.clone(),
                partition,
                l_old,
                reached,
                end,
                waited: MIRROR_WAIT,
            }),
        }
    }

    /// What the record step saves: this flip, with its stitch points, at
    /// `at_ms` (milliseconds since the Unix epoch).
    pub fn record(&self, stitch: Vec<StitchPoint>, at_ms: u64) -> FlipRecord {
        FlipRecord {
            topic: self.topic.clone(),
            from: self.from_entry.clone(),
            to: self.to_entry.clone(),
            at_ms,
            stitch,
            run: None,
            steps: Vec::new(),
        }
    }

    /// The route table once switched: the topic's runtime route, and,
    /// when Produce moved, the stitch readers continue along from the old
    /// log into the new one.
    pub fn switched(&self, routes: &RouteTable, record: &FlipRecord) -> RouteTable {
        let mut routes = routes.clone();
        self.switch(&mut routes, record);
        routes
    }

    /// Switches `routes` as [`FlipPlan::switched`] says, in place: a flip
    /// of many topics switches them all in one table.
    pub fn switch(&self, routes: &mut RouteTable, record: &FlipRecord) {
        routes.set_runtime_route(&self.topic, self.target);
        if self.moves_produce() {
            routes.stitches_mut().record_move(
                &self.topic,
                self.from.produce,
                self.target.produce,
                record.at_ms,
                record.stitch_points(),
            );
        }
    }
}

/// What the check step does about open transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transactions {
    /// None is open: go on.
    Closed,
    /// One is open and the wait is not over: ask again after [`TXN_POLL`].
    Open,
}

/// Where a mirrored flip's wait for MirrorMaker 2's copy stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyProgress {
    /// Caught up and still: the stitch is taken at these ends.
    CaughtUp(Ends),
    /// Read again after [`STILLNESS_WINDOW`]; `seen` is what to hand back
    /// with that reading.
    Wait { seen: Option<Ends> },
}

/// The first partition whose log end differs between two readings, with
/// both (none before for a partition the first did not have).
fn moved(before: &Ends, after: &Ends) -> Option<(i32, Option<UpstreamOffset>, UpstreamOffset)> {
    after.iter().find_map(|(p, a)| match before.get(p) {
        Some(b) if b == a => None,
        b => Some((*p, b.copied(), *a)),
    })
}

/// The stitch points from the fenced old log's ends and the new log's; a
/// partition the new side does not report has written nothing there yet.
pub fn stitch_points(old_ends: &Ends, new_ends: &Ends) -> Vec<StitchPoint> {
    old_ends
        .iter()
        .map(|(p, l_old)| StitchPoint {
            partition: *p,
            l_old: *l_old,
            l_new: new_ends.get(p).copied().unwrap_or_default(),
        })
        .collect()
}

/// The state once `record` is saved: the topic's runtime route, and the
/// flip appended to the record of flips.
pub fn next_state(state: &State, record: &FlipRecord) -> State {
    next_state_all(state, std::slice::from_ref(record))
}

/// The state once every one of `records` is saved (a flip of many topics
/// records them at once).
pub fn next_state_all(state: &State, records: &[FlipRecord]) -> State {
    let mut next = state.clone();
    for record in records {
        next.routes.insert(record.topic.clone(), record.to.clone());
        next.flips.push(record.clone());
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mirror::OffsetSync;
    use crate::domain::offsets::UpstreamOffset as U;

    const OLD: ClusterIdx = ClusterIdx(0);
    const NEW: ClusterIdx = ClusterIdx(1);

    fn name(c: ClusterIdx) -> String {
        ["old", "new"][c.0].to_owned()
    }

    fn on(cluster: ClusterIdx) -> Route {
        Route {
            produce: cluster,
            fetch: cluster,
        }
    }

    /// Log ends from (partition, end) pairs.
    fn ends<const N: usize>(pairs: [(i32, i64); N]) -> Ends {
        pairs.into_iter().map(|(p, end)| (p, U(end))).collect()
    }

    /// A flip of "t" from 'old' to 'new'.
    fn plan(side: Side) -> FlipPlan {
        FlipPlan::new("t", on(OLD), NEW, side, false, name).unwrap()
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        for good in ["orders", "payments.eu-1", "a_b", &"x".repeat(249)] {
            assert!(valid_topic_name(good), "{good}");
        }
        for bad in ["", ".", "..", "with space", "slash/y", &"x".repeat(250)] {
            assert!(!valid_topic_name(bad), "{bad:?}");
        }
        assert!(matches!(check_topic("a b"), Err(FlipError::BadTopic(t)) if t == "a b"));
    }

    #[test]
    fn each_side_moves_its_own_traffic_and_produce_decides_the_source() {
        let both = plan(Side::Both);
        assert_eq!((both.target, both.source), (on(NEW), OLD));
        assert!(both.moves_produce() && both.changed());
        let produce = plan(Side::ProduceOnly);
        assert_eq!(
            produce.target,
            Route {
                produce: NEW,
                fetch: OLD
            }
        );
        assert_eq!(
            produce.to_entry,
            RouteEntry {
                produce: "new".into(),
                fetch: "old".into()
            }
        );
        assert!(produce.moves_produce());
        // Produce already on 'new': a flip of Fetch reads where Fetch reads.
        let split = Route {
            produce: NEW,
            fetch: OLD,
        };
        let fetch = FlipPlan::new("t", split, NEW, Side::FetchOnly, false, name).unwrap();
        assert_eq!((fetch.target, fetch.source), (on(NEW), OLD));
        assert!(!fetch.moves_produce() && fetch.changed());
    }

    #[test]
    fn a_topic_already_routed_there_is_left_as_it_is() {
        let p = FlipPlan::new("t", on(NEW), NEW, Side::Both, true, name).unwrap();
        assert!(!p.changed());
        assert!(!p.moves_produce());
        assert_eq!(p.from_entry, p.to_entry);
    }

    #[test]
    fn reads_of_a_stitched_topic_are_not_flipped_alone() {
        let refused = FlipPlan::new("t", on(NEW), OLD, Side::FetchOnly, true, name);
        assert!(matches!(refused, Err(FlipError::StitchedFetch(t)) if t == "t"));
        // Even where Fetch already reads: the refusal comes first.
        let there = FlipPlan::new("t", on(NEW), NEW, Side::FetchOnly, true, name);
        assert!(matches!(there, Err(FlipError::StitchedFetch(_))));
        assert!(FlipPlan::new("t", on(NEW), OLD, Side::Both, true, name).is_ok());
    }

    #[test]
    fn a_topic_missing_on_the_source_or_with_other_partitions_is_refused() {
        let p = plan(Side::Both);
        assert_eq!(p.source_partitions(Some(3)).unwrap(), 3);
        let missing = p.source_partitions(None).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "topic 't' does not exist on cluster 'old'"
        );
        assert!(p.same_partitions(3, 3).is_ok());
        assert_eq!(
            p.same_partitions(3, 5).unwrap_err().to_string(),
            "topic 't' has 3 partitions on cluster 'old' but 5 on cluster 'new'; give both the \
             same partition count"
        );
    }

    #[test]
    fn an_open_transaction_is_waited_for_then_aborts_the_flip() {
        let p = plan(Side::Both);
        let second = Duration::from_secs(1);
        assert_eq!(
            p.transactions(&[], TXN_WAIT * 2).unwrap(),
            Transactions::Closed
        );
        let open = [(2, U(40), U(45)), (3, U(7), U(9))];
        assert_eq!(p.transactions(&open, second).unwrap(), Transactions::Open);
        assert_eq!(p.transactions(&open, TXN_WAIT).unwrap(), Transactions::Open);
        let aborted = p.transactions(&open, TXN_WAIT + second).unwrap_err();
        assert_eq!(
            aborted.to_string(),
            "flip of 't' aborted: partition 2 on cluster 'old' still has a transaction open \
             after 10s (stable up to 40, written up to 45); routes unchanged"
        );
    }

    #[test]
    fn a_log_that_moved_while_fenced_is_named_with_both_readings() {
        let before = ends([(0, 100), (1, 40)]);
        assert_eq!(
            moved(&before, &before.clone()),
            None,
            "still: the flip goes on"
        );
        let after = ends([(0, 100), (1, 41)]);
        assert_eq!(moved(&before, &after), Some((1, Some(U(40)), U(41))));
        // A partition that appeared between the readings moved too.
        let grown = ends([(0, 100), (1, 40), (2, 3)]);
        assert_eq!(moved(&before, &grown), Some((2, None, U(3))));

        let p = plan(Side::Both);
        assert!(p.still(&before, &before).is_ok());
        let e = p.still(&before, &after).unwrap_err().to_string();
        assert!(
            e.starts_with("flip of 't' aborted: partition 1 on cluster 'old' grew from 40 to 41"),
            "{e}"
        );
        let e = p.still(&before, &grown).unwrap_err().to_string();
        assert!(
            e.contains("partition 2 on cluster 'old' grew from -1 to 3"),
            "{e}"
        );
    }

    #[test]
    fn stitch_points_pair_each_old_end_with_the_new_one() {
        let old = ends([(0, 500), (1, 80), (2, 0)]);
        let new = ends([(0, 20), (2, 7)]);
        let point = |partition, l_old, l_new| StitchPoint {
            partition,
            l_old: U(l_old),
            l_new: U(l_new),
        };
        assert_eq!(
            stitch_points(&old, &new),
            [point(0, 500, 20), point(1, 80, 0), point(2, 0, 7)],
            "a partition missing on the new side starts there at 0"
        );
    }

    fn syncs(partition: i32, upstream: i64, downstream: i64) -> Syncs {
        Syncs::from([(
            ("t".to_owned(), partition),
            vec![OffsetSync {
                upstream: U(upstream),
                downstream: U(downstream),
            }],
        )])
    }

    #[test]
    fn a_mirrored_flip_waits_for_the_copy_then_aborts_when_it_stays_behind() {
        let p = plan(Side::Both);
        let old = ends([(0, 100), (1, 0)]);
        // Synced 50 → 50, copy ends at 90: it reaches 90 of 100.
        let behind = syncs(0, 50, 50);
        let copy = ends([(0, 90)]);
        let second = Duration::from_secs(1);
        assert_eq!(
            p.mirror_copy(&old, &behind, copy.clone(), Some(copy.clone()), second)
                .unwrap(),
            CopyProgress::Wait { seen: None },
            "behind: the stillness of the copy says nothing yet"
        );
        let e = p
            .mirror_copy(&old, &behind, copy.clone(), None, MIRROR_WAIT + second)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "flip of 't' aborted: after 60s MirrorMaker 2's copy on cluster 'new' does not hold \
             partition 0 up to 100 (by its offset syncs it reaches Some(90); the copy ends at \
             90); check MirrorMaker 2, or flip without --mirrored; routes unchanged"
        );
        // No sync at all: nothing says where the copy is.
        let e = p
            .mirror_copy(&old, &Syncs::new(), copy, None, MIRROR_WAIT + second)
            .unwrap_err();
        assert!(e.to_string().contains("it reaches None;"), "{e}");
    }

    #[test]
    fn a_caught_up_copy_is_taken_once_it_stands_still() {
        let p = plan(Side::Both);
        let old = ends([(0, 100), (1, 0)]);
        let synced = syncs(0, 50, 60);
        let second = Duration::from_secs(1);
        let copy = ends([(0, 110), (1, 4)]);
        let first = p
            .mirror_copy(&old, &synced, copy.clone(), None, second)
            .unwrap();
        assert_eq!(
            first,
            CopyProgress::Wait {
                seen: Some(copy.clone())
            }
        );
        // Caught up, but the copy still grew: read again.
        let grown = ends([(0, 112), (1, 4)]);
        assert_eq!(
            p.mirror_copy(&old, &synced, grown.clone(), Some(copy), second)
                .unwrap(),
            CopyProgress::Wait {
                seen: Some(grown.clone())
            }
        );
        assert_eq!(
            p.mirror_copy(
                &old,
                &synced,
                grown.clone(),
                Some(grown.clone()),
                MIRROR_WAIT * 2
            )
            .unwrap(),
            CopyProgress::CaughtUp(grown)
        );
    }

    #[test]
    fn the_record_names_the_flip_and_the_next_state_keeps_its_route() {
        let p = plan(Side::ProduceOnly);
        let stitch = vec![StitchPoint {
            partition: 0,
            l_old: U(5),
            l_new: U(0),
        }];
        let record = p.record(stitch.clone(), 1_234);
        assert_eq!((record.at_ms, &record.stitch), (1_234, &stitch));
        assert_eq!((&record.from, &record.to), (&p.from_entry, &p.to_entry));
        let mut state = State::default();
        state.flips.push(p.record(Vec::new(), 1));
        let next = next_state(&state, &record);
        assert_eq!(next.routes["t"], p.to_entry);
        assert_eq!(next.flips.len(), 2);
        assert_eq!(next.flips[1], record);
        assert_eq!(state.flips.len(), 1, "the state before is left as it was");
    }
}
