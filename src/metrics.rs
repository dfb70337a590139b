//! Prometheus text at `proxy.metrics_listen`/metrics.
//!
//! The recorder is the `metrics` facade's; this file only installs it and
//! answers HTTP GETs with a minimal, bounded responder.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Client connections currently open (gauge).
pub const CLIENT_CONNECTIONS: &str = "switchyard_client_connections";
/// Client connections accepted (counter, label `listener`).
pub const CLIENT_CONNECTIONS_TOTAL: &str = "switchyard_client_connections_total";
/// Client connections refused because a connection cap was reached
/// (counter).
pub const CLIENT_CONNECTIONS_REFUSED: &str = "switchyard_client_connections_refused_total";
/// Client connections closed for sending something that is not Kafka
/// (counter, label `reason`).
pub const CLIENT_PROTOCOL_ERRORS: &str = "switchyard_client_protocol_errors_total";
/// Requests handled (counter, label `path`: `forward` or `local`).
pub const REQUESTS: &str = "switchyard_requests_total";
/// Connections to upstream brokers currently open (gauge).
/// Requests whose partitions lived on several upstream brokers, split into
/// one request per broker and their answers merged.
pub const SPLIT_REQUESTS: &str = "switchyard_split_requests_total";
pub const UPSTREAM_CONNECTIONS: &str = "switchyard_upstream_connections";
/// Upstream requests that failed: connect, lost connection, timeout
/// (counter).
pub const UPSTREAM_ERRORS: &str = "switchyard_upstream_errors_total";
/// Client SASL exchanges that failed: wrong password, unknown user,
/// unsupported mechanism, malformed messages (counter).
pub const CLIENT_AUTH_FAILURES: &str = "switchyard_client_auth_failures_total";
/// Client connections closed during the TLS handshake (counter).
pub const CLIENT_TLS_FAILURES: &str = "switchyard_client_tls_failures_total";

pub fn install() -> Option<PrometheusHandle> {
    match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            None
        }
    }
}

/// Serves `GET /metrics`; anything else gets a 404.
pub async fn serve(listener: TcpListener, handle: Option<PrometheusHandle>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut head = [0u8; 1024];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut head))
                    .await;
            let Ok(Ok(n)) = read else { return };
            let wants_metrics = head[..n].starts_with(b"GET /metrics");
            let (status, body) = match (&handle, wants_metrics) {
                (Some(h), true) => ("200 OK", h.render()),
                (None, true) => ("200 OK", String::new()),
                (_, false) => ("404 Not Found", "try /metrics\n".to_owned()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
