//! The fast path: requests the proxy forwards, body untouched, to the one
//! upstream broker the client's listener mirrors.
//!
//! Metadata puts each partition's leadership (and FindCoordinator each
//! group) on the virtual broker that mirrors the upstream one, so a client
//! that follows it reaches the right broker with no rewriting at all.

use crate::domain::ids::ClusterIdx;
use crate::domain::ids::UpstreamNodeId;
use crate::domain::stitch::{Shift, VirtualOffset};
use crate::runtime::proxy::{ListenerKind, Proxy};
use crate::wire::requests::TopicPartitions;

/// Which upstream broker a forwarded API goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The broker the listener mirrors; on the bootstrap listener, any
    /// broker of the default cluster.
    Mirrored,
    /// The controller of the listener's cluster (topic administration).
    Controller,
    /// A broker of the default cluster, whichever listener the request came
    /// in on: for requests a client sends to any broker, whose answer must
    /// come from the cluster its topics live on. A producer id issued by
    /// one cluster is unknown to the other, so InitProducerId goes here.
    DefaultCluster,
}

/// The upstream address for `target` as seen from `listener`, or why there
/// is none.
pub fn resolve(
    proxy: &Proxy,
    listener: ListenerKind,
    target: Target,
) -> Result<(ClusterIdx, String), String> {
    let default = proxy.routes().default_cluster();
    let (cluster_idx, mirrored) = match listener {
        ListenerKind::Bootstrap => (default, None),
        ListenerKind::Broker(id) => {
            let broker = proxy
                .virtual_broker(id)
                .ok_or_else(|| format!("virtual broker {id} no longer exists upstream"))?;
            if target == Target::DefaultCluster && broker.cluster != default {
                (default, None)
            } else {
                (broker.cluster, Some(broker.upstream))
            }
        }
    };
    let cluster = proxy.cluster(cluster_idx);
    let node = match target {
        Target::Controller => cluster.with_view(|v| v.controller).or(mirrored),
        Target::Mirrored | Target::DefaultCluster => mirrored,
    };
    let address = match node {
        Some(node) => cluster.broker_address(node).ok_or_else(|| {
            format!(
                "broker {} of cluster '{}' is not in the cluster's metadata",
                node.0,
                cluster.name()
            )
        })?,
        None => cluster.any_broker_address(),
    };
    Ok((cluster_idx, address))
}

/// Which route side decides where a partitioned API goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSide {
    Produce,
    Fetch,
}

impl RouteSide {
    /// The cluster a route sends this side's traffic to.
    pub fn cluster(self, route: &crate::domain::routes::Route) -> ClusterIdx {
        match self {
            RouteSide::Produce => route.produce,
            RouteSide::Fetch => route.fetch,
        }
    }
}

/// Where a request that names topics and partitions goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// To the listener's own upstream broker, untouched: the fast path.
    Mirrored,
    /// Untouched, to one other upstream broker (the client's metadata is
    /// stale, typically right after a flip).
    Broker {
        cluster: ClusterIdx,
        address: String,
    },
    /// Partitions live on several brokers: one request to each, answers
    /// merged (see [`super::split`]).
    Split(SplitPlan),
    /// No partition lives anywhere the proxy knows: the client is told
    /// NOT_LEADER_OR_FOLLOWER and refreshes its metadata.
    Refuse,
}

/// The brokers a split request goes to, and which partitions each gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPlan {
    /// Cluster and upstream address of each destination.
    pub destinations: Vec<(ClusterIdx, String)>,
    /// Each partition's destination, in request order; `None` for one the
    /// proxy refuses with NOT_LEADER_OR_FOLLOWER.
    pub assignment: super::split::Assignment,
    /// How each partition's offsets shift between the client's (virtual)
    /// log and its destination's, in the same shape.
    pub shifts: Vec<Vec<Shift>>,
}

