//! Where a partition's log really ends: the first offset at which a Fetch
//! returns no records. Control plane: flips, mirrored flips and reads of
//! bookkeeping topics take every log end from here, never from a broker's
//! reported high watermark alone (tansu reports the base offset of its last
//! batch plus one; Kafka reports the true end; anything between is
//! possible).
//!
//! Pure: [`EndSearch`] says which offsets to fetch, the caller fetches them
//! (one round: every open partition at once, `min_bytes` 1, a short
//! `max_wait`) and hands back what came, until every end is known.
//!
//! The rule, per partition, from its log start `S` and reported end `R`:
//! 1. probe `R − 1` (or `S` when `R ≤ S`);
//! 2. records came back: the end is at least one past the last of them;
//!    probe there next;
//! 3. nothing came back from a probe that follows records: that is the end;
//! 4. nothing came back and no record was seen yet: a broker that returns
//!    only batches starting at or after the offset answers nothing for an
//!    offset inside the last batch, so step back (1, 2, 4, … offsets, never
//!    below `S`) until records come;
//! 5. "nothing came back" counts only from a round in which no partition
//!    returned any record and every partition was answered: a Fetch answer
//!    cut at its size limit leaves later partitions empty, and some brokers
//!    answer a Fetch with no partitions at all.

use std::collections::BTreeMap;

use crate::domain::offsets::UpstreamOffset;

/// Each partition's log end, on one cluster.
pub type LogEnds = BTreeMap<i32, UpstreamOffset>;

/// A partition with a transaction open: (partition, last stable offset,
/// high watermark), as the broker reports them.
pub type OpenTransaction = (i32, UpstreamOffset, UpstreamOffset);

/// What one partition's Fetch at the asked offset brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Record batches whose last record is at `last` (the highest offset
    /// in the answer, control batches included).
    Records { last: UpstreamOffset },
    /// The partition was answered, with no records.
    Empty,
    /// The broker said the offset is past the end of its log.
    OutOfRange,
    /// The answer did not name the partition.
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndError {
    #[error(
        "partition {partition}: no Fetch from {start} up to the reported end {reported} returned \
         a record, so the end of its log cannot be verified"
    )]
    Unreadable {
        partition: i32,
        start: i64,
        reported: i64,
    },
    #[error(
        "partition {partition}: its log end did not settle after {rounds} Fetch rounds (last seen \
         at {at}, reported {reported}); something keeps writing to it or its broker keeps \
         answering without it"
    )]
    Unsettled {
        partition: i32,
        at: i64,
        reported: i64,
        rounds: u32,
    },
}

/// Enough for a broker whose report is off by a batch (two rounds), one
/// that needs a walk back through a large batch (a round per doubling),
/// and a few answers that name no partition.
pub const MAX_ROUNDS: u32 = 64;

#[derive(Debug, Clone, Copy)]
struct Search {
    start: i64,
    reported: i64,
    /// The offset to fetch next.
    at: i64,
    /// One past the last record seen: the end is at least this.
    seen: Option<i64>,
    /// How far the next step back goes.
    back: i64,
    end: Option<i64>,
}

/// The end search of several partitions at once.
#[derive(Debug, Clone)]
pub struct EndSearch {
    partitions: BTreeMap<i32, Search>,
    rounds: u32,
}

impl EndSearch {
    /// `bounds`: per partition, its log start and its reported end.
    pub fn new(
        bounds: impl IntoIterator<Item = (i32, UpstreamOffset, UpstreamOffset)>,
    ) -> EndSearch {
        let partitions = bounds
            .into_iter()
            .map(|(partition, start, reported)| {
                let (start, reported) = (start.0.max(0), reported.0);
                let (at, seen) = if reported > start {
                    (reported - 1, None)
                } else {
                    // Reported empty: the end is at least the start, and a
                    // Fetch there tells whether records follow.
                    (start, Some(start))
                };
                let search = Search {
                    start,
                    reported,
                    at,
                    seen,
                    back: 1,
                    end: None,
                };
                (partition, search)
            })
            .collect();
        EndSearch {
            partitions,
            rounds: 0,
        }
    }

    /// The Fetches of the next round: (partition, offset); empty once every
    /// end is known.
    pub fn next_round(&self) -> Vec<(i32, UpstreamOffset)> {
        self.partitions
            .iter()
            .filter(|(_, s)| s.end.is_none())
            .map(|(p, s)| (*p, UpstreamOffset(s.at)))
            .collect()
    }

