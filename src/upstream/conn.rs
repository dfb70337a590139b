//! One TCP connection to one upstream broker.
//!
//! Requests are pipelined; Kafka answers them in order, so a reader task
//! hands each response to the oldest waiter. When the broker goes away every
//! waiter is failed at once, so nothing upstream can leave a client hanging.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::error::UpstreamError;
use super::security::{UpstreamSecurity, UpstreamWrite};
use crate::metrics::ClusterMeters;
use crate::wire::{bounded, codec};
use crate::wire::{read_frame, Frame};

/// How much an upstream connection reads ahead.
const READ_AHEAD: usize = 16 * 1024;

/// The answer to one request, delivered to whoever sent it.
pub type Reply = oneshot::Receiver<Result<Frame, UpstreamError>>;

struct Waiter {
    correlation_id: i32,
    reply: oneshot::Sender<Result<Frame, UpstreamError>>,
    api: i16,
    version: i16,
    sent: Instant,
}

pub struct UpstreamConn {
    addr: String,
    writer: Mutex<UpstreamWrite>,
    waiters: mpsc::UnboundedSender<Waiter>,
    closed: Arc<AtomicBool>,
    next_correlation_id: AtomicI32,
    meters: Arc<ClusterMeters>,
}

impl Drop for UpstreamConn {
    fn drop(&mut self) {
        self.meters.connections.decrement(1.0);
    }
}

impl UpstreamConn {
    /// Connects to `addr` ("host:port"), then sets up TLS and SASL as the
    /// cluster's `security` says, before anything else is sent;
    /// `max_frame` bounds each response; what it carries is counted in
    /// `meters`, its cluster's.
    pub async fn connect(
        addr: &str,
        timeout: Duration,
        max_frame: usize,
        security: &UpstreamSecurity,
        meters: Arc<ClusterMeters>,
    ) -> Result<Arc<UpstreamConn>, UpstreamError> {
        let connect_error = |reason: String| UpstreamError::Connect {
            addr: addr.to_owned(),
            reason,
        };
        let connected = async {
            let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| connect_error(format!("no answer within {timeout:?}")))?
                .map_err(|e| connect_error(e.to_string()))?;
            stream.set_nodelay(true).ok();
            security.secure(stream, addr, timeout, max_frame).await
        };
        let stream = connected.await.inspect_err(|_| meters.error("connect"))?;
        meters.connections.increment(1.0);
        let (read, write) = super::security::split(stream);
        // Read ahead, so that an answer's size prefix and header come with
        // its first bytes rather than in a system call of their own.
        let mut read = tokio::io::BufReader::with_capacity(READ_AHEAD, read);
        let (waiters, mut waiting) = mpsc::unbounded_channel::<Waiter>();
        let closed = Arc::new(AtomicBool::new(false));
        let conn = Arc::new(UpstreamConn {
            addr: addr.to_owned(),
            writer: Mutex::new(write),
            waiters,
            closed: closed.clone(),
            next_correlation_id: AtomicI32::new(1),
            meters: meters.clone(),
        });
        let addr = addr.to_owned();
        tokio::spawn(async move {
            let reason = loop {
                let frame = match read_frame(&mut read, max_frame).await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break "closed by the broker".to_owned(),
                    Err(e) => break e.to_string(),
                };
                let Some(waiter) = waiting.recv().await else {
                    break "no request is waiting".to_owned();
                };
                meters.received.increment(frame.0.len() as u64);
                meters.api.answered(waiter.api, waiter.sent.elapsed());
                count_error_codes(&meters, waiter.api, waiter.version, &frame);
                if frame.response_correlation_id() != Some(waiter.correlation_id) {
                    let reason = format!(
                        "response correlation id {:?} does not match request {}",
                        frame.response_correlation_id(),
                        waiter.correlation_id
                    );
                    let _ = waiter.reply.send(Err(UpstreamError::Protocol {
                        addr: addr.clone(),
                        reason: reason.clone(),
                    }));
                    break reason;
                }
                let _ = waiter.reply.send(Ok(frame));
            };
            closed.store(true, Ordering::Release);
            tracing::debug!(%addr, %reason, "upstream connection ended");
            waiting.close();
            if !waiting.is_empty() {
                meters.error("lost");
            }
            while let Ok(waiter) = waiting.try_recv() {
                let _ = waiter.reply.send(Err(UpstreamError::Lost {
                    addr: addr.clone(),
                    reason: reason.clone(),
                }));
            }
        });
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn lost(&self, reason: impl Into<String>) -> UpstreamError {
        UpstreamError::Lost {
            addr: self.addr.clone(),
            reason: reason.into(),
        }
    }

    /// Sends one whole request frame. When a response is expected, returns
    /// where it will arrive; `correlation_id` is the one inside the frame.
    pub async fn send(
        &self,
        frame: &[u8],
        correlation_id: i32,
        expect_response: bool,
    ) -> Result<Option<Reply>, UpstreamError> {
        if self.is_closed() {
            return Err(self.lost("already closed"));
        }
        let (api, version) = (
            Frame::request_api_key(frame),
            Frame::request_api_version(frame),
        );
        self.meters.api.request(api);
        self.meters.sent.increment(frame.len() as u64);
        let mut writer = self.writer.lock().await;
        // The waiter is queued before the bytes leave, under the same lock,
        // so waiters stand in exactly the order their requests were written.
        let reply = if expect_response {
            let (tx, rx) = oneshot::channel();
            self.waiters
                .send(Waiter {
                    correlation_id,
                    reply: tx,
                    api,
                    version,
                    sent: Instant::now(),
                })
                .map_err(|_| self.lost("reader stopped"))?;
            Some(rx)
        } else {
            None
        };
        writer
            .write_all(frame)
            .await
            .map_err(|e| self.lost(e.to_string()))?;
        // TLS holds what it encrypts until flushed.
        writer.flush().await.map_err(|e| self.lost(e.to_string()))?;
        Ok(reply)
    }

    /// A request the proxy makes on its own behalf: encode, send, await the
    /// answer (bounded by `timeout`) and decode it.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, UpstreamError> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let frame: Bytes = codec::request_frame(api, version, correlation_id, request)
            .map_err(|e| UpstreamError::from((self.addr.clone(), e)))?;
        let reply = self
            .send(&frame, correlation_id, true)
            .await?
            .expect("a response is expected");
        let frame = match tokio::time::timeout(timeout, reply).await {
            Err(_) => {
                self.meters.error("timeout");
                return Err(UpstreamError::Timeout {
                    addr: self.addr.clone(),
                    timeout,
                });
            }
            Ok(Err(_)) => return Err(self.lost("reader stopped")),
            Ok(Ok(result)) => result?,
        };
        codec::decode_response(api, version, &frame)
            .map_err(|e| UpstreamError::from((self.addr.clone(), e)))
    }
}

/// Counts the error codes an upstream answer carries (see
/// [`crate::metrics::UPSTREAM_ERROR_CODES`]); an answer that does not walk
/// is left to whoever decodes it to report.
fn count_error_codes(meters: &ClusterMeters, api: i16, version: i16, frame: &Frame) {
    let Ok(key) = ApiKey::try_from(api) else {
        return;
    };
    let Ok(start) = codec::body_start(key, version, frame) else {
        return;
    };
    bounded::error_codes(key, version, &frame.0[start..], &mut |code| {
        meters.error_code(api, code)
    });
}