/// What picks the segment a stitched partition is served from.
#[derive(Debug, Clone, Copy)]
pub enum Seek<'a> {
    /// The newest: Produce writes there, and OffsetForLeaderEpoch asks
    /// about the log's end.
    Newest,
    /// Fetch: the segment holding each partition's fetch offset
    /// (flattened, in request order).
    Offsets(&'a [i64]),
    /// ListOffsets: by each partition's timestamp (-2 earliest, -1 latest).
    Timestamps(&'a [i64]),
}

/// ListOffsets' timestamp for the log's first offset.
const EARLIEST: i64 = -2;

impl SplitPlan {
    /// The partitions no destination takes, in request order.
    pub fn refused(&self, topics: &TopicPartitions) -> TopicPartitions {
        TopicPartitions(
            topics
                .0
                .iter()
                .zip(&self.assignment)
                .filter_map(|((topic, partitions), assigned)| {
                    let refused: Vec<i32> = partitions
                        .iter()
                        .zip(assigned)
                        .filter(|(_, d)| d.is_none())
                        .map(|(p, _)| *p)
                        .collect();
                    (!refused.is_empty()).then(|| (topic.clone(), refused))
                })
                .collect(),
        )
    }
}

/// An upstream broker: its cluster and node id.
type Broker = (ClusterIdx, UpstreamNodeId);

/// The broker that serves `partition` of `topic` on `cluster`: its leader
/// in the proxy's view; for a partition the view does not know yet, the
/// listener's own broker when it belongs to that cluster (a broker answers
/// for its own cluster); otherwise none.
fn leader(
    proxy: &Proxy,
    own: Option<Broker>,
    cluster: ClusterIdx,
    topic: &str,
    partition: i32,
) -> Option<Broker> {
    let known = proxy.cluster(cluster).with_view(|v| {
        let meta = v.topics.get(topic)?;
        // Brokers list partitions in index order: look there first,
        // search only when they do not.
        let at = usize::try_from(partition)
            .ok()
            .and_then(|i| meta.partitions.get(i));
        at.filter(|m| m.partition_index == partition)
            .or_else(|| {
                meta.partitions
                    .iter()
                    .find(|m| m.partition_index == partition)
            })
            .map(|m| UpstreamNodeId(m.leader_id.0))
    });
    match known {
        Some(node) => Some((cluster, node)),
        None => own.filter(|(c, _)| *c == cluster),
    }
}

/// The topics of `topics` that the view of the cluster they route to (on
/// `side`) does not know yet, per cluster: worth one live metadata query
/// before refusing their partitions.
pub fn unknown_topics(
    proxy: &Proxy,
    side: RouteSide,
    topics: &TopicPartitions,
) -> Vec<(ClusterIdx, Vec<String>)> {
    let routes = proxy.routes();
    let mut unknown: Vec<(ClusterIdx, Vec<String>)> = Vec::new();
    for (topic, _) in &topics.0 {
        let cluster = side.cluster(&routes.route(topic));
        if proxy
            .cluster(cluster)
            .with_view(|v| v.topics.contains_key(topic))
        {
            continue;
        }
        match unknown.iter_mut().find(|(c, _)| *c == cluster) {
            Some((_, names)) if names.contains(topic) => {}
            Some((_, names)) => names.push(topic.clone()),
            None => unknown.push((cluster, vec![topic.clone()])),
        }
    }
    unknown
}

impl Plan {
    /// Whether the plan answers some partition NOT_LEADER_OR_FOLLOWER.
    pub fn refuses_any(&self) -> bool {
        match self {
            Plan::Refuse => true,
            Plan::Split(split) => split.assignment.iter().flatten().any(Option::is_none),
            Plan::Mirrored | Plan::Broker { .. } => false,
        }
    }
}

/// Decides where a partitioned request goes, from the route table and the
/// proxy's view of each cluster's partition leaders.
/// `own` is the upstream broker the client's listener mirrors (`None` on
/// the bootstrap listener).
pub fn plan(
    proxy: &Proxy,
    own: Option<Broker>,
    side: RouteSide,
    topics: &TopicPartitions,
    seek: Seek<'_>,
) -> Plan {
    let routes = proxy.routes();
    // Where each partition goes, and how its offsets shift on the way.
    let place = |topic: &str, partition: i32, at: usize| -> (Option<Broker>, Shift) {
        let (cluster, shift) = match routes.stitches().get(topic, partition) {
            None => (side.cluster(&routes.route(topic)), Shift::NONE),
            Some(segments) => {
                let position = |p: &[i64]| p.get(at).copied().unwrap_or(-1);
                match seek {
                    Seek::Newest => segments.last(),
                    Seek::Offsets(o) => segments.at(VirtualOffset(position(o).max(0))),
                    Seek::Timestamps(t) => match position(t) {
                        EARLIEST => segments.first(),
                        ms if ms >= 0 => segments.for_timestamp(ms),
                        _ => segments.last(), // latest, max timestamp, …
                    },
                }
            }
        };
        (leader(proxy, own, cluster, topic, partition), shift)
    };
    // The common case first, without allocating: one broker for all, and
    // no offset to shift.
    let mut single: Option<Option<Broker>> = None;
    let mut mixed = false;
    let mut at = 0;
    'topics: for (topic, partitions) in &topics.0 {
        for &partition in partitions {
            let (broker, shift) = place(topic, partition, at);
            at += 1;
            match single {
                _ if !shift.is_none() => mixed = true,
                None => single = Some(broker),
                Some(b) if b == broker => {}
                Some(_) => mixed = true,
            }
            if mixed {
                break 'topics;
            }
        }
    }
    if !mixed {
        return match single {
            // No partitions at all: the listener's own broker answers.
            None => Plan::Mirrored,
            Some(None) => Plan::Refuse,
            Some(Some(b)) if Some(b) == own => Plan::Mirrored,
            Some(Some((cluster, node))) => match proxy.cluster(cluster).broker_address(node) {
                Some(address) => Plan::Broker { cluster, address },
                None => Plan::Refuse,
            },
        };
    }
    let mut brokers: Vec<Broker> = Vec::new();
    let mut destinations = Vec::new();
    let mut shifts = Vec::with_capacity(topics.0.len());
    let mut at = 0;
    let assignment = topics
        .0
        .iter()
        .map(|(topic, partitions)| {
            let mut topic_shifts = Vec::with_capacity(partitions.len());
            let assigned = partitions
                .iter()
                .map(|&partition| {
                    let (broker, shift) = place(topic, partition, at);
                    at += 1;
                    topic_shifts.push(shift);
                    let broker = broker?;
                    if let Some(d) = brokers.iter().position(|b| *b == broker) {
                        return Some(d);
                    }
                    let address = proxy.cluster(broker.0).broker_address(broker.1)?;
                    brokers.push(broker);
                    destinations.push((broker.0, address));
                    Some(destinations.len() - 1)
                })
                .collect();
            shifts.push(topic_shifts);
            assigned
        })
        .collect();
    if destinations.is_empty() {
        return Plan::Refuse;
    }
    Plan::Split(SplitPlan {
        destinations,
        assignment,
        shifts,
    })
}
