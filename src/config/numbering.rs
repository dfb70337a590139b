//! The virtual node ids each cluster owns and the ports they put virtual
//! brokers on, checked across `[proxy]` and every `[clusters.NAME]`: ranges
//! of two clusters must not overlap, every port must exist, and none may be
//! the bootstrap's or the metrics listener's.
//!
//! A virtual broker's id is its cluster's `node_id_base` plus the upstream
//! broker's id, and it listens on `broker_port_base` plus that id
//! (`domain/topology.rs`).

use std::net::SocketAddr;
use std::ops::Range;

use super::error::Problems;

/// How many virtual node ids each cluster owns: `node_id_base` up to
/// `node_id_base + NODE_ID_SPAN - 1`. Brokers whose upstream ids are below
/// it (Kafka's configured ids are 0..=1000 by default, tansu's is 111)
/// never share a virtual id or port with another cluster's. Kafka
/// generates ids from 1001 up (`reserved.broker.max.id`); for a cluster
/// with such ids, space the bases further apart than its largest id.
pub const NODE_ID_SPAN: i32 = 1000;

/// What the checks need of `[proxy]`.
pub(super) struct Listeners {
    pub(super) broker_port_base: u16,
    pub(super) listen: SocketAddr,
    pub(super) metrics_listen: Option<SocketAddr>,
}

/// The node ids `base` gives a cluster.
fn ids(base: i32) -> Range<i64> {
    i64::from(base)..i64::from(base) + i64::from(NODE_ID_SPAN)
}

/// `clusters`: (name, node_id_base) in name order, bases not negative.
pub(super) fn check(proxy: &Listeners, clusters: &[(&str, i32)], problems: &mut Problems) {
    overlaps(clusters, problems);
    for (name, base) in clusters {
        ports(proxy, name, *base, problems);
    }
}

/// Two clusters' ranges overlapping; reported at the later one in name
/// order.
fn overlaps(clusters: &[(&str, i32)], problems: &mut Problems) {
    for (i, (name, base)) in clusters.iter().enumerate() {
        let mine = ids(*base);
        for (other, other_base) in &clusters[..i] {
            let theirs = ids(*other_base);
            if mine.start < theirs.end && theirs.start < mine.end {
                problems.push(
                    format!("clusters.{name}.node_id_base"),
                    format!(
                        "virtual node ids {}..={} overlap those of cluster '{other}' \
                         ({}..={}): each cluster owns {NODE_ID_SPAN} ids from its node_id_base, \
                         so two bases must be at least {NODE_ID_SPAN} apart",
                        mine.start,
                        mine.end - 1,
                        theirs.start,
                        theirs.end - 1
                    ),
                );
            }
        }
    }
}

/// The ports of one cluster's virtual brokers: all within 1..=65535, and
/// none the bootstrap's or the metrics listener's.
fn ports(proxy: &Listeners, name: &str, base: i32, problems: &mut Problems) {
    let bpb = i64::from(proxy.broker_port_base);
    let ids = ids(base);
    let ports = bpb + ids.start..bpb + ids.end;
    let key = format!("clusters.{name}.node_id_base");
    let sum = format!(
        "proxy.broker_port_base {bpb} + node ids {}..={}",
        ids.start,
        ids.end - 1
    );
    if ports.end - 1 > 65535 {
        problems.push(
            key,
            format!(
                "puts virtual broker ports at {}..={} ({sum}), past 65535; lower \
                 proxy.broker_port_base or this node_id_base",
                ports.start,
                ports.end - 1
            ),
        );
    } else if ports.start < 1 {
        problems.push(
            key,
            format!("puts virtual broker 0 on port 0 ({sum}); raise proxy.broker_port_base"),
        );
    }
    let mut clash = |listener: &str, addr: SocketAddr| {
        let port = i64::from(addr.port());
        if ports.contains(&port) {
            problems.push(
                format!("proxy.{listener}"),
                format!(
                    "port {port} is also the port of cluster '{name}''s virtual broker {} \
                     ({sum} puts them on {}..={}); move proxy.{listener} or \
                     proxy.broker_port_base",
                    port - bpb,
                    ports.start,
                    ports.end - 1
                ),
            );
        }
    };
    clash("listen", proxy.listen);
    if let Some(metrics) = proxy.metrics_listen.filter(|m| same_host(*m, proxy.listen)) {
        clash("metrics_listen", metrics);
    }
}

/// Whether two listeners can take the same port from each other: the same
/// IP, or either on every address.
fn same_host(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified()
}

#[cfg(test)]
mod tests {
    use crate::config::fixtures::{err_of, GOOD};
    use crate::config::Config;

    #[test]
    fn overlapping_node_id_ranges_are_refused_naming_both_clusters() {
        let e = err_of(&GOOD.replace("node_id_base = 20000", "node_id_base = 10500"));
        assert!(
            e.starts_with(
                "clusters.old.node_id_base: virtual node ids 10000..=10999 overlap those of \
                 cluster 'new' (10500..=11499)"
            ),
            "{e}"
        );
        let e = err_of(&GOOD.replace("node_id_base = 20000", "node_id_base = 10000"));
        assert!(e.contains("overlap those of cluster 'new'"), "{e}");
    }

    #[test]
    fn ranges_that_only_touch_are_accepted() {
        let c = Config::parse(&GOOD.replace("node_id_base = 20000", "node_id_base = 11000"));
        assert!(c.is_ok(), "{:?}", c.err());
    }

    #[test]
    fn virtual_broker_ports_past_65535_are_refused() {
        let e = err_of(&GOOD.replace("node_id_base = 20000", "node_id_base = 56000"));
        assert!(
            e.starts_with(
                "clusters.new.node_id_base: puts virtual broker ports at 65100..=66099 \
                 (proxy.broker_port_base 9100 + node ids 56000..=56999), past 65535"
            ),
            "{e}"
        );
    }

    #[test]
    fn virtual_broker_port_zero_is_refused() {
        let e = err_of(
            &GOOD
                .replace("broker_port_base = 9100", "broker_port_base = 0")
                .replace("node_id_base = 10000", "node_id_base = 0")
                .replace("127.0.0.1:9092", "127.0.0.1:19092")
                .replace("127.0.0.1:9644", "127.0.0.1:19644"),
        );
        assert!(
            e.starts_with("clusters.old.node_id_base: puts virtual broker 0 on port 0"),
            "{e}"
        );
    }

    #[test]
    fn a_virtual_broker_port_may_not_be_the_bootstrap_port() {
        let e = err_of(&GOOD.replace("127.0.0.1:9092", "127.0.0.1:19111"));
        assert!(
            e.starts_with(
                "proxy.listen: port 19111 is also the port of cluster 'old''s virtual broker \
                 10011"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_virtual_broker_port_may_not_be_the_metrics_port_on_the_same_host() {
        let e = err_of(&GOOD.replace("127.0.0.1:9644", "0.0.0.0:29200"));
        assert!(
            e.starts_with(
                "proxy.metrics_listen: port 29200 is also the port of cluster 'new''s \
                 virtual broker 20100"
            ),
            "{e}"
        );
        // On another address the same port is free.
        let c = Config::parse(&GOOD.replace("127.0.0.1:9644", "127.0.0.2:29200"));
        assert!(c.is_ok(), "{:?}", c.err());
    }
}
