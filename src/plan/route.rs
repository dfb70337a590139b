//! Where a partitioned request goes: to the listener's own upstream broker
//! untouched (the fast path), whole to another broker (a client with stale
//! metadata), split across brokers, or refused partition by partition.
//! Sans-IO: decided from a [`Snapshot`] of the route table and the
//! clusters' leaders, built once per request.

use super::snapshot::Snapshot;
use crate::domain::ids::{ClusterIdx, UpstreamNodeId};
use crate::domain::offsets::Offset;
use crate::domain::routes::RouteSide;
use crate::domain::stitch::{Shift, VirtualOffset};
use crate::wire::requests::TopicPartitions;

/// Where each partition of a request goes, in request order (`[topic][partition]`):
/// the index of its destination, or `None` when it has none (the proxy
/// answers it with an error itself).
pub type Assignment = Vec<Vec<Option<usize>>>;

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
    pub assignment: Assignment,
    /// How each partition's offsets shift between the client's (virtual)
    /// log and its destination's, in the same shape.
    pub shifts: Vec<Vec<Shift>>,
}

impl SplitPlan {
    /// The cluster each partition goes to, in request order (`None` for
    /// one refused).
    pub fn clusters(&self) -> Vec<Vec<Option<ClusterIdx>>> {
        self.assignment
            .iter()
            .map(|t| {
                t.iter()
                    .map(|d| d.and_then(|d| self.destinations.get(d)).map(|(c, _)| *c))
                    .collect()
            })
            .collect()
    }
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
    snapshot: &Snapshot<'_>,
    own: Option<Broker>,
    cluster: ClusterIdx,
    topic: &str,
    partition: i32,
) -> Option<Broker> {
    match snapshot.views.leader(cluster, topic, partition) {
        Some(node) => Some((cluster, node)),
        None => own.filter(|(c, _)| *c == cluster),
    }
}

