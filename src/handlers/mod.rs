//! The APIs the proxy answers itself (ApiVersions, Metadata and
//! DescribeCluster, FindCoordinator), and the upstream address a forwarded
//! request's target names. Which API is which is the table in
//! [`crate::plan::classify`]. A handler opens no listener: it returns the
//! virtual brokers its answer names ([`metadata::Announced`]), and the
//! session has them listening before the answer goes out.

pub mod api_versions;
pub mod coordinator;
pub mod forward;
pub mod metadata;

use crate::plan::classify::{ApiSpec, RouteClass};
use crate::runtime::proxy::Proxy;

/// The version range the proxy advertises for `spec`: its own, narrowed by
/// every cluster that has been reached. `None` when some reached cluster
/// cannot serve the API at all.
pub fn advertised_range(proxy: &Proxy, spec: &ApiSpec) -> Option<(i16, i16)> {
    if spec.class == RouteClass::Local {
        // Answered by the proxy in the client's version, whatever version
        // it speaks upstream.
        return Some((spec.min, spec.max));
    }
    let mut range = (spec.min, spec.max);
    for cluster in proxy.clusters() {
        let theirs = cluster.with_view(|v| {
            v.api_versions
                .as_ref()
                .map(|t| t.get(&(spec.key as i16)).copied())
        });
        match theirs {
            None => {} // never reached: says nothing yet
            Some(None) => return None,
            Some(Some((min, max))) => {
                range = (range.0.max(min), range.1.min(max));
            }
        }
    }
    (range.0 <= range.1).then_some(range)
}
