//! The fast path: requests the proxy forwards, body untouched, to the one
//! upstream broker the client's listener mirrors.
//!
//! Metadata puts each partition's leadership (and FindCoordinator each
//! group) on the virtual broker that mirrors the upstream one, so a client
//! that follows it reaches the right broker with no rewriting at all.

use crate::config::ClusterIdx;
use crate::proxy::{ListenerKind, Proxy};
use crate::topology::UpstreamNodeId;

/// Which upstream broker a forwarded API goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The broker the listener mirrors; on the bootstrap listener, any
    /// broker of the default cluster.
    Mirrored,
    /// The controller of the listener's cluster (topic administration).
    Controller,
    /// A broker of the default cluster, whichever listener the request came
    /// in on: for requests a client sends to any broker, whose answer must
    /// come from the cluster its topics live on. A producer id issued by
    /// one cluster is unknown to the other, so InitProducerId goes here.
    DefaultCluster,
}

/// The upstream address for `target` as seen from `listener`, or why there
/// is none.
pub fn resolve(
    proxy: &Proxy,
    listener: ListenerKind,
    target: Target,
) -> Result<(ClusterIdx, String), String> {
    let default = proxy.routes().default_cluster();
    let (cluster_idx, mirrored) = match listener {
        ListenerKind::Bootstrap => (default, None),
        ListenerKind::Broker(id) => {
            let broker = proxy
                .virtual_broker(id)
                .ok_or_else(|| format!("virtual broker {id} no longer exists upstream"))?;
            if target == Target::DefaultCluster && broker.cluster != default {
                (default, None)
            } else {
                (broker.cluster, Some(broker.upstream))
            }
        }
    };
    let cluster = proxy.cluster(cluster_idx);
    let node = match target {
        Target::Controller => cluster.with_view(|v| v.controller).or(mirrored),
        Target::Mirrored | Target::DefaultCluster => mirrored,
    };
    let address = match node {
        Some(node) => cluster.broker_address(node).ok_or_else(|| {
            format!(
                "broker {} of cluster '{}' is not in the cluster's metadata",
                node.0,
                cluster.name()
            )
        })?,
        None => cluster.any_broker_address(),
    };
    Ok((cluster_idx, address))
}

/// Which route side decides where a partitioned API goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSide {
    Produce,
    Fetch,
}

/// Where a request that names topics and partitions goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// To the listener's own upstream broker, untouched: the fast path.
    Mirrored,
    /// Untouched, to one other upstream broker (the client's metadata is
    /// stale, typically right after a flip).
    Broker {
        cluster: ClusterIdx,
        address: String,
    },
    /// Partitions live on several brokers, or nowhere the proxy knows: the
    /// client is told NOT_LEADER_OR_FOLLOWER and refreshes its metadata.
    Refuse,
}

/// Decides where a partitioned request goes, from the route table and the
/// proxy's view of each cluster's partition leaders.
/// `own` is the upstream broker the client's listener mirrors (`None` on
/// the bootstrap listener).
pub fn plan(
    proxy: &Proxy,
    own: Option<(ClusterIdx, UpstreamNodeId)>,
    side: RouteSide,
    topics: &crate::wire::requests::TopicPartitions,
) -> Plan {
    let routes = proxy.routes();
    let mut target: Option<(ClusterIdx, UpstreamNodeId)> = None;
    for (topic, partitions) in &topics.0 {
        let route = routes.route(topic);
        let cluster = match side {
            RouteSide::Produce => route.produce,
            RouteSide::Fetch => route.fetch,
        };
        let leaders: Option<Vec<UpstreamNodeId>> = proxy.cluster(cluster).with_view(|v| {
            let meta = v.topics.get(topic)?;
            partitions
                .iter()
                .map(|p| {
                    // Brokers list partitions in index order: look there
                    // first, search only when they do not.
                    let at = usize::try_from(*p)
                        .ok()
                        .and_then(|i| meta.partitions.get(i));
                    at.filter(|m| m.partition_index == *p)
                        .or_else(|| meta.partitions.iter().find(|m| m.partition_index == *p))
                        .map(|m| UpstreamNodeId(m.leader_id.0))
                })
                .collect()
        });
        match leaders {
            Some(leaders) => {
                for leader in leaders {
                    match target {
                        None => target = Some((cluster, leader)),
                        Some(t) if t == (cluster, leader) => {}
                        Some(_) => return Plan::Refuse,
                    }
                }
            }
            // Not in the view yet: the listener's own broker answers for
            // its own cluster (as a broker would); elsewhere, refuse.
            None => match own.filter(|(c, _)| *c == cluster) {
                Some(own) => match target {
                    None => target = Some(own),
                    Some(t) if t == own => {}
                    Some(_) => return Plan::Refuse,
                },
                None => return Plan::Refuse,
            },
        }
    }
    match target {
        None => Plan::Mirrored,
        Some(t) if Some(t) == own => Plan::Mirrored,
        Some((cluster, leader)) => match proxy.cluster(cluster).broker_address(leader) {
            Some(address) => Plan::Broker { cluster, address },
            None => Plan::Refuse,
        },
    }
}
