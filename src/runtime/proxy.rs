//! The state every connection shares: config, route table, the upstream
//! clusters, and the virtual brokers that mirror their brokers.
//!
//! Virtual broker listeners are opened and closed here, whenever a view of
//! an upstream cluster changes, before any client is told about them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::task::JoinHandle;

use super::listeners::{self, ConnectionLimits};
use super::shutdown::Shutdown;
use crate::auth::ClientSecurity;
use crate::config::Config;
use crate::domain::gates::{Gates, Running};
use crate::domain::ids::ClusterIdx;
use crate::domain::ids::{UpstreamNodeId, VirtualNodeId};
use crate::domain::producer_ids::ProducerIds;
use crate::domain::routes::{Route, RouteTable};
use crate::domain::topology::Topology;
use crate::ops::journal::Journal;
use crate::ops::state::{FlipRecord, GroupMoveRecord, RouteEntry, State, StateError, StateStore};
use crate::plan::ClusterViews;
use crate::upstream::Cluster;

fn route_of(config: &Config, entry: &RouteEntry) -> Option<Route> {
    let idx = |name: &str| config.cluster_idx(name);
    Some(Route {
        produce: idx(&entry.produce)?,
        fetch: idx(&entry.fetch)?,
    })
}

/// `routes` with the stitch `flip` recorded (when Produce moved); an error
/// naming `source` (where the record came from) when the record names a
/// cluster the config does not have.
fn with_stitch_of(
    config: &Config,
    mut routes: RouteTable,
    flip: &FlipRecord,
    source: &str,
) -> Result<RouteTable, StateError> {
    if flip.stitch.is_empty() {
        return Ok(routes);
    }
    let unknown = || StateError::Parse {
        path: source.to_owned(),
        message: format!(
            "flip of topic '{}' names cluster '{}' or '{}', which the config does not have",
            flip.topic, flip.from.produce, flip.to.produce
        ),
    };
    let from = config.cluster_idx(&flip.from.produce).ok_or_else(unknown)?;
    let to = config.cluster_idx(&flip.to.produce).ok_or_else(unknown)?;
    let points = flip.stitch_points();
    let stitches = routes.stitches_mut();
    stitches.record_move(&flip.topic, from, to, flip.at_ms, points);
    Ok(routes)
}

/// A broker of the virtual cluster: what clients see, and the upstream
/// broker it mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualBroker {
    pub id: VirtualNodeId,
    pub cluster: ClusterIdx,
    pub upstream: UpstreamNodeId,
    pub port: u16,
    pub rack: Option<String>,
}

/// Which listener a client connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Bootstrap,
    Broker(VirtualNodeId),
}

/// Runs the accept loop of one listener as a task: the server's, handed
/// over at start-up (see [`super`]).
pub type AcceptLoop = fn(Arc<Proxy>, tokio::net::TcpListener, ListenerKind) -> JoinHandle<()>;

struct OpenListener {
    port: u16,
    task: JoinHandle<()>,
}

pub struct Proxy {
    /// The config as last (re)loaded.
    config: RwLock<Arc<Config>>,
    topology: Topology,
    routes: RwLock<Arc<RouteTable>>,
    /// Counts the route tables put in place, so that an answer planned on
    /// one table notices a newer one without taking the lock.
    routes_epoch: AtomicU64,
    /// Runtime routes and flip history, as last saved to the store.
    state: tokio::sync::Mutex<State>,
    /// Where the state is saved (the state file, for one instance).
    store: Arc<dyn StateStore>,
    gates: Arc<Gates>,
    flips: Running,
    /// Fences and in-flight OffsetCommits per consumer group, for moves.
    group_gates: Arc<Gates>,
    /// Groups with a move running.
    group_moves: Running,
    producer_ids: ProducerIds,
    connections: Arc<ConnectionLimits>,
    /// TLS and SASL towards clients, as last (re)loaded.
    security: RwLock<Arc<ClientSecurity>>,
    /// Counts the reloads of `security`, so that a session notices one
    /// without taking its lock on every request.
    security_generation: AtomicU64,
    /// Append-only: a reload adds clusters, never removes one, and a
    /// cluster's index never changes.
    clusters: boxcar::Vec<Arc<Cluster>>,
    listeners: Mutex<HashMap<VirtualNodeId, OpenListener>>,
    accept_loop: AcceptLoop,
    /// Ports that failed to bind, so each failure is reported once.
    bind_failures: Mutex<HashSet<u16>>,
    shutdown: Arc<Shutdown>,
    /// Failed moves and progress readings, for the console.
    journal: Journal,
}

