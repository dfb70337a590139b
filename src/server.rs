//! The accept loops and background tasks of a running proxy: the bootstrap
//! listener, virtual broker listeners, per-cluster refresh, metrics.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::admin;
use crate::config::Config;
use crate::metrics;
use crate::proxy::{ListenerKind, Proxy};
use crate::session;
use crate::state::State;
use crate::upstream::Cluster;

/// Binds a listening socket synchronously, so callers can bind while
/// holding a lock and know the port is open when they return.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    TcpListener::from_std(std_listener)
}

/// Caps on client connections, in all and per source address, shared by
/// every listener: one address cannot take the proxy from everyone else.
pub struct ConnectionLimits {
    max: usize,
    per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it frees the place.
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(max: usize, per_ip: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max,
            per_ip,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A place for a connection from `ip`, or `None` when a cap is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = open.1.get(&ip).copied().unwrap_or(0);
        if open.0 >= self.max || from_ip >= self.per_ip {
            return None;
        }
        open.0 += 1;
        open.1.insert(ip, from_ip + 1);
        Some(Slot {
            limits: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

/// Accepts clients forever; each one gets its own session task, as long
/// as the connection caps allow.
pub async fn accept_loop(proxy: Arc<Proxy>, listener: TcpListener, kind: ListenerKind) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(slot) = proxy.connections.admit(peer.ip()) else {
                    ::metrics::counter!(metrics::CLIENT_CONNECTIONS_REFUSED).increment(1);
                    tracing::debug!(%peer, "connection refused: connection cap reached");
                    continue; // dropping the stream closes it
                };
                stream.set_nodelay(true).ok();
                let proxy = proxy.clone();
                tokio::spawn(async move {
                    match proxy.security.accept(stream).await {
                        Ok(stream) => session::serve(proxy, stream, peer, kind).await,
                        Err(crate::auth::AuthError::ClosedBeforeTls) => {
                            tracing::debug!(%peer, "client closed before the TLS handshake");
                        }
                        Err(e) => {
                            ::metrics::counter!(metrics::CLIENT_TLS_FAILURES).increment(1);
                            tracing::info!(%peer, error = %e, "closing client connection");
                        }
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, keep going.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Keeps one cluster's view fresh. An unreachable cluster is reported by
/// name and address when it goes down and when it comes back, and retried
/// every couple of seconds meanwhile; the proxy never exits over it.
async fn refresh_loop(proxy: Arc<Proxy>, cluster: Arc<Cluster>) {
    let every = proxy.config.proxy.metadata_refresh;
    let retry = every.min(Duration::from_secs(2));
    let mut was_up: Option<bool> = None;
    loop {
        match cluster.fetch_metadata(None, false).await {
            Ok(_) => {
                proxy.sync_listeners();
                if was_up != Some(true) {
                    let brokers = cluster.with_view(|v| v.brokers.len());
                    tracing::info!(cluster = cluster.name(), brokers, "cluster view refreshed");
                }
                was_up = Some(true);
                tokio::time::sleep(every).await;
            }
            Err(e) => {
                if was_up != Some(false) {
                    tracing::warn!(
                        cluster = cluster.name(),
                        error = %e,
                        "upstream cluster unreachable; retrying every {retry:?}"
                    );
                }
                was_up = Some(false);
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// Runs a proxy until it is told to stop (SIGINT or SIGTERM).
pub async fn run(config: Config) -> anyhow::Result<()> {
    let metrics_handle = metrics::install();
    let bootstrap = bind(config.proxy.listen).with_context(|| {
        format!(
            "cannot listen on proxy.listen = {}; is another process using the port?",
            config.proxy.listen
        )
    })?;
    if let Some(addr) = config.proxy.metrics_listen {
        let listener = bind(addr).with_context(|| {
            format!("cannot listen on proxy.metrics_listen = {addr}; is the port free?")
        })?;
        tokio::spawn(metrics::serve(listener, metrics_handle));
    }
    let state = State::load(&config.proxy.state_file)?;
    let admin_path = config.proxy.admin_socket.clone();
    let admin = admin::bind(&admin_path).with_context(|| {
        format!(
            "cannot listen on proxy.admin_socket = {}; is another proxy using it?",
            admin_path.display()
        )
    })?;
    let proxy = Proxy::new(config, state)?;
    tokio::spawn(admin::serve(proxy.clone(), admin));
    tracing::info!(
        listen = %proxy.config.proxy.listen,
        clusters = proxy.clusters.len(),
        "switchyard listening"
    );
    for cluster in &proxy.clusters {
        tokio::spawn(refresh_loop(proxy.clone(), cluster.clone()));
    }
    tokio::spawn(accept_loop(
        proxy.clone(),
        bootstrap,
        ListenerKind::Bootstrap,
    ));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("switchyard stopping");
    let _ = std::fs::remove_file(&admin_path);
    Ok(())
}
