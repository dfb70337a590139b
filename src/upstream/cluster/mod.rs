//! The proxy's own view of one upstream cluster: its brokers, controller,
//! topics and API versions, kept fresh by live Metadata queries.
//!
//! Metadata, FindCoordinator and DescribeCluster answers to clients are
//! built from this view, never by forwarding a client's request. Here: the
//! view and the control connection that keeps it; the control plane's
//! admin client beside it, in [`topics`], [`offsets`] (log ends) and
//! [`groups`].

pub mod groups;
pub mod log;
pub mod metadata;
pub mod offsets;
pub mod topics;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
use crate::metrics::ClusterMeters;

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
    /// TLS and SASL for every new connection to this cluster; a reload
    /// puts in another (the connections open keep theirs).
    security: RwLock<Arc<UpstreamSecurity>>,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_frame: usize,
    /// What this cluster's connections carry, counted.
    meters: Arc<ClusterMeters>,
    /// Client Metadata requests, batched and cached.
    queries: metadata::MetadataQueries,
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
            security: RwLock::new(Arc::new(UpstreamSecurity::from_config(&config)?)),
            meters: Arc::new(ClusterMeters::new(&config.name)),
            queries: metadata::MetadataQueries::new(proxy.metadata_cache),
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
        let security = self
            .security
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        UpstreamConn::connect(
            addr,
            self.connect_timeout,
            self.max_frame,
            &security,
            self.meters.clone(),
        )
        .await
    }

    /// TLS and SASL for the connections opened from now on.
    pub fn set_security(&self, security: UpstreamSecurity) {
        *self.security.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(security);
    }

    pub fn meters(&self) -> &ClusterMeters {
        &self.meters
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

    /// Metadata for a client's request (`None` = every topic): from the
    /// cache, or from the next batched query (see [`metadata`]).
    pub async fn client_metadata(
        self: &Arc<Self>,
        names: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<Vec<MetadataResponseTopic>, UpstreamError> {
        if self.meters.leadership_moved() {
            self.queries.forget();
        }
        if let Some(hit) = names.and_then(|n| self.queries.cached(n, Instant::now())) {
            return Ok(hit);
        }
        let (batch, start) = self.queries.join(names, allow_auto_topic_creation);
        if start {
            // Its own task: a client that goes away leaves the others'
            // batches running.
            let cluster = self.clone();
            tokio::spawn(async move { cluster.run_batches(allow_auto_topic_creation).await });
        }
        let answer = batch.outcome().await?;
        Ok(metadata::answer_for(&answer, names))
    }

    /// Runs the waiting batches of one kind, one query at a time, until
    /// none waits.
    async fn run_batches(&self, allow_auto_topic_creation: bool) {
        while let Some(batch) = self.queries.next(allow_auto_topic_creation) {
            let names = batch.names();
            let began = Instant::now();
            let outcome = self
                .fetch_metadata(names.as_deref(), allow_auto_topic_creation)
                .await
                .map(Arc::new);
            if let Ok(answer) = &outcome {
                self.queries.remember(began, names.is_none(), answer);
            }
            batch.finish(outcome);
        }
    }

    /// Forgets the cached topics: they may have changed (a topic created,
    /// deleted or grown through the proxy).
    pub fn forget_metadata(&self) {
        self.queries.forget();
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
