//! One client connection, from accept to close.
//!
//! A read task decodes request headers and dispatches each request (answer
//! locally, or forward upstream); a write task sends the answers back
//! strictly in request order, as Kafka requires. The channel between them
//! is bounded, so a client that stops reading stops being read from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::auth::{AuthError, ClientAuth, ClientRead, ClientStream, ClientWrite, Gate};
use crate::domain::gates::{Admission, InflightGuard};
use crate::domain::ids::ClusterIdx;
use crate::domain::ids::UpstreamNodeId;
use crate::domain::routes::RouteSide;
use crate::handlers::{self, forward};
use crate::metrics as m;
use crate::plan::classify::{self, RouteClass, Target};
use crate::plan::{self, Plan, Seek, Snapshot, SplitPlan};
use crate::runtime::proxy::{ListenerKind, Proxy};
use crate::upstream::cluster::{GROUP_KEY, TRANSACTION_KEY};
use crate::upstream::conn::Reply;
use crate::upstream::{UpstreamConn, UpstreamError};
use crate::wire::codec::CodecError;
use crate::wire::partition_errors::{partition_error_response, topic_error_response};
use crate::wire::requests::{
    self, DescribeClusterView, FindCoordinatorView, MetadataRequestView, ProduceView,
    TopicPartitions,
};
use crate::wire::{read_frame, Frame, FrameError, RequestHeader, WireError};

/// Why a session ended other than by the client closing it.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("unsupported request: API key {api_key} version {version}")]
    Unsupported { api_key: i16, version: i16 },
    #[error("upstream: {0}")]
    Upstream(#[from] UpstreamError),
    #[error("upstream: {0}")]
    NoRoute(String),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("writing to client: {0}")]
    Write(std::io::Error),
    #[error("local handler failed: {0}")]
    Handler(String),
    #[error("no request for {0:?}")]
    Idle(std::time::Duration),
    #[error("a request frame took longer than {0:?} to arrive")]
    SlowFrame(std::time::Duration),
    #[error("acks=0 produce for partitions this connection cannot reach")]
    Unroutable,
    #[error(transparent)]
    Produce(#[from] handlers::produce::ProduceError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl SessionEnd {
    /// A label for the protocol-error metric, or `None` when the client did
    /// nothing wrong.
    fn client_fault(&self) -> Option<&'static str> {
        match self {
            SessionEnd::Frame(FrameError::TooLarge { .. } | FrameError::Negative(_)) => {
                Some("frame_size")
            }
            SessionEnd::Frame(FrameError::Truncated { .. }) => Some("truncated"),
            SessionEnd::Wire(_) => Some("malformed"),
            SessionEnd::Unsupported { .. } => Some("unsupported"),
            SessionEnd::SlowFrame(_) => Some("slow"),
            SessionEnd::Auth(e) => e.client_fault(),
            _ => None,
        }
    }
}

/// An answer the write task will send, in the order the requests came.
enum Pending {
    Ready(Bytes),
    Local(JoinHandle<Result<Bytes, CodecError>>),
    /// A forwarded request's answer; a Produce stays counted in flight
    /// (for flips) until its answer is through.
    Upstream(Reply, Option<InflightGuard>),
    /// The merged answer of a request split across brokers.
    Merged(JoinHandle<Result<Bytes, SessionEnd>>, Option<InflightGuard>),
}

/// How long a Produce for a fenced topic is held before the client is told
/// NOT_LEADER_OR_FOLLOWER (which every client retries).
const FENCE_HOLD: std::time::Duration = std::time::Duration::from_secs(1);

/// The next request frame. A client may stay silent up to the idle timeout,
/// but a frame once begun must arrive whole within the frame timeout, so a
/// client sending a byte a minute cannot hold a connection (and its
/// buffer) for long.
async fn next_frame(
    read: &mut ClientRead,
    config: &crate::config::ProxyConfig,
    max_frame: usize,
) -> Result<Option<Frame>, SessionEnd> {
    let mut probe = [0u8; 1];
    match tokio::time::timeout(config.client_idle_timeout, read.peek(&mut probe)).await {
        Err(_) => return Err(SessionEnd::Idle(config.client_idle_timeout)),
        Ok(Err(e)) => return Err(FrameError::Io(e).into()),
        Ok(Ok(0)) => return Ok(None),
        Ok(Ok(_)) => {}
    }
    tokio::time::timeout(config.client_frame_timeout, read_frame(read, max_frame))
        .await
        .map_err(|_| SessionEnd::SlowFrame(config.client_frame_timeout))?
        .map_err(SessionEnd::from)
}

