//! `--throughput`: Kafka's throttle. When the records sent so far run ahead
//! of the target rate, the sender owes one record's interval of sleep; the
//! debt is slept off once it reaches 2 ms, so the rate holds on average
//! without a sleep per record.

use std::time::{Duration, Instant};

const MIN_SLEEP: Duration = Duration::from_millis(2);

pub struct Throttle {
    /// Records per second; `None` sends as fast as the client takes them.
    target: Option<f64>,
    start: Instant,
    per_record: Duration,
    debt: Duration,
}

impl Throttle {
    /// A negative `target` (Kafka's -1) turns throttling off.
    pub fn new(target: f64) -> Throttle {
        let target = (target >= 0.0).then_some(target);
        Throttle {
            target,
            start: Instant::now(),
            per_record: target.map_or(Duration::ZERO, |t| Duration::from_secs_f64(1.0 / t)),
            debt: Duration::ZERO,
        }
    }

    /// Called after each record, `sent` of them so far.
    pub fn pace(&mut self, sent: u64) {
        let Some(target) = self.target else { return };
        let elapsed = self.start.elapsed().as_secs_f64();
        if elapsed <= 0.0 || sent as f64 / elapsed <= target {
            return;
        }
        self.debt += self.per_record;
        if self.debt >= MIN_SLEEP {
            std::thread::sleep(self.debt);
            self.debt = Duration::ZERO;
        }
    }
}
