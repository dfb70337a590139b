//! The session's upstream connections: its own broker, the planner's
//! snapshot, and the connections it caches per target and address.

use super::*;

impl Session {
    /// The upstream broker this session's listener mirrors (`None` on the
    /// bootstrap listener), looked up once per session.
    pub(super) fn own_broker(&mut self) -> Option<(ClusterIdx, UpstreamNodeId)> {
        if let Some(own) = self.own_broker {
            return own;
        }
        let own = match self.listener {
            ListenerKind::Bootstrap => None,
            ListenerKind::Broker(id) => self
                .proxy
                .virtual_broker(id)
                .map(|b| (b.cluster, b.upstream)),
        };
        self.own_broker = Some(own);
        own
    }

    /// Plans a partitioned request on a snapshot of the routes and the
    /// clusters' views taken now.
    pub(super) fn plan(
        &self,
        own: Option<(ClusterIdx, UpstreamNodeId)>,
        side: RouteSide,
        topics: &TopicPartitions,
        seek: Seek<'_>,
    ) -> Plan {
        let routes = self.proxy.routes();
        let snapshot = Snapshot {
            routes: &routes,
            views: &*self.proxy,
        };
        plan::plan(&snapshot, own, side, topics, seek)
    }

    /// This client's connection to the upstream broker for `target`,
    /// resolved and opened on first use.
    pub(super) async fn upstream(
        &mut self,
        target: Target,
    ) -> Result<Arc<UpstreamConn>, SessionEnd> {
        let (cluster, address) = match self.targets.get(&target) {
            Some(resolved) => resolved.clone(),
            None => {
                let resolved = forward::resolve(&self.proxy, self.listener, target)
                    .map_err(SessionEnd::NoRoute)?;
                self.targets.insert(target, resolved.clone());
                resolved
            }
        };
        self.connection(cluster, &address).await
    }

    /// This client's connection to one upstream broker, opened on first use.
    pub(super) async fn connection(
        &mut self,
        cluster: crate::domain::ids::ClusterIdx,
        address: &str,
    ) -> Result<Arc<UpstreamConn>, SessionEnd> {
        if let Some(conn) = self.upstreams.get(address) {
            if conn.is_closed() {
                return Err(UpstreamError::Lost {
                    addr: conn.addr().to_owned(),
                    reason: "closed".into(),
                }
                .into());
            }
            return Ok(conn.clone());
        }
        let conn = self.proxy.cluster(cluster).connect(address).await?;
        self.upstreams.insert(address.to_owned(), conn.clone());
        Ok(conn)
    }

    /// This client's connection to the coordinator of `key` (key type 0: a
    /// group, 1: a transactional id) on `cluster`, looked up once.
    pub(super) async fn coordinator_connection(
        &mut self,
        cluster: ClusterIdx,
        key_type: i8,
        key: String,
    ) -> Result<Arc<UpstreamConn>, SessionEnd> {
        let key = (cluster, key_type, key);
        let address = match self.coordinators.get(&key) {
            Some(address) => address.clone(),
            None => {
                let address = self
                    .proxy
                    .cluster(cluster)
                    .coordinator(key_type, &key.2)
                    .await?;
                self.coordinators.insert(key, address.clone());
                address
            }
        };
        self.connection(cluster, &address).await
    }
}
