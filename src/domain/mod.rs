//! Pure types and rules, the vocabulary of the rest: no tokio runtime, no
//! sockets, no shared proxy state (the gates use tokio's synchronisation
//! primitives only). Ids, patterns, the route table, the stitched log and
//! its offsets, log-end verification, record-batch walking for producer
//! ids, the virtual topology, MirrorMaker 2 records, the fence gates, and
//! which consumer groups may take offsets from outside.

pub mod gates;
pub mod groups;
pub mod ids;
pub mod log_end;
pub mod mirror;
pub mod offsets;
pub mod pattern;
pub mod producer_ids;
pub mod routes;
pub mod stitch;
pub mod topology;
