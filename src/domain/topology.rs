//! The virtual cluster's numbering: which node id and port a client sees for
//! each upstream broker.
//!
//! Two upstream clusters may both have a broker 1 (every tansu broker is
//! 111); each cluster's `node_id_base` keeps their virtual ids apart.

use crate::config::Config;
use crate::domain::ids::{ClusterIdx, UpstreamNodeId, VirtualNodeId};

/// Maps between upstream and virtual node ids and the ports virtual brokers
/// listen on.
#[derive(Debug)]
pub struct Topology {
    /// Each cluster's `node_id_base`, by [`ClusterIdx`]; append-only, as
    /// the clusters are.
    bases: boxcar::Vec<i32>,
    broker_port_base: u16,
}

impl Topology {
    pub fn new(config: &Config) -> Topology {
        Topology {
            bases: config.clusters.iter().map(|c| c.node_id_base).collect(),
            broker_port_base: config.proxy.broker_port_base,
        }
    }

    /// Numbers the brokers of a cluster added after the others.
    pub fn add(&self, node_id_base: i32) {
        self.bases.push(node_id_base);
    }

    /// The virtual id of an upstream node; negative ids (-1, "no leader")
    /// keep their meaning.
    pub fn to_virtual(&self, cluster: ClusterIdx, node: UpstreamNodeId) -> VirtualNodeId {
        if node.0 < 0 {
            return VirtualNodeId(node.0);
        }
        VirtualNodeId(self.bases[cluster.0].saturating_add(node.0))
    }

    /// The port a virtual broker listens on, or `None` when it would fall
    /// outside 1..=65535.
    pub fn port(&self, node: VirtualNodeId) -> Option<u16> {
        let port = i64::from(self.broker_port_base) + i64::from(node.0);
        u16::try_from(port).ok().filter(|p| *p != 0)
    }
}

/// The topic id clients see: derived from the proxy's cluster id and the
/// topic name, so it stays the same across flips (each upstream cluster has
/// its own real id for the topic), restarts and upgrades. FNV-1a (128 bit),
/// shaped as a version-8 (custom) UUID.
pub fn virtual_topic_id(cluster_id: &str, topic: &str) -> uuid::Uuid {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    let mut hash = OFFSET;
    for byte in cluster_id.bytes().chain([0]).chain(topic.bytes()) {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    uuid::Builder::from_custom_bytes(hash.to_be_bytes()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology {
            bases: [0, 1000].into_iter().collect(),
            broker_port_base: 9100,
        }
    }

    #[test]
    fn colliding_upstream_ids_get_distinct_virtual_ids_and_ports() {
        let t = topology();
        let old = t.to_virtual(ClusterIdx(0), UpstreamNodeId(111));
        let new = t.to_virtual(ClusterIdx(1), UpstreamNodeId(111));
        assert_eq!((old, new), (VirtualNodeId(111), VirtualNodeId(1111)));
        assert_eq!((t.port(old), t.port(new)), (Some(9211), Some(10211)));
    }

    #[test]
    fn virtual_topic_ids_are_stable_and_distinct() {
        let a = virtual_topic_id("switchyard", "orders");
        assert_eq!(a, virtual_topic_id("switchyard", "orders"));
        assert_ne!(a, virtual_topic_id("switchyard", "orders2"));
        assert_ne!(a, virtual_topic_id("other", "orders"));
        assert_eq!(a.get_version_num(), 8);
        // Fixed forever: clients keep topic ids across proxy upgrades.
        assert_eq!(a.to_string(), "546b1ecf-c391-877b-8527-08c3509d4c7e");
    }

    #[test]
    fn no_leader_stays_no_leader() {
        assert_eq!(
            topology().to_virtual(ClusterIdx(1), UpstreamNodeId(-1)),
            VirtualNodeId(-1)
        );
    }

    #[test]
    fn port_out_of_range_is_none() {
        assert_eq!(topology().port(VirtualNodeId(70_000)), None);
    }
}
