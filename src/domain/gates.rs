//! The gates every Produce (and every OffsetCommit of a moving group)
//! passes: what makes a fence airtight. A session admits a request (and
//! counts it in flight) under the same lock a flip sets its fence under, so
//! once a fence is up no new write reaches the old cluster, and the flip
//! knows exactly which writes it must wait for.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};

#[derive(Default)]
struct GateState {
    /// Fenced topics; a receiver's `changed()` ends when the fence drops.
    fences: HashMap<String, watch::Receiver<()>>,
    /// Produce requests forwarded and not yet answered, per topic.
    inflight: HashMap<String, usize>,
}

/// Fences and in-flight Produce counts, per topic.
#[derive(Default)]
pub struct Gates {
    state: Mutex<GateState>,
    /// Woken whenever a count drops to zero.
    drained: Notify,
}

/// Why [`Gates::fence_and_drain`] did not leave a fence up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfenced {
    /// Another move holds the fence.
    AlreadyFenced,
    /// This many requests were still unanswered when the wait ended.
    StillInFlight(usize),
}

/// What a session may do with a Produce request now.
pub enum Admission {
    /// Send it; the guard counts it in flight until dropped.
    Admitted(InflightGuard),
    /// A topic in it is fenced: wait for the fence to drop, then ask again.
    Held(watch::Receiver<()>),
}

/// Keeps a forwarded Produce counted in flight for its topics.
pub struct InflightGuard {
    gates: Arc<Gates>,
    topics: Vec<String>,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut state = self.gates.lock();
        for topic in &self.topics {
            if let Some(n) = state.inflight.get_mut(topic) {
                *n -= 1;
                if *n == 0 {
                    state.inflight.remove(topic);
                    self.gates.drained.notify_waiters();
                }
            }
        }
    }
}

/// Holds a topic fenced until dropped.
pub struct FenceGuard {
    gates: Arc<Gates>,
    topic: String,
    _release: watch::Sender<()>,
}

impl Drop for FenceGuard {
    fn drop(&mut self) {
        self.gates.lock().fences.remove(&self.topic);
        // Dropping the sender wakes every held request.
    }
}

impl Gates {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a Produce touching `topics`, or says which fence holds it.
    pub fn admit<'a>(self: &Arc<Self>, topics: impl Iterator<Item = &'a str> + Clone) -> Admission {
        let mut state = self.lock();
        if let Some(fence) = topics.clone().find_map(|t| state.fences.get(t)) {
            return Admission::Held(fence.clone());
        }
        let topics: Vec<String> = topics.map(str::to_owned).collect();
        for topic in &topics {
            *state.inflight.entry(topic.clone()).or_default() += 1;
        }
        Admission::Admitted(InflightGuard {
            gates: self.clone(),
            topics,
        })
    }

    /// The fence holding `key`, if any, without counting anything in flight.
    pub fn held(&self, key: &str) -> Option<watch::Receiver<()>> {
        self.lock().fences.get(key).cloned()
    }

    /// Fences `topic`; `None` when it is already fenced (a flip is running).
    pub fn fence(self: &Arc<Self>, topic: &str) -> Option<FenceGuard> {
        let mut state = self.lock();
        if state.fences.contains_key(topic) {
            return None;
        }
        let (tx, rx) = watch::channel(());
        state.fences.insert(topic.to_owned(), rx);
        Some(FenceGuard {
            gates: self.clone(),
            topic: topic.to_owned(),
            _release: tx,
        })
    }

    /// Completes once nothing is in flight for `key` (at once when nothing
    /// is); woken by the guard that drops the count to zero, not by
    /// polling. The caller bounds the wait.
    pub async fn drained(&self, key: &str) {
        loop {
            let woken = self.drained.notified();
            tokio::pin!(woken);
            // Registered before the count is read, so a drop in between
            // still wakes this waiter.
            woken.as_mut().enable();
            if self.inflight(key) == 0 {
                return;
            }
            woken.await;
        }
    }

    /// The fence-then-drain step of every move: fences `key`, then waits
    /// (up to `within`) for the requests already admitted to be answered.
    pub async fn fence_and_drain(
        self: &Arc<Self>,
        key: &str,
        within: std::time::Duration,
    ) -> Result<FenceGuard, Unfenced> {
        let mut fences = self
            .fence_and_drain_all(&[key], within)
            .await
            .map_err(|(_, why)| why)?;
        Ok(fences.pop().expect("one fence per key"))
    }

    /// Fences every one of `keys` at once, then waits (up to `within` in
    /// all) until nothing admitted before is in flight for any of them. On
    /// failure every fence is down again, and the error says which key
    /// (its index in `keys`) and why.
    pub async fn fence_and_drain_all(
        self: &Arc<Self>,
        keys: &[&str],
        within: std::time::Duration,
    ) -> Result<Vec<FenceGuard>, (usize, Unfenced)> {
        let mut fences = Vec::with_capacity(keys.len());
        for (at, key) in keys.iter().enumerate() {
            fences.push(self.fence(key).ok_or((at, Unfenced::AlreadyFenced))?);
        }
        let deadline = tokio::time::Instant::now() + within;
        for (at, key) in keys.iter().enumerate() {
            if tokio::time::timeout_at(deadline, self.drained(key))
                .await
                .is_err()
            {
                return Err((at, Unfenced::StillInFlight(self.inflight(key))));
            }
        }
        Ok(fences)
    }

    pub fn inflight(&self, topic: &str) -> usize {
        self.lock().inflight.get(topic).copied().unwrap_or(0)
    }
}

