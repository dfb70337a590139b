//! The graceful stop on SIGTERM or SIGINT, as the accept loops and
//! sessions see it: one signal they watch, the connections still open, and
//! process-wide counts of requests accepted for an answer and answered.
//!
//! The server starts the drain and waits, bounded by `shutdown_grace_ms`,
//! for every connection to end; [`DrainReport`] is what it logs then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Whether the proxy is draining, and what it has to finish first.
pub struct Shutdown {
    draining: watch::Sender<bool>,
    /// Client connections open now, from accept to close.
    open: watch::Sender<u64>,
    /// Connections that ended after the drain began.
    closed_draining: AtomicU64,
    accepted: AtomicU64,
    answered: AtomicU64,
    /// Requests whose connection closed (the client went away, or an
    /// error closed it) before their answer could go out.
    abandoned: AtomicU64,
}

/// One client connection, counted open until dropped, with what it was
/// asked and what it answered.
pub struct OpenConnection {
    shutdown: Arc<Shutdown>,
    accepted: AtomicU64,
    answered: AtomicU64,
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown {
            draining: watch::Sender::new(false),
            open: watch::Sender::new(0),
            closed_draining: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
        }
    }
}

impl Shutdown {
    /// Tells every accept loop and session to stop; returns the client
    /// connections open at that moment.
    pub fn begin(&self) -> u64 {
        self.draining.send_replace(true);
        *self.open.borrow()
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves once the drain has begun (at once if it has).
    pub async fn signalled(&self) {
        let mut draining = self.draining.subscribe();
        // The sender lives as long as `self`: this never fails.
        let _ = draining.wait_for(|d| *d).await;
    }

    /// Counts a client connection open until the guard is dropped.
    pub fn open_connection(self: &Arc<Self>) -> OpenConnection {
        self.open.send_modify(|n| *n += 1);
        OpenConnection {
            shutdown: self.clone(),
            accepted: AtomicU64::new(0),
            answered: AtomicU64::new(0),
        }
    }

    /// Resolves once no client connection is open.
    pub async fn all_closed(&self) {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|n| *n == 0).await;
    }

    /// The counts now, for a drain that began `elapsed` ago and ended so.
    pub fn report(&self, elapsed: Duration, end: DrainEnd) -> DrainReport {
        DrainReport {
            accepted: self.accepted.load(Ordering::Relaxed),
            answered: self.answered.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
            // Those still open close as the process exits.
            connections: self.closed_draining.load(Ordering::Relaxed) + *self.open.borrow(),
            elapsed,
            end,
        }
    }
}

impl OpenConnection {
    /// A request the client awaits an answer to was queued for its answer.
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.shutdown.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// An answer went out to the client.
    pub fn answered(&self) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        self.shutdown.answered.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let shutdown = &self.shutdown;
        let left = self
            .accepted
            .load(Ordering::Relaxed)
            .saturating_sub(self.answered.load(Ordering::Relaxed));
        shutdown.abandoned.fetch_add(left, Ordering::Relaxed);
        if shutdown.is_draining() {
            shutdown.closed_draining.fetch_add(1, Ordering::Relaxed);
        }
        shutdown.open.send_modify(|n| *n -= 1);
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// Every connection closed within the grace period.
    Done,
    /// The grace period ran out first.
    GraceExpired(Duration),
    /// A second signal cut it short.
    SecondSignal,
}

/// What a drain did, as logged at exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// Requests queued for an answer since start-up (an acks=0 Produce,
    /// which expects none, is not among them).
    pub accepted: u64,
    /// Answers written to clients since start-up.
    pub answered: u64,
    /// Requests whose connection closed before their answer could go out
    /// (the client went away, or an error closed it): not the drain's.
    pub abandoned: u64,
    /// Client connections closed by the drain.
    pub connections: u64,
    pub elapsed: Duration,
    pub end: DrainEnd,
}

