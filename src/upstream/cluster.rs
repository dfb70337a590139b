//! The proxy's own view of one upstream cluster: its brokers, controller,
//! topics and API versions, kept fresh by live Metadata queries.
//!
//! Metadata, FindCoordinator and DescribeCluster answers to clients are
//! built from this view, never by forwarding a client's request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest,
    CreateTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, InitProducerIdRequest, InitProducerIdResponse,
    ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::conn::UpstreamConn;
use super::error::UpstreamError;
use super::security::UpstreamSecurity;
use crate::config::{ClusterConfig, ProxyConfig};
use crate::domain::ids::ClusterIdx;
use crate::domain::ids::UpstreamNodeId;
use crate::domain::log_end::{EndSearch, Probe};

/// Where an upstream broker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerAddr {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Supported version range per API key, as a broker reports it.
pub type ApiTable = BTreeMap<i16, (i16, i16)>;

/// What the proxy last learned about a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub brokers: BTreeMap<UpstreamNodeId, BrokerAddr>,
    pub controller: Option<UpstreamNodeId>,
    /// Topics by name, as the cluster last described them (upstream node
    /// ids inside).
    pub topics: HashMap<String, MetadataResponseTopic>,
    /// `None` until the cluster has been reached once.
    pub api_versions: Option<ApiTable>,
    pub reachable: bool,
    pub last_error: Option<String>,
}

/// One upstream cluster and the proxy's connection for its own queries.
pub struct Cluster {
    pub idx: ClusterIdx,
    pub config: ClusterConfig,
    view: RwLock<ClusterView>,
    control: tokio::sync::Mutex<Option<Arc<UpstreamConn>>>,
    /// TLS and SASL for every connection to this cluster.
    security: UpstreamSecurity,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_frame: usize,
}

/// Newest Metadata version the proxy asks upstream for.
const METADATA_VERSION: i16 = 12;
/// Newest FindCoordinator version the proxy asks upstream for.
const FIND_COORDINATOR_VERSION: i16 = 4;

impl Cluster {
    /// A cluster as configured; fails when its TLS files or SASL password
    /// cannot be read.
    pub fn new(
        idx: ClusterIdx,
        config: ClusterConfig,
        proxy: &ProxyConfig,
    ) -> Result<Cluster, crate::config::ConfigError> {
        Ok(Cluster {
            security: UpstreamSecurity::from_config(&config)?,
            idx,
            config,
            view: RwLock::new(ClusterView::default()),
            control: tokio::sync::Mutex::new(None),
            connect_timeout: proxy.upstream_connect_timeout,
            request_timeout: proxy.upstream_request_timeout,
            max_frame: proxy.max_upstream_frame_bytes,
        })
    }

