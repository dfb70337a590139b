//! HTTP on `proxy.metrics_listen`: `/metrics` (Prometheus text),
//! `/health` (the process is up), `/ready` (the proxy serves clients as it
//! should), `/status.json` (what `switchyard status --json` prints), and
//! the console: the page at `/`, what it reads (`/console.json`,
//! `/topics.json`) and, when `[proxy.console] actions` is on, what it
//! asks for (`POST /console/action`). Exact paths; anything else is a 404.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use tokio::net::TcpListener;

use super::proxy::Proxy;
use crate::ops::admin::{self, AdminRequest, Answer};
use crate::ops::console::{self, TrafficRates};
use crate::ops::fleet::Fleet;

/// The console page: one file, its styles and script inline.
const CONSOLE_PAGE: &str = include_str!("console.html");

/// What the HTTP answers read; the proxy is set once it is built, the
/// listeners flag once its listeners are open.
#[derive(Default)]
pub struct Observed {
    metrics: Option<PrometheusHandle>,
    proxy: OnceLock<Arc<Proxy>>,
    /// The instances sharing a state topic, when they do: the console's
    /// flips run across them, as the admin socket's do.
    fleet: OnceLock<Option<Arc<Fleet>>>,
    listening: AtomicBool,
    traffic: Mutex<TrafficRates>,
}

impl Observed {
    pub fn new(metrics: Option<PrometheusHandle>) -> Arc<Observed> {
        Arc::new(Observed {
            metrics,
            ..Observed::default()
        })
    }

    /// The proxy is built and its listeners are open.
    pub fn serving(&self, proxy: Arc<Proxy>, fleet: Option<Arc<Fleet>>) {
        let _ = self.fleet.set(fleet);
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
        .route("/", get(console_page))
        .route("/console.json", get(console_overview))
        .route("/topics.json", get(console_topics))
        .route("/console/action", post(console_action))
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

/// The answer while the proxy is not built yet.
fn loading() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready: the state is still loading\n",
    )
        .into_response()
}

async fn status(State(observed): State<Arc<Observed>>) -> Response {
    match observed.proxy.get() {
        Some(proxy) => axum::Json(admin::status(proxy).await).into_response(),
        None => loading(),
    }
}

async fn console_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page runs only its own inline script and talks only to
            // this listener.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src data:; frame-ancestors 'none'",
            ),
        ],
        CONSOLE_PAGE,
    )
        .into_response()
}

/// How the console's actions authenticate: HTTP Basic, against the
/// `[[users]]` of `[proxy.sasl]`, when there are users and actions.
fn console_auth(proxy: &Proxy) -> Option<&'static str> {
    let on = proxy.config().proxy.console_actions && proxy.security().sasl_enabled();
    on.then_some("basic")
}

async fn console_overview(State(observed): State<Arc<Observed>>) -> Response {
    let Some(proxy) = observed.proxy.get() else {
        return loading();
    };
    let text = observed
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    let traffic = observed
        .traffic
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .read(Instant::now(), console::traffic(&text));
    let actions = proxy.config().proxy.console_actions;
    axum::Json(console::overview(proxy, &traffic, actions, console_auth(proxy)).await)
        .into_response()
}

#[derive(Deserialize)]
struct TopicsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_page")]
    limit: usize,
}

fn default_page() -> usize {
    100
}

async fn console_topics(
    State(observed): State<Arc<Observed>>,
    Query(query): Query<TopicsQuery>,
) -> Response {
    match observed.proxy.get() {
        Some(proxy) => {
            axum::Json(console::topics(proxy, &query.q, query.offset, query.limit)).into_response()
        }
        None => loading(),
    }
}

/// An action's refusal: the status and the admin answer's error.
fn refuse(status: StatusCode, why: impl std::fmt::Display) -> Response {
    (status, axum::Json(Answer::refused(why))).into_response()
}

/// `POST /console/action`: a flip or group move (or its dry run), as the
/// admin socket takes it. Refused unless actions are on, unless the body
/// says it is JSON (so that no other site's form can post here), and,
/// with SASL users configured, unless HTTP Basic names one of them who may
/// use the topic or group.
async fn console_action(
    State(observed): State<Arc<Observed>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(proxy) = observed.proxy.get() else {
        return loading();
    };
    if !proxy.config().proxy.console_actions {
        return refuse(
            StatusCode::FORBIDDEN,
            "the console is read-only; set [proxy.console] actions = true to flip from it",
        );
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request as Content-Type: application/json",
        );
    }
    let request: AdminRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("malformed request ({e})")),
    };
    let (what, name) = match &request {
        AdminRequest::Flip { topic, .. } => ("topic", topic.clone()),
        AdminRequest::FlipGroup { group, .. } => ("group", group.clone()),
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the console runs flip and flip-group only; use the admin socket for the rest",
            )
        }
    };
    let user = if proxy.security().sasl_enabled() {
        match login(proxy, &headers).await {
            Ok(user) => Some(user),
            Err(why) => {
                let mut answer = refuse(StatusCode::UNAUTHORIZED, why);
                // The page says it asks itself, so the browser's own login
                // prompt is left out for it.
                if !headers.contains_key("x-switchyard-console") {
                    answer.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        header::HeaderValue::from_static(
                            "Basic realm=\"switchyard\", charset=\"UTF-8\"",
                        ),
                    );
                }
                return answer;
            }
        }
    } else {
        None
    };
    if let Some(user) = &user {
        let may = match what {
            "topic" => user.may_use_topic(&name),
            _ => user.may_use_group(&name),
        };
        if !may {
            return refuse(
                StatusCode::FORBIDDEN,
                format!("user '{}' may not use {what} '{name}'", user.name),
            );
        }
    }
    let dry_run = matches!(
        request,
        AdminRequest::Flip { dry_run: true, .. } | AdminRequest::FlipGroup { dry_run: true, .. }
    );
    if !dry_run {
        tracing::info!(
            user = user.as_ref().map(|u| u.name.as_str()),
            what,
            name,
            "console action"
        );
    }
    let fleet = observed.fleet.get().and_then(Option::as_ref);
    axum::Json(admin::run(proxy, fleet, request).await).into_response()
}

/// The user HTTP Basic names, checked against the SASL users; or why
/// not.
async fn login(
    proxy: &Proxy,
    headers: &HeaderMap,
) -> Result<Arc<crate::auth::users::User>, &'static str> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let Some((name, password)) = basic.as_deref().and_then(|b| b.split_once(':')) else {
        return Err("sign in: actions need one of the proxy's SASL users (HTTP Basic)");
    };
    let security = proxy.security();
    let (name, password) = (name.to_owned(), password.to_owned());
    tokio::task::spawn_blocking(move || security.login(&name, &password))
        .await
        .ok()
        .flatten()
        .ok_or("wrong user name or password")
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found; try /, /metrics, /health, /ready or /status.json\n",
    )
        .into_response()
}
