//! The steps every move of the control plane shares (flips of topics,
//! moves of consumer groups): timing them, fence-then-drain, and the
//! durable record taken before anything switches. Thin IO; what each move
//! decides stays with the move.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::MutexGuard;

use crate::domain::gates::{FenceGuard, Gates, Unfenced};
use crate::metrics as m;
use crate::ops::state::{State, StateError};
use crate::runtime::proxy::Proxy;

pub use crate::ops::state::StepTiming;

/// One instance's part in a fleet flip or group move, in milliseconds
/// from when it read the proposal; `None` for a step it did not confirm in
/// time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceSteps {
    pub instance: String,
    pub fence_ms: Option<f64>,
    pub switch_ms: Option<f64>,
}

/// Times the steps of a flip or a group move, each from the end of the
/// one before, and says so: one log line and one histogram sample per
/// step. The caller says when each step ended, so the clock is read by the
/// steps, never inside a decision.
pub struct StepClock {
    last: Instant,
    /// "topic" or "group".
    kind: &'static str,
    /// The topic or group moving.
    name: String,
}

impl StepClock {
    pub fn start(kind: &'static str, name: &str, now: Instant) -> StepClock {
        StepClock {
            last: now,
            kind,
            name: name.to_owned(),
        }
    }

    /// Records step `step` as ending at `now`.
    pub fn mark(&mut self, steps: &mut Vec<StepTiming>, step: &str, now: Instant) {
        let took = now.saturating_duration_since(self.last);
        let ms = took.as_secs_f64() * 1000.0;
        let (kind, name) = (self.kind, self.name.as_str());
        tracing::info!(
            kind,
            name,
            step,
            ms,
            "{kind} {name}: {step} done in {ms:.1} ms"
        );
        metrics::histogram!(m::FLIP_STEP_DURATION, "kind" => kind, "step" => step.to_owned())
            .record(took.as_secs_f64());
        steps.push(StepTiming {
            step: step.to_owned(),
            ms,
        });
        self.last = now;
    }
}

/// Counts a flip's or group move's (`kind`) outcome: done, unchanged
/// (already there), refused or aborted with its reason.
pub fn count_outcome<T, E: MoveError>(
    kind: &'static str,
    result: &Result<T, E>,
    changed: impl FnOnce(&T) -> bool,
) {
    let (outcome, reason) = match result {
        Ok(report) if changed(report) => ("done", ""),
        Ok(_) => ("unchanged", ""),
        Err(e) => e.outcome(),
    };
    metrics::counter!(m::FLIPS, "kind" => kind, "outcome" => outcome, "reason" => reason)
        .increment(1);
}

/// How logs, step timings and the journal name a move of many: the one
/// name, or how many `things` ("topics", "groups").
pub fn batch_name<'a>(mut names: impl ExactSizeIterator<Item = &'a str>, things: &str) -> String {
    match (names.len(), names.next()) {
        (1, Some(one)) => one.to_owned(),
        (count, _) => format!("{count} {things}"),
    }
}

/// The wall clock, as records keep it: milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A move's error, in which the shared steps say what stopped them.
pub trait MoveError {
    /// Its outcome and reason, as metric labels: ("refused", why) for a
    /// move that never started, ("aborted", why) for one called off.
    fn outcome(&self) -> (&'static str, &'static str);
    /// Another move of `key` holds the fence.
    fn already_running(key: &str) -> Self;
    /// `count` requests of `key` to cluster `cluster` were still
    /// unanswered after `waited`.
    fn still_in_flight(key: &str, cluster: &str, count: usize, waited: Duration) -> Self;
    /// The record of the move of `key` could not be saved.
    fn not_recorded(key: &str, source: StateError) -> Self;
    /// Instance `instance` called the fleet move of `key` off.
    fn fleet_aborted(key: &str, instance: String, reason: String) -> Self;
}

/// Fences `key` (new requests are held from now on), then waits up to
/// `within` for those already sent to `cluster` to be answered.
pub async fn fence_and_drain<E: MoveError>(
    gates: &Arc<Gates>,
    key: &str,
    cluster: &str,
    within: Duration,
) -> Result<FenceGuard, E> {
    let mut fences = fence_and_drain_all(gates, &[(key, cluster)], within).await?;
    Ok(fences.pop().expect("one fence per key"))
}