/// Topics with a flip running.
#[derive(Default)]
pub struct Running(Mutex<HashSet<String>>);

pub struct RunningGuard<'a>(&'a Running, String);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0
             .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

impl Running {
    pub fn start(&self, topic: &str) -> Option<RunningGuard<'_>> {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        running
            .insert(topic.to_owned())
            .then(|| RunningGuard(self, topic.to_owned()))
    }
}

/// The topics one client connection was refused Produce for while a flip
/// fenced them, with the topic's flip count (generation) then.
///
/// Requests the client had already pipelined behind a refused one must
/// not overtake it: once the flip switches, they would reach the new
/// cluster before the refused batch's retry, and an idempotent producer's
/// batches would land out of order (the broker would take the retried one
/// for a duplicate). So the connection keeps refusing the topic, as a
/// broker that is no longer its leader does, until the client has moved
/// on: the flip aborted (same generation, no fence), or a later flip came.
#[derive(Debug, Default)]
pub struct Refusals(HashMap<String, u64>);

impl Refusals {
    /// `topic` was refused at `generation`.
    pub fn refused(&mut self, topic: &str, generation: u64) {
        self.0.entry(topic.to_owned()).or_insert(generation);
    }

    /// True when no topic is refused: the common case, checked first so
    /// that a Produce costs nothing more.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether Produce of `topic` is still refused here, with the topic at
    /// `generation` and `fenced` or not.
    pub fn refuses(&mut self, topic: &str, generation: u64, fenced: bool) -> bool {
        let Some(&at) = self.0.get(topic) else {
            return false;
        };
        let refuses = (generation == at && fenced) || generation == at + 1;
        if !refuses {
            self.0.remove(topic);
        }
        refuses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_topic_stays_refused_through_its_switch_only() {
        let mut r = Refusals::default();
        assert!(!r.refuses("t", 3, true), "never refused");
        r.refused("t", 3);
        assert!(r.refuses("t", 3, true), "the same fence");
        assert!(r.refuses("t", 4, false), "switched: the pipeline is stale");
        assert!(
            !r.refuses("t", 5, false),
            "a later flip: the client moved on"
        );
        assert!(!r.refuses("t", 4, false), "forgotten");
        r.refused("t", 7);
        assert!(!r.refuses("t", 7, false), "the flip aborted");
        assert!(!r.refuses("t", 7, true), "forgotten");
    }

    #[tokio::test]
    async fn fence_holds_new_produce_and_counts_earlier_ones() {
        let gates = Arc::new(Gates::default());
        let Admission::Admitted(early) = gates.admit(["t"].into_iter()) else {
            panic!("nothing fenced yet")
        };
        let fence = gates.fence("t").expect("first fence");
        assert!(gates.fence("t").is_none(), "one flip per topic at a time");
        assert_eq!(gates.inflight("t"), 1, "the earlier produce is waited for");
        let Admission::Held(mut held) = gates.admit(["other", "t"].into_iter()) else {
            panic!("a fenced topic holds the request")
        };
        assert!(matches!(
            gates.admit(["other"].into_iter()),
            Admission::Admitted(_)
        ));
        drop(early);
        assert_eq!(gates.inflight("t"), 0);
        drop(fence);
        assert!(
            held.changed().await.is_err(),
            "dropping the fence releases held requests"
        );
        assert!(matches!(
            gates.admit(["t"].into_iter()),
            Admission::Admitted(_)
        ));
    }

    #[tokio::test]
    async fn a_fence_waits_for_what_is_in_flight_and_is_woken_when_it_drains() {
        let gates = Arc::new(Gates::default());
        let Admission::Admitted(early) = gates.admit(["t"].into_iter()) else {
            panic!("nothing fenced yet")
        };
        let waiting = {
            let gates = gates.clone();
            tokio::spawn(async move {
                gates
                    .fence_and_drain("t", std::time::Duration::from_secs(30))
                    .await
                    .map(drop)
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "still one in flight");
        drop(early);
        assert_eq!(waiting.await.unwrap(), Ok(()), "woken by the drop");

        let Admission::Admitted(stuck) = gates.admit(["u"].into_iter()) else {
            panic!("nothing fenced")
        };
        let timed_out = gates
            .fence_and_drain("u", std::time::Duration::from_millis(10))
            .await
            .map(drop);
        assert_eq!(timed_out, Err(Unfenced::StillInFlight(1)));
        drop(stuck);
        let fence = gates.fence("u").expect("a timed-out wait leaves no fence");
        let again = gates
            .fence_and_drain("u", std::time::Duration::from_millis(10))
            .await
            .map(drop);
        assert_eq!(again, Err(Unfenced::AlreadyFenced));
        drop(fence);
    }
}
