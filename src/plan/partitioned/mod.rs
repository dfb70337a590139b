//! The partitioned APIs (Produce, Fetch, ListOffsets,
//! OffsetForLeaderEpoch): requests that list topics, each with partitions,
//! answered per partition in a response of the same shape.
//!
//! Each API is one unit, in a file of its own: its shallow view (what the
//! proxy routes and authorises on), how its request is cut into parts and
//! its offsets moved upstream, how its answers merge and shift back, and
//! the error answer the proxy gives by itself. [`Family`] is the one table
//! from API key to those; nothing else matches on these APIs. Adding one
//! means a file here and a line in that table.

use bytes::Bytes;
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::domain::stitch::Shift;
use crate::plan::route::Seek;
use crate::wire::codec::{decode_response, CodecError};
use crate::wire::requests::{ProduceView, TopicPartitions};
use crate::wire::{Frame, RequestHeader, WireError};

mod add_partitions_to_txn;
mod family;
mod fetch;
mod fetch_answer;
mod list_offsets;
mod offset_for_leader_epoch;
mod produce;

pub use family::{partition_error_response, Family, PartitionedRequest};
pub use fetch::answered;
pub use fetch_answer::{GapHolds, GAP_PACE};

/// One partitioned API, implemented on its request type.
pub trait PartitionedApi: Decodable + Encodable + Clone {
    const API: kafka_protocol::messages::ApiKey;
    /// The newest version whose topics go by name: the proxy builds
    /// answers only for those.
    const NAMED_UP_TO: i16 = i16::MAX;
    type Response: Decodable + Encodable + Default;
    type Topic: TopicAnswer;

    /// The shallow view of a request body: bounded, checked against the
    /// bytes present, the records not copied.
    fn view(header: &RequestHeader, body: &[u8]) -> Result<Body, WireError>;

    /// Keeps the partitions `keep(topic position, partition position)`
    /// accepts and drops topics left empty; false when nothing is left.
    fn retain(&mut self, keep: &mut dyn FnMut(usize, usize) -> bool) -> bool;

    /// Makes the request stand alone for one broker.
    fn detach(&mut self) {}

    /// Moves the offsets a request names (by position) into the upstream
    /// log each partition is read from.
    fn shift(&mut self, _shifts: &[Vec<Shift>]) {}

    fn topics(response: &mut Self::Response) -> &mut Vec<Self::Topic>;

    /// How long the broker asks the client to wait; a merged answer
    /// carries the longest of its parts'.
    fn throttle_time_ms(response: &mut Self::Response) -> &mut i32;

    /// Decodes a part's answer.
    fn decode_answer(version: i16, frame: &Frame) -> Result<Self::Response, CodecError> {
        decode_response(Self::API, version, frame)
    }

    /// Folds a part's other top-level fields into the merged answer.
    fn fold(_merged: &mut Self::Response, _part: &Self::Response) {}

    /// The client's answer from a lone part's answer, made without
    /// decoding it, when that answers every partition of `order` in order
    /// and the API can shift its offsets (`shifts`, in the shape of
    /// `order`) in its bytes: `None` merges it as any other.
    fn answer_in_order(_asked: Merge<'_>, _part: &Frame) -> Result<Option<Bytes>, CodecError> {
        Ok(None)
    }
}

/// What the answers to a split request's parts are merged with (see
/// [`crate::plan::split`]), and a lone part's answer checked and patched
/// against ([`PartitionedApi::answer_in_order`]): the request's version
/// and correlation id, its partitions in order, their shifts in the same
/// shape, and for a Fetch its fetch offsets (the client's, flattened in
/// the order of `order`) and its connection's gaps: records past a gap
/// that may still fill are held back.
#[derive(Debug, Clone, Copy)]
pub struct Merge<'a> {
    pub version: i16,
    pub correlation_id: i32,
    pub order: &'a TopicPartitions,
    pub shifts: &'a [Vec<Shift>],
    pub fetched: Option<(&'a [i64], &'a GapHolds)>,
}

/// What a partitioned request's view holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A Produce: its topics, acks, transactional id, where records sit.
    Write(ProduceView),
    /// A read: the partitions it names, and what picks the stretch of a
    /// stitched partition it is served from.
    Read {
        topics: TopicPartitions,
        positions: Positions,
    },
}

/// What picks the stretch a stitched partition is served from, per
/// partition (flattened, in request order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Positions {
    /// The newest stretch: OffsetForLeaderEpoch asks about the log's end.
    Newest,
    /// Fetch: each partition's fetch offset.
    Offsets(Vec<i64>),
    /// ListOffsets: each partition's timestamp (-2 earliest, -1 latest).
    Timestamps(Vec<i64>),
}