/// Fences every key of `keys` (key, the cluster its requests go to) at
/// once, then waits up to `within` in all for the requests already sent
/// to be answered; on failure no fence stays up.
pub async fn fence_and_drain_all<E: MoveError>(
    gates: &Arc<Gates>,
    keys: &[(&str, &str)],
    within: Duration,
) -> Result<Vec<FenceGuard>, E> {
    let names: Vec<&str> = keys.iter().map(|(key, _)| *key).collect();
    gates
        .fence_and_drain_all(&names, within)
        .await
        .map_err(|(at, unfenced)| {
            let (key, cluster) = keys[at];
            match unfenced {
                Unfenced::AlreadyFenced => E::already_running(key),
                Unfenced::StillInFlight(count) => E::still_in_flight(key, cluster, count, within),
            }
        })
}

/// Saves the state `next` makes of the current one, durably, before
/// anything switches for the move of `key`. The state stays locked until
/// the returned guard drops, so that the caller switches before any other
/// move records.
pub async fn record<'p, E: MoveError>(
    proxy: &'p Proxy,
    key: &str,
    next: impl FnOnce(&State) -> State,
) -> Result<MutexGuard<'p, State>, E> {
    let mut state = proxy.state().lock().await;
    let next = next(&state);
    proxy
        .store()
        .save(&next)
        .await
        .map_err(|source| E::not_recorded(key, source))?;
    *state = next;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::gates::Admission;

    #[test]
    fn a_move_of_many_is_named_by_its_one_name_or_its_count() {
        assert_eq!(batch_name(["orders"].into_iter(), "topics"), "orders");
        assert_eq!(
            batch_name(["a", "b", "c"].into_iter(), "groups"),
            "3 groups"
        );
    }

    #[test]
    fn each_step_is_timed_from_the_end_of_the_one_before() {
        let start = Instant::now();
        let mut clock = StepClock::start("topic", "orders", start);
        let mut steps = Vec::new();
        clock.mark(&mut steps, "prepare", start + Duration::from_millis(30));
        clock.mark(&mut steps, "fence", start + Duration::from_millis(45));
        let timed: Vec<(&str, f64)> = steps.iter().map(|s| (s.step.as_str(), s.ms)).collect();
        assert_eq!(timed, [("prepare", 30.0), ("fence", 15.0)]);
    }

    #[derive(Debug, PartialEq)]
    enum Failure {
        Running(String),
        Stuck(String, String, usize, Duration),
        Unsaved(String),
    }

    impl MoveError for Failure {
        fn outcome(&self) -> (&'static str, &'static str) {
            ("aborted", "test")
        }
        fn already_running(key: &str) -> Self {
            Failure::Running(key.to_owned())
        }
        fn still_in_flight(key: &str, cluster: &str, count: usize, waited: Duration) -> Self {
            Failure::Stuck(key.to_owned(), cluster.to_owned(), count, waited)
        }
        fn not_recorded(key: &str, _: StateError) -> Self {
            Failure::Unsaved(key.to_owned())
        }
        fn fleet_aborted(key: &str, _: String, _: String) -> Self {
            Failure::Unsaved(key.to_owned())
        }
    }

    #[tokio::test]
    async fn a_fence_left_down_is_named_in_the_moves_own_error() {
        let gates = Arc::new(Gates::default());
        let wait = Duration::from_millis(10);
        let Admission::Admitted(_stuck) = gates.admit(["t"].into_iter()) else {
            panic!("nothing fenced yet")
        };
        let stalled = fence_and_drain::<Failure>(&gates, "t", "old", wait).await;
        assert_eq!(
            stalled.map(drop),
            Err(Failure::Stuck("t".into(), "old".into(), 1, wait))
        );
        let _fence = gates.fence("t").expect("a timed-out wait leaves no fence");
        let again = fence_and_drain::<Failure>(&gates, "t", "old", wait).await;
        assert_eq!(again.map(drop), Err(Failure::Running("t".into())));
    }
}
