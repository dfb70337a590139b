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
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::handlers::{self, forward, Handling};
use crate::metrics as m;
use crate::proxy::{ListenerKind, Proxy};
use crate::upstream::conn::Reply;
use crate::upstream::{UpstreamConn, UpstreamError};
use crate::wire::codec::CodecError;
use crate::wire::requests::{self, DescribeClusterView, FindCoordinatorView, MetadataRequestView};
use crate::wire::{read_frame, FrameError, RequestHeader, WireError};

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
            _ => None,
        }
    }
}

/// An answer the write task will send, in the order the requests came.
enum Pending {
    Ready(Bytes),
    Local(JoinHandle<Result<Bytes, CodecError>>),
    Upstream(Reply),
}

struct Session {
    proxy: Arc<Proxy>,
    listener: ListenerKind,
    /// Upstream connections of this client, one per target; the client's
    /// own correlation ids travel on them unchanged.
    upstreams: HashMap<forward::Target, Arc<UpstreamConn>>,
}

/// Serves one client until it disconnects or breaks the protocol.
pub async fn serve(proxy: Arc<Proxy>, stream: TcpStream, peer: SocketAddr, listener: ListenerKind) {
    let listener_label = match listener {
        ListenerKind::Bootstrap => "bootstrap",
        ListenerKind::Broker(_) => "broker",
    };
    metrics::counter!(m::CLIENT_CONNECTIONS_TOTAL, "listener" => listener_label).increment(1);
    metrics::gauge!(m::CLIENT_CONNECTIONS).increment(1.0);
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::channel(proxy.config.proxy.max_in_flight);
    let mut session = Session {
        proxy,
        listener,
        upstreams: HashMap::new(),
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
        mut read: OwnedReadHalf,
        tx: mpsc::Sender<Pending>,
    ) -> Result<(), SessionEnd> {
        let max_frame = self.proxy.config.proxy.max_frame_bytes;
        while let Some(frame) = read_frame(&mut read, max_frame).await? {
            let header = RequestHeader::parse(frame.body())?;
            let body = &frame.body()[header.body_offset..];
            let unsupported = || SessionEnd::Unsupported {
                api_key: header.api_key,
                version: header.api_version,
            };
            let spec = handlers::spec(header.api_key).ok_or_else(unsupported)?;
            // ApiVersions must answer any version (with an error when too new).
            if spec.key != ApiKey::ApiVersions
                && !(spec.min..=spec.max).contains(&header.api_version)
            {
                return Err(unsupported());
            }
            let pending = match spec.handling {
                Handling::Local => {
                    metrics::counter!(m::REQUESTS, "path" => "local").increment(1);
                    self.local(spec.key, header, body)?
                }
                Handling::Forward(target) => {
                    metrics::counter!(m::REQUESTS, "path" => "forward").increment(1);
                    let expect_response =
                        spec.key != ApiKey::Produce || requests::produce_acks(&header, body)? != 0;
                    let upstream = self.upstream(target).await?;
                    match upstream
                        .send(&frame.0, header.correlation_id, expect_response)
                        .await?
                    {
                        Some(reply) => Pending::Upstream(reply),
                        // acks=0: the client expects no answer at all.
                        None => continue,
                    }
                }
            };
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

    /// This client's connection to the upstream broker for `target`,
    /// opened on first use.
    async fn upstream(&mut self, target: forward::Target) -> Result<Arc<UpstreamConn>, SessionEnd> {
        if let Some(conn) = self.upstreams.get(&target) {
            if conn.is_closed() {
                return Err(UpstreamError::Lost {
                    addr: conn.addr().to_owned(),
                    reason: "closed".into(),
                }
                .into());
            }
            return Ok(conn.clone());
        }
        let (cluster_idx, address) =
            forward::resolve(&self.proxy, self.listener, target).map_err(SessionEnd::NoRoute)?;
        let cluster = self.proxy.cluster(cluster_idx);
        let conn =
            UpstreamConn::connect(&address, cluster.connect_timeout(), cluster.max_frame()).await?;
        self.upstreams.insert(target, conn.clone());
        Ok(conn)
    }
}

async fn write_responses(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Pending>,
) -> Result<(), SessionEnd> {
    while let Some(pending) = rx.recv().await {
        let bytes = match pending {
            Pending::Ready(bytes) => bytes,
            Pending::Local(task) => task
                .await
                .map_err(|e| SessionEnd::Handler(e.to_string()))??,
            Pending::Upstream(reply) => {
                reply
                    .await
                    .map_err(|_| UpstreamError::Lost {
                        addr: "upstream".into(),
                        reason: "connection task ended".into(),
                    })??
                    .0
            }
        };
        write.write_all(&bytes).await.map_err(SessionEnd::Write)?;
    }
    Ok(())
}
