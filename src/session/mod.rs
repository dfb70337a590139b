//! One client connection, from accept to close.
//!
//! A read task decodes request headers and dispatches each request (answer
//! locally, or forward upstream); a write task sends the answers back
//! strictly in request order, as Kafka requires. The channel between them
//! is bounded, so a client that stops reading stops being read from.
//! When the proxy drains, the read side stops between two frames and the
//! write side sends what is owed before the connection closes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::auth::{acl, ClientAuth, ClientRead, ClientStream, ClientWrite, Gate};
use crate::domain::gates::{Admission, InflightGuard, Refusals};
use crate::domain::ids::ClusterIdx;
use crate::domain::ids::UpstreamNodeId;
use crate::domain::routes::RouteSide;
use crate::handlers::{self, forward};
use crate::metrics as m;
use crate::plan::classify::{RouteClass, Target};
use crate::plan::partitioned::{self, partition_error_response, GapHolds, PartitionedRequest};
use crate::plan::{self, Plan, Seek, Snapshot, SplitPlan};
use crate::rewrite;
use crate::runtime::proxy::{ListenerKind, Proxy};
use crate::runtime::shutdown::{OpenConnection, Shutdown};
use crate::upstream::cluster::groups::{GROUP_KEY, TRANSACTION_KEY};
use crate::upstream::conn::Reply;
use crate::upstream::{UpstreamConn, UpstreamError};
use crate::wire::requests::{
    self, DescribeClusterView, FindCoordinatorView, MetadataRequestView, ProduceView,
    TopicPartitions,
};
use crate::wire::topic_errors::topic_error_response;
use crate::wire::{read_frame, Frame, FrameError, RequestHeader};

mod conns;
mod dispatch;
mod end;
mod pending;
mod request;

use end::SessionEnd;
use pending::{Pending, Recheck};
use request::Request;

/// How long a Produce for a fenced topic is held before the client is told
/// NOT_LEADER_OR_FOLLOWER (which every client retries).
const FENCE_HOLD: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a drained connection waits for its client to close after the
/// proxy has closed its side.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// What the read side saw next.
enum Incoming {
    Frame(Frame),
    /// The client closed its side: it is done sending.
    Closed,
    /// The proxy is draining: no more requests are read.
    Draining,
}

/// The next request frame. A client may stay silent up to the idle timeout,
/// but a frame once begun must arrive whole within the frame timeout, so a
/// client sending a byte a minute cannot hold a connection (and its
/// buffer) for long. A drain stops the read between two frames, never
/// inside one.
async fn next_frame(
    read: &mut ClientRead,
    config: &crate::config::ProxyConfig,
    max_frame: usize,
    shutdown: &Shutdown,
) -> Result<Incoming, SessionEnd> {
    let mut probe = [0u8; 1];
    let waited = tokio::select! {
        biased;
        () = shutdown.signalled() => return Ok(Incoming::Draining),
        waited = tokio::time::timeout(config.client_idle_timeout, read.peek(&mut probe)) => waited,
    };
    match waited {
        Err(_) => return Err(SessionEnd::Idle(config.client_idle_timeout)),
        Ok(Err(e)) => return Err(FrameError::Io(e).into()),
        Ok(Ok(0)) => return Ok(Incoming::Closed),
        Ok(Ok(_)) => {}
    }
    tokio::time::timeout(config.client_frame_timeout, read_frame(read, max_frame))
        .await
        .map_err(|_| SessionEnd::SlowFrame(config.client_frame_timeout))?
        .map(|frame| frame.map_or(Incoming::Closed, Incoming::Frame))
        .map_err(SessionEnd::from)
}

/// The read side's end of the answer channel: every request queued for an
/// answer is counted, for the drain's report.
struct Answers<'a> {
    tx: mpsc::Sender<(Pending, Asked)>,
    connection: &'a OpenConnection,
}

impl Answers<'_> {
    /// Queues the answer of the next request, asked as `asked`; `false`
    /// once the write side has ended (it reports why).
    async fn push(&self, pending: Pending, asked: Asked) -> bool {
        self.connection.accepted();
        self.tx.send((pending, asked)).await.is_ok()
    }
}

/// What a request was and when it was read, for the time its answer
/// took.
#[derive(Clone, Copy)]
struct Asked {
    api: i16,
    at: std::time::Instant,
}

impl Asked {
    fn now(frame: &Frame) -> Asked {
        Asked {
            api: Frame::request_api_key(&frame.0),
            at: std::time::Instant::now(),
        }
    }
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
    /// Topics this connection was refused Produce for by a flip's fence.
    refusals: Refusals,
    /// Gaps in partitions' offsets this connection's Fetch answers met.
    gaps: Arc<GapHolds>,
}

