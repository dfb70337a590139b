//! `[proxy.tls]` and `[clusters.NAME.tls]`. Only the keys are checked here;
//! the files they name are read where TLS is set up (`auth/tls.rs`,
//! `upstream/security.rs`).

use super::error::{invalid, ConfigError};
use super::raw::{RawClusterTls, RawProxyTls};
use super::typed::{ClientTlsConfig, UpstreamTlsConfig};

pub(super) fn client(raw: RawProxyTls) -> ClientTlsConfig {
    ClientTlsConfig {
        cert: raw.cert,
        key: raw.key,
        client_ca: raw.client_ca,
    }
}

pub(super) fn upstream(
    cluster: &str,
    raw: RawClusterTls,
) -> Result<UpstreamTlsConfig, ConfigError> {
    if raw.cert.is_some() != raw.key.is_some() {
        return Err(invalid(
            format!("clusters.{cluster}.tls"),
            "cert and key go together (mTLS); set both or neither",
        ));
    }
    if raw
        .server_name
        .as_deref()
        .is_some_and(|n| n.trim().is_empty())
    {
        return Err(invalid(
            format!("clusters.{cluster}.tls.server_name"),
            "must not be empty; leave it out to use each broker's host name",
        ));
    }
    Ok(UpstreamTlsConfig {
        ca: raw.ca,
        server_name: raw.server_name,
        cert: raw.cert,
        key: raw.key,
    })
}
