//! The accept loops and background tasks of a running proxy: the bootstrap
//! listener, virtual broker listeners, per-cluster refresh, metrics; and
//! the drain when SIGTERM or SIGINT comes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::http::{self, Observed};
use super::listeners::bind;
use super::proxy::{ListenerKind, Proxy};
use super::reload;
use super::shutdown::{DrainEnd, DrainReport};
use super::views;
use crate::config::{Config, StateConfig};
use crate::metrics;
use crate::ops::admin;
use crate::ops::fleet::Fleet;
use crate::ops::state::{StateFile, StateStore};
use crate::ops::state_topic::StateTopic;
use crate::session;

/// Accepts clients until the proxy drains (the listener closes then); each
/// one gets its own session task, as long as the connection caps allow.
pub async fn accept_loop(proxy: Arc<Proxy>, listener: TcpListener, kind: ListenerKind) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = proxy.shutdown().signalled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(slot) = proxy.connections().admit(peer.ip()) else {
                    ::metrics::counter!(metrics::CLIENT_CONNECTIONS_REFUSED).increment(1);
                    tracing::debug!(%peer, "connection refused: connection cap reached");
                    continue; // dropping the stream closes it
                };
                stream.set_nodelay(true).ok();
                let proxy = proxy.clone();
                let open = proxy.shutdown().open_connection();
                tokio::spawn(async move {
                    let accepted = tokio::select! {
                        biased;
                        // Nothing asked yet: nothing to finish.
                        () = proxy.shutdown().signalled() => return,
                        accepted = async { proxy.security().accept(stream).await } => accepted,
                    };
                    match accepted {
                        Ok(stream) => session::serve(proxy, stream, peer, kind, &open).await,
                        Err(crate::auth::AuthError::ClosedBeforeTls) => {
                            tracing::debug!(%peer, "client closed before the TLS handshake");
                        }
                        Err(e) => {
                            ::metrics::counter!(metrics::CLIENT_TLS_FAILURES).increment(1);
                            tracing::info!(%peer, error = %e, "closing client connection");
                        }
                    }
                    drop(open);
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

/// Renews this instance's lease in the state topic every `every`; says so
/// once when the topic cannot be reached and once when it can again.
async fn membership_loop(proxy: Arc<Proxy>, topic: Arc<StateTopic>, every: Duration) {
    let config = &proxy.config().proxy;
    let address = format!("{}:{}", config.advertised_host, config.listen.port());
    let mut was_ok = true;
    loop {
        match topic.heartbeat(&address, proxy.connections().open()).await {
            Ok(()) if !was_ok => {
                tracing::info!("the state topic is reachable again; lease renewed");
                was_ok = true;
            }
            Ok(()) => {}
            Err(e) => {
                if was_ok {
                    tracing::warn!(error = %e, "cannot renew this instance's lease in the state topic; retrying");
                }
                was_ok = false;
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Runs a proxy until it is told to stop (SIGINT or SIGTERM), then drains
/// it (see [`drain`]).
pub async fn run(config: Config) -> anyhow::Result<()> {
    let observed = Observed::new(metrics::install(&config.proxy.instance_id));
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
        tokio::spawn(http::serve(listener, observed.clone()));
    }
    let (store, shared): (Arc<dyn StateStore>, _) = match &config.state {
        StateConfig::File => (
            Arc::new(StateFile::new(config.proxy.state_file.clone())),
            None,
        ),
        StateConfig::Kafka(k) => {
            let topic = Arc::new(StateTopic::new(&config, k)?);
            (topic.clone(), Some((topic, k.lease_interval)))
        }
    };
    // Read to its end before any client is served: a restarted instance
    // never routes by stale state.
    let state = store.load().await?;
    let admin_path = config.proxy.admin_socket.clone();
    crate::config::prepare_socket_dir(&admin_path).with_context(|| {
        format!(
            "cannot prepare the directory of proxy.admin_socket = {}",
            admin_path.display()
        )
    })?;
    let admin = admin::bind(&admin_path).with_context(|| {
        format!(
            "cannot listen on proxy.admin_socket = {}",
            admin_path.display()
        )
    })?;
    let proxy = Proxy::new(config, store, state, |proxy, listener, kind| {
        tokio::spawn(accept_loop(proxy, listener, kind))
    })?;
    let fleet = shared.map(|(topic, every)| {
        tokio::spawn(membership_loop(proxy.clone(), topic.clone(), every));
        let fleet = Fleet::new(topic);
        tokio::spawn(fleet.clone().follow(proxy.clone()));
        fleet
    });
    tokio::spawn(admin::serve(proxy.clone(), fleet.clone(), admin));
    tracing::info!(
        listen = %proxy.config().proxy.listen,
        clusters = proxy.cluster_count(),
        "switchyard listening"
    );
    for cluster in proxy.clusters() {
        tokio::spawn(views::refresh_loop(proxy.clone(), cluster.clone()));
    }
    tokio::spawn(crate::ops::drain::refresh_loop(proxy.clone()));
    tokio::spawn(accept_loop(
        proxy.clone(),
        bootstrap,
        ListenerKind::Bootstrap,
    ));
    observed.serving(proxy.clone(), fleet);

    let mut stop = StopSignals::new(proxy.clone())?;
    stop.next().await;
    let report = drain(&proxy, &mut stop).await;
    if report.cut_short() {
        tracing::warn!("{}", report.line());
    } else {
        tracing::info!("{}", report.line());
    }
    let _ = std::fs::remove_file(&admin_path);
    Ok(())
}

/// SIGTERM and SIGINT, each time either comes. SIGHUP reloads the config
/// (as `switchyard reload` does) and waits on.
struct StopSignals {
    term: Signal,
    int: Signal,
    hup: Signal,
    proxy: Arc<Proxy>,
}

impl StopSignals {
    fn new(proxy: Arc<Proxy>) -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            proxy,
        })
    }

    async fn next(&mut self) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => {
                    // Success is logged by the reload itself.
                    if let Err(e) = reload::reload(&self.proxy).await {
                        tracing::warn!("SIGHUP: config reload {e}");
                    }
                }
            }
        }
    }
}

/// Stops accepting and reading, and waits until every client connection
/// has had the answers it awaits and closed; the grace period, or another
/// signal, ends the wait sooner. The connections still open close when
/// the process exits.
async fn drain(proxy: &Proxy, stop: &mut StopSignals) -> DrainReport {
    let started = Instant::now();
    let grace = proxy.config().proxy.shutdown_grace;
    let open = proxy.shutdown().begin();
    tracing::info!(
        "draining: stopped accepting, {open} client connections open, grace {}s",
        grace.as_secs_f64()
    );
    let end = tokio::select! {
        () = proxy.shutdown().all_closed() => DrainEnd::Done,
        () = tokio::time::sleep(grace) => DrainEnd::GraceExpired(grace),
        () = stop.next() => DrainEnd::SecondSignal,
    };
    proxy.shutdown().report(started.elapsed(), end)
}
