//! The route table: for each topic, the cluster that receives its Produce and
//! the cluster that serves its Fetch.
//!
//! Pure lookups, no I/O: the metadata handler asks it which cluster's view a
//! topic's partitions come from.

use std::collections::HashMap;

use crate::config::RoutesConfig;
use crate::domain::ids::ClusterIdx;
use crate::domain::pattern::Pattern;
use crate::domain::stitch::{Stitches, UpstreamOffset};

/// Where one topic's traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub produce: ClusterIdx,
    pub fetch: ClusterIdx,
}

/// Which route side decides where a partitioned API goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSide {
    Produce,
    Fetch,
}

impl RouteSide {
    /// The cluster a route sends this side's traffic to.
    pub fn cluster(self, route: &Route) -> ClusterIdx {
        match self {
            RouteSide::Produce => route.produce,
            RouteSide::Fetch => route.fetch,
        }
    }
}

/// What decides a topic's route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteSource {
    /// A flip: a runtime route, kept in the state.
    Runtime,
    /// A `[[routes.topic]]` rule.
    Config,
    /// No rule names it: `routes.default`.
    Default,
}

/// Topic → route: runtime routes (from flips) first, then the configured
/// rules, then the default.
#[derive(Debug, Clone)]
pub struct RouteTable {
    default: ClusterIdx,
    /// Shared: a flip copies the table, not its rules.
    rules: std::sync::Arc<TopicRules>,
    runtime: HashMap<String, Route>,
    /// How many times each topic has been flipped since start-up, counting
    /// the runtime routes restored from the state file once each.
    generations: HashMap<String, u64>,
    /// Consumer group → coordinating cluster, in file order.
    groups: Vec<(Pattern, ClusterIdx)>,
    /// Transactional id → cluster its transactions run on, in file order.
    transactions: Vec<(Pattern, ClusterIdx)>,
    /// Groups moved at runtime; they override group rules.
    runtime_groups: HashMap<String, ClusterIdx>,
    /// The virtual logs of partitions whose Produce has moved.
    stitches: Stitches,
}

/// Topic rules: an exact name is more specific than any glob, so it wins;
/// globs are tried in the order the file lists them. Exact names are
/// looked up by name, so that 20,000 of them cost a lookup what one does.
#[derive(Debug)]
struct TopicRules {
    /// Every rule, exact names first, then globs in file order.
    list: Vec<(Pattern, Route)>,
    /// Exact names, the first rule of each name.
    exact: HashMap<String, Route>,
    /// Where the globs begin in `list`.
    globs: usize,
    /// All the globs at once, in `list`'s order: one pass finds the first
    /// that matches, or that none does (the default route).
    any_glob: Option<globset::GlobSet>,
}

impl TopicRules {
    fn new(config: &RoutesConfig) -> TopicRules {
        let mut list: Vec<(Pattern, Route)> = config
            .topics
            .iter()
            .map(|t| {
                let route = Route {
                    produce: t.produce,
                    fetch: t.fetch,
                };
                (t.pattern.clone(), route)
            })
            .collect();
        list.sort_by_key(|(p, _)| matches!(p, Pattern::Glob(_)));
        let mut exact = HashMap::new();
        for (pattern, route) in &list {
            if let Pattern::Exact(name) = pattern {
                exact.entry(name.clone()).or_insert(*route);
            }
        }
        let globs = list
            .iter()
            .position(|(p, _)| matches!(p, Pattern::Glob(_)))
            .unwrap_or(list.len());
        let mut set = globset::GlobSetBuilder::new();
        for (pattern, _) in &list[globs..] {
            if let Pattern::Glob(g) = pattern {
                set.add(g.glob().clone());
            }
        }
        TopicRules {
            any_glob: set.build().ok(),
            list,
            exact,
            globs,
        }
    }

    fn route(&self, topic: &str) -> Option<Route> {
        if let Some(route) = self.exact.get(topic) {
            return Some(*route);
        }
        let globs = &self.list[self.globs..];
        match &self.any_glob {
            // The set's globs are in `globs`' order: the first it names
            // is the first in the file.
            Some(set) => set
                .matches(topic)
                .first()
                .and_then(|i| globs.get(*i))
                .map(|(_, r)| *r),
            None => globs
                .iter()
                .find(|(p, _)| p.matches(topic))
                .map(|(_, r)| *r),
        }
    }
}

