//! Why a flip refused or aborted: what happened, what was expected, and
//! what to do. Every abort leaves the routes as they were.

use std::time::Duration;

use crate::domain::offsets::{Offset, UpstreamOffset};
use crate::ops::state::StateError;
use crate::ops::steps::MoveError;
use crate::upstream::UpstreamError;

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
    /// `before`: `None` for a partition the first reading did not have
    /// (printed as Kafka's -1).
    #[error(
        "flip of '{topic}' aborted: partition {partition} on cluster '{cluster}' grew from {} \
         to {after} while fenced, so something writes to it without going through the proxy; \
         routes unchanged",
        UpstreamOffset::to_wire(*.before)
    )]
    WriterBehindProxy {
        topic: String,
        cluster: String,
        partition: i32,
        before: Option<UpstreamOffset>,
        after: UpstreamOffset,
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
        stable: UpstreamOffset,
        end: UpstreamOffset,
        waited: Duration,
    },
    #[error(
        "flip of '{topic}' aborted: after {waited:?} MirrorMaker 2's copy on cluster '{cluster}' \
         does not hold partition {partition} up to {l_old} (by its offset syncs it reaches \
         {:?}; the copy ends at {end}); check MirrorMaker 2, or flip without --mirrored; \
         routes unchanged",
        .reached.map(Offset::wire)
    )]
    MirrorBehind {
        topic: String,
        cluster: String,
        partition: i32,
        l_old: UpstreamOffset,
        reached: Option<UpstreamOffset>,
        end: UpstreamOffset,
        waited: Duration,
    },
    #[error("flip of '{topic}' aborted: {source}; routes unchanged")]
    Upstream {
        topic: String,
        source: UpstreamError,
    },
    #[error("flip of '{topic}' aborted: {source}; routes unchanged")]
    State { topic: String, source: StateError },
    #[error("flip of '{topic}' aborted by instance '{instance}': {reason}; routes unchanged on every instance")]
    FleetAborted {
        topic: String,
        instance: String,
        reason: String,
    },
}

impl FlipError {
    /// An upstream failure during the flip of `topic`.
    pub fn upstream(topic: &str) -> impl Fn(UpstreamError) -> FlipError + '_ {
        move |source| FlipError::Upstream {
            topic: topic.to_owned(),
            source,
        }
    }
}

impl MoveError for FlipError {
    fn outcome(&self) -> (&'static str, &'static str) {
        use FlipError::*;
        match self {
            BadTopic(_) => ("refused", "bad_topic"),
            UnknownCluster { .. } => ("refused", "unknown_cluster"),
            StitchedFetch(_) => ("refused", "stitched_fetch"),
            AlreadyRunning(_) => ("refused", "already_running"),
            TopicMissing { .. } => ("refused", "topic_missing"),
            PartitionMismatch { .. } => ("refused", "partition_mismatch"),
            InflightTimeout { .. } => ("aborted", "in_flight"),
            WriterBehindProxy { .. } => ("aborted", "writer_behind_proxy"),
            OpenTransaction { .. } => ("aborted", "open_transaction"),
            MirrorBehind { .. } => ("aborted", "mirror_behind"),
            Upstream { .. } => ("aborted", "upstream"),
            State { .. } => ("aborted", "state"),
            FleetAborted { .. } => ("aborted", "fleet"),
        }
    }

    fn already_running(topic: &str) -> Self {
        FlipError::AlreadyRunning(topic.to_owned())
    }

    fn still_in_flight(topic: &str, cluster: &str, count: usize, waited: Duration) -> Self {
        FlipError::InflightTimeout {
            topic: topic.to_owned(),
            cluster: cluster.to_owned(),
            count,
            waited,
        }
    }

    fn not_recorded(topic: &str, source: StateError) -> Self {
        FlipError::State {
            topic: topic.to_owned(),
            source,
        }
    }

    fn fleet_aborted(topic: &str, instance: String, reason: String) -> Self {
        FlipError::FleetAborted {
            topic: topic.to_owned(),
            instance,
            reason,
        }
    }
}