impl Proxy {
    /// The config as last (re)loaded.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Runtime routes and flip history, as last saved to the store; held
    /// from a change's save to its switch, so changes never interleave.
    pub fn state(&self) -> &tokio::sync::Mutex<State> {
        &self.state
    }

    /// Where the state is saved.
    pub fn store(&self) -> &dyn StateStore {
        &*self.store
    }

    /// The fences every Produce passes, for flips.
    pub fn gates(&self) -> &Arc<Gates> {
        &self.gates
    }

    /// Topics with a flip running.
    pub fn flips(&self) -> &Running {
        &self.flips
    }

    /// Fences and in-flight OffsetCommits per consumer group, for moves.
    pub fn group_gates(&self) -> &Arc<Gates> {
        &self.group_gates
    }

    /// Groups with a move running.
    pub fn group_moves(&self) -> &Running {
        &self.group_moves
    }

    pub fn producer_ids(&self) -> &ProducerIds {
        &self.producer_ids
    }

    pub fn connections(&self) -> &Arc<ConnectionLimits> {
        &self.connections
    }

    /// TLS and SASL towards clients, as last (re)loaded.
    pub fn security(&self) -> Arc<ClientSecurity> {
        self.security
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many times the client security has been reloaded.
    pub fn security_generation(&self) -> u64 {
        self.security_generation.load(Ordering::Acquire)
    }

    /// Failed moves and progress readings, for the console.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The drain every accept loop and session watches, and what it
    /// counts.
    pub fn shutdown(&self) -> &Arc<Shutdown> {
        &self.shutdown
    }

    /// Every upstream cluster, in [`ClusterIdx`] order: the config's
    /// name order, then the clusters reloads added.
    pub fn clusters(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.clusters.iter().map(|(_, c)| c)
    }

    /// How many upstream clusters there are.
    pub fn cluster_count(&self) -> usize {
        self.clusters.count()
    }

    /// A proxy for `config`, with the runtime routes of `state` (as
    /// `store` holds it) applied; `accept_loop` serves the virtual
    /// brokers' listeners it opens.
    pub fn new(
        config: Config,
        store: Arc<dyn StateStore>,
        state: State,
        accept_loop: AcceptLoop,
    ) -> anyhow::Result<Arc<Proxy>> {
        let security = ClientSecurity::from_config(&config)?;
        let mut routes = RouteTable::new(&config.routes);
        let mut flips_of: HashMap<&str, u64> = HashMap::new();
        for flip in &state.flips {
            *flips_of.entry(flip.topic.as_str()).or_default() += 1;
        }
        for (topic, entry) in &state.routes {
            let route = route_of(&config, entry).ok_or_else(|| StateError::Parse {
                path: config.proxy.state_file.display().to_string(),
                message: format!(
                    "route of topic '{topic}' names cluster '{}' or '{}', which the config does not have",
                    entry.produce, entry.fetch
                ),
            })?;
            let flips = flips_of.get(topic.as_str()).copied().unwrap_or(0);
            routes.set_runtime_route(topic, route);
            routes.set_generation(topic, flips.max(1));
        }
        let source = config.proxy.state_file.display().to_string();
        for flip in &state.flips {
            routes = with_stitch_of(&config, routes, flip, &source)?;
        }
        for (group, cluster) in &state.groups {
            let idx = config
                .cluster_idx(cluster)
                .ok_or_else(|| StateError::Parse {
                    path: config.proxy.state_file.display().to_string(),
                    message: format!(
                    "group '{group}' moved to cluster '{cluster}', which the config does not have"
                ),
                })?;
            routes = routes.with_runtime_group(group, idx);
        }
        let clusters = boxcar::Vec::new();
        for (i, c) in config.clusters.iter().enumerate() {
            clusters.push(Arc::new(Cluster::new(
                ClusterIdx(i),
                c.clone(),
                &config.proxy,
            )?));
        }
        Ok(Arc::new(Proxy {
            topology: Topology::new(&config),
            routes: RwLock::new(Arc::new(routes)),
            routes_epoch: AtomicU64::new(0),
            state: tokio::sync::Mutex::new(state),
            store,
            gates: Arc::default(),
            flips: Running::default(),
            group_gates: Arc::default(),
            group_moves: Running::default(),
            producer_ids: ProducerIds::default(),
            connections: ConnectionLimits::new(
                config.proxy.max_connections,
                config.proxy.max_connections_per_ip,
            ),
            security: RwLock::new(Arc::new(security)),
            security_generation: AtomicU64::new(0),
            clusters,
            config: RwLock::new(Arc::new(config)),
            listeners: Mutex::new(HashMap::new()),
            accept_loop,
            bind_failures: Mutex::new(HashSet::new()),
            shutdown: Arc::default(),
            journal: Journal::default(),
        }))
    }

    /// Puts a reloaded config in place: its client security, the upstream
    /// security of each cluster it keeps (`upstream`, in index order), the
    /// clusters it adds (`added`, indexed after the others) and `routes`.
    /// The caller holds the state lock, so no flip switches meanwhile.
    pub fn apply_reload(
        &self,
        config: Config,
        security: ClientSecurity,
        upstream: Vec<crate::upstream::UpstreamSecurity>,
        added: Vec<Arc<Cluster>>,
        routes: RouteTable,
    ) {
        for (cluster, security) in self.clusters().zip(upstream) {
            cluster.set_security(security);
        }
        for cluster in added {
            self.topology.add(cluster.config.node_id_base);
            let at = self.clusters.push(cluster);
            debug_assert_eq!(at, self.clusters[at].idx.0);
        }
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        *self.security.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(security);
        self.security_generation.fetch_add(1, Ordering::AcqRel);
        self.set_routes(routes);
    }

    /// The route table now; a flip swaps in a new one.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_routes(&self, table: RouteTable) {
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        self.routes_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// How many route tables have been put in place: read before planning
    /// a request, and again when its answer comes, it says whether the
    /// table changed meanwhile.
    pub fn routes_epoch(&self) -> u64 {
        self.routes_epoch.load(Ordering::Acquire)
    }

    /// Switches to a flip decided through the state topic (by any instance
    /// of the fleet): its route and stitch, and its record in the state.
    /// A flip the state holds already changes nothing.
    pub async fn take_flip(&self, record: &FlipRecord) -> Result<(), StateError> {
        let mut state = self.state.lock().await;
        if state.flips.contains(record) {
            return Ok(());
        }
        const SOURCE: &str = "the state topic";
        let config = self.config();
        let route = route_of(&config, &record.to).ok_or_else(|| StateError::Parse {
            path: SOURCE.to_owned(),
            message: format!(
                "flip of topic '{}' routes to cluster '{}' or '{}', which the config does not have",
                record.topic, record.to.produce, record.to.fetch
            ),
        })?;
        let routes = self.routes().with_runtime_route(&record.topic, route);
        self.set_routes(with_stitch_of(&config, routes, record, SOURCE)?);
        crate::ops::state_topic::records::apply_flip(&mut state, record.clone());
        Ok(())
    }

    /// Takes a group move that another instance recorded (the state
    /// topic): the group's requests go to its new cluster from now on.
    pub async fn take_group_move(&self, record: &GroupMoveRecord) -> Result<(), StateError> {
        let mut state = self.state.lock().await;
        if state.group_moves.contains(record) {
            return Ok(());
        }
        let to = self
            .cluster_by_name(&record.to)
            .ok_or_else(|| StateError::Parse {
                path: "the state topic".to_owned(),
                message: format!(
                    "move of group '{}' goes to cluster '{}', which the config does not have",
                    record.group, record.to
                ),
            })?;
        self.set_routes(self.routes().with_runtime_group(&record.group, to));
        crate::ops::state_topic::records::apply_group_move(&mut state, record.clone());
        Ok(())
    }

    pub fn cluster_by_name(&self, name: &str) -> Option<ClusterIdx> {
        self.clusters().find(|c| c.name() == name).map(|c| c.idx)
    }

    /// A route as the state file and admin socket spell it.
    pub fn route_entry(&self, route: Route) -> RouteEntry {
        RouteEntry {
            produce: self.cluster(route.produce).name().to_owned(),
            fetch: self.cluster(route.fetch).name().to_owned(),
        }
    }

    pub fn cluster(&self, idx: ClusterIdx) -> &Arc<Cluster> {
        &self.clusters[idx.0]
    }

    /// Every virtual broker, from the current views of all clusters. Where
    /// two upstream brokers would share a virtual id, the first cluster in
    /// name order keeps it and the clash is logged (once per id).
    pub fn virtual_brokers(&self) -> Vec<VirtualBroker> {
        let mut out: BTreeMap<VirtualNodeId, VirtualBroker> = BTreeMap::new();
        for cluster in self.clusters() {
            let brokers: Vec<_> = cluster.with_view(|v| {
                v.brokers
                    .iter()
                    .map(|(id, addr)| (*id, addr.rack.clone()))
                    .collect()
            });
            for (upstream, rack) in brokers {
                let id = self.topology.to_virtual(cluster.idx, upstream);
                let Some(port) = self.topology.port(id) else {
                    tracing::error!(
                        cluster = cluster.name(),
                        node = upstream.0,
                        virtual_node = id.0,
                        "virtual broker port is out of range; lower proxy.broker_port_base or clusters.{}.node_id_base",
                        cluster.name()
                    );
                    continue;
                };
                match out.entry(id) {
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(VirtualBroker {
                            id,
                            cluster: cluster.idx,
                            upstream,
                            port,
                            rack,
                        });
                    }
                    // Said once per virtual id: this runs on every Metadata.
                    std::collections::btree_map::Entry::Occupied(kept) => {
                        static WARNED: Mutex<std::collections::BTreeSet<i32>> =
                            Mutex::new(std::collections::BTreeSet::new());
                        let kept = kept.get();
                        let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
                        if warned.insert(id.0) {
                            tracing::warn!(
                                virtual_node = id.0,
                                kept_cluster = self.cluster(kept.cluster).name(),
                                kept_node = kept.upstream.0,
                                dropped_cluster = cluster.name(),
                                dropped_node = upstream.0,
                                "brokers of two clusters map to one virtual node id; the second is left out of the virtual cluster (space the clusters' node_id_base values further apart than their largest broker id)"
                            );
                        }
                    }
                }
            }
        }
        out.into_values().collect()
    }