/// Group or transactional-id rules as patterns, in file order.
fn coordinator_rules(rules: &[crate::config::GroupRouteConfig]) -> Vec<(Pattern, ClusterIdx)> {
    rules
        .iter()
        .map(|g| (g.pattern.clone(), g.cluster))
        .collect()
}

impl RouteTable {
    pub fn new(config: &RoutesConfig) -> RouteTable {
        RouteTable {
            default: config.default,
            rules: std::sync::Arc::new(TopicRules::new(config)),
            runtime: HashMap::new(),
            generations: HashMap::new(),
            runtime_groups: HashMap::new(),
            stitches: Stitches::default(),
            groups: coordinator_rules(&config.groups),
            transactions: coordinator_rules(&config.transactions),
        }
    }

    /// This table with `config`'s topic rules in place of its own; runtime
    /// routes, generations and stitches stay.
    pub fn with_topic_rules(&self, config: &RoutesConfig) -> RouteTable {
        RouteTable {
            rules: std::sync::Arc::new(TopicRules::new(config)),
            ..self.clone()
        }
    }

    /// Group rules, in file order.
    pub fn group_rules(&self) -> impl Iterator<Item = (&Pattern, ClusterIdx)> {
        self.groups.iter().map(|(p, c)| (p, *c))
    }

    /// The cluster that coordinates consumer group `group`.
    pub fn group_cluster(&self, group: &str) -> ClusterIdx {
        if let Some(cluster) = self.runtime_groups.get(group) {
            return *cluster;
        }
        self.groups
            .iter()
            .find(|(p, _)| p.matches(group))
            .map_or(self.default, |(_, c)| *c)
    }

    /// The cluster transactional id `id` runs its transactions on.
    pub fn transaction_cluster(&self, id: &str) -> ClusterIdx {
        self.transactions
            .iter()
            .find(|(p, _)| p.matches(id))
            .map_or(self.default, |(_, c)| *c)
    }

