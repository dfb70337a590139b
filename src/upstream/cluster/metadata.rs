//! Client Metadata requests against one cluster, answered with as few
//! upstream queries as freshness allows:
//!
//! - **batched**: while one query runs, the requests that arrive join the
//!   next one (their topics united), so one cluster has at most one query
//!   running and one waiting, however many clients ask at once; every
//!   answer still comes from a query that began after its request arrived;
//! - **cached**: a topic answered within `proxy.metadata_cache_ms` is
//!   answered again from that, until an upstream answer says leadership
//!   moved (NOT_LEADER_OR_FOLLOWER and its kin), or a topic
//!   administration request passes through the proxy, which forget it.
//!   Topics a cluster does not know are never cached: a topic created a
//!   moment ago is asked about live.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use crate::upstream::UpstreamError;

/// A query's outcome, shared by every request in its batch.
pub type Shared = Result<Arc<MetadataResponse>, UpstreamError>;

/// The topics of one batch: `None` for every topic.
type Names = Option<BTreeSet<String>>;

pub struct Batch {
    names: Mutex<Names>,
    done: watch::Sender<Option<Shared>>,
}

impl Batch {
    fn new(names: Option<&[String]>) -> Batch {
        Batch {
            names: Mutex::new(names.map(|n| n.iter().cloned().collect())),
            done: watch::channel(None).0,
        }
    }

    fn add(&self, names: Option<&[String]>) {
        let mut all = lock(&self.names);
        match (all.as_mut(), names) {
            (Some(all), Some(names)) => all.extend(names.iter().cloned()),
            _ => *all = None,
        }
    }

    /// The topics to ask for, `None` for all.
    pub fn names(&self) -> Option<Vec<String>> {
        lock(&self.names)
            .as_ref()
            .map(|n| n.iter().cloned().collect())
    }

    pub fn finish(&self, outcome: Shared) {
        self.done.send_replace(Some(outcome));
    }

    /// The batch's outcome, once its query has run.
    pub async fn outcome(&self) -> Shared {
        let mut rx = self.done.subscribe();
        let done = rx.wait_for(Option::is_some).await.map(|d| d.clone());
        // The sender lives in the batch, which this borrows: it cannot
        // close while waited on.
        done.ok().flatten().unwrap_or_else(|| {
            Err(UpstreamError::Protocol {
                addr: "metadata".into(),
                reason: "the query ended without an answer".into(),
            })
        })
    }
}

#[derive(Default)]
struct Slot {
    pending: Option<Arc<Batch>>,
    running: bool,
}

