//! What planning needs to know of the running proxy, as plain data and one
//! narrow interface: the route table (with its stitches) and, per cluster,
//! who leads each partition and where each broker listens. The live
//! implementation reads the clusters' views; tests build their own.

use crate::domain::ids::{ClusterIdx, UpstreamNodeId};
use crate::domain::routes::RouteTable;

/// The clusters' views as planning sees them.
pub trait ClusterViews: Sync {
    /// The leader of `partition` of `topic` in `cluster`'s view, if known.
    fn leader(&self, cluster: ClusterIdx, topic: &str, partition: i32) -> Option<UpstreamNodeId>;
    /// Where broker `node` of `cluster` listens, if the view has it.
    fn address(&self, cluster: ClusterIdx, node: UpstreamNodeId) -> Option<String>;
    /// Whether `cluster`'s view knows `topic` at all.
    fn knows_topic(&self, cluster: ClusterIdx, topic: &str) -> bool;
}

/// One request's view of the proxy: taken once, used for the whole plan.
pub struct Snapshot<'a> {
    pub routes: &'a RouteTable,
    pub views: &'a dyn ClusterViews,
}
