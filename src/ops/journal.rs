//! What the console shows that the state does not keep: the moves that
//! were refused or called off (the state records only those that
//! happened), and the last few readings of group progress and old-cluster
//! writes, from which drain rates and crossing estimates follow. Bounded:
//! the newest [`ATTEMPTS`] failed moves and [`READINGS`] readings.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

/// Failed moves kept.
const ATTEMPTS: usize = 50;
/// Progress readings kept: rates are taken over all of them.
const READINGS: usize = 8;

/// One group's progress on one stitched topic.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Drain {
    pub group: String,
    pub topic: String,
    /// Records between the group's committed offsets and where the newest
    /// segment begins, summed over partitions; 0 once it has crossed.
    pub left: i64,
    pub crossed: bool,
}

/// A flip or group move that was refused or aborted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailedMove {
    /// "topic" or "group".
    pub kind: &'static str,
    pub name: String,
    /// The cluster it was to move to.
    pub to: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// "refused" (never started) or "aborted" (called off, nothing
    /// switched).
    pub outcome: &'static str,
    /// The error, as the admin command answered it.
    pub reason: String,
}

/// One reading of group progress and old-cluster writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub drains: Vec<Drain>,
    /// Records written to each flipped topic's old cluster beyond the
    /// stitch point, by topic.
    pub old_writes: BTreeMap<String, i64>,
}

/// One group's progress as the console shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DrainProgress {
    pub group: String,
    pub topic: String,
    pub left: i64,
    /// The most records it had left in any kept reading: the bar's whole.
    pub start: i64,
    /// Records drained per second over the kept readings; `None` until two
    /// readings exist.
    pub rate_per_s: Option<f64>,
    /// Seconds until it crosses at that rate; `None` without a rate.
    pub eta_s: Option<f64>,
    pub crossed: bool,
}

#[derive(Default)]
pub struct Journal {
    failed: Mutex<VecDeque<FailedMove>>,
    readings: Mutex<VecDeque<Reading>>,
    /// Why the last refresh failed, cleared by the next that succeeds.
    refresh_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Journal {
    pub fn failed(&self, failed: FailedMove) {
        let mut kept = lock(&self.failed);
        if kept.len() == ATTEMPTS {
            kept.pop_front();
        }
        kept.push_back(failed);
    }

    /// The failed moves kept, oldest first.
    pub fn failed_moves(&self) -> Vec<FailedMove> {
        lock(&self.failed).iter().cloned().collect()
    }

    pub fn reading(&self, reading: Reading) {
        let mut kept = lock(&self.readings);
        if kept.len() == READINGS {
            kept.pop_front();
        }
        kept.push_back(reading);
        *lock(&self.refresh_error) = None;
    }

    pub fn refresh_failed(&self, why: String) {
        *lock(&self.refresh_error) = Some(why);
    }

    pub fn refresh_error(&self) -> Option<String> {
        lock(&self.refresh_error).clone()
    }

    /// The newest reading, if any.
    pub fn latest(&self) -> Option<Reading> {
        lock(&self.readings).back().cloned()
    }

    /// Each group's progress in the newest reading, with the rate it
    /// drained at since the oldest kept reading that saw it.
    pub fn progress(&self) -> Vec<DrainProgress> {
        progress(lock(&self.readings).make_contiguous())
    }
}

fn progress(readings: &[Reading]) -> Vec<DrainProgress> {
    let Some(newest) = readings.last() else {
        return Vec::new();
    };
    newest
        .drains
        .iter()
        .map(|d| {
            let seen: Vec<(u64, i64)> = readings
                .iter()
                .filter_map(|r| {
                    let left = r
                        .drains
                        .iter()
                        .find(|o| o.group == d.group && o.topic == d.topic)?
                        .left;
                    Some((r.at_ms, left))
                })
                .collect();
            let start = seen.iter().map(|s| s.1).max().unwrap_or(d.left);
            let (first_ms, first_left) = seen[0];
            let secs = newest.at_ms.saturating_sub(first_ms) as f64 / 1000.0;
            let rate_per_s = (secs > 0.0).then(|| ((first_left - d.left) as f64 / secs).max(0.0));
            let eta_s = match rate_per_s {
                _ if d.crossed => Some(0.0),
                Some(r) if r > 0.0 => Some(d.left as f64 / r),
                _ => None,
            };
            DrainProgress {
                group: d.group.clone(),
                topic: d.topic.clone(),
                left: d.left,
                start,
                rate_per_s,
                eta_s,
                crossed: d.crossed,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at_ms: u64, left: i64) -> Reading {
        Reading {
            at_ms,
            drains: vec![Drain {
                group: "billing".into(),
                topic: "orders".into(),
                left,
                crossed: left == 0,
            }],
            old_writes: BTreeMap::new(),
        }
    }

    #[test]
    fn rates_and_estimates_come_from_the_kept_readings() {
        let journal = Journal::default();
        assert!(journal.progress().is_empty());
        journal.reading(reading(10_000, 400));
        let first = &journal.progress()[0];
        assert_eq!((first.left, first.start), (400, 400));
        assert_eq!((first.rate_per_s, first.eta_s), (None, None));
        journal.reading(reading(12_000, 300));
        journal.reading(reading(14_000, 200));
        let p = &journal.progress()[0];
        assert_eq!((p.left, p.start), (200, 400));
        assert_eq!(p.rate_per_s, Some(50.0));
        assert_eq!(p.eta_s, Some(4.0));
        journal.reading(reading(16_000, 0));
        let crossed = &journal.progress()[0];
        assert!(crossed.crossed);
        assert_eq!(crossed.eta_s, Some(0.0));
    }

    #[test]
    fn only_the_newest_are_kept() {
        let journal = Journal::default();
        for i in 0..(READINGS as u64 + 3) {
            journal.reading(reading(i * 1000, 1000 - i as i64));
        }
        assert_eq!(journal.readings.lock().unwrap().len(), READINGS);
        // The oldest kept reading is the fourth.
        assert_eq!(journal.progress()[0].start, 997);
        for i in 0..(ATTEMPTS + 5) {
            journal.failed(FailedMove {
                kind: "topic",
                name: format!("t{i}"),
                to: "new".into(),
                at_ms: i as u64,
                outcome: "aborted",
                reason: "x".into(),
            });
        }
        let failed = journal.failed_moves();
        assert_eq!(failed.len(), ATTEMPTS);
        assert_eq!(failed[0].name, "t5");
    }
}