    /// The virtual broker behind a listener, if it still exists.
    pub fn virtual_broker(&self, id: VirtualNodeId) -> Option<VirtualBroker> {
        self.virtual_brokers().into_iter().find(|b| b.id == id)
    }

    /// The virtual id of a cluster's controller, or -1 when unknown.
    pub fn virtual_controller(&self, cluster: ClusterIdx) -> VirtualNodeId {
        let controller = self.cluster(cluster).with_view(|v| v.controller);
        controller
            .map(|c| self.topology.to_virtual(cluster, c))
            .unwrap_or(VirtualNodeId(-1))
    }

    /// Opens a listener for every virtual broker that lacks one and closes
    /// those whose upstream broker is gone.
    pub fn sync_listeners(self: &Arc<Self>) {
        let wanted = self.virtual_brokers();
        let wanted_ids: HashSet<VirtualNodeId> = wanted.iter().map(|b| b.id).collect();
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, listener| {
                let keep = wanted_ids.contains(id);
                if !keep {
                    listener.task.abort();
                    tracing::info!(
                        virtual_node = id.0,
                        port = listener.port,
                        "virtual broker closed"
                    );
                }
                keep
            });
        self.listen_for(&wanted);
    }

    /// Opens a listener for each of `brokers` that lacks one. Binding is
    /// synchronous, so a broker is listening before any answer names it.
    /// A draining proxy opens none.
    pub fn listen_for(self: &Arc<Self>, brokers: &[VirtualBroker]) {
        if self.shutdown.is_draining() {
            return;
        }
        let mut open = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        for broker in brokers {
            if open.contains_key(&broker.id) {
                continue;
            }
            let addr = std::net::SocketAddr::new(self.config().proxy.listen.ip(), broker.port);
            match listeners::bind(addr) {
                Ok(listener) => {
                    self.bind_failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&broker.port);
                    let task =
                        (self.accept_loop)(self.clone(), listener, ListenerKind::Broker(broker.id));
                    tracing::info!(
                        virtual_node = broker.id.0,
                        cluster = self.cluster(broker.cluster).name(),
                        upstream_node = broker.upstream.0,
                        %addr,
                        "virtual broker listening"
                    );
                    open.insert(
                        broker.id,
                        OpenListener {
                            port: broker.port,
                            task,
                        },
                    );
                }
                Err(e) => {
                    let first = self
                        .bind_failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(broker.port);
                    if first {
                        tracing::error!(
                            virtual_node = broker.id.0,
                            %addr,
                            error = %e,
                            "cannot listen for virtual broker; is the port free? (proxy.broker_port_base + virtual node id)"
                        );
                    }
                }
            }
        }
    }

    /// Virtual brokers with an open listener.
    pub fn listening(&self) -> Vec<VirtualNodeId> {
        let open = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<_> = open.keys().copied().collect();
        ids.sort();
        ids
    }
}

/// The clusters' live views, as planning reads them.
impl ClusterViews for Proxy {
    fn leader(&self, cluster: ClusterIdx, topic: &str, partition: i32) -> Option<UpstreamNodeId> {
        self.cluster(cluster).with_view(|v| {
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
        })
    }

    fn address(&self, cluster: ClusterIdx, node: UpstreamNodeId) -> Option<String> {
        self.cluster(cluster).broker_address(node)
    }

    fn knows_topic(&self, cluster: ClusterIdx, topic: &str) -> bool {
        self.cluster(cluster)
            .with_view(|v| v.topics.contains_key(topic))
    }
}