#[derive(Default)]
pub struct MetadataQueries {
    /// By `allow_auto_topic_creation`: requests join only their own kind.
    slots: [Mutex<Slot>; 2],
    /// Topics answered without error, with when their query began.
    cached: Mutex<HashMap<String, (Instant, MetadataResponseTopic)>>,
    max_age: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MetadataQueries {
    /// `max_age`: how long a topic's answer may be given again (0: never).
    pub fn new(max_age: Duration) -> MetadataQueries {
        MetadataQueries {
            max_age,
            ..MetadataQueries::default()
        }
    }

    /// Every topic of `names`, when each was answered within the cache's
    /// age; `None` otherwise.
    pub fn cached(&self, names: &[String], now: Instant) -> Option<Vec<MetadataResponseTopic>> {
        if self.max_age.is_zero() {
            return None;
        }
        let cached = lock(&self.cached);
        names
            .iter()
            .map(|n| {
                let (at, topic) = cached.get(n)?;
                (now.saturating_duration_since(*at) < self.max_age).then(|| topic.clone())
            })
            .collect()
    }

    /// Forgets every cached answer.
    pub fn forget(&self) {
        lock(&self.cached).clear();
    }

    /// Joins the batch waiting to run (or starts one); `true` when no
    /// query of this kind runs, so the caller must start the runner.
    pub fn join(&self, names: Option<&[String]>, auto_create: bool) -> (Arc<Batch>, bool) {
        let mut slot = lock(&self.slots[usize::from(auto_create)]);
        let batch = match &slot.pending {
            Some(b) => {
                b.add(names);
                b.clone()
            }
            None => {
                let b = Arc::new(Batch::new(names));
                slot.pending = Some(b.clone());
                b
            }
        };
        let start = !slot.running;
        slot.running = true;
        (batch, start)
    }

    /// The runner's next batch; `None` (and the runner stops) when none
    /// waits.
    pub fn next(&self, auto_create: bool) -> Option<Arc<Batch>> {
        let mut slot = lock(&self.slots[usize::from(auto_create)]);
        let next = slot.pending.take();
        slot.running = next.is_some();
        next
    }

    /// Keeps the topics a query begun at `at` answered without error; an
    /// answer for every topic replaces what was kept.
    pub fn remember(&self, at: Instant, all: bool, answer: &MetadataResponse) {
        if self.max_age.is_zero() {
            return;
        }
        let mut cached = lock(&self.cached);
        if all {
            cached.clear();
        }
        for t in answer.topics.iter().filter(|t| t.error_code == 0) {
            if let Some(name) = &t.name {
                cached.insert(name.to_string(), (at, t.clone()));
            }
        }
    }
}

/// The part of a batch's answer one request asked for: its topics (in the
/// answer's order), and for a name the answer does not hold (the batch
/// asked for every topic) UNKNOWN_TOPIC_OR_PARTITION, as a named query
/// would have said.
pub fn answer_for(
    answer: &MetadataResponse,
    names: Option<&[String]>,
) -> Vec<MetadataResponseTopic> {
    let Some(names) = names else {
        return answer.topics.clone();
    };
    names
        .iter()
        .map(|n| {
            answer
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|t| t.as_str() == n))
                .cloned()
                .unwrap_or_else(|| {
                    MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, error_code: i16) -> MetadataResponseTopic {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
            .with_error_code(error_code)
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn requests_join_the_waiting_batch_and_one_runner_runs_them() {
        let q = MetadataQueries::new(Duration::ZERO);
        let (first, start) = q.join(Some(&names(&["a"])), false);
        assert!(start);
        // The runner takes the first batch; two more requests arrive.
        let running = q.next(false).unwrap();
        assert!(Arc::ptr_eq(&running, &first));
        let (second, start) = q.join(Some(&names(&["b"])), false);
        assert!(!start, "a runner runs already");
        let (third, _) = q.join(Some(&names(&["c", "b"])), false);
        assert!(Arc::ptr_eq(&second, &third));
        assert_eq!(second.names(), Some(names(&["b", "c"])));
        // Another kind has its own runner.
        assert!(q.join(None, true).1);
        // Every topic wins over names.
        let (all, _) = q.join(None, false);
        assert_eq!(all.names(), None);
        assert!(Arc::ptr_eq(&q.next(false).unwrap(), &second));
        assert!(q.next(false).is_none(), "nothing waits: the runner stops");
        assert!(q.join(None, false).1, "and the next request starts one");
    }

    #[tokio::test]
    async fn every_waiter_gets_its_batch_outcome() {
        let q = MetadataQueries::new(Duration::ZERO);
        let (batch, _) = q.join(Some(&names(&["a"])), false);
        let waiter = {
            let batch = batch.clone();
            tokio::spawn(async move { batch.outcome().await })
        };
        let answer = MetadataResponse::default().with_topics(vec![topic("a", 0)]);
        batch.finish(Ok(Arc::new(answer.clone())));
        assert_eq!(*waiter.await.unwrap().unwrap(), answer);
        assert_eq!(*batch.outcome().await.unwrap(), answer);
    }

    #[test]
    fn answers_are_cut_to_what_each_request_asked() {
        let answer = MetadataResponse::default().with_topics(vec![topic("a", 0), topic("b", 0)]);
        let got = answer_for(&answer, Some(&names(&["b", "zz"])));
        assert_eq!(got[0], topic("b", 0));
        assert_eq!(
            got[1],
            topic("zz", ResponseError::UnknownTopicOrPartition.code())
        );
        assert_eq!(answer_for(&answer, None).len(), 2);
    }

    #[test]
    fn known_topics_are_cached_for_their_age_and_forgotten_on_demand() {
        let q = MetadataQueries::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let answer = MetadataResponse::default().with_topics(vec![
            topic("a", 0),
            topic("gone", ResponseError::UnknownTopicOrPartition.code()),
        ]);
        q.remember(t0, false, &answer);
        assert_eq!(q.cached(&names(&["a"]), t0), Some(vec![topic("a", 0)]));
        assert_eq!(q.cached(&names(&["a", "gone"]), t0), None);
        assert_eq!(
            q.cached(&names(&["a"]), t0 + Duration::from_secs(1)),
            None,
            "too old"
        );
        q.forget();
        assert_eq!(q.cached(&names(&["a"]), t0), None);
        let off = MetadataQueries::new(Duration::ZERO);
        off.remember(t0, false, &answer);
        assert_eq!(off.cached(&names(&["a"]), t0), None);
    }
}
