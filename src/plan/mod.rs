//! Request planning, sans-IO: from a request's view and a snapshot of the
//! route table and the clusters' leaders to where each partition goes
//! ([`route`]), and the split and merge of requests whose partitions live
//! on several brokers, with their offsets moved into and out of the
//! stitched log ([`split`]), each partitioned API's own part of that in
//! one unit ([`partitioned`]). No socket, no clock, no shared state: every
//! decision here is unit-tested with hand-built snapshots.

pub mod classify;
pub mod partitioned;
pub mod route;
pub mod snapshot;
pub mod split;

pub use route::{plan, unknown_topics, Plan, Seek, SplitPlan};
pub use snapshot::{ClusterViews, Snapshot};
