//! FindCoordinator: which virtual broker coordinates a consumer group or a
//! transactional id. Asked live of the coordinator's cluster; the answer
//! names the virtual broker that mirrors the upstream coordinator.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::proxy::Proxy;
use crate::topology::{UpstreamNodeId, VirtualNodeId};
use crate::wire::codec::{self, CodecError};
use crate::wire::requests::FindCoordinatorView;
use crate::wire::RequestHeader;

const COORDINATOR_NOT_AVAILABLE: i16 = 15;

pub async fn find_coordinator(
    proxy: Arc<Proxy>,
    header: RequestHeader,
    request: FindCoordinatorView,
) -> Result<Bytes, CodecError> {
    let cluster = proxy.cluster(proxy.routes().default_cluster()).clone();
    let upstream = match cluster
        .find_coordinators(request.key_type, &request.keys)
        .await
    {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(cluster = cluster.name(), error = %e, "FindCoordinator failed upstream");
            let message = Some(StrBytes::from_string(format!(
                "cluster '{}' unreachable through the proxy",
                cluster.name()
            )));
            request
                .keys
                .iter()
                .map(|k| {
                    Coordinator::default()
                        .with_key(StrBytes::from_string(k.clone()))
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(COORDINATOR_NOT_AVAILABLE)
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
        // A coordinator the view has not seen yet: learn it (and open its
        // listener) before telling the client to connect to it.
        super::metadata::refresh_brokers(&proxy).await;
    }
    let host = StrBytes::from_string(proxy.config.proxy.advertised_host.clone());
    let coordinators: Vec<Coordinator> = upstream
        .into_iter()
        .map(|c| {
            if c.error_code != 0 {
                return c
                    .with_node_id(BrokerId(-1))
                    .with_host(StrBytes::default())
                    .with_port(-1);
            }
            let id = proxy
                .topology
                .to_virtual(cluster.idx, UpstreamNodeId(c.node_id.0));
            let port = proxy.topology.port(id).map_or(-1, i32::from);
            c.with_node_id(BrokerId(id.0))
                .with_host(host.clone())
                .with_port(port)
        })
        .collect();

    let response = if header.api_version >= 4 {
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let c = coordinators.into_iter().next().unwrap_or_else(|| {
            Coordinator::default()
                .with_node_id(BrokerId(VirtualNodeId(-1).0))
                .with_error_code(COORDINATOR_NOT_AVAILABLE)
        });
        FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_error_message(c.error_message)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port)
    };
    codec::response_frame(
        ApiKey::FindCoordinator,
        header.api_version,
        header.correlation_id,
        &response,
    )
}