/// Answers a partitioned request with NOT_LEADER_OR_FOLLOWER for every
/// partition, so the client refreshes its metadata and retries; an acks=0
/// Produce cannot be answered, so its connection closes (as a broker does).
fn refusal(
    api: ApiKey,
    header: &RequestHeader,
    topics: &TopicPartitions,
    expect_response: bool,
) -> Result<Option<Pending>, SessionEnd> {
    if !expect_response {
        return Err(SessionEnd::Unroutable);
    }
    let answer = partition_error_response(
        api,
        header.api_version,
        header.correlation_id,
        topics,
        ResponseError::NotLeaderOrFollower.code(),
    )?;
    Ok(Some(Pending::Ready(answer)))
}

struct Session {
    proxy: Arc<Proxy>,
    listener: ListenerKind,
    own_broker: Option<Option<(ClusterIdx, UpstreamNodeId)>>,
    /// Upstream address of each target, resolved once per session.
    targets: HashMap<Target, (crate::domain::ids::ClusterIdx, String)>,
    /// Upstream connections of this client, by address; the client's own
    /// correlation ids travel on them unchanged.
    upstreams: HashMap<String, Arc<UpstreamConn>>,
    /// Coordinator address of each group (on a cluster other than its
    /// listener's) and transactional id this client spoke of.
    coordinators: HashMap<(ClusterIdx, i8, String), String>,
    /// Login state and the user's allow-lists; every frame is shown to it
    /// first.
    auth: ClientAuth,
}

/// Serves one client until it disconnects or breaks the protocol.
pub async fn serve(
    proxy: Arc<Proxy>,
    stream: ClientStream,
    peer: SocketAddr,
    listener: ListenerKind,
) {
    let listener_label = match listener {
        ListenerKind::Bootstrap => "bootstrap",
        ListenerKind::Broker(_) => "broker",
    };
    metrics::counter!(m::CLIENT_CONNECTIONS_TOTAL, "listener" => listener_label).increment(1);
    metrics::gauge!(m::CLIENT_CONNECTIONS).increment(1.0);
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::channel(proxy.config.proxy.max_in_flight);
    let mut session = Session {
        auth: ClientAuth::new(&proxy.security, peer),
        proxy,
        listener,
        own_broker: None,
        targets: HashMap::new(),
        upstreams: HashMap::new(),
        coordinators: HashMap::new(),
    };
    let reading = session.read_requests(read, tx);
    let writing = write_responses(write, rx);
    tokio::pin!(writing);
    let outcome = tokio::select! {
        read = reading => match read {
            // The client is done sending: let the answers it awaits go out.
            Ok(()) => (&mut writing).await,
            Err(e) => Err(e),
        },
        written = &mut writing => written,
    };
    if let Err(e) = outcome {
        match e.client_fault() {
            Some(reason) => {
                metrics::counter!(m::CLIENT_PROTOCOL_ERRORS, "reason" => reason).increment(1);
                tracing::info!(%peer, error = %e, "closing client connection");
            }
            None => {
                if matches!(e, SessionEnd::Upstream(_) | SessionEnd::NoRoute(_)) {
                    metrics::counter!(m::UPSTREAM_ERRORS).increment(1);
                }
                tracing::debug!(%peer, error = %e, "closing client connection");
            }
        }
    }
    metrics::gauge!(m::CLIENT_CONNECTIONS).decrement(1.0);
}