impl Body {
    pub fn topics(&self) -> &TopicPartitions {
        match self {
            Body::Write(view) => &view.topics,
            Body::Read { topics, .. } => topics,
        }
    }

    pub fn seek(&self) -> Seek<'_> {
        match self {
            Body::Write(_)
            | Body::Read {
                positions: Positions::Newest,
                ..
            } => Seek::Newest,
            Body::Read {
                positions: Positions::Offsets(offsets),
                ..
            } => Seek::Offsets(offsets),
            Body::Read {
                positions: Positions::Timestamps(timestamps),
                ..
            } => Seek::Timestamps(timestamps),
        }
    }
}

/// A topic entry of a per-partition response.
pub trait TopicAnswer: Clone {
    type Partition: PartitionAnswer;
    /// A topic entry holding `partitions`.
    fn named(name: &str, partitions: Vec<Self::Partition>) -> Self;
    fn name(&self) -> &str;
    fn partitions(&mut self) -> &mut Vec<Self::Partition>;
    fn index(partition: &Self::Partition) -> i32;
}

/// One partition's answer.
pub trait PartitionAnswer {
    /// The proxy's own answer for a partition it does not forward.
    fn refused(index: i32, error_code: i16) -> Self;
    /// Moves its offsets into the client's (virtual) log.
    fn shift(&mut self, shift: Shift);
    /// Clears what names an upstream broker, which a merged answer from
    /// several brokers cannot name truthfully.
    fn forget_leader(&mut self) {}
    /// Leaves out the records past a gap that may still fill (see
    /// [`GapHolds`]), for a partition of `topic` read from upstream offset
    /// `from`.
    fn hold_at_gap(&mut self, _topic: &str, _from: i64, _holds: &GapHolds) {}
}

/// The [`PartitionedApi`] accessors of a request whose topics hold
/// partitions in the fields named (`request topics . their partitions =>
/// response topics`).
macro_rules! lists {
    ($topics:ident . $partitions:ident => $answers:ident) => {
        fn retain(&mut self, keep: &mut dyn FnMut(usize, usize) -> bool) -> bool {
            $crate::plan::partitioned::retain_nested(
                &mut self.$topics,
                |t| &mut t.$partitions,
                keep,
            )
        }

        fn topics(response: &mut Self::Response) -> &mut Vec<Self::Topic> {
            &mut response.$answers
        }

        fn throttle_time_ms(response: &mut Self::Response) -> &mut i32 {
            &mut response.throttle_time_ms
        }
    };
}
use lists;

/// Implements [`TopicAnswer`] for a response topic type from its field
/// names.
macro_rules! topic_answer {
    ($topic:ty, $name:ident, $partitions:ident, $partition:ty, $index:ident) => {
        impl $crate::plan::partitioned::TopicAnswer for $topic {
            type Partition = $partition;
            fn named(name: &str, partitions: Vec<$partition>) -> Self {
                let mut topic = <$topic>::default();
                topic.$name = $crate::plan::partitioned::topic_name(name);
                topic.$partitions = partitions;
                topic
            }
            fn name(&self) -> &str {
                &self.$name.0
            }
            fn partitions(&mut self) -> &mut Vec<$partition> {
                &mut self.$partitions
            }
            fn index(partition: &$partition) -> i32 {
                partition.$index
            }
        }
    };
}
use topic_answer;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// One answer entry per topic of `topics`, each partition refused with
/// the code `code` gives its topic, in request order.
pub fn refused_topics<T: TopicAnswer>(
    topics: &TopicPartitions,
    code: &dyn Fn(&str) -> i16,
) -> Vec<T> {
    topics
        .0
        .iter()
        .map(|(name, partitions)| {
            let code = code(name);
            let partitions = partitions
                .iter()
                .map(|&p| T::Partition::refused(p, code))
                .collect();
            T::named(name, partitions)
        })
        .collect()
}

/// Keeps the partitions of a `topics[].partitions[]` list that `keep`
/// accepts, by position; true when any is left.
fn retain_nested<T, P>(
    topics: &mut Vec<T>,
    partitions: impl Fn(&mut T) -> &mut Vec<P>,
    keep: &mut dyn FnMut(usize, usize) -> bool,
) -> bool {
    let mut t = 0;
    topics.retain_mut(|topic| {
        let mut p = 0;
        partitions(topic).retain(|_| {
            let kept = keep(t, p);
            p += 1;
            kept
        });
        t += 1;
        !partitions(topic).is_empty()
    });
    !topics.is_empty()
}
