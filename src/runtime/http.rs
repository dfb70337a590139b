//! HTTP on `proxy.metrics_listen`: `/metrics` (Prometheus text),
//! `/health` (the process is up), `/ready` (the proxy serves clients as it
//! should) and `/status.json` (what `switchyard status --json` prints).
//! Exact paths; anything else is a 404.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use super::proxy::Proxy;
use crate::ops::admin;

/// What the HTTP answers read; the proxy is set once it is built, the
/// listeners flag once its listeners are open.
#[derive(Default)]
pub struct Observed {
    metrics: Option<PrometheusHandle>,
    proxy: OnceLock<Arc<Proxy>>,
    listening: AtomicBool,
}

impl Observed {
    pub fn new(metrics: Option<PrometheusHandle>) -> Arc<Observed> {
        Arc::new(Observed {
            metrics,
            ..Observed::default()
        })
    }

    /// The proxy is built and its listeners are open.
    pub fn serving(&self, proxy: Arc<Proxy>) {
        let _ = self.proxy.set(proxy);
        self.listening.store(true, Ordering::Release);
    }

    /// Why the proxy is not ready, if it is not: the first of state not
    /// loaded, a drain begun, the state no longer caught up, a cluster
    /// whose view never loaded, listeners not open.
    fn unready(&self) -> Option<String> {
        let Some(proxy) = self.proxy.get() else {
            return Some("the state is still loading".into());
        };
        if proxy.shutdown().is_draining() {
            return Some("draining: this instance is stopping".into());
        }
        if proxy.store().closed() {
            return Some(
                "this instance's lease in the state topic lapsed; it is catching up".into(),
            );
        }
        let unloaded: Vec<&str> = proxy
            .clusters()
            .filter(|c| c.with_view(|v| v.api_versions.is_none()))
            .map(|c| c.name())
            .collect();
        if !unloaded.is_empty() {
            return Some(format!(
                "no view loaded yet of cluster(s) {}",
                unloaded.join(", ")
            ));
        }
        if !self.listening.load(Ordering::Acquire) {
            return Some("the listeners are not open yet".into());
        }
        None
    }
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, observed: Arc<Observed>) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/status.json", get(status))
        .fallback(not_found)
        .with_state(observed);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "the metrics listener stopped");
    }
}

async fn metrics(State(observed): State<Arc<Observed>>) -> Response {
    let body = observed
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(observed): State<Arc<Observed>>) -> Response {
    match observed.unready() {
        None => (StatusCode::OK, "ready\n".to_owned()).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn status(State(observed): State<Arc<Observed>>) -> Response {
    match observed.proxy.get() {
        Some(proxy) => axum::Json(admin::status(proxy).await).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the state is still loading\n",
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found; try /metrics, /health, /ready or /status.json\n",
    )
        .into_response()
}