/// Serves one client until it disconnects or breaks the protocol, or the
/// proxy drains: then the requests already read are answered, and the
/// connection closed.
pub async fn serve(
    proxy: Arc<Proxy>,
    stream: ClientStream,
    peer: SocketAddr,
    listener: ListenerKind,
    connection: &OpenConnection,
) {
    let listener_label = match listener {
        ListenerKind::Bootstrap => "bootstrap",
        ListenerKind::Broker(_) => "broker",
    };
    metrics::counter!(m::CLIENT_CONNECTIONS_ACCEPTED, "listener" => listener_label).increment(1);
    let open = metrics::gauge!(m::CLIENT_CONNECTIONS, "listener" => listener_label);
    open.increment(1.0);
    let (mut read, mut write) = stream.into_split();
    let (tx, rx) = mpsc::channel(proxy.config().proxy.max_in_flight);
    let mut session = Session {
        auth: ClientAuth::new(&proxy.security(), proxy.security_generation(), peer),
        proxy,
        listener,
        own_broker: None,
        targets: HashMap::new(),
        upstreams: HashMap::new(),
        coordinators: HashMap::new(),
        refusals: Refusals::default(),
        gaps: Arc::default(),
    };
    let routes_source = session.proxy.clone();
    let gaps = session.gaps.clone();
    let outcome = {
        let reading = session.read_requests(&mut read, Answers { tx, connection });
        let writing = write_responses(&mut write, rx, connection, (routes_source, &gaps));
        tokio::pin!(writing);
        tokio::select! {
            read = reading => match read {
                // The client is done sending, or the proxy draining: let
                // the answers it awaits go out.
                Ok(stopped) => (&mut writing).await.map(|()| stopped),
                Err(e) => Err(e),
            },
            written = &mut writing => written.map(|()| Stopped::ClientDone),
        }
    };
    match outcome {
        Ok(Stopped::ClientDone) => {}
        Ok(Stopped::Draining) => linger(read, write).await,
        Err(e) => match e.client_fault() {
            Some(reason) => {
                metrics::counter!(m::CLIENT_PROTOCOL_ERRORS, "reason" => reason).increment(1);
                tracing::info!(%peer, error = %e, "closing client connection");
            }
            None => match &e {
                SessionEnd::Upstream(upstream) => {
                    let broker = upstream.addr();
                    let cluster = session.cluster_at(broker).unwrap_or("?");
                    tracing::info!(%peer, cluster, broker, error = %e, "closing client connection: its upstream failed");
                }
                SessionEnd::NoRoute(_) => {
                    tracing::info!(%peer, error = %e, "closing client connection: no upstream to route to");
                }
                _ => tracing::debug!(%peer, error = %e, "closing client connection"),
            },
        },
    }
    open.decrement(1.0);
}

/// Why the read side stopped, short of an error.
enum Stopped {
    /// The client closed its side, or the write side ended.
    ClientDone,
    /// The proxy is draining.
    Draining,
}