/// The topics of `topics` that the view of the cluster they route to (on
/// `side`) does not know yet, per cluster: worth one live metadata query
/// before refusing their partitions.
pub fn unknown_topics(
    snapshot: &Snapshot<'_>,
    side: RouteSide,
    topics: &TopicPartitions,
) -> Vec<(ClusterIdx, Vec<String>)> {
    let mut unknown: Vec<(ClusterIdx, Vec<String>)> = Vec::new();
    for (topic, _) in &topics.0 {
        let cluster = side.cluster(&snapshot.routes.route(topic));
        if snapshot.views.knows_topic(cluster, topic) {
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
    snapshot: &Snapshot<'_>,
    own: Option<Broker>,
    side: RouteSide,
    topics: &TopicPartitions,
    seek: Seek<'_>,
) -> Plan {
    let routes = snapshot.routes;
    // Where each partition goes, and how its offsets shift on the way.
    let place = |topic: &str, partition: i32, at: usize| -> (Option<Broker>, Shift) {
        let (cluster, shift) = match routes.stitches().get(topic, partition) {
            None => (side.cluster(&routes.route(topic)), Shift::NONE),
            Some(segments) => {
                let position = |p: &[i64]| p.get(at).copied().unwrap_or(-1);
                match seek {
                    Seek::Newest => segments.last(),
                    // A position holding no offset reads from the start.
                    Seek::Offsets(o) => {
                        segments.at(VirtualOffset::from_wire(position(o)).unwrap_or_default())
                    }
                    Seek::Timestamps(t) => match position(t) {
                        EARLIEST => segments.first(),
                        ms if ms >= 0 => segments.for_timestamp(ms),
                        _ => segments.last(), // latest, max timestamp, …
                    },
                }
            }
        };
        (leader(snapshot, own, cluster, topic, partition), shift)
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
            Some(Some((cluster, node))) => match snapshot.views.address(cluster, node) {
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
                    let address = snapshot.views.address(broker.0, broker.1)?;
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{RoutesConfig, TopicRouteConfig};
    use crate::domain::pattern::Pattern;
    use crate::domain::routes::{Route, RouteTable};
    use crate::domain::stitch::UpstreamOffset;
    use crate::plan::ClusterViews;

    const OLD: ClusterIdx = ClusterIdx(0);
    const NEW: ClusterIdx = ClusterIdx(1);
    /// Every test broker is node 1 of its cluster, as tansu's are all 111:
    /// only the cluster tells them apart.
    const NODE: UpstreamNodeId = UpstreamNodeId(1);

    /// Hand-built cluster views: who leads what, and where brokers listen.
    #[derive(Default)]
    struct Views {
        leaders: HashMap<(ClusterIdx, String, i32), UpstreamNodeId>,
        addresses: HashMap<(ClusterIdx, UpstreamNodeId), String>,
    }

    impl Views {
        /// Both clusters with one broker; `topics` (name, partitions) on
        /// each of `clusters`.
        fn with(clusters: &[ClusterIdx], topics: &[(&str, i32)]) -> Views {
            let mut views = Views::default();
            for &c in &[OLD, NEW] {
                views
                    .addresses
                    .insert((c, NODE), format!("broker-{}:9092", c.0));
            }
            for &c in clusters {
                for &(topic, partitions) in topics {
                    for p in 0..partitions {
                        views.leaders.insert((c, topic.to_owned(), p), NODE);
                    }
                }
            }
            views
        }
    }

    impl ClusterViews for Views {
        fn leader(
            &self,
            cluster: ClusterIdx,
            topic: &str,
            partition: i32,
        ) -> Option<UpstreamNodeId> {
            self.leaders
                .get(&(cluster, topic.to_owned(), partition))
                .copied()
        }
        fn address(&self, cluster: ClusterIdx, node: UpstreamNodeId) -> Option<String> {
            self.addresses.get(&(cluster, node)).cloned()
        }
        fn knows_topic(&self, cluster: ClusterIdx, topic: &str) -> bool {
            self.leaders
                .keys()
                .any(|(c, t, _)| *c == cluster && t == topic)
        }
    }

    /// Default route 'old'; `orders` produces to 'new' and is read from
    /// 'old' (the "producers first" migration).
    fn routes() -> RouteTable {
        RouteTable::new(&RoutesConfig {
            default: OLD,
            topics: vec![TopicRouteConfig {
                pattern: Pattern::new("orders").unwrap(),
                produce: NEW,
                fetch: OLD,
            }],
            groups: Vec::new(),
            transactions: Vec::new(),
        })
    }

    fn request(topics: &[(&str, &[i32])]) -> TopicPartitions {
        TopicPartitions(
            topics
                .iter()
                .map(|(t, ps)| ((*t).to_owned(), ps.to_vec()))
                .collect(),
        )
    }

    fn planned(
        routes: &RouteTable,
        views: &Views,
        own: Option<(ClusterIdx, UpstreamNodeId)>,
        side: RouteSide,
        topics: &TopicPartitions,
        seek: Seek<'_>,
    ) -> Plan {
        plan(&Snapshot { routes, views }, own, side, topics, seek)
    }

    #[test]
    fn partitions_on_the_listeners_own_broker_take_the_fast_path() {
        let views = Views::with(&[OLD], &[("events", 3)]);
        let topics = request(&[("events", &[0, 1, 2])]);
        let plan = planned(
            &routes(),
            &views,
            Some((OLD, NODE)),
            RouteSide::Produce,
            &topics,
            Seek::Newest,
        );
        assert_eq!(plan, Plan::Mirrored);
        assert!(!plan.refuses_any());
    }

    #[test]
    fn a_client_with_stale_metadata_is_forwarded_whole_to_the_topics_new_home() {
        // 'events' was flipped to 'new'; the client still writes to the
        // virtual broker of 'old'.
        let routes = routes().with_runtime_route(
            "events",
            Route {
                produce: NEW,
                fetch: NEW,
            },
        );
        let views = Views::with(&[OLD, NEW], &[("events", 2)]);
        let topics = request(&[("events", &[0, 1])]);
        let plan = planned(
            &routes,
            &views,
            Some((OLD, NODE)),
            RouteSide::Produce,
            &topics,
            Seek::Newest,
        );
        assert_eq!(
            plan,
            Plan::Broker {
                cluster: NEW,
                address: "broker-1:9092".into()
            }
        );
    }

    #[test]
    fn produce_and_fetch_of_one_topic_go_to_their_own_clusters() {
        let views = Views::with(&[OLD, NEW], &[("orders", 1)]);
        let topics = request(&[("orders", &[0])]);
        let own = Some((OLD, NODE));
        assert_eq!(
            planned(
                &routes(),
                &views,
                own,
                RouteSide::Produce,
                &topics,
                Seek::Newest
            ),
            Plan::Broker {
                cluster: NEW,
                address: "broker-1:9092".into()
            },
            "produce goes to 'new'"
        );
        assert_eq!(
            planned(
                &routes(),
                &views,
                own,
                RouteSide::Fetch,
                &topics,
                Seek::Offsets(&[0])
            ),
            Plan::Mirrored,
            "fetch stays on 'old'"
        );
        // One request for a topic of each cluster is split in two.
        let views = Views::with(&[OLD, NEW], &[("orders", 1), ("events", 1)]);
        let both = request(&[("events", &[0]), ("orders", &[0])]);
        let Plan::Split(split) = planned(
            &routes(),
            &views,
            own,
            RouteSide::Produce,
            &both,
            Seek::Newest,
        ) else {
            panic!("expected a split")
        };
        assert_eq!(
            split.destinations,
            vec![
                (OLD, "broker-0:9092".to_owned()),
                (NEW, "broker-1:9092".to_owned())
            ]
        );
        assert_eq!(split.assignment, vec![vec![Some(0)], vec![Some(1)]]);
        assert!(split.refused(&both).0.is_empty());
    }

    #[test]
    fn an_unknown_topic_is_left_to_the_own_broker_or_refused_and_named_for_a_lookup() {
        let routes = routes();
        let views = Views::with(&[OLD], &[]);
        let topics = request(&[("fresh", &[0])]);
        let snapshot = Snapshot {
            routes: &routes,
            views: &views,
        };
        // A broker answers for topics of its own cluster the view lacks.
        assert_eq!(
            plan(
                &snapshot,
                Some((OLD, NODE)),
                RouteSide::Produce,
                &topics,
                Seek::Newest
            ),
            Plan::Mirrored
        );
        // From the bootstrap listener (no broker of its own), or another
        // cluster's broker, nothing knows where it lives.
        let refused = plan(&snapshot, None, RouteSide::Produce, &topics, Seek::Newest);
        assert_eq!(refused, Plan::Refuse);
        assert!(refused.refuses_any());
        assert_eq!(
            plan(
                &snapshot,
                Some((NEW, NODE)),
                RouteSide::Produce,
                &topics,
                Seek::Newest
            ),
            Plan::Refuse
        );
        assert_eq!(
            unknown_topics(&snapshot, RouteSide::Produce, &topics),
            vec![(OLD, vec!["fresh".to_owned()])]
        );
    }

    #[test]
    fn a_topic_just_flipped_to_a_cluster_whose_view_lacks_it_is_refused_until_known() {
        // The switch happened, the target's view has not caught up: the
        // client is told NOT_LEADER_OR_FOLLOWER and asks again.
        let routes = routes().with_runtime_route(
            "events",
            Route {
                produce: NEW,
                fetch: NEW,
            },
        );
        let views = Views::with(&[OLD], &[("events", 1)]);
        let topics = request(&[("events", &[0])]);
        let snapshot = Snapshot {
            routes: &routes,
            views: &views,
        };
        assert_eq!(
            plan(
                &snapshot,
                Some((OLD, NODE)),
                RouteSide::Produce,
                &topics,
                Seek::Newest
            ),
            Plan::Refuse
        );
        assert_eq!(
            unknown_topics(&snapshot, RouteSide::Produce, &topics),
            vec![(NEW, vec!["events".to_owned()])]
        );
    }

    #[test]
    fn a_stitched_partition_is_read_from_the_stretch_holding_each_offset() {
        // Produce of 'events' moved at 100 (old) / 20 (new): virtual
        // 100.. is new's 20..
        let routes = routes()
            .with_runtime_route(
                "events",
                Route {
                    produce: NEW,
                    fetch: NEW,
                },
            )
            .with_stitch(
                "events",
                OLD,
                NEW,
                1,
                [
                    (0, UpstreamOffset(100), UpstreamOffset(20)),
                    (1, UpstreamOffset(50), UpstreamOffset(0)),
                ],
            );
        let views = Views::with(&[OLD, NEW], &[("events", 2)]);
        let topics = request(&[("events", &[0, 1])]);
        let own = Some((NEW, NODE));
        // Partition 0 below its stitch (old), partition 1 above (new):
        // split, each with its shift.
        let Plan::Split(split) = planned(
            &routes,
            &views,
            own,
            RouteSide::Fetch,
            &topics,
            Seek::Offsets(&[40, 70]),
        ) else {
            panic!("expected a split")
        };
        assert_eq!(
            split.destinations,
            vec![
                (OLD, "broker-0:9092".to_owned()),
                (NEW, "broker-1:9092".to_owned())
            ]
        );
        assert_eq!(split.assignment, vec![vec![Some(0), Some(1)]]);
        let [first, second] = split.shifts[0][..] else {
            panic!("two shifts")
        };
        assert_eq!((first.delta, first.end), (0, Some(UpstreamOffset(100))));
        assert_eq!(first.to_upstream(VirtualOffset(40)), UpstreamOffset(40));
        assert_eq!((second.delta, second.end), (50, None));
        assert_eq!(second.to_upstream(VirtualOffset(70)), UpstreamOffset(20));
        // Both above their stitch: one broker, but offsets still move, so
        // it is no fast path.
        let Plan::Split(split) = planned(
            &routes,
            &views,
            own,
            RouteSide::Fetch,
            &topics,
            Seek::Offsets(&[130, 70]),
        ) else {
            panic!("a shifted request is rewritten, never forwarded untouched")
        };
        assert_eq!(split.destinations, vec![(NEW, "broker-1:9092".to_owned())]);
        // ListOffsets earliest reads the oldest stretch, latest the newest.
        let Plan::Split(split) = planned(
            &routes,
            &views,
            own,
            RouteSide::Fetch,
            &request(&[("events", &[0])]),
            Seek::Timestamps(&[-2]),
        ) else {
            panic!("expected a split")
        };
        assert_eq!(split.destinations[0].0, OLD);
        // Produce always writes to the newest stretch.
        let Plan::Split(split) = planned(
            &routes,
            &views,
            own,
            RouteSide::Produce,
            &topics,
            Seek::Newest,
        ) else {
            panic!("expected a split")
        };
        assert_eq!(split.destinations, vec![(NEW, "broker-1:9092".to_owned())]);
    }
}