    /// Takes one round's answers (a partition asked and not in `answers`
    /// counts as [`Probe::Missing`]).
    pub fn answer(&mut self, answers: &BTreeMap<i32, Probe>) -> Result<(), EndError> {
        self.rounds += 1;
        let probe = |p: &i32| answers.get(p).copied().unwrap_or(Probe::Missing);
        let conclusive = self
            .partitions
            .iter()
            .filter(|(_, s)| s.end.is_none())
            .all(|(p, _)| matches!(probe(p), Probe::Empty | Probe::OutOfRange));
        for (partition, search) in self.partitions.iter_mut().filter(|(_, s)| s.end.is_none()) {
            match probe(partition) {
                Probe::Records { last } if last.0 >= search.at => {
                    let next = last.0.saturating_add(1);
                    search.seen = Some(search.seen.map_or(next, |s| s.max(next)));
                    search.at = next;
                }
                Probe::Empty | Probe::OutOfRange if conclusive => match search.seen {
                    Some(end) => search.end = Some(end),
                    None if search.at <= search.start => {
                        return Err(EndError::Unreadable {
                            partition: *partition,
                            start: search.start,
                            reported: search.reported,
                        })
                    }
                    None => {
                        search.at = search.at.saturating_sub(search.back).max(search.start);
                        search.back = search.back.saturating_mul(2);
                    }
                },
                // Records wholly before the offset, an answer cut short or
                // one that left the partition out: ask the same again.
                _ => {}
            }
        }
        if self.rounds >= MAX_ROUNDS {
            if let Some((partition, search)) = self.partitions.iter().find(|(_, s)| s.end.is_none())
            {
                return Err(EndError::Unsettled {
                    partition: *partition,
                    at: search.at,
                    reported: search.reported,
                    rounds: self.rounds,
                });
            }
        }
        Ok(())
    }

