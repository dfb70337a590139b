//! FindCoordinator: which virtual broker coordinates a consumer group or a
//! transactional id. Asked live of the coordinator's cluster; the answer
//! names the virtual broker that mirrors the upstream coordinator.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::metadata::Announced;
use crate::domain::ids::ClusterIdx;
use crate::domain::ids::{UpstreamNodeId, VirtualNodeId};
use crate::runtime::proxy::Proxy;
use crate::wire::codec::{self, CodecError};
use crate::wire::requests::FindCoordinatorView;
use crate::wire::RequestHeader;

pub async fn find_coordinator(
    proxy: Arc<Proxy>,
    header: RequestHeader,
    request: FindCoordinatorView,
) -> Result<Announced, CodecError> {
    // A batched request (v4+) may name groups of several clusters.
    let routes = proxy.routes();
    let mut by_cluster: Vec<(ClusterIdx, Vec<String>)> = Vec::new();
    for key in &request.keys {
        // Key type 0 names a consumer group, 1 a transactional id.
        let cluster = if request.key_type == 0 {
            routes.group_cluster(key)
        } else {
            routes.transaction_cluster(key)
        };
        match by_cluster.iter_mut().find(|(c, _)| *c == cluster) {
            Some((_, keys)) => keys.push(key.clone()),
            None => by_cluster.push((cluster, vec![key.clone()])),
        }
    }
    let mut coordinators = Vec::with_capacity(request.keys.len());
    for (cluster, keys) in by_cluster {
        coordinators.extend(coordinators_on(&proxy, cluster, request.key_type, &keys).await);
    }
    // Answers in the order the keys were asked.
    coordinators.sort_by_key(|c: &Coordinator| {
        request
            .keys
            .iter()
            .position(|k| k.as_str() == c.key.as_str())
    });
    let named: Vec<VirtualNodeId> = coordinators
        .iter()
        .filter(|c| c.error_code == 0)
        .map(|c| VirtualNodeId(c.node_id.0))
        .collect();
    let brokers = proxy
        .virtual_brokers()
        .into_iter()
        .filter(|b| named.contains(&b.id))
        .collect();
    let response = if header.api_version >= 4 {
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let c = coordinators.into_iter().next().unwrap_or_else(|| {
            Coordinator::default()
                .with_node_id(BrokerId(VirtualNodeId(-1).0))
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        });
        FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_error_message(c.error_message)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port)
    };
    let answer = codec::response_frame(
        ApiKey::FindCoordinator,
        header.api_version,
        header.correlation_id,
        &response,
    )?;
    Ok(Announced { answer, brokers })
}

/// The coordinators of `keys` on one cluster, as virtual brokers.
async fn coordinators_on(
    proxy: &Arc<Proxy>,
    cluster: ClusterIdx,
    key_type: i8,
    keys: &[String],
) -> Vec<Coordinator> {
    let cluster = proxy.cluster(cluster).clone();
    let upstream = match cluster.find_coordinators(key_type, keys).await {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(cluster = cluster.name(), error = %e, "FindCoordinator failed upstream");
            let message = Some(StrBytes::from_string(format!(
                "cluster '{}' unreachable through the proxy",
                cluster.name()
            )));
            keys.iter()
                .map(|k| {
                    Coordinator::default()
                        .with_key(StrBytes::from_string(k.clone()))
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                        .with_error_message(message.clone())
                })
                .collect()
        }
    };
    let known = |node: UpstreamNodeId| cluster.with_view(|v| v.brokers.contains_key(&node));
    if upstream
        .iter()
        .any(|c| c.error_code == 0 && !known(UpstreamNodeId(c.node_id.0)))
    {
        // A coordinator the view has not seen yet: learn it (the session
        // opens its listener) before telling the client to connect to it.
        super::metadata::refresh_brokers(proxy).await;
    }
    let host = StrBytes::from_string(proxy.config().proxy.advertised_host.clone());
    upstream
        .into_iter()
        .map(|c| {
            if c.error_code != 0 {
                return c
                    .with_node_id(BrokerId(-1))
                    .with_host(StrBytes::default())
                    .with_port(-1);
            }
            let id = proxy
                .topology()
                .to_virtual(cluster.idx, UpstreamNodeId(c.node_id.0));
            let port = proxy.topology().port(id).map_or(-1, i32::from);
            c.with_node_id(BrokerId(id.0))
                .with_host(host.clone())
                .with_port(port)
        })
        .collect()
}
