//! How far each consumer group still is from the newest stretch of each
//! stitched topic: the records it has left on the cluster Produce moved
//! away from. Shown by `switchyard status`, so an operator sees groups
//! cross without waiting for anything.

use serde::Serialize;

use crate::domain::offsets::{Offset, VirtualOffset};
use crate::runtime::proxy::Proxy;
use crate::upstream::UpstreamError;

/// One group's progress on one stitched topic.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Drain {
    pub group: String,
    pub topic: String,
    /// Records between the group's committed offsets and where the newest
    /// segment begins, summed over partitions; 0 once it has crossed.
    pub left: i64,
    pub crossed: bool,
}

/// The progress of every group that has committed offsets for a stitched
/// topic, by group then topic.
pub async fn drains(proxy: &Proxy) -> Result<Vec<Drain>, UpstreamError> {
    let routes = proxy.routes();
    let mut out: Vec<Drain> = Vec::new();
    for cluster in proxy.clusters() {
        for group in cluster.list_groups().await? {
            if routes.group_cluster(&group) != cluster.idx {
                continue; // its offsets there are stale: it moved
            }
            for committed in cluster.group_offsets(&group).await? {
                let Some(segments) = routes.stitches().get(&committed.topic, committed.partition)
                else {
                    continue;
                };
                let newest = segments
                    .segments()
                    .last()
                    .map_or(VirtualOffset(0), |s| s.start);
                let left = newest.since(committed.offset).max(0);
                match out
                    .iter_mut()
                    .find(|d| d.group == group && d.topic == committed.topic)
                {
                    Some(d) => d.left = d.left.saturating_add(left),
                    None => out.push(Drain {
                        group: group.clone(),
                        topic: committed.topic.clone(),
                        left,
                        crossed: false,
                    }),
                }
            }
        }
    }
    for d in &mut out {
        d.crossed = d.left == 0;
    }
    out.sort_by(|a, b| (&a.group, &a.topic).cmp(&(&b.group, &b.topic)));
    Ok(out)
}
