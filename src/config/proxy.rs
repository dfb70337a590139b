//! `[proxy]`: listen addresses, names, limits and timeouts; then, in a second
//! step, the keys about clients' security (`max_preauth_frame_bytes`,
//! `[proxy.tls]`, `[proxy.sasl]`).

use std::net::SocketAddr;
use std::time::Duration;

use super::error::{invalid, ConfigError, Problems};
use super::paths::default_admin_socket;
use super::raw::RawProxy;
use super::typed::{ClientSaslConfig, ProxyConfig};
use super::{sasl, tls};

/// `[proxy]` with everything but its client security checked. That part waits
/// for [`CheckedProxy::with_client_security`] so that its problems are
/// listed after those of the clusters and routes.
pub(super) struct CheckedProxy {
    raw: RawProxy,
    pub(super) listen: SocketAddr,
    pub(super) metrics_listen: Option<SocketAddr>,
}

impl CheckedProxy {
    pub(super) fn broker_port_base(&self) -> u16 {
        self.raw.broker_port_base
    }
}

/// `None` when an address does not parse; the limits' problems are
/// recorded either way.
pub(super) fn check(raw: RawProxy, problems: &mut Problems) -> Option<CheckedProxy> {
    let listen = problems.take(socket_addr("proxy.listen", &raw.listen, "127.0.0.1:9092"));
    let metrics_listen = match raw.metrics_listen.as_deref() {
        None => Some(None),
        Some(m) => problems
            .take(socket_addr("proxy.metrics_listen", m, "127.0.0.1:9644"))
            .map(Some),
    };
    check_limits(&raw, problems);
    Some(CheckedProxy {
        listen: listen?,
        metrics_listen: metrics_listen?,
        raw,
    })
}

fn socket_addr(key: &str, text: &str, example: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        invalid(
            key,
            format!("'{text}' is not an IP:port address (e.g. \"{example}\")"),
        )
    })
}

/// Names, frame limits, counts and timeouts, in this order; every one that
/// fails is recorded.
fn check_limits(p: &RawProxy, problems: &mut Problems) {
    const NOT_EMPTY: &str = "must not be empty";
    const AT_LEAST_1K: &str = "must be at least 1024 bytes";
    const AT_LEAST_1: &str = "must be at least 1";
    const POSITIVE: &str = "must be greater than 0";
    // One row a key; rustfmt would break most rows over three lines.
    #[rustfmt::skip]
    let checks = [
        ("proxy.advertised_host", !p.advertised_host.trim().is_empty(), NOT_EMPTY),
        ("proxy.cluster_id", !p.cluster_id.trim().is_empty(), NOT_EMPTY),
        ("proxy.instance_id", p.instance_id.as_deref().is_none_or(|i| !i.trim().is_empty()), NOT_EMPTY),
        ("proxy.instance_id", p.instance_id.as_deref().is_none_or(|i| !i.contains('/')), "must not contain '/' (it is part of the state topic's keys)"),
        ("proxy.admin_socket", p.admin_socket.as_ref().is_none_or(|s| !s.as_os_str().is_empty()), "must not be empty; leave it out for the default"),
        ("proxy.state_file", !p.state_file.as_os_str().is_empty(), NOT_EMPTY),
        ("proxy.max_frame_bytes", p.max_frame_bytes >= 1024, AT_LEAST_1K),
        ("proxy.max_upstream_frame_bytes", p.max_upstream_frame_bytes >= 1024, AT_LEAST_1K),
        ("proxy.max_in_flight", p.max_in_flight != 0, AT_LEAST_1),
        ("proxy.max_connections", p.max_connections != 0, AT_LEAST_1),
        ("proxy.max_connections_per_ip", p.max_connections_per_ip != 0, AT_LEAST_1),
        ("proxy.metadata_refresh_ms", p.metadata_refresh_ms != 0, POSITIVE),
        ("proxy.progress_refresh_ms", p.progress_refresh_ms != 0, POSITIVE),
        ("proxy.client_idle_timeout_ms", p.client_idle_timeout_ms != 0, POSITIVE),
        ("proxy.client_frame_timeout_ms", p.client_frame_timeout_ms != 0, POSITIVE),
        ("proxy.upstream_connect_timeout_ms", p.upstream_connect_timeout_ms != 0, POSITIVE),
        ("proxy.upstream_request_timeout_ms", p.upstream_request_timeout_ms != 0, POSITIVE),
    ];
    for (key, ok, message) in checks {
        if !ok {
            problems.push(key, message);
        }
    }
}