impl Session {
    async fn read_requests(
        &mut self,
        mut read: ClientRead,
        tx: mpsc::Sender<Pending>,
    ) -> Result<(), SessionEnd> {
        let proxy = self.proxy.clone();
        let config = &proxy.config.proxy;
        while let Some(frame) = next_frame(&mut read, config, self.auth.max_frame(config)).await? {
            match self.auth.screen(&frame).await? {
                Gate::Pass => {}
                Gate::Answer(answer) => {
                    if tx.send(Pending::Ready(answer)).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                Gate::Close(answer) => {
                    // The answer goes out, then the connection closes.
                    let _ = tx.send(Pending::Ready(answer)).await;
                    return Ok(());
                }
            }
            let header = RequestHeader::parse(frame.body())?;
            let body = &frame.body()[header.body_offset..];
            let unsupported = || SessionEnd::Unsupported {
                api_key: header.api_key,
                version: header.api_version,
            };
            let spec = classify::spec(header.api_key).ok_or_else(unsupported)?;
            // ApiVersions must answer any version (with an error when too new).
            if spec.key != ApiKey::ApiVersions
                && !(spec.min..=spec.max).contains(&header.api_version)
            {
                return Err(unsupported());
            }
            if let Some(refusal) =
                crate::auth::acl::authorize(&self.auth, &proxy, spec.key, &header, body).await?
            {
                if tx.send(Pending::Ready(refusal)).await.is_err() {
                    return Ok(());
                }
                continue;
            }
            let path = if spec.class == RouteClass::Local {
                "local"
            } else {
                "forward"
            };
            metrics::counter!(m::REQUESTS, "path" => path).increment(1);
            let pending = match spec.class {
                RouteClass::Local => Some(self.local(spec.key, header, body)?),
                RouteClass::Partitioned(side) => {
                    self.forward_partitioned(spec.key, side, &frame, &header, body)
                        .await?
                }
                RouteClass::Admin => {
                    self.forward_admin(spec.key, &frame.0, &header, body)
                        .await?
                }
                RouteClass::Transaction => {
                    self.forward_transaction(spec.key, &frame, &header, body)
                        .await?
                }
                RouteClass::Group => self.forward_group(spec.key, &frame, &header, body).await?,
                RouteClass::AnyBroker(target) => {
                    let upstream = self.upstream(target).await?;
                    upstream
                        .send(&frame.0, header.correlation_id, true)
                        .await?
                        .map(|reply| Pending::Upstream(reply, None))
                }
            };
            // acks=0: the client expects no answer at all.
            let Some(pending) = pending else { continue };
            if tx.send(pending).await.is_err() {
                // The write task has ended; it reports why.
                return Ok(());
            }
        }
        Ok(())
    }

    /// Starts a locally answered request; its body is parsed here, so a
    /// malformed one ends the session before any work is spawned.
    fn local(
        &self,
        api: ApiKey,
        header: RequestHeader,
        body: &[u8],
    ) -> Result<Pending, SessionEnd> {
        let proxy = self.proxy.clone();
        Ok(match api {
            ApiKey::ApiVersions => Pending::Ready(handlers::api_versions::answer(&proxy, &header)?),
            ApiKey::Metadata => {
                let request = MetadataRequestView::parse(&header, body)?;
                Pending::Local(tokio::spawn(handlers::metadata::metadata(
                    proxy, header, request,
                )))
            }
            ApiKey::DescribeCluster => {
                let request = DescribeClusterView::parse(&header, body)?;
                Pending::Local(tokio::spawn(handlers::metadata::describe_cluster(
                    proxy, header, request,
                )))
            }
            ApiKey::FindCoordinator => {
                let request = FindCoordinatorView::parse(&header, body)?;
                Pending::Local(tokio::spawn(handlers::coordinator::find_coordinator(
                    proxy, header, request,
                )))
            }
            other => {
                return Err(SessionEnd::Handler(format!(
                    "{other:?} is marked local but has no handler"
                )))
            }
        })
    }

    /// Forwards a request that names partitions to wherever they live now:
    /// a Produce first passes the flip gates; then the whole request goes to
    /// one upstream broker, or the client is told to refresh its metadata.
    async fn forward_partitioned(
        &mut self,
        api: ApiKey,
        side: RouteSide,
        frame: &Frame,
        header: &RequestHeader,
        body: &[u8],
    ) -> Result<Option<Pending>, SessionEnd> {
        let produce = match api {
            ApiKey::Produce => Some(ProduceView::parse(header, body)?),
            _ => None,
        };
        let read;
        let mut positions = Vec::new();
        let topics: &TopicPartitions = match &produce {
            Some(view) => &view.topics,
            None => {
                read = match api {
                    ApiKey::Fetch => {
                        let (topics, offsets) = requests::fetch_positions(header, body)?;
                        positions = offsets;
                        topics
                    }
                    ApiKey::ListOffsets => {
                        let (topics, timestamps) = requests::list_offsets_positions(header, body)?;
                        positions = timestamps;
                        topics
                    }
                    _ => requests::offset_for_leader_epoch_topics(header, body)?,
                };
                &read
            }
        };
        let seek = match api {
            ApiKey::Fetch => Seek::Offsets(&positions),
            ApiKey::ListOffsets => Seek::Timestamps(&positions),
            _ => Seek::Newest,
        };
        // acks=0: the client expects no answer at all.
        let expect_response = produce.as_ref().is_none_or(|view| view.acks != 0);
        if let Some(id) = produce.as_ref().and_then(|v| v.transactional_id.as_deref()) {
            if let Some(refusal) = self.spanning_transaction(api, id, header, topics)? {
                return Ok(Some(refusal));
            }
        }
        let mut guard = None;
        if api == ApiKey::Produce {
            let deadline = tokio::time::Instant::now() + FENCE_HOLD;
            loop {
                match self
                    .proxy
                    .gates
                    .admit(topics.0.iter().map(|(t, _)| t.as_str()))
                {
                    Admission::Admitted(g) => {
                        guard = Some(g);
                        break;
                    }
                    Admission::Held(mut fence) => {
                        // Finishing in time means the fence dropped: ask again.
                        if tokio::time::timeout_at(deadline, fence.changed())
                            .await
                            .is_err()
                        {
                            return refusal(api, header, topics, expect_response);
                        }
                    }
                }
            }
        }
        let own = self.own_broker();
        let mut plan = self.plan(own, side, topics, seek);
        if plan.refuses_any() {
            // A topic the proxy has not seen yet (created a moment ago, or
            // asked for without Metadata first): look once before refusing.
            let unknown = {
                let routes = self.proxy.routes();
                let snapshot = Snapshot {
                    routes: &routes,
                    views: &*self.proxy,
                };
                plan::unknown_topics(&snapshot, side, topics)
            };
            if !unknown.is_empty() {
                for (cluster, names) in unknown {
                    let lookup = self
                        .proxy
                        .cluster(cluster)
                        .fetch_metadata(Some(&names), false);
                    if let Err(e) = lookup.await {
                        tracing::debug!(error = %e, "metadata lookup for unknown topics failed");
                    }
                }
                plan = self.plan(own, side, topics, seek);
            }
        }
        let (upstream, cluster) = match plan {
            Plan::Mirrored => (
                self.upstream(Target::Mirrored).await?,
                own.map_or_else(|| self.proxy.routes().default_cluster(), |(c, _)| c),
            ),
            Plan::Broker { cluster, address } => {
                (self.connection(cluster, &address).await?, cluster)
            }
            Plan::Refuse => return refusal(api, header, topics, expect_response),
            Plan::Split(split) => {
                let pending = self
                    .forward_split(
                        api,
                        frame,
                        header,
                        topics,
                        produce.as_ref(),
                        &split,
                        expect_response,
                    )
                    .await?;
                return Ok(pending.map(|task| Pending::Merged(task, guard)));
            }
        };
        let reply = self
            .send_part(
                api,
                upstream,
                cluster,
                &frame.0,
                header,
                produce.as_ref(),
                expect_response,
            )
            .await?;
        Ok(reply.map(|reply| Pending::Upstream(reply, guard)))
    }

    /// Sends one request (whole, or one part of a split) to an upstream
    /// broker of `cluster`; a Produce first gets the producer ids that
    /// cluster knows its batches by (`produce` is its view when already
    /// parsed).
    #[allow(clippy::too_many_arguments)]
    async fn send_part(
        &self,
        api: ApiKey,
        upstream: Arc<UpstreamConn>,
        cluster: ClusterIdx,
        frame: &Bytes,
        header: &RequestHeader,
        produce: Option<&ProduceView>,
        expect_response: bool,
    ) -> Result<Option<Reply>, SessionEnd> {
        let body_at = Frame::PREFIX + header.body_offset;
        let rewritten = match (api, produce) {
            (ApiKey::Produce, Some(view)) => {
                handlers::produce::for_cluster(&self.proxy, frame, body_at, view, cluster).await?
            }
            (ApiKey::Produce, None) => {
                let view = ProduceView::parse(header, &frame[body_at..])?;
                handlers::produce::for_cluster(&self.proxy, frame, body_at, &view, cluster).await?
            }
            (ApiKey::Fetch, _) => handlers::fetch::sessionless(frame, header, body_at),
            _ => None,
        };
        Ok(upstream
            .send(
                rewritten.as_deref().unwrap_or(frame),
                header.correlation_id,
                expect_response,
            )
            .await?)
    }

    /// Sends each broker its part of a split request; the answer, when the
    /// client expects one, is the merge of theirs (and of the proxy's own
    /// refusal of partitions that live nowhere it knows), its offsets moved
    /// into the client's (stitched) log.
    #[allow(clippy::too_many_arguments)]
    async fn forward_split(
        &mut self,
        api: ApiKey,
        frame: &Frame,
        header: &RequestHeader,
        topics: &TopicPartitions,
        produce: Option<&ProduceView>,
        split: &SplitPlan,
        expect_response: bool,
    ) -> Result<Option<JoinHandle<Result<Bytes, SessionEnd>>>, SessionEnd> {
        let whole =
            split.destinations.len() == 1 && split.assignment.iter().flatten().all(Option::is_some);
        let parts = if whole && api == ApiKey::Produce {
            // A Produce names no offset: to one broker it goes as it came,
            // and only its answer is shifted.
            vec![Some(frame.0.clone())]
        } else {
            let parts = plan::split::Parts {
                assignment: &split.assignment,
                shifts: &split.shifts,
                destinations: split.destinations.len(),
            };
            plan::split::split(api, &frame.0, header, &parts)?
        };
        if split.destinations.len() > 1 {
            metrics::counter!(m::SPLIT_REQUESTS).increment(1);
        }
        let mut replies = Vec::with_capacity(parts.len());
        for ((cluster, address), part) in split.destinations.iter().zip(parts) {
            let Some(part) = part else { continue };
            let upstream = self.connection(*cluster, address).await?;
            let view = produce.filter(|_| whole);
            if let Some(reply) = self
                .send_part(
                    api,
                    upstream,
                    *cluster,
                    &part,
                    header,
                    view,
                    expect_response,
                )
                .await?
            {
                replies.push(reply);
            }
        }
        if !expect_response {
            return Ok(None);
        }
        let refused = split.refused(topics);
        let mut answers = Vec::with_capacity(replies.len() + 1);
        if !refused.0.is_empty() {
            answers.push(Frame(partition_error_response(
                api,
                header.api_version,
                header.correlation_id,
                &refused,
                ResponseError::NotLeaderOrFollower.code(),
            )?));
        }
        let (version, correlation_id, order, shifts) = (
            header.api_version,
            header.correlation_id,
            topics.clone(),
            split.shifts.clone(),
        );
        Ok(Some(tokio::spawn(async move {
            for reply in replies {
                answers.push(reply.await.map_err(|_| lost_task())??);
            }
            Ok(plan::split::merge(
                api,
                version,
                correlation_id,
                &order,
                &shifts,
                &answers,
            )?)
        })))
    }

    /// Topic administration goes to the controller of the cluster its topics
    /// route to; a request whose topics route to several clusters is refused,
    /// topic by topic, with INVALID_REQUEST and a message saying why.
    async fn forward_admin(
        &mut self,
        api: ApiKey,
        frame: &[u8],
        header: &RequestHeader,
        body: &[u8],
    ) -> Result<Option<Pending>, SessionEnd> {
        let names = requests::admin_topic_names(header, body)?;
        let routes = self.proxy.routes();
        let mut clusters: Vec<ClusterIdx> =
            names.iter().map(|n| routes.metadata_cluster(n)).collect();
        clusters.sort();
        clusters.dedup();
        let listener_cluster = self
            .own_broker()
            .map_or_else(|| routes.default_cluster(), |(c, _)| c);
        let upstream = match clusters.as_slice() {
            [] => self.upstream(Target::Controller).await?,
            [c] if *c == listener_cluster => self.upstream(Target::Controller).await?,
            [c] => {
                let address = self.proxy.cluster(*c).controller_address();
                self.connection(*c, &address).await?
            }
            several => {
                let names_of: Vec<&str> = several
                    .iter()
                    .map(|c| self.proxy.cluster(*c).name())
                    .collect();
                let message = format!(
                    "the topics of this request route to different clusters ({}); send one request per cluster",
                    names_of.join(", ")
                );
                let answer = topic_error_response(
                    api,
                    header.api_version,
                    header.correlation_id,
                    &names,
                    ResponseError::InvalidRequest.code(),
                    &message,
                )?;
                return Ok(Some(Pending::Ready(answer)));
            }
        };
        let reply = upstream.send(frame, header.correlation_id, true).await?;
        Ok(reply.map(|reply| Pending::Upstream(reply, None)))
    }

    /// Sends a transaction request to the coordinator of its transactional
    /// id on the cluster its transactions run on (the default cluster, or a
    /// transaction rule's). Partitions added whose topic is written
    /// elsewhere are refused, every one of them, with INVALID_TXN_STATE:
    /// one transaction cannot span clusters. InitProducerId without a
    /// transactional id (an idempotent producer) goes to the default
    /// cluster, whose producer ids the proxy maps for the others.
    async fn forward_transaction(
        &mut self,
        api: ApiKey,
        frame: &Frame,
        header: &RequestHeader,
        body: &[u8],
    ) -> Result<Option<Pending>, SessionEnd> {
        let Some(id) = requests::transactional_id_of(header, body)? else {
            let upstream = self.upstream(Target::DefaultCluster).await?;
            let reply = upstream.send(&frame.0, header.correlation_id, true).await?;
            return Ok(reply.map(|reply| Pending::Upstream(reply, None)));
        };
        if api == ApiKey::AddPartitionsToTxn {
            let (_, topics) = requests::add_partitions_to_txn(header, body)?;
            if let Some(refusal) = self.spanning_transaction(api, &id, header, &topics)? {
                return Ok(Some(refusal));
            }
        }
        let cluster = self.proxy.routes().transaction_cluster(&id);
        let upstream = self
            .coordinator_connection(cluster, TRANSACTION_KEY, id)
            .await?;
        let reply = upstream.send(&frame.0, header.correlation_id, true).await?;
        Ok(reply.map(|reply| Pending::Upstream(reply, None)))
    }

    /// This client's connection to the coordinator of `key` (key type 0: a
    /// group, 1: a transactional id) on `cluster`, looked up once.
    async fn coordinator_connection(
        &mut self,
        cluster: ClusterIdx,
        key_type: i8,
        key: String,
    ) -> Result<Arc<UpstreamConn>, SessionEnd> {
        let key = (cluster, key_type, key);
        let address = match self.coordinators.get(&key) {
            Some(address) => address.clone(),
            None => {
                let address = self
                    .proxy
                    .cluster(cluster)
                    .coordinator(key_type, &key.2)
                    .await?;
                self.coordinators.insert(key, address.clone());
                address
            }
        };
        self.connection(cluster, &address).await
    }

    /// The refusal of a transactional request naming topics written to a
    /// cluster other than the one its transaction runs on, or `None` when
    /// all of them are written there.
    fn spanning_transaction(
        &self,
        api: ApiKey,
        transactional_id: &str,
        header: &RequestHeader,
        topics: &TopicPartitions,
    ) -> Result<Option<Pending>, SessionEnd> {
        let routes = self.proxy.routes();
        let home = routes.transaction_cluster(transactional_id);
        let Some((elsewhere, _)) = topics
            .0
            .iter()
            .find(|(topic, _)| RouteSide::Produce.cluster(&routes.route(topic)) != home)
        else {
            return Ok(None);
        };
        tracing::info!(
            transactional_id,
            topic = elsewhere.as_str(),
            "refusing a transaction that would span clusters"
        );
        let answer = partition_error_response(
            api,
            header.api_version,
            header.correlation_id,
            topics,
            ResponseError::InvalidTxnState.code(),
        )?;
        Ok(Some(Pending::Ready(answer)))
    }

    /// Sends a group request to the cluster coordinating its group: the
    /// listener's own broker when that cluster is the listener's (the fast
    /// path), else the group's coordinator there. While the group moves,
    /// its requests wait here; its commits count in flight, so a move waits
    /// for those already sent.
    async fn forward_group(
        &mut self,
        api: ApiKey,
        frame: &Frame,
        header: &RequestHeader,
        body: &[u8],
    ) -> Result<Option<Pending>, SessionEnd> {
        let group = requests::group_of(header, body)?;
        let mut guard = None;
        if let Some(group) = &group {
            let gates = self.proxy.group_gates.clone();
            loop {
                let held = if api == ApiKey::OffsetCommit {
                    match gates.admit(std::iter::once(group.as_str())) {
                        Admission::Admitted(g) => {
                            guard = Some(g);
                            None
                        }
                        Admission::Held(fence) => Some(fence),
                    }
                } else {
                    gates.held(group)
                };
                match held {
                    // The move ends, done or aborted, by dropping its fence.
                    Some(mut fence) => {
                        let _ = fence.changed().await;
                    }
                    None => break,
                }
            }
        }
        let routes = self.proxy.routes();
        let own_cluster = self
            .own_broker()
            .map_or_else(|| routes.default_cluster(), |(c, _)| c);
        let upstream = match group.map(|g| (routes.group_cluster(&g), g)) {
            Some((cluster, group)) if cluster != own_cluster => {
                self.coordinator_connection(cluster, GROUP_KEY, group)
                    .await?
            }
            _ => self.upstream(Target::Mirrored).await?,
        };
        let reply = upstream.send(&frame.0, header.correlation_id, true).await?;
        Ok(reply.map(|reply| Pending::Upstream(reply, guard)))
    }

    /// The upstream broker this session's listener mirrors (`None` on the
    /// bootstrap listener), looked up once per session.
    fn own_broker(&mut self) -> Option<(ClusterIdx, UpstreamNodeId)> {
        if let Some(own) = self.own_broker {
            return own;
        }
        let own = match self.listener {
            ListenerKind::Bootstrap => None,
            ListenerKind::Broker(id) => self
                .proxy
                .virtual_broker(id)
                .map(|b| (b.cluster, b.upstream)),
        };
        self.own_broker = Some(own);
        own
    }

    /// Plans a partitioned request on a snapshot of the routes and the
    /// clusters' views taken now.
    fn plan(
        &self,
        own: Option<(ClusterIdx, UpstreamNodeId)>,
        side: RouteSide,
        topics: &TopicPartitions,
        seek: Seek<'_>,
    ) -> Plan {
        let routes = self.proxy.routes();
        let snapshot = Snapshot {
            routes: &routes,
            views: &*self.proxy,
        };
        plan::plan(&snapshot, own, side, topics, seek)
    }

    /// This client's connection to the upstream broker for `target`,
    /// resolved and opened on first use.
    async fn upstream(&mut self, target: Target) -> Result<Arc<UpstreamConn>, SessionEnd> {
        let (cluster, address) = match self.targets.get(&target) {
            Some(resolved) => resolved.clone(),
            None => {
                let resolved = forward::resolve(&self.proxy, self.listener, target)
                    .map_err(SessionEnd::NoRoute)?;
                self.targets.insert(target, resolved.clone());
                resolved
            }
        };
        self.connection(cluster, &address).await
    }

    /// This client's connection to one upstream broker, opened on first use.
    async fn connection(
        &mut self,
        cluster: crate::domain::ids::ClusterIdx,
        address: &str,
    ) -> Result<Arc<UpstreamConn>, SessionEnd> {
        if let Some(conn) = self.upstreams.get(address) {
            if conn.is_closed() {
                return Err(UpstreamError::Lost {
                    addr: conn.addr().to_owned(),
                    reason: "closed".into(),
                }
                .into());
            }
            return Ok(conn.clone());
        }
        let conn = self.proxy.cluster(cluster).connect(address).await?;
        self.upstreams.insert(address.to_owned(), conn.clone());
        Ok(conn)
    }
}

/// An upstream connection's task ended before answering.
fn lost_task() -> UpstreamError {
    UpstreamError::Lost {
        addr: "upstream".into(),
        reason: "connection task ended".into(),
    }
}

async fn write_responses(
    mut write: ClientWrite,
    mut rx: mpsc::Receiver<Pending>,
) -> Result<(), SessionEnd> {
    while let Some(pending) = rx.recv().await {
        let bytes = match pending {
            Pending::Ready(bytes) => bytes,
            Pending::Local(task) => task
                .await
                .map_err(|e| SessionEnd::Handler(e.to_string()))??,
            Pending::Upstream(reply, _inflight) => reply.await.map_err(|_| lost_task())??.0,
            Pending::Merged(task, _inflight) => task
                .await
                .map_err(|e| SessionEnd::Handler(e.to_string()))??,
        };
        write.write_all(&bytes).await.map_err(SessionEnd::Write)?;
        // TLS holds what it encrypts until flushed.
        write.flush().await.map_err(SessionEnd::Write)?;
    }
    Ok(())
}