impl DrainReport {
    /// Requests still waiting for their answer when the drain ended.
    pub fn unanswered(&self) -> u64 {
        self.accepted
            .saturating_sub(self.answered)
            .saturating_sub(self.abandoned)
    }

    /// Whether something was left undone: worth a warning.
    pub fn cut_short(&self) -> bool {
        self.end != DrainEnd::Done || self.unanswered() != 0
    }

    /// The one line logged at exit.
    pub fn line(&self) -> String {
        let why = match self.end {
            DrainEnd::Done => String::new(),
            DrainEnd::GraceExpired(grace) => {
                format!(" (grace of {}s ran out)", grace.as_secs_f64())
            }
            DrainEnd::SecondSignal => " (cut short by a second signal)".to_owned(),
        };
        let abandoned = match self.abandoned {
            0 => String::new(),
            n => format!("; {n} more went unanswered because their connection closed first"),
        };
        format!(
            "drained: {} requests accepted, {} answered, {} left unanswered, {} connections closed, in {} ms{why}{abandoned}",
            self.accepted,
            self.answered,
            self.unanswered(),
            self.connections,
            self.elapsed.as_millis(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(accepted: u64, answered: u64, end: DrainEnd) -> DrainReport {
        DrainReport {
            accepted,
            answered,
            abandoned: 0,
            connections: 3,
            elapsed: Duration::from_millis(412),
            end,
        }
    }

    #[test]
    fn a_complete_drain_says_every_request_was_answered() {
        let r = report(1234, 1234, DrainEnd::Done);
        assert_eq!(
            r.line(),
            "drained: 1234 requests accepted, 1234 answered, 0 left unanswered, 3 connections closed, in 412 ms"
        );
        assert!(!r.cut_short());
    }

    #[test]
    fn an_expired_grace_says_how_many_were_left_unanswered() {
        let r = report(10, 7, DrainEnd::GraceExpired(Duration::from_secs(30)));
        assert_eq!(
            r.line(),
            "drained: 10 requests accepted, 7 answered, 3 left unanswered, 3 connections closed, in 412 ms (grace of 30s ran out)"
        );
        assert!(r.cut_short());
        assert!(report(5, 5, DrainEnd::SecondSignal).cut_short());
    }

    #[tokio::test]
    async fn connections_closed_during_the_drain_are_counted_and_awaited() {
        let shutdown = Arc::new(Shutdown::default());
        let before = shutdown.open_connection();
        let during = shutdown.open_connection();
        drop(before);
        assert!(!shutdown.is_draining());
        assert_eq!(shutdown.begin(), 1);
        shutdown.signalled().await;
        let waiting = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.all_closed().await }
        });
        drop(during);
        waiting.await.unwrap();
        let r = shutdown.report(Duration::ZERO, DrainEnd::Done);
        assert_eq!(r.connections, 1, "the one open when the drain began");
    }

    #[test]
    fn answers_lost_with_their_connection_are_not_the_drains() {
        let shutdown = Arc::new(Shutdown::default());
        let gone = shutdown.open_connection();
        let open = shutdown.open_connection();
        for c in [&gone, &gone, &open] {
            c.accepted();
        }
        gone.answered();
        drop(gone);
        let r = shutdown.report(
            Duration::from_millis(5),
            DrainEnd::GraceExpired(Duration::from_secs(1)),
        );
        assert_eq!(
            (r.accepted, r.answered, r.abandoned, r.unanswered()),
            (3, 1, 1, 1)
        );
        assert_eq!(
            r.line(),
            "drained: 3 requests accepted, 1 answered, 1 left unanswered, 1 connections closed, in 5 ms \
             (grace of 1s ran out); 1 more went unanswered because their connection closed first"
        );
    }

    #[test]
    fn the_grace_defaults_to_30_seconds() {
        let config = crate::config::Config::parse(include_str!("../../proxy.toml")).unwrap();
        assert_eq!(config.proxy.shutdown_grace, Duration::from_secs(30));
    }
}