/// Closes a drained connection so that its last answers reach the client:
/// the proxy's side first, so the client reads every answer and then the
/// end of the stream; then whatever the client still sends is read and
/// dropped until it closes too, for at most [`LINGER`]. Closing with bytes
/// left unread would reset the connection instead, and a reset can discard
/// answers not yet delivered.
async fn linger(mut read: ClientRead, mut write: ClientWrite) {
    let closed = async {
        write.shutdown().await?;
        let mut sink = [0u8; 4096];
        while read.read(&mut sink).await? != 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(LINGER, closed).await;
}

impl Session {
    /// The name of the cluster whose broker is at `addr`, if this session
    /// spoke to it.
    fn cluster_at(&self, addr: &str) -> Option<&str> {
        let (cluster, _) = self.targets.values().find(|(_, a)| a == addr)?;
        Some(self.proxy.cluster(*cluster).name())
    }

    async fn read_requests(
        &mut self,
        read: &mut ClientRead,
        answers: Answers<'_>,
    ) -> Result<Stopped, SessionEnd> {
        let proxy = self.proxy.clone();
        let (config, shutdown) = (&proxy.config().proxy, proxy.shutdown());
        loop {
            let max_frame = self.auth.max_frame(config);
            let frame = match next_frame(read, config, max_frame, shutdown).await? {
                Incoming::Frame(frame) => frame,
                Incoming::Closed => return Ok(Stopped::ClientDone),
                Incoming::Draining => return Ok(Stopped::Draining),
            };
            let asked = Asked::now(&frame);
            match self.auth.screen(&frame).await? {
                Gate::Pass => {}
                Gate::Answer(answer) => {
                    if !answers.push(Pending::Ready(answer), asked).await {
                        return Ok(Stopped::ClientDone);
                    }
                    continue;
                }
                Gate::Close(answer) => {
                    // The answer goes out, then the connection closes.
                    answers.push(Pending::Ready(answer), asked).await;
                    return Ok(Stopped::ClientDone);
                }
            }
            let request = Request::read(frame)?;
            let generation = self.proxy.security_generation();
            if !self.auth.is_current(generation)
                && !self.auth.renew(&self.proxy.security(), generation)
            {
                return Ok(Stopped::ClientDone);
            }
            if let Some(user) = self.auth.user() {
                let (api, header) = (request.spec.key, &request.header);
                let parsed = request.partitioned.as_ref();
                if let Some(refusal) = acl::check(user, api, header, request.body(), parsed)? {
                    if !answers.push(Pending::Ready(refusal), asked).await {
                        return Ok(Stopped::ClientDone);
                    }
                    continue;
                }
            }
            m::ApiMeters::client().request(request.header.api_key);
            let pending = match request.spec.class {
                RouteClass::Local => Some(self.local(&request)?),
                RouteClass::Partitioned(side) => self.forward_partitioned(side, request).await?,
                RouteClass::Admin => self.forward_admin(&request).await?,
                RouteClass::Transaction => self.forward_transaction(&request).await?,
                RouteClass::Group => self.forward_group(&request).await?,
                RouteClass::AnyBroker(target) => {
                    let upstream = self.upstream(target).await?;
                    forward_whole(&upstream, &request, None).await?
                }
            };
            // acks=0: the client expects no answer at all.
            let Some(pending) = pending else { continue };
            if !answers.push(pending, asked).await {
                return Ok(Stopped::ClientDone);
            }
        }
    }
}

/// Sends a request to `upstream` as it came; its answer goes back as it
/// comes (a Produce's in-flight `guard` held until then).
async fn forward_whole(
    upstream: &UpstreamConn,
    request: &Request,
    guard: Option<InflightGuard>,
) -> Result<Option<Pending>, SessionEnd> {
    let reply = upstream
        .send(&request.frame.0, request.header.correlation_id, true)
        .await?;
    Ok(reply.map(|reply| Pending::Upstream(reply, guard)))
}

/// An upstream connection's task ended before answering.
fn lost_task() -> UpstreamError {
    UpstreamError::Lost {
        addr: "upstream".into(),
        reason: "connection task ended".into(),
    }
}

async fn write_responses(
    write: &mut ClientWrite,
    mut rx: mpsc::Receiver<(Pending, Asked)>,
    connection: &OpenConnection,
    (proxy, gaps): (Arc<Proxy>, &GapHolds),
) -> Result<(), SessionEnd> {
    while let Some((pending, asked)) = rx.recv().await {
        let bytes = match pending {
            Pending::Ready(bytes) => bytes,
            Pending::Local(task) => task
                .await
                .map_err(|e| SessionEnd::Handler(e.to_string()))??,
            Pending::Upstream(reply, _inflight) => reply.await.map_err(|_| lost_task())??.0,
            Pending::Fetched(reply, recheck) => {
                let frame = reply.await.map_err(|_| lost_task())??;
                let routes = (proxy.routes_epoch() != recheck.epoch).then(|| proxy.routes());
                let Recheck {
                    cluster,
                    version,
                    correlation_id,
                    view,
                    ..
                } = &recheck;
                partitioned::answered(
                    routes.as_deref().map(|r| (r, *cluster)),
                    (*version, *correlation_id),
                    (view.topics(), view.fetch_offsets()),
                    gaps,
                    &frame,
                )?
                .unwrap_or(frame.0)
            }
            Pending::Merged(task, _inflight) => task
                .await
                .map_err(|e| SessionEnd::Handler(e.to_string()))??,
        };
        if gaps.take_held() {
            tokio::time::sleep(partitioned::GAP_PACE).await;
        }
        write.write_all(&bytes).await.map_err(SessionEnd::Write)?;
        // TLS holds what it encrypts until flushed.
        write.flush().await.map_err(SessionEnd::Write)?;
        connection.answered();
        m::ApiMeters::client().answered(asked.api, asked.at.elapsed());
    }
    Ok(())
}