/// `[proxy.sasl]` as far as the users' check needs it: `Some(None)`
/// without SASL, `None` when the table itself has problems (the users are
/// then not checked against it).
pub(super) type ClientSasl = Option<Option<ClientSaslConfig>>;

impl CheckedProxy {
    /// Checks the pre-auth frame limit, `[proxy.tls]` and `[proxy.sasl]`, and
    /// gives the whole section typed (without SASL when `[proxy.sasl]` has
    /// problems: then the config is refused anyway).
    pub(super) fn with_client_security(self, problems: &mut Problems) -> (ProxyConfig, ClientSasl) {
        let p = self.raw;
        if p.max_preauth_frame_bytes < 256 || p.max_preauth_frame_bytes > p.max_frame_bytes {
            problems.push(
                "proxy.max_preauth_frame_bytes",
                "must be at least 256 bytes and at most proxy.max_frame_bytes",
            );
        }
        let tls = p.tls.map(tls::client);
        let sasl = match p.sasl {
            None => Some(None),
            Some(s) => problems.take(sasl::client(s)).map(Some),
        };
        let config = ProxyConfig {
            listen: self.listen,
            advertised_host: p.advertised_host,
            broker_port_base: p.broker_port_base,
            instance_id: p
                .instance_id
                .unwrap_or_else(|| default_instance_id(self.listen)),
            cluster_id: p.cluster_id,
            admin_socket: p.admin_socket.unwrap_or_else(default_admin_socket),
            state_file: p.state_file,
            metrics_listen: self.metrics_listen,
            log_format: p.log_format,
            max_frame_bytes: p.max_frame_bytes,
            max_upstream_frame_bytes: p.max_upstream_frame_bytes,
            max_in_flight: p.max_in_flight,
            metadata_refresh: Duration::from_millis(p.metadata_refresh_ms),
            metadata_cache: Duration::from_millis(p.metadata_cache_ms),
            progress_refresh: Duration::from_millis(p.progress_refresh_ms),
            client_idle_timeout: Duration::from_millis(p.client_idle_timeout_ms),
            client_frame_timeout: Duration::from_millis(p.client_frame_timeout_ms),
            max_connections: p.max_connections,
            max_connections_per_ip: p.max_connections_per_ip,
            upstream_connect_timeout: Duration::from_millis(p.upstream_connect_timeout_ms),
            upstream_request_timeout: Duration::from_millis(p.upstream_request_timeout_ms),
            max_preauth_frame_bytes: p.max_preauth_frame_bytes,
            shutdown_grace: Duration::from_millis(p.shutdown_grace_ms),
            console_actions: p.console.actions,
            tls,
            sasl: sasl.clone().flatten(),
        };
        (config, sasl)
    }
}

/// An instance's default name: the host name and the listen port, unique
/// among instances on one machine and across machines.
fn default_instance_id(listen: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "switchyard".to_owned());
    format!("{host}:{}", listen.port())
}

#[cfg(test)]
mod tests {
    use crate::config::fixtures::{err_of, GOOD};

    #[test]
    fn every_bad_limit_is_listed() {
        let text = GOOD.replace(
            "cluster_id = \"switchyard\"",
            "cluster_id = \"\"\nmax_in_flight = 0\nmetadata_refresh_ms = 0",
        );
        let e = err_of(&text);
        for key in [
            "proxy.cluster_id: must not be empty",
            "proxy.max_in_flight: must be at least 1",
            "proxy.metadata_refresh_ms: must be greater than 0",
        ] {
            assert!(e.contains(key), "{key} in {e}");
        }
    }

    #[test]
    fn bad_listen_address_names_the_key() {
        let e = err_of(&GOOD.replace("127.0.0.1:9092", "localhost"));
        assert!(
            e.starts_with("proxy.listen: 'localhost' is not an IP:port"),
            "{e}"
        );
    }
}
