//! The producer's latency and rate bookkeeping, printed in the formats of
//! Kafka's `ProducerPerformance` (its window and totals lines) plus one line
//! of microseconds.
//!
//! Latency is from just before a record is handed to the client to its
//! delivery report. Kafka's lines use whole milliseconds taken as Kafka
//! takes them, the difference of two millisecond clock readings; the extra
//! line uses microseconds.

use std::time::{Duration, Instant};

/// Kafka keeps at most this many latency samples, every n-th record's.
const MAX_SAMPLES: u64 = 500_000;

/// Kafka's MB: 1024 * 1024 bytes.
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A point on the run's clock: microseconds since it started. Small enough
/// to travel with a record as its delivery opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Micros(pub u64);

impl Micros {
    /// Whole milliseconds, the way a millisecond clock reads at this point.
    fn millis(self) -> u64 {
        self.0 / 1000
    }
}

/// The run's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    pub fn now(&self) -> Micros {
        Micros(self.0.elapsed().as_micros() as u64)
    }
}

/// Counts of one reporting window or of the whole run.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    records: u64,
    bytes: u64,
    total_ms: u64,
    max_ms: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64, ms: u64) {
        self.records += 1;
        self.bytes += bytes;
        self.total_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    /// `N records sent, X records/sec (Y MB/sec)` over `elapsed`.
    fn rate(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec)",
            self.records,
            self.records as f64 / secs,
            mb(self.bytes) / secs
        )
    }

    fn avg_ms(&self) -> f64 {
        self.total_ms as f64 / self.records as f64
    }
}

/// The producer's statistics: a window printed every reporting interval as
/// records complete, and the totals at the end.
pub struct ProduceStats {
    clock: Clock,
    interval: Duration,
    every: u64,
    completed: u64,
    total: Tally,
    window: Tally,
    window_start: Micros,
    total_us: u64,
    max_us: u64,
    /// (whole ms, µs) of every `every`-th completed record.
    samples: Vec<(u32, u32)>,
}

impl ProduceStats {
    pub fn new(clock: Clock, records: u64, interval: Duration) -> ProduceStats {
        let every = (records / records.clamp(1, MAX_SAMPLES)).max(1);
        ProduceStats {
            clock,
            interval,
            every,
            completed: 0,
            total: Tally::default(),
            window: Tally::default(),
            window_start: clock.now(),
            total_us: 0,
            max_us: 0,
            samples: Vec::with_capacity((records / every + 1) as usize),
        }
    }

    /// One record of `bytes` sent at `sent` was delivered at `now`; prints
    /// the window line when the window has run its interval.
    pub fn record(&mut self, sent: Micros, now: Micros, bytes: u64) {
        let ms = now.millis().saturating_sub(sent.millis());
        let us = now.0.saturating_sub(sent.0);
        self.total.add(bytes, ms);
        self.window.add(bytes, ms);
        self.total_us += us;
        self.max_us = self.max_us.max(us);
        if self.completed % self.every == 0 {
            self.samples.push((clamp_u32(ms), clamp_u32(us)));
        }
        self.completed += 1;
        if Duration::from_micros(now.0 - self.window_start.0) >= self.interval {
            self.print_window();
            self.window = Tally::default();
            self.window_start = self.clock.now();
        }
    }

    fn print_window(&self) {
        let elapsed = Duration::from_micros(self.clock.now().0 - self.window_start.0);
        println!(
            "{}, {:.1} ms avg latency, {:.1} ms max latency.",
            self.window.rate(elapsed),
            self.window.avg_ms(),
            self.window.max_ms as f64
        );
    }

    /// Kafka's totals line, then the line in microseconds.
    pub fn print_total(&mut self) {
        let elapsed = Duration::from_micros(self.clock.now().0);
        let ms: Vec<u32> = self.samples.iter().map(|s| s.0).collect();
        let us: Vec<u32> = self.samples.iter().map(|s| s.1).collect();
        let [p50, p95, p99, p999] = percentiles(ms);
        println!(
            "{}, {:.2} ms avg latency, {:.2} ms max latency, {p50} ms 50th, {p95} ms 95th, \
             {p99} ms 99th, {p999} ms 99.9th.",
            self.total.rate(elapsed),
            self.total.avg_ms(),
            self.total.max_ms as f64
        );
        let [p50, p95, p99, p999] = percentiles(us);
        println!(
            "latency us: avg {:.0}, p50 {p50}, p95 {p95}, p99 {p99}, p99.9 {p999}, max {}",
            self.total_us as f64 / self.total.records as f64,
            self.max_us
        );
    }
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The 50th, 95th, 99th and 99.9th percentiles as Kafka picks them: the
/// sample at index ⌊p · n⌋ of the sorted samples (0 when there are none).
fn percentiles(mut samples: Vec<u32>) -> [u32; 4] {
    samples.sort_unstable();
    [0.5, 0.95, 0.99, 0.999].map(|p| {
        let at = ((p * samples.len() as f64) as usize).min(samples.len().saturating_sub(1));
        samples.get(at).copied().unwrap_or(0)
    })
}