    /// The first of `topics` whose Produce goes to a cluster other than
    /// the one transaction `id` runs on: a transaction naming it would
    /// span clusters, which Kafka cannot commit atomically.
    pub fn written_elsewhere<'a>(
        &self,
        id: &str,
        mut topics: impl Iterator<Item = &'a str>,
    ) -> Option<&'a str> {
        let home = self.transaction_cluster(id);
        topics.find(|topic| self.route(topic).produce != home)
    }

    /// How many times `topic` has been flipped (0: never).
    pub fn generation(&self, topic: &str) -> u64 {
        self.generations.get(topic).copied().unwrap_or(0)
    }

    /// Counts `topic` as flipped `flips` times (as the state's record of
    /// flips says, so that every instance sharing the state counts alike).
    pub fn set_generation(&mut self, topic: &str, flips: u64) {
        self.generations.insert(topic.to_owned(), flips);
    }

    /// This table with `topic` routed to `route` at runtime.
    pub fn with_runtime_route(&self, topic: &str, route: Route) -> RouteTable {
        let mut table = self.clone();
        table.set_runtime_route(topic, route);
        table
    }

    /// Routes `topic` by `route` from now on, over any rule.
    pub fn set_runtime_route(&mut self, topic: &str, route: Route) {
        self.runtime.insert(topic.to_owned(), route);
        *self.generations.entry(topic.to_owned()).or_default() += 1;
    }

    /// This table with a Produce move of `topic` recorded in its stitches
    /// (see [`Stitches::record_move`]).
    pub fn with_stitch(
        &self,
        topic: &str,
        from: ClusterIdx,
        to: ClusterIdx,
        at_ms: u64,
        points: impl IntoIterator<Item = (i32, UpstreamOffset, UpstreamOffset)>,
    ) -> RouteTable {
        let mut table = self.clone();
        table.stitches.record_move(topic, from, to, at_ms, points);
        table
    }

    /// The virtual logs of partitions whose Produce has moved, to record
    /// a move in (see [`Stitches::record_move`]).
    pub fn stitches_mut(&mut self) -> &mut Stitches {
        &mut self.stitches
    }

    pub fn stitches(&self) -> &Stitches {
        &self.stitches
    }

    /// This table with `group` coordinated by `cluster` from now on.
    pub fn with_runtime_group(&self, group: &str, cluster: ClusterIdx) -> RouteTable {
        let mut table = self.clone();
        table.set_runtime_group(group, cluster);
        table
    }

    /// Coordinates `group` by `cluster` from now on, over any rule.
    pub fn set_runtime_group(&mut self, group: &str, cluster: ClusterIdx) {
        self.runtime_groups.insert(group.to_owned(), cluster);
    }

    /// Groups moved at runtime, by group id.
    pub fn runtime_groups(&self) -> impl Iterator<Item = (&str, ClusterIdx)> {
        self.runtime_groups.iter().map(|(g, c)| (g.as_str(), *c))
    }

    /// Runtime routes, by topic name.
    pub fn runtime_routes(&self) -> impl Iterator<Item = (&str, Route)> {
        self.runtime.iter().map(|(t, r)| (t.as_str(), *r))
    }

    /// Configured rules, exact names first.
    pub fn rules(&self) -> impl Iterator<Item = (&Pattern, Route)> {
        self.rules.list.iter().map(|(p, r)| (p, *r))
    }

    pub fn default_cluster(&self) -> ClusterIdx {
        self.default
    }

    pub fn route(&self, topic: &str) -> Route {
        self.route_and_source(topic).0
    }

    /// Where `topic` routes, and what says so: a runtime route (a flip),
    /// a config rule, or the default cluster.
    pub fn route_and_source(&self, topic: &str) -> (Route, RouteSource) {
        if let Some(route) = self.runtime.get(topic) {
            return (*route, RouteSource::Runtime);
        }
        match self.rules.route(topic) {
            Some(r) => (r, RouteSource::Config),
            None => (
                Route {
                    produce: self.default,
                    fetch: self.default,
                },
                RouteSource::Default,
            ),
        }
    }

    /// The cluster whose partition leaders a client is shown for `topic`.
    /// Produce is where a leader matters most (writes must reach it), so the
    /// produce side decides.
    pub fn metadata_cluster(&self, topic: &str) -> ClusterIdx {
        self.route(topic).produce
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TopicRouteConfig;

    fn table() -> RouteTable {
        let rule = |pattern: &str, produce, fetch| TopicRouteConfig {
            pattern: Pattern::new(pattern).unwrap(),
            produce: ClusterIdx(produce),
            fetch: ClusterIdx(fetch),
        };
        RouteTable::new(&RoutesConfig {
            default: ClusterIdx(0),
            topics: vec![rule("payments.*", 1, 1), rule("payments.eu", 0, 1)],
            groups: vec![crate::config::GroupRouteConfig {
                pattern: Pattern::new("billing-*").unwrap(),
                cluster: ClusterIdx(1),
            }],
            transactions: vec![crate::config::GroupRouteConfig {
                pattern: Pattern::new("payments-writer").unwrap(),
                cluster: ClusterIdx(1),
            }],
        })
    }

    #[test]
    fn transactional_ids_follow_their_rule_or_the_default() {
        let t = table();
        assert_eq!(t.transaction_cluster("payments-writer"), ClusterIdx(1));
        assert_eq!(t.transaction_cluster("audit-writer"), ClusterIdx(0));
    }

    #[test]
    fn a_transaction_spans_clusters_when_a_topic_is_written_off_its_cluster() {
        let t = table();
        let names = |n: &'static [&'static str]| n.iter().copied();
        // payments-writer runs on cluster 1, where payments.* is written.
        assert_eq!(
            t.written_elsewhere("payments-writer", names(&["payments.us"])),
            None
        );
        assert_eq!(
            t.written_elsewhere("payments-writer", names(&["payments.us", "orders"])),
            Some("orders")
        );
        // payments.eu is read from 1 but written to 0, the default's.
        assert_eq!(
            t.written_elsewhere("audit-writer", names(&["payments.eu", "orders"])),
            None
        );
        assert_eq!(
            t.written_elsewhere("audit-writer", names(&["payments.us"])),
            Some("payments.us")
        );
        let flipped = t.with_runtime_route(
            "orders",
            Route {
                produce: ClusterIdx(1),
                fetch: ClusterIdx(0),
            },
        );
        assert_eq!(
            flipped.written_elsewhere("payments-writer", names(&["orders"])),
            None,
            "a runtime route counts"
        );
    }

    #[test]
    fn unnamed_topic_takes_the_default() {
        let r = table().route("orders");
        assert_eq!((r.produce, r.fetch), (ClusterIdx(0), ClusterIdx(0)));
    }

    #[test]
    fn glob_matches_and_exact_name_wins_over_glob() {
        let t = table();
        assert_eq!(t.route("payments.us").produce, ClusterIdx(1));
        let eu = t.route("payments.eu");
        assert_eq!((eu.produce, eu.fetch), (ClusterIdx(0), ClusterIdx(1)));
        assert_eq!(t.metadata_cluster("payments.eu"), ClusterIdx(0));
    }

    #[test]
    fn the_first_glob_in_the_file_wins_among_many() {
        let rule = |pattern: &str, produce| TopicRouteConfig {
            pattern: Pattern::new(pattern).unwrap(),
            produce: ClusterIdx(produce),
            fetch: ClusterIdx(produce),
        };
        let mut topics: Vec<TopicRouteConfig> =
            (0..50).map(|i| rule(&format!("team-{i}.*"), 1)).collect();
        topics.push(rule("team-7.*", 0));
        topics.push(rule("*.audit", 2));
        topics.push(rule("team-7.audit", 0));
        let t = RouteTable::new(&RoutesConfig {
            default: ClusterIdx(0),
            topics,
            groups: Vec::new(),
            transactions: Vec::new(),
        });
        assert_eq!(t.route("team-7.orders").produce, ClusterIdx(1));
        assert_eq!(t.route("team-8.audit").produce, ClusterIdx(1));
        assert_eq!(t.route("other.audit").produce, ClusterIdx(2));
        assert_eq!(t.route("team-7.audit").produce, ClusterIdx(0), "exact");
        assert_eq!(
            t.route_and_source("nothing"),
            (
                Route {
                    produce: ClusterIdx(0),
                    fetch: ClusterIdx(0)
                },
                RouteSource::Default
            )
        );
    }

    #[test]
    fn runtime_route_wins_over_rules() {
        let t = table().with_runtime_route(
            "payments.eu",
            Route {
                produce: ClusterIdx(1),
                fetch: ClusterIdx(0),
            },
        );
        assert_eq!(t.route("payments.eu").produce, ClusterIdx(1));
        assert_eq!(t.route("payments.eu").fetch, ClusterIdx(0));
        assert_eq!(
            t.route("payments.us").fetch,
            ClusterIdx(1),
            "rules still apply"
        );
        assert_eq!(t.runtime_routes().count(), 1);
        assert_eq!(
            (t.generation("payments.eu"), t.generation("payments.us")),
            (1, 0)
        );
    }

    #[test]
    fn a_moved_group_follows_its_move_not_its_rule() {
        let t = table().with_runtime_group("billing-eu", ClusterIdx(0));
        assert_eq!(t.group_cluster("billing-eu"), ClusterIdx(0));
        assert_eq!(t.group_cluster("billing-us"), ClusterIdx(1));
        assert_eq!(t.runtime_groups().count(), 1);
    }

    #[test]
    fn groups_follow_their_rule_or_the_default() {
        let t = table();
        assert_eq!(t.group_cluster("billing-eu"), ClusterIdx(1));
        assert_eq!(t.group_cluster("audit"), ClusterIdx(0));
    }

    #[test]
    fn bad_glob_is_refused() {
        assert!(Pattern::new("pay[ments").is_err());
        assert!(Pattern::new("").is_err());
    }
}
