//! One file per API family. This table is the single list of the APIs the
//! proxy serves, the versions it accepts, and whether it answers them
//! itself or forwards them; ApiVersions advertises from it.

pub mod api_versions;
pub mod coordinator;
pub mod fetch;
pub mod forward;
pub mod metadata;
pub mod produce;

use kafka_protocol::messages::ApiKey;

use crate::runtime::proxy::Proxy;

/// How a request is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Answered by the proxy from its own view of the clusters.
    Local,
    /// Forwarded, body untouched, to the upstream broker the target names.
    Forward(forward::Target),
}

#[derive(Debug, Clone, Copy)]
pub struct ApiSpec {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
    pub handling: Handling,
}

const fn local(key: ApiKey, min: i16, max: i16) -> ApiSpec {
    ApiSpec {
        key,
        min,
        max,
        handling: Handling::Local,
    }
}

const fn forward(key: ApiKey, min: i16, max: i16, target: forward::Target) -> ApiSpec {
    ApiSpec {
        key,
        min,
        max,
        handling: Handling::Forward(target),
    }
}

use forward::Target::{Controller, DefaultCluster, Mirrored};

/// Every API the proxy serves. Fetch and Produce stop at v12: newer ones
/// name topics by id, which the proxy does not route. The partitioned APIs
/// start where the proxy can answer them with per-partition errors (the
/// versions Kafka 4 still accepts). Topic administration stops before the
/// versions that carry topic ids, which are the proxy's own (virtual).
pub const APIS: &[ApiSpec] = &[
    local(ApiKey::ApiVersions, 0, 4),
    local(ApiKey::Metadata, 0, 12),
    local(ApiKey::FindCoordinator, 0, 4),
    local(ApiKey::DescribeCluster, 0, 2),
    forward(ApiKey::Produce, 3, 12, Mirrored),
    forward(ApiKey::Fetch, 4, 12, Mirrored),
    forward(ApiKey::ListOffsets, 1, 10, Mirrored),
    forward(ApiKey::OffsetForLeaderEpoch, 2, 4, Mirrored),
    forward(ApiKey::OffsetCommit, 0, 9, Mirrored),
    forward(ApiKey::OffsetFetch, 0, 9, Mirrored),
    forward(ApiKey::JoinGroup, 0, 9, Mirrored),
    forward(ApiKey::SyncGroup, 0, 5, Mirrored),
    forward(ApiKey::Heartbeat, 0, 4, Mirrored),
    forward(ApiKey::LeaveGroup, 0, 5, Mirrored),
    forward(ApiKey::DescribeGroups, 0, 5, Mirrored),
    forward(ApiKey::ListGroups, 0, 5, Mirrored),
    forward(ApiKey::DeleteGroups, 0, 2, Mirrored),
    // Transactions go to their transactional id's cluster, TxnOffsetCommit
    // to its group's (see the session); without a transactional id,
    // InitProducerId goes to the default cluster.
    forward(ApiKey::InitProducerId, 0, 5, DefaultCluster),
    forward(ApiKey::AddPartitionsToTxn, 0, 3, DefaultCluster),
    forward(ApiKey::AddOffsetsToTxn, 0, 3, DefaultCluster),
    forward(ApiKey::EndTxn, 0, 3, DefaultCluster),
    forward(ApiKey::TxnOffsetCommit, 0, 3, DefaultCluster),
    forward(ApiKey::CreateTopics, 2, 6, Controller),
    forward(ApiKey::DeleteTopics, 1, 5, Controller),
    forward(ApiKey::CreatePartitions, 0, 3, Controller),
    forward(ApiKey::DescribeConfigs, 0, 4, DefaultCluster),
    forward(ApiKey::IncrementalAlterConfigs, 0, 1, DefaultCluster),
];

pub fn spec(api_key: i16) -> Option<&'static ApiSpec> {
    APIS.iter().find(|s| s.key as i16 == api_key)
}

/// The version range the proxy advertises for `spec`: its own, narrowed by
/// every cluster that has been reached. `None` when some reached cluster
/// cannot serve the API at all.
pub fn advertised_range(proxy: &Proxy, spec: &ApiSpec) -> Option<(i16, i16)> {
    if spec.handling == Handling::Local {
        // Answered by the proxy in the client's version, whatever version
        // it speaks upstream.
        return Some((spec.min, spec.max));
    }
    let mut range = (spec.min, spec.max);
    for cluster in &proxy.clusters {
        let theirs = cluster.with_view(|v| {
            v.api_versions
                .as_ref()
                .map(|t| t.get(&(spec.key as i16)).copied())
        });
        match theirs {
            None => {} // never reached: says nothing yet
            Some(None) => return None,
            Some(Some((min, max))) => {
                range = (range.0.max(min), range.1.min(max));
            }
        }
    }
    (range.0 <= range.1).then_some(range)
}