    /// A new connection to one of this cluster's brokers, with the
    /// cluster's TLS and SASL done.
    pub async fn connect(&self, addr: &str) -> Result<Arc<UpstreamConn>, UpstreamError> {
        UpstreamConn::connect(addr, self.connect_timeout, self.max_frame, &self.security).await
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Reads the view without cloning it; never held across an await.
    pub fn with_view<T>(&self, f: impl FnOnce(&ClusterView) -> T) -> T {
        f(&self.view.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn update_view(&self, f: impl FnOnce(&mut ClusterView)) {
        f(&mut self.view.write().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn broker_address(&self, node: UpstreamNodeId) -> Option<String> {
        self.with_view(|v| v.brokers.get(&node).map(BrokerAddr::address))
    }

    /// Any broker of the cluster: a known one first, else a bootstrap address.
    pub fn any_broker_address(&self) -> String {
        self.with_view(|v| v.brokers.values().next().map(BrokerAddr::address))
            .unwrap_or_else(|| self.config.bootstrap[0].clone())
    }

    /// The controller's address, or any broker's while it is unknown.
    pub fn controller_address(&self) -> String {
        self.with_view(|v| {
            v.controller
                .and_then(|c| v.brokers.get(&c))
                .map(BrokerAddr::address)
        })
        .unwrap_or_else(|| self.any_broker_address())
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The version to use for `api` with this cluster: the newest both sides
    /// speak, at most `ours`.
    fn version_for(&self, api: ApiKey, ours: i16) -> Option<i16> {
        self.with_view(|v| {
            let (min, max) = *v.api_versions.as_ref()?.get(&(api as i16))?;
            let version = max.min(ours);
            (version >= min).then_some(version)
        })
    }

    fn unreachable(&self, tried: &[String], errors: &[String]) -> UpstreamError {
        // A TLS or SASL failure names the settings to check itself; only a
        // plain connection failure points at the addresses.
        let hint = if errors.iter().any(|e| e.contains("check [clusters.")) {
            String::new()
        } else {
            format!("; check [clusters.{}].bootstrap", self.name())
        };
        UpstreamError::Connect {
            addr: tried.join(", "),
            reason: format!(
                "cluster '{}' unreachable ({}){hint}",
                self.name(),
                errors.join("; "),
            ),
        }
    }

    /// The connection for the proxy's own queries, (re)connected on demand;
    /// a fresh connection first learns the cluster's API versions.
    async fn control(&self) -> Result<Arc<UpstreamConn>, UpstreamError> {
        let mut control = self.control.lock().await;
        if let Some(conn) = control.as_ref().filter(|c| !c.is_closed()) {
            return Ok(conn.clone());
        }
        let mut candidates: Vec<String> =
            self.with_view(|v| v.brokers.values().map(BrokerAddr::address).collect());
        for b in &self.config.bootstrap {
            if !candidates.contains(b) {
                candidates.push(b.clone());
            }
        }
        let mut errors = Vec::new();
        for addr in &candidates {
            match self.open_control(addr).await {
                Ok(conn) => {
                    *control = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let err = self.unreachable(&candidates, &errors);
        self.update_view(|v| {
            v.reachable = false;
            v.last_error = Some(err.to_string());
        });
        Err(err)
    }

    async fn open_control(&self, addr: &str) -> Result<Arc<UpstreamConn>, UpstreamError> {
        let conn = self.connect(addr).await?;
        let resp: ApiVersionsResponse = conn
            .call(
                ApiKey::ApiVersions,
                0,
                &ApiVersionsRequest::default(),
                self.request_timeout,
            )
            .await?;
        if resp.error_code != 0 {
            return Err(UpstreamError::Protocol {
                addr: addr.to_owned(),
                reason: format!("ApiVersions answered error code {}", resp.error_code),
            });
        }
        let table: ApiTable = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        let was_reachable = self.with_view(|v| v.reachable);
        self.update_view(|v| {
            v.api_versions = Some(table);
            v.reachable = true;
            v.last_error = None;
        });
        if !was_reachable {
            tracing::info!(cluster = self.name(), %addr, "upstream cluster reachable");
        }
        Ok(conn)
    }

    async fn forget_control_if_closed(&self) {
        let mut control = self.control.lock().await;
        if control.as_ref().is_some_and(|c| c.is_closed()) {
            *control = None;
        }
    }

    /// Asks the cluster for live metadata (`None` = every topic) and folds
    /// the answer into the view. Returns the answer with upstream node ids.
    pub async fn fetch_metadata(
        &self,
        topics: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse, UpstreamError> {
        let result = self
            .try_fetch_metadata(topics, allow_auto_topic_creation)
            .await;
        if let Err(e) = &result {
            self.forget_control_if_closed().await;
            self.update_view(|v| {
                v.reachable = false;
                v.last_error = Some(e.to_string());
            });
        }
        result
    }

    async fn try_fetch_metadata(
        &self,
        topics: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse, UpstreamError> {
        let conn = self.control().await?;
        let version = self
            .version_for(ApiKey::Metadata, METADATA_VERSION)
            .filter(|v| *v >= 1)
            .ok_or_else(|| UpstreamError::Protocol {
                addr: conn.addr().to_owned(),
                reason: format!(
                    "cluster '{}' does not support Metadata v1 or newer",
                    self.name()
                ),
            })?;
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_topic_creation);
        let resp: MetadataResponse = conn
            .call(ApiKey::Metadata, version, &request, self.request_timeout)
            .await?;
        self.update_view(|v| {
            v.reachable = true;
            v.last_error = None;
            v.brokers = resp
                .brokers
                .iter()
                .map(|b| {
                    let addr = BrokerAddr {
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.as_ref().map(|r| r.to_string()),
                    };
                    (UpstreamNodeId(b.node_id.0), addr)
                })
                .collect();
            v.controller =
                (resp.controller_id.0 >= 0).then_some(UpstreamNodeId(resp.controller_id.0));
            if topics.is_none() {
                v.topics.clear();
            }
            for t in &resp.topics {
                let Some(name) = &t.name else { continue };
                if t.error_code == 0 {
                    v.topics.insert(name.to_string(), t.clone());
                } else if t.error_code == ResponseError::UnknownTopicOrPartition.code() {
                    v.topics.remove(name.as_str());
                }
            }
        });
        Ok(resp)
    }

    /// Asks the cluster which brokers coordinate `keys`; node ids in the
    /// answer are upstream ids.
    pub async fn find_coordinators(
        &self,
        key_type: i8,
        keys: &[String],
    ) -> Result<Vec<Coordinator>, UpstreamError> {
        let result = self.try_find_coordinators(key_type, keys).await;
        if result.is_err() {
            self.forget_control_if_closed().await;
        }
        result
    }

    async fn try_find_coordinators(
        &self,
        key_type: i8,
        keys: &[String],
    ) -> Result<Vec<Coordinator>, UpstreamError> {
        let conn = self.control().await?;
        let version = self
            .version_for(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION)
            .ok_or_else(|| UpstreamError::Protocol {
                addr: conn.addr().to_owned(),
                reason: format!("cluster '{}' does not support FindCoordinator", self.name()),
            })?;
        if version >= 4 {
            let request = FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_coordinator_keys(
                    keys.iter()
                        .map(|k| StrBytes::from_string(k.clone()))
                        .collect(),
                );
            let resp: FindCoordinatorResponse = conn
                .call(
                    ApiKey::FindCoordinator,
                    version,
                    &request,
                    self.request_timeout,
                )
                .await?;
            return Ok(resp.coordinators);
        }
        // Older brokers take one key per request.
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let request = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(key.clone()))
                .with_key_type(key_type);
            let resp: FindCoordinatorResponse = conn
                .call(
                    ApiKey::FindCoordinator,
                    version,
                    &request,
                    self.request_timeout,
                )
                .await?;
            out.push(
                Coordinator::default()
                    .with_key(StrBytes::from_string(key.clone()))
                    .with_node_id(resp.node_id)
                    .with_host(resp.host)
                    .with_port(resp.port)
                    .with_error_code(resp.error_code)
                    .with_error_message(resp.error_message),
            );
        }
        Ok(out)
    }
}

/// DescribeConfigs resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs config source: set on the topic itself.
const TOPIC_CONFIG_SOURCE: i8 = 1;

impl Cluster {
    /// A fresh (non-transactional) producer id issued by this cluster.
    pub async fn init_producer_id(&self) -> Result<(i64, i16), UpstreamError> {
        let conn = self.control().await?;
        let version =
            self.version_for(ApiKey::InitProducerId, 4)
                .ok_or_else(|| UpstreamError::Protocol {
                    addr: conn.addr().to_owned(),
                    reason: format!("cluster '{}' does not support InitProducerId", self.name()),
                })?;
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        let resp: InitProducerIdResponse = conn
            .call(
                ApiKey::InitProducerId,
                version,
                &request,
                self.request_timeout,
            )
            .await?;
        if resp.error_code != 0 {
            return Err(UpstreamError::Protocol {
                addr: conn.addr().to_owned(),
                reason: format!(
                    "InitProducerId on cluster '{}' failed with error code {}",
                    self.name(),
                    resp.error_code
                ),
            });
        }
        Ok((resp.producer_id.0, resp.producer_epoch))
    }

    /// Partition count of `topic` on this cluster, asked live; `None` when
    /// the cluster does not have it.
    pub async fn partition_count(&self, topic: &str) -> Result<Option<usize>, UpstreamError> {
        let resp = self
            .fetch_metadata(Some(&[topic.to_owned()]), false)
            .await?;
        Ok(resp
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic) && t.error_code == 0)
            .map(|t| t.partitions.len()))
    }

    /// The configs set on `topic` itself (not inherited defaults), as
    /// name and value; empty when the cluster cannot describe them.
    pub async fn topic_configs(
        &self,
        topic: &str,
    ) -> Result<Vec<(String, Option<String>)>, UpstreamError> {
        // Config sources are reported from v1 on.
        let Some(version) = self
            .version_for(ApiKey::DescribeConfigs, 4)
            .filter(|v| *v >= 1)
        else {
            return Ok(Vec::new());
        };
        let conn = self.control().await?;
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configuration_keys(None),
        ]);
        let resp: DescribeConfigsResponse = conn
            .call(
                ApiKey::DescribeConfigs,
                version,
                &request,
                self.request_timeout,
            )
            .await?;
        let Some(result) = resp.results.first().filter(|r| r.error_code == 0) else {
            return Ok(Vec::new());
        };
        Ok(result
            .configs
            .iter()
            // Set on the topic itself; sensitive values come back hidden,
            // so they cannot be copied.
            .filter(|c| c.config_source == TOPIC_CONFIG_SOURCE && !c.is_sensitive && !c.read_only)
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect())
    }

    /// Creates `topic` with `partitions` partitions, `configs` and the
    /// cluster's default replication factor; a topic that already exists is
    /// fine.
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: usize,
        configs: &[(String, Option<String>)],
    ) -> Result<(), UpstreamError> {
        let addr = self.controller_address();
        let conn = self.connect(&addr).await?;
        let version =
            self.version_for(ApiKey::CreateTopics, 5)
                .ok_or_else(|| UpstreamError::Protocol {
                    addr: addr.clone(),
                    reason: format!("cluster '{}' does not support CreateTopics", self.name()),
                })?;
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(self.request_timeout.as_millis() as i32)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_num_partitions(partitions as i32)
                // -1: the cluster's default replication factor (v4+).
                .with_replication_factor(if version >= 4 { -1 } else { 1 })
                .with_configs(
                    configs
                        .iter()
                        .map(|(name, value)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(name.clone()))
                                .with_value(value.clone().map(StrBytes::from_string))
                        })
                        .collect(),
                )]);
        let resp: CreateTopicsResponse = conn
            .call(
                ApiKey::CreateTopics,
                version,
                &request,
                self.request_timeout,
            )
            .await?;
        match resp
            .topics
            .first()
            .map(|t| (t.error_code, t.error_message.clone()))
        {
            Some((code, _)) if code == 0 || code == ResponseError::TopicAlreadyExists.code() => {
                Ok(())
            }
            Some((code, message)) => Err(UpstreamError::Protocol {
                addr,
                reason: format!(
                    "creating topic '{topic}' on cluster '{}' failed with error code {code}{}",
                    self.name(),
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                ),
            }),
            None => Err(UpstreamError::Protocol {
                addr,
                reason: "CreateTopics answer names no topic".into(),
            }),
        }
    }

    /// The end of the log of each partition of `topic`: the first offset
    /// at which a Fetch returns no records, verified by fetching there
    /// whatever the broker reports (see [`crate::domain::log_end`]).
    pub async fn log_ends(&self, topic: &str) -> Result<BTreeMap<i32, i64>, UpstreamError> {
        let reported = self.list_offsets(topic, OffsetQuery::Latest).await?;
        let starts = self.list_offsets(topic, OffsetQuery::Earliest).await?;
        let mut search = EndSearch::new(
            reported
                .iter()
                .map(|(p, end)| (*p, starts.get(p).copied().unwrap_or(0), *end)),
        );
        loop {
            if let Some(ends) = search.ends() {
                return Ok(ends);
            }
            let answers = self.probe(topic, &search.next_round()).await?;
            search
                .answer(&answers)
                .map_err(|e| UpstreamError::Protocol {
                    addr: self.config.bootstrap.join(","),
                    reason: format!(
                        "finding the log end of '{topic}' on cluster '{}': {e}",
                        self.name()
                    ),
                })?;
        }
    }

    /// The end of each partition's log of `topic` as its broker reports it
    /// (ListOffsets latest), unverified: it moves with every append, so it
    /// tells whether a log stands still, not where it ends.
    pub async fn reported_ends(&self, topic: &str) -> Result<BTreeMap<i32, i64>, UpstreamError> {
        self.list_offsets(topic, OffsetQuery::Latest).await
    }

    /// Partitions of `topic` with a transaction open: where the last
    /// stable offset is below the high watermark, with both (as the broker
    /// reports them: both are off the same way when they are off).
    pub async fn open_transactions(
        &self,
        topic: &str,
    ) -> Result<Vec<(i32, i64, i64)>, UpstreamError> {
        let stable = self.list_offsets(topic, OffsetQuery::LatestStable).await?;
        let ends = self.list_offsets(topic, OffsetQuery::Latest).await?;
        Ok(ends
            .iter()
            .filter_map(|(p, end)| {
                let lso = stable.get(p).copied().unwrap_or(*end);
                (lso < *end).then_some((*p, lso, *end))
            })
            .collect())
    }

    /// ListOffsets for every partition of `topic`, asked of each
    /// partition's leader: what the broker reports, unverified.
    async fn list_offsets(
        &self,
        topic: &str,
        query: OffsetQuery,
    ) -> Result<BTreeMap<i32, i64>, UpstreamError> {
        let resp = self
            .fetch_metadata(Some(&[topic.to_owned()]), false)
            .await?;
        let meta = resp
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic) && t.error_code == 0)
            .ok_or_else(|| UpstreamError::Protocol {
                addr: self.config.bootstrap.join(","),
                reason: format!("cluster '{}' has no topic '{topic}'", self.name()),
            })?;
        let partitions: Vec<i32> = meta.partitions.iter().map(|p| p.partition_index).collect();
        let mut offsets = BTreeMap::new();
        for (conn, partitions) in self.by_leader(topic, &partitions).await? {
            let version = self.version_for(ApiKey::ListOffsets, 7).unwrap_or(1);
            let (timestamp, isolation) = match query {
                OffsetQuery::Latest => (-1, 0),
                OffsetQuery::LatestStable => (-1, 1),
                OffsetQuery::Earliest => (-2, 0),
            };
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(isolation)
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(*p)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )]);
            let resp: ListOffsetsResponse = conn
                .call(ApiKey::ListOffsets, version, &request, self.request_timeout)
                .await?;
            for p in resp.topics.into_iter().flat_map(|t| t.partitions) {
                if let Some(e) = p.error_code.err() {
                    let what = ("ListOffsets", topic, p.partition_index);
                    return Err(self.partition_error(&conn, what, e));
                }
                offsets.insert(p.partition_index, p.offset);
            }
        }
        Ok(offsets)
    }

    /// A partition's error in an answer to `what` (api, topic, partition).
    fn partition_error(
        &self,
        conn: &UpstreamConn,
        (api, topic, partition): (&str, &str, i32),
        e: ResponseError,
    ) -> UpstreamError {
        UpstreamError::Protocol {
            addr: conn.addr().to_owned(),
            reason: format!(
                "{api} of '{topic}' partition {partition} on cluster '{}' failed: {e} (error code {})",
                self.name(),
                e.code()
            ),
        }
    }

    /// `partitions` of `topic` grouped by the connection to their leader,
    /// from the view.
    async fn by_leader(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Vec<(Arc<UpstreamConn>, Vec<i32>)>, UpstreamError> {
        let leaders: BTreeMap<i32, i32> = self.with_view(|v| {
            v.topics
                .get(topic)
                .map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (p.partition_index, p.leader_id.0))
                        .collect()
                })
                .unwrap_or_default()
        });
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in partitions {
            let leader = leaders.get(p).copied().unwrap_or(-1);
            by_leader.entry(leader).or_default().push(*p);
        }
        let mut out = Vec::with_capacity(by_leader.len());
        for (leader, partitions) in by_leader {
            let addr = self.broker_address(UpstreamNodeId(leader)).ok_or_else(|| {
                UpstreamError::Protocol {
                    addr: self.config.bootstrap.join(","),
                    reason: format!(
                        "partitions {partitions:?} of '{topic}' on cluster '{}' have no live leader",
                        self.name()
                    ),
                }
            })?;
            out.push((self.connect(&addr).await?, partitions));
        }
        Ok(out)
    }

    /// One round of an end search: a Fetch of each (partition, offset) in
    /// `round`, one request per leader, and what each brought back.
    async fn probe(
        &self,
        topic: &str,
        round: &[(i32, i64)],
    ) -> Result<BTreeMap<i32, Probe>, UpstreamError> {
        let at: BTreeMap<i32, i64> = round.iter().copied().collect();
        let partitions: Vec<i32> = at.keys().copied().collect();
        let mut answers = BTreeMap::new();
        for (conn, partitions) in self.by_leader(topic, &partitions).await? {
            let wanted: Vec<(i32, i64)> = partitions.iter().map(|p| (*p, at[p])).collect();
            let Some(resp) = self.fetch_at(&conn, topic, &wanted).await? else {
                continue; // no Fetch to ask with: every partition Missing
            };
            for p in resp.responses.into_iter().flat_map(|t| t.partitions) {
                let probe = match p.error_code.err() {
                    None => p
                        .records
                        .as_deref()
                        .and_then(crate::domain::stitch::last_offset)
                        .map_or(Probe::Empty, |last| Probe::Records { last }),
                    Some(ResponseError::OffsetOutOfRange) => Probe::OutOfRange,
                    Some(e) => {
                        let what = ("Fetch", topic, p.partition_index);
                        return Err(self.partition_error(&conn, what, e));
                    }
                };
                answers.insert(p.partition_index, probe);
            }
        }
        Ok(answers)
    }

    /// A Fetch of `topic` at (partition, offset) each, that waits a moment
    /// for records rather than answering at once: asked to answer at once,
    /// some brokers leave every partition out. `None` when the cluster has
    /// no Fetch version the proxy reads.
    async fn fetch_at(
        &self,
        conn: &UpstreamConn,
        topic: &str,
        at: &[(i32, i64)],
    ) -> Result<Option<FetchResponse>, UpstreamError> {
        // Flexible Fetch answers (v12+) carry tagged fields some brokers
        // put at versions that do not define them: ask below.
        let Some(version) = self.version_for(ApiKey::Fetch, 11).filter(|v| *v >= 4) else {
            return Ok(None);
        };
        const PARTITION_BYTES: i32 = 1 << 20;
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(PROBE_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(PARTITION_BYTES.saturating_mul(at.len().min(16) as i32))
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(
                    at.iter()
                        .map(|(partition, offset)| {
                            FetchPartition::default()
                                .with_partition(*partition)
                                .with_current_leader_epoch(-1)
                                .with_fetch_offset(*offset)
                                .with_last_fetched_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(PARTITION_BYTES)
                        })
                        .collect(),
                )]);
        let resp: FetchResponse = conn
            .call(ApiKey::Fetch, version, &request, self.request_timeout)
            .await?;
        Ok(Some(resp))
    }

    /// The records blob of one partition from `offset` (up to about a
    /// MiB), or `None` when the broker has none there for us.
    async fn fetch_from(
        &self,
        conn: &UpstreamConn,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<bytes::Bytes>, UpstreamError> {
        let resp = self.fetch_at(conn, topic, &[(partition, offset)]).await?;
        Ok(resp
            .into_iter()
            .flat_map(|r| r.responses)
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == partition && p.error_code == 0)
            .and_then(|p| p.records))
    }

    /// The MirrorMaker 2 offset syncs in `syncs_topic` on this cluster, by
    /// source topic and partition; empty when the cluster has no such
    /// topic. A malformed record is skipped (and logged).
    pub async fn offset_syncs(
        &self,
        syncs_topic: &str,
    ) -> Result<HashMap<(String, i32), Vec<crate::domain::mirror::OffsetSync>>, UpstreamError> {
        let mut syncs: HashMap<(String, i32), Vec<crate::domain::mirror::OffsetSync>> =
            HashMap::new();
        for (_, key, value) in self.read_topic(syncs_topic).await? {
            let (Some(key), Some(value)) = (key, value) else {
                continue;
            };
            match crate::domain::mirror::parse_offset_sync(&key, &value) {
                Ok((t, p, sync)) => syncs.entry((t, p)).or_default().push(sync),
                Err(e) => {
                    tracing::warn!(topic = syncs_topic, error = %e, "skipping a malformed offset sync")
                }
            }
        }
        Ok(syncs)
    }

    /// Every record (key, value) of `topic` on this cluster, partition by
    /// partition; empty when the cluster has no such topic. For the small
    /// bookkeeping topics of MirrorMaker 2, not for data.
    pub async fn read_topic(
        &self,
        topic: &str,
    ) -> Result<Vec<(i32, Option<Vec<u8>>, Option<Vec<u8>>)>, UpstreamError> {
        if self.partition_count(topic).await?.is_none() {
            return Ok(Vec::new());
        }
        let ends = self.log_ends(topic).await?;
        let mut out = Vec::new();
        for (&partition, &end) in &ends {
            let leader = self.with_view(|v| {
                let meta = v.topics.get(topic)?;
                let p = meta
                    .partitions
                    .iter()
                    .find(|p| p.partition_index == partition)?;
                v.brokers
                    .get(&UpstreamNodeId(p.leader_id.0))
                    .map(BrokerAddr::address)
            });
            let conn = self
                .connect(&leader.unwrap_or_else(|| self.any_broker_address()))
                .await?;
            let mut offset = 0;
            while offset < end {
                let Some(blob) = self.fetch_from(&conn, topic, partition, offset).await? else {
                    break;
                };
                let next = crate::domain::stitch::records_end(&blob);
                let records =
                    crate::domain::mirror::records(&blob).map_err(|e| UpstreamError::Protocol {
                        addr: conn.addr().to_owned(),
                        reason: format!("reading '{topic}' on cluster '{}': {e}", self.name()),
                    })?;
                out.extend(
                    records
                        .into_iter()
                        .map(|(k, v)| (partition, k.map(<[u8]>::to_vec), v.map(<[u8]>::to_vec))),
                );
                if next <= offset {
                    break; // no progress: nothing more to read
                }
                offset = next;
            }
        }
        Ok(out)
    }
}

/// What ListOffsets asks a broker for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OffsetQuery {
    /// The high watermark, as the broker reports it.
    Latest,
    /// The last stable offset: below it, no transaction is open.
    LatestStable,
    /// The log start offset.
    Earliest,
}

/// How long a Fetch of an end search waits for records at an offset where
/// there are none: each verified end costs one such wait.
const PROBE_WAIT_MS: i32 = 100;

/// One partition's committed offset in a consumer group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
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

    /// Every offset `group` has committed on this cluster, in topic and
    /// partition order.
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
                if p.committed_offset < 0 {
                    continue; // nothing committed for this partition
                }
                offsets.push(CommittedOffset {
                    topic: topic.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
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
    pub async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &[CommittedOffset],
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
                .with_committed_offset(o.offset)
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
