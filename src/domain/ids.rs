//! The identities the proxy keeps apart: which upstream cluster, and a
//! node id as an upstream cluster reports it or as clients see it.

use std::fmt;

/// Index of an upstream cluster in the configuration's cluster list; cheap
/// to copy and impossible to misspell, unlike the cluster's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterIdx(pub usize);

/// A node id as an upstream cluster reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamNodeId(pub i32);

/// A node id as clients of the proxy see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VirtualNodeId(pub i32);

impl fmt::Display for VirtualNodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
