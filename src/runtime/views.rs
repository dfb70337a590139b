//! Each upstream cluster's view, kept fresh by a task of its own: started
//! for every configured cluster at start-up, and for each one a reload
//! adds.

use std::sync::Arc;
use std::time::Duration;

use super::proxy::Proxy;
use crate::upstream::Cluster;

/// Keeps one cluster's view fresh. An unreachable cluster is reported by
/// name and address when it goes down and when it comes back, and retried
/// every couple of seconds meanwhile; the proxy never exits over it.
pub async fn refresh_loop(proxy: Arc<Proxy>, cluster: Arc<Cluster>) {
    let every = proxy.config().proxy.metadata_refresh;
    let retry = every.min(Duration::from_secs(2));
    let mut was_up: Option<bool> = None;
    loop {
        match cluster.fetch_metadata(None, false).await {
            Ok(_) => {
                cluster.meters().reachable(true);
                proxy.sync_listeners();
                if was_up != Some(true) {
                    let brokers = cluster.with_view(|v| v.brokers.len());
                    tracing::info!(cluster = cluster.name(), brokers, "cluster view refreshed");
                }
                was_up = Some(true);
                tokio::time::sleep(every).await;
            }
            Err(e) => {
                cluster.meters().reachable(false);
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