    /// Every partition's end, once all are known.
    pub fn ends(&self) -> Option<LogEnds> {
        self.partitions
            .iter()
            .map(|(p, s)| Some((*p, UpstreamOffset(s.end?))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::offsets::UpstreamOffset as U;

    /// A scripted partition log: record batches as (base, last) offsets,
    /// and how its broker answers a Fetch.
    struct Log {
        batches: Vec<(i64, i64)>,
        /// true: a Fetch at an offset inside a batch returns that batch
        /// (Kafka, tansu); false: only batches starting at or after it.
        holding: bool,
        /// Answers that name no partition before the broker behaves.
        missing: u32,
    }

    impl Log {
        fn end(&self) -> i64 {
            self.batches.last().map_or(0, |b| b.1 + 1)
        }

        fn fetch(&mut self, offset: i64) -> Probe {
            if self.missing > 0 {
                self.missing -= 1;
                return Probe::Missing;
            }
            if offset > self.end() {
                return Probe::OutOfRange;
            }
            let last = self
                .batches
                .iter()
                .filter(|(base, last)| {
                    if self.holding {
                        *last >= offset
                    } else {
                        *base >= offset
                    }
                })
                .map(|b| b.1)
                .max();
            last.map_or(Probe::Empty, |last| Probe::Records { last: U(last) })
        }
    }

    /// Batches of `size` records from 0 up to `end`.
    fn batches(end: i64, size: i64) -> Vec<(i64, i64)> {
        (0..end)
            .step_by(size as usize)
            .map(|b| (b, (b + size).min(end) - 1))
            .collect()
    }

    /// Runs the search over one scripted partition and returns its result
    /// and the rounds it took.
    fn run(log: &mut Log, start: i64, reported: i64) -> (Result<i64, EndError>, u32) {
        let mut search = EndSearch::new([(0, U(start), U(reported))]);
        let mut rounds = 0;
        loop {
            if let Some(ends) = search.ends() {
                return (Ok(ends[&0].0), rounds);
            }
            let answers = search
                .next_round()
                .into_iter()
                .map(|(p, offset)| (p, log.fetch(offset.0)))
                .collect();
            rounds += 1;
            if let Err(e) = search.answer(&answers) {
                return (Err(e), rounds);
            }
        }
    }

    fn log(batches: Vec<(i64, i64)>, holding: bool) -> Log {
        Log {
            batches,
            holding,
            missing: 0,
        }
    }

    #[test]
    fn a_reported_end_at_the_truth_is_confirmed_in_two_rounds() {
        for holding in [true, false] {
            let mut l = log(batches(1_000, 100), holding);
            // Kafka's high watermark: R − 1 is the last record. A broker
            // returning only later batches has none starting there, so it
            // takes the walk back.
            let (end, _) = run(&mut l, 0, 1_000);
            assert_eq!(end, Ok(1_000), "holding={holding}");
        }
        let (_, rounds) = run(&mut log(batches(1_000, 100), true), 0, 1_000);
        assert_eq!(rounds, 2);
    }

    #[test]
    fn a_reported_end_below_the_truth_moves_to_the_true_end() {
        // tansu: base offset of the last batch plus one.
        let (end, rounds) = run(&mut log(batches(4_978, 400), true), 0, 4_801);
        assert_eq!((end, rounds), (Ok(4_978), 2));
        // The whole log in one batch, reported as 1.
        assert_eq!(run(&mut log(vec![(0, 1_652)], true), 0, 1).0, Ok(1_653));
        // Anything between base + 1 and the truth.
        for reported in [4_801, 4_850, 4_977] {
            assert_eq!(
                run(&mut log(batches(4_978, 400), true), 0, reported).0,
                Ok(4_978)
            );
        }
    }

    #[test]
    fn a_broker_returning_only_later_batches_is_walked_back_to_the_last_batch() {
        // R − 1 sits inside the last batch (4800..=4977): a Fetch there
        // returns nothing, so the search steps back until the batch starts
        // at or after the probe.
        for reported in [4_801, 4_850, 4_977, 4_978] {
            let (end, rounds) = run(&mut log(batches(4_978, 400), false), 0, reported);
            assert_eq!(end, Ok(4_978), "reported {reported}");
            assert!(rounds <= 12, "reported {reported}: {rounds} rounds");
        }
        // R − 1 at the batch's base: found at once.
        assert_eq!(
            run(&mut log(batches(4_978, 400), false), 0, 4_801),
            (Ok(4_978), 2)
        );
    }

    #[test]
    fn a_reported_end_above_the_truth_comes_down_to_it() {
        for holding in [true, false] {
            let (end, _) = run(&mut log(batches(1_000, 100), holding), 0, 1_500);
            assert_eq!(end, Ok(1_000), "holding={holding}");
        }
    }

    #[test]
    fn an_empty_log_ends_at_its_start() {
        assert_eq!(run(&mut log(vec![], true), 0, 0), (Ok(0), 1));
        // Retention moved the start past every record.
        assert_eq!(run(&mut log(vec![], true), 700, 700).0, Ok(700));
        // Reported empty, but records are there.
        assert_eq!(run(&mut log(batches(30, 10), true), 0, 0).0, Ok(30));
    }

    #[test]
    fn answers_that_name_no_partition_are_asked_again() {
        let mut l = log(batches(500, 50), true);
        l.missing = 3;
        assert_eq!(run(&mut l, 0, 451), (Ok(500), 5));
        let mut l = log(batches(500, 50), true);
        l.missing = u32::MAX;
        let (end, rounds) = run(&mut l, 0, 451);
        assert_eq!(rounds, MAX_ROUNDS);
        assert!(
            matches!(end, Err(EndError::Unsettled { partition: 0, .. })),
            "{end:?}"
        );
    }

    #[test]
    fn a_log_where_nothing_is_readable_below_its_reported_end_is_an_error() {
        let (end, _) = run(&mut log(vec![], true), 0, 40);
        assert_eq!(
            end,
            Err(EndError::Unreadable {
                partition: 0,
                start: 0,
                reported: 40
            })
        );
    }

    #[test]
    fn an_end_that_keeps_moving_is_an_error() {
        let mut search = EndSearch::new([(0, U(0), U(10))]);
        let mut last = 10;
        let result = loop {
            let answers = BTreeMap::from([(0, Probe::Records { last: U(last) })]);
            last += 10;
            if let Err(e) = search.answer(&answers) {
                break e;
            }
        };
        assert!(matches!(
            result,
            EndError::Unsettled {
                rounds: MAX_ROUNDS,
                ..
            }
        ));
    }

    #[test]
    fn an_empty_partition_waits_for_a_round_in_which_nothing_came() {
        // Partition 1 is at its end from the start; partition 0 is still
        // walking. An empty answer for 1 beside records for 0 may be an
        // answer cut at its size limit, so 1 is asked again.
        let mut search = EndSearch::new([(0, U(0), U(1)), (1, U(0), U(0))]);
        assert_eq!(search.next_round(), vec![(0, U(0)), (1, U(0))]);
        search
            .answer(&BTreeMap::from([
                (0, Probe::Records { last: U(99) }),
                (1, Probe::Empty),
            ]))
            .unwrap();
        assert_eq!(search.next_round(), vec![(0, U(100)), (1, U(0))]);
        search
            .answer(&BTreeMap::from([
                (0, Probe::Records { last: U(149) }),
                (1, Probe::Empty),
            ]))
            .unwrap();
        assert_eq!(search.ends(), None);
        search
            .answer(&BTreeMap::from([(0, Probe::Empty), (1, Probe::Empty)]))
            .unwrap();
        assert_eq!(
            search.ends(),
            Some(BTreeMap::from([(0, U(150)), (1, U(0))]))
        );
        assert!(search.next_round().is_empty());
    }
}
