//! Consumer groups as the control plane sees them: listing, state,
//! committed offsets, and commits outside any generation.

use super::*;
use crate::domain::offsets::{Offset, VirtualOffset};

/// One partition's committed offset in a consumer group: virtual, as the
/// group's clients commit it through the proxy, unless the control plane
/// writes one in a cluster's own offsets (a detach).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommittedOffset<O = VirtualOffset> {
    pub topic: String,
    pub partition: i32,
    pub offset: O,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Kafka's key type for a consumer group in FindCoordinator.
pub const GROUP_KEY: i8 = 0;
/// Kafka's key type for a transactional id in FindCoordinator.
pub const TRANSACTION_KEY: i8 = 1;

impl Cluster {
    fn group_error(&self, addr: &str, what: &str, group: &str, code: i16) -> UpstreamError {
        UpstreamError::Protocol {
            addr: addr.to_owned(),
            reason: format!(
                "{what} of group '{group}' on cluster '{}' failed with error code {code}",
                self.name()
            ),
        }
    }

    fn unsupported(&self, addr: &str, api: ApiKey) -> UpstreamError {
        UpstreamError::Protocol {
            addr: addr.to_owned(),
            reason: format!("cluster '{}' does not support {api:?}", self.name()),
        }
    }

    /// Every consumer group the cluster's brokers coordinate.
    pub async fn list_groups(&self) -> Result<Vec<String>, UpstreamError> {
        let addresses: Vec<String> =
            self.with_view(|v| v.brokers.values().map(BrokerAddr::address).collect());
        let mut groups = Vec::new();
        for addr in addresses {
            let conn = self.connect(&addr).await?;
            let version = self
                .version_for(ApiKey::ListGroups, 4)
                .ok_or_else(|| self.unsupported(&addr, ApiKey::ListGroups))?;
            let resp: ListGroupsResponse = conn
                .call(
                    ApiKey::ListGroups,
                    version,
                    &ListGroupsRequest::default(),
                    self.request_timeout,
                )
                .await?;
            if resp.error_code != 0 {
                return Err(self.group_error(&addr, "ListGroups", "*", resp.error_code));
            }
            groups.extend(resp.groups.into_iter().map(|g| g.group_id.0.to_string()));
        }
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    /// The address of the broker coordinating `group` on this cluster.
    pub async fn group_coordinator(&self, group: &str) -> Result<String, UpstreamError> {
        self.coordinator(GROUP_KEY, group).await
    }

    /// The address of the broker coordinating `key` (a group for key type
    /// 0, a transactional id for 1) on this cluster.
    pub async fn coordinator(&self, key_type: i8, key: &str) -> Result<String, UpstreamError> {
        let found = self.find_coordinators(key_type, &[key.to_owned()]).await?;
        let addr = self.config.bootstrap.join(",");
        match found.first() {
            Some(c) if c.error_code == 0 => Ok(format!("{}:{}", c.host.as_str(), c.port)),
            Some(c) => Err(self.group_error(&addr, "FindCoordinator", key, c.error_code)),
            None => Err(self.group_error(&addr, "FindCoordinator", key, -1)),
        }
    }

    async fn group_connection(&self, group: &str) -> Result<Arc<UpstreamConn>, UpstreamError> {
        let addr = self.group_coordinator(group).await?;
        self.connect(&addr).await
    }

    /// The group's state on this cluster ("Empty", "Stable", … or "Dead"
    /// for a group the cluster does not know).
    pub async fn group_state(&self, group: &str) -> Result<String, UpstreamError> {
        let conn = self.group_connection(group).await?;
        let version = self
            .version_for(ApiKey::DescribeGroups, 4)
            .ok_or_else(|| self.unsupported(conn.addr(), ApiKey::DescribeGroups))?;
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
        let resp: DescribeGroupsResponse = conn
            .call(
                ApiKey::DescribeGroups,
                version,
                &request,
                self.request_timeout,
            )
            .await?;
        match resp.groups.first() {
            Some(g) if g.error_code == 0 => Ok(g.group_state.to_string()),
            Some(g) => Err(self.group_error(conn.addr(), "DescribeGroups", group, g.error_code)),
            None => Ok("Dead".to_owned()),
        }
    }

    /// Every offset `group` has committed on this cluster (through the
    /// proxy, so virtual), in topic and partition order.
    pub async fn group_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>, UpstreamError> {
        let conn = self.group_connection(group).await?;
        let version = self
            .version_for(ApiKey::OffsetFetch, 7)
            .ok_or_else(|| self.unsupported(conn.addr(), ApiKey::OffsetFetch))?;
        // Every partition of every topic, named: some brokers answer a
        // request for "all topics" (null) with a null list.
        let metadata = self.fetch_metadata(None, false).await?;
        let topics = metadata
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| {
                let name = t.name.clone()?;
                Some(
                    OffsetFetchRequestTopic::default()
                        .with_name(name)
                        .with_partition_indexes(
                            t.partitions.iter().map(|p| p.partition_index).collect(),
                        ),
                )
            })
            .collect();
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_topics(Some(topics));
        let resp: OffsetFetchResponse = conn
            .call(ApiKey::OffsetFetch, version, &request, self.request_timeout)
            .await?;
        if resp.error_code != 0 {
            return Err(self.group_error(conn.addr(), "OffsetFetch", group, resp.error_code));
        }
        let mut offsets = Vec::new();
        for topic in &resp.topics {
            for p in &topic.partitions {
                if p.error_code != 0 {
                    return Err(self.group_error(conn.addr(), "OffsetFetch", group, p.error_code));
                }
                let Some(offset) = VirtualOffset::from_wire(p.committed_offset) else {
                    continue; // nothing committed for this partition
                };
                offsets.push(CommittedOffset {
                    topic: topic.name.0.to_string(),
                    partition: p.partition_index,
                    offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.metadata.as_ref().map(|m| m.to_string()),
                });
            }
        }
        offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(offsets)
    }

    /// Commits `offsets` for `group` as an administrator does: outside any
    /// generation, which the cluster accepts only while the group has no
    /// members there.
    pub async fn commit_group_offsets<O: Offset>(
        &self,
        group: &str,
        offsets: &[CommittedOffset<O>],
    ) -> Result<(), UpstreamError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let conn = self.group_connection(group).await?;
        let version = self
            .version_for(ApiKey::OffsetCommit, 7)
            .filter(|v| *v >= 2)
            .ok_or_else(|| self.unsupported(conn.addr(), ApiKey::OffsetCommit))?;
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for o in offsets {
            let partition = OffsetCommitRequestPartition::default()
                .with_partition_index(o.partition)
                .with_committed_offset(o.offset.wire())
                .with_committed_leader_epoch(o.leader_epoch)
                .with_committed_metadata(o.metadata.clone().map(StrBytes::from_string));
            match topics.last_mut().filter(|t| t.name.0.as_str() == o.topic) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(o.topic.clone())))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::default())
            .with_retention_time_ms(-1)
            .with_topics(topics);
        let resp: OffsetCommitResponse = conn
            .call(
                ApiKey::OffsetCommit,
                version,
                &request,
                self.request_timeout,
            )
            .await?;
        for topic in &resp.topics {
            for p in &topic.partitions {
                if p.error_code != 0 {
                    return Err(self.group_error(conn.addr(), "OffsetCommit", group, p.error_code));
                }
            }
        }
        Ok(())
    }
}
