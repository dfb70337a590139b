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
    #[error("'{pattern}' is not a topic pattern: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error(
        "no topic on cluster(s) {clusters} matches '{pattern}' (topics named '__…' or '….internal' \
         are never matched); nothing was changed"
    )]
    NoTopicMatches { pattern: String, clusters: String },
    #[error("name at least one topic to flip")]
    NoTopics,
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
    /// A failure of a query made for many topics at once.
    #[error("flip of {count} topics aborted: {source}; every route unchanged")]
    UpstreamMany { count: usize, source: UpstreamError },
    #[error("flip of '{topic}' aborted: {source}; routes unchanged")]
    State { topic: String, source: StateError },
    /// One topic of a flip of many stopped them all.
    #[error("flip of {count} topics aborted, none of them moved: {source}")]
    Batch {
        count: usize,
        source: Box<FlipError>,
    },
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

    /// An upstream failure of a query for `topics`, all of one flip.
    pub fn upstream_of(topics: &[String]) -> impl Fn(UpstreamError) -> FlipError + '_ {
        move |source| match topics {
            [topic] => FlipError::Upstream {
                topic: topic.clone(),
                source,
            },
            _ => FlipError::UpstreamMany {
                count: topics.len(),
                source,
            },
        }
    }

    /// This error, as the error of a flip of `count` topics.
    pub fn of_batch(self, count: usize) -> FlipError {
        match self {
            done if count <= 1 => done,
            many @ (FlipError::UpstreamMany { .. } | FlipError::Batch { .. }) => many,
            one => FlipError::Batch {
                count,
                source: Box::new(one),
            },
        }
    }
}

impl MoveError for FlipError {
    fn outcome(&self) -> (&'static str, &'static str) {
        use FlipError::*;
        match self {
            BadTopic(_) => ("refused", "bad_topic"),
            UnknownCluster { .. } => ("refused", "unknown_cluster"),
            BadPattern { .. } => ("refused", "bad_pattern"),
            NoTopicMatches { .. } => ("refused", "no_topic_matches"),
            NoTopics => ("refused", "no_topics"),
            StitchedFetch(_) => ("refused", "stitched_fetch"),
            AlreadyRunning(_) => ("refused", "already_running"),
            TopicMissing { .. } => ("refused", "topic_missing"),
            PartitionMismatch { .. } => ("refused", "partition_mismatch"),
            InflightTimeout { .. } => ("aborted", "in_flight"),
            WriterBehindProxy { .. } => ("aborted", "writer_behind_proxy"),
            OpenTransaction { .. } => ("aborted", "open_transaction"),
            MirrorBehind { .. } => ("aborted", "mirror_behind"),
            Upstream { .. } => ("aborted", "upstream"),
            UpstreamMany { .. } => ("aborted", "upstream"),
            State { .. } => ("aborted", "state"),
            Batch { source, .. } => source.outcome(),
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
