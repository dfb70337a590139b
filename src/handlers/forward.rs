//! The fast path: requests the proxy forwards, body untouched, to the one
//! upstream broker the client's listener mirrors.
//!
//! Metadata puts each partition's leadership (and FindCoordinator each
//! group) on the virtual broker that mirrors the upstream one, so a client
//! that follows it reaches the right broker with no rewriting at all.

use crate::domain::ids::ClusterIdx;
use crate::plan::classify::Target;
use crate::runtime::proxy::{ListenerKind, Proxy};

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
