//! What a request becomes once dispatched: an answer on its way back.
//!
//! What a `Pending` guarantees: every request the read task dispatches
//! gets exactly one `Pending` (an acks=0 Produce gets none, and the client
//! expects none), sent down the channel in request order; the write task
//! awaits each in that order and writes its answer before it looks at the
//! next, so answers leave in request order whatever order upstream brokers
//! answer in. A Produce's in-flight guard lives inside its `Pending` until
//! the answer is through, which is what a flip's fence waits for.

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::end::SessionEnd;
use crate::domain::gates::InflightGuard;
use crate::domain::ids::ClusterIdx;
use crate::plan::partitioned::PartitionedRequest;
use crate::upstream::conn::Reply;
use crate::wire::codec::CodecError;

/// An answer the write task will send, in the order the requests came.
pub(super) enum Pending {
    Ready(Bytes),
    Local(JoinHandle<Result<Bytes, CodecError>>),
    /// A forwarded request's answer; a Produce stays counted in flight
    /// (for flips) until its answer is through.
    Upstream(Reply, Option<InflightGuard>),
    /// The merged answer of a request split across brokers.
    Merged(JoinHandle<Result<Bytes, SessionEnd>>, Option<InflightGuard>),
    /// A Fetch's answer from one broker, nothing shifted: passed on as it
    /// comes, unless the route table changed while it waited.
    Fetched(Reply, Recheck),
}

/// What a Fetch answer needs to be checked with as it comes (see
/// [`crate::plan::partitioned::answered`]): the route table it was
/// planned on, against the one then, and the partitions it read from
/// where, for gaps in their offsets.
pub(super) struct Recheck {
    /// The route tables put in place when it was planned.
    pub epoch: u64,
    /// The cluster that answers it.
    pub cluster: ClusterIdx,
    pub version: i16,
    pub correlation_id: i32,
    /// The request's view: the partitions it reads and their fetch
    /// offsets.
    pub view: PartitionedRequest,
}
