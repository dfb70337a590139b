//! The one API table: every API the proxy serves, the versions it accepts,
//! and its route class, which picks the session's dispatch for it.
//! ApiVersions advertises from it; nothing else classifies APIs.

use kafka_protocol::messages::ApiKey;

use crate::domain::routes::RouteSide;

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

/// How a request is routed: the class decides which dispatch of the
/// session serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Answered by the proxy from its own view of the clusters.
    Local,
    /// Names topics and partitions: each goes where its topic's route (on
    /// this side) and the stitched log say; split when they differ.
    Partitioned(RouteSide),
    /// About a consumer group: to the cluster coordinating the group.
    Group,
    /// Part of a transaction: to the cluster its transactional id runs on.
    Transaction,
    /// Topic administration: to the controller of the topics' cluster.
    Admin,
    /// Body untouched, to the broker the target names.
    AnyBroker(Target),
}

#[derive(Debug, Clone, Copy)]
pub struct ApiSpec {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
    pub class: RouteClass,
}

const fn api(key: ApiKey, min: i16, max: i16, class: RouteClass) -> ApiSpec {
    ApiSpec {
        key,
        min,
        max,
        class,
    }
}

use RouteClass::{Admin, AnyBroker, Group, Local, Partitioned, Transaction};

/// Every API the proxy serves. Fetch and Produce stop at v12: newer ones
/// name topics by id, which the proxy does not route. The partitioned APIs
/// start where the proxy can answer them with per-partition errors (the
/// versions Kafka 4 still accepts). Topic administration stops before the
/// versions that carry topic ids, which are the proxy's own (virtual).
pub const APIS: &[ApiSpec] = &[
    api(ApiKey::ApiVersions, 0, 4, Local),
    api(ApiKey::Metadata, 0, 12, Local),
    api(ApiKey::FindCoordinator, 0, 4, Local),
    api(ApiKey::DescribeCluster, 0, 2, Local),
    api(ApiKey::Produce, 3, 12, Partitioned(RouteSide::Produce)),
    api(ApiKey::Fetch, 4, 12, Partitioned(RouteSide::Fetch)),
    api(ApiKey::ListOffsets, 1, 10, Partitioned(RouteSide::Fetch)),
    api(
        ApiKey::OffsetForLeaderEpoch,
        2,
        4,
        Partitioned(RouteSide::Fetch),
    ),
    api(ApiKey::OffsetCommit, 0, 9, Group),
    api(ApiKey::OffsetFetch, 0, 9, Group),
    api(ApiKey::JoinGroup, 0, 9, Group),
    api(ApiKey::SyncGroup, 0, 5, Group),
    api(ApiKey::Heartbeat, 0, 4, Group),
    api(ApiKey::LeaveGroup, 0, 5, Group),
    api(ApiKey::DescribeGroups, 0, 5, Group),
    api(ApiKey::ListGroups, 0, 5, AnyBroker(Target::Mirrored)),
    api(ApiKey::DeleteGroups, 0, 2, Group),
    // Transactions go to their transactional id's cluster, TxnOffsetCommit
    // to its group's; without a transactional id, InitProducerId goes to
    // the default cluster.
    api(ApiKey::InitProducerId, 0, 5, Transaction),
    api(ApiKey::AddPartitionsToTxn, 0, 3, Transaction),
    api(ApiKey::AddOffsetsToTxn, 0, 3, Transaction),
    api(ApiKey::EndTxn, 0, 3, Transaction),
    api(ApiKey::TxnOffsetCommit, 0, 3, Group),
    api(ApiKey::CreateTopics, 2, 6, Admin),
    api(ApiKey::DeleteTopics, 1, 5, Admin),
    api(ApiKey::CreatePartitions, 0, 3, Admin),
    api(
        ApiKey::DescribeConfigs,
        0,
        4,
        AnyBroker(Target::DefaultCluster),
    ),
    api(
        ApiKey::IncrementalAlterConfigs,
        0,
        1,
        AnyBroker(Target::DefaultCluster),
    ),
];

pub fn spec(api_key: i16) -> Option<&'static ApiSpec> {
    APIS.iter().find(|s| s.key as i16 == api_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_has_one_entry_and_a_class() {
        let mut keys: Vec<i16> = APIS.iter().map(|s| s.key as i16).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), APIS.len(), "one entry per API");
        assert!(APIS.iter().all(|s| s.min <= s.max));
        let class = |key: ApiKey| spec(key as i16).map(|s| s.class);
        assert_eq!(
            class(ApiKey::Produce),
            Some(Partitioned(RouteSide::Produce))
        );
        for read in [
            ApiKey::Fetch,
            ApiKey::ListOffsets,
            ApiKey::OffsetForLeaderEpoch,
        ] {
            assert_eq!(class(read), Some(Partitioned(RouteSide::Fetch)), "{read:?}");
        }
        assert_eq!(
            class(ApiKey::TxnOffsetCommit),
            Some(Group),
            "its group's cluster"
        );
        assert_eq!(class(ApiKey::EndTxn), Some(Transaction));
        assert_eq!(class(ApiKey::CreateTopics), Some(Admin));
        assert_eq!(class(ApiKey::Metadata), Some(Local));
        assert_eq!(class(ApiKey::ListGroups), Some(AnyBroker(Target::Mirrored)));
        assert_eq!(
            class(ApiKey::SaslHandshake),
            None,
            "answered before the table"
        );
    }
}
