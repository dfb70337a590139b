//! One dispatch per route class (see [`crate::plan::classify`]): answered
//! here, partitioned (planned, then forwarded whole or split), group,
//! transaction, topic administration.

use super::*;
use crate::handlers::metadata::Announced;
use crate::rewrite::produce::ProduceError;
use crate::wire::codec::CodecError;

/// One request frame on its way to one broker: the client's own (its view
/// at hand), or a part cut from it.
#[derive(Clone, Copy)]
struct Part<'a> {
    frame: &'a Bytes,
    /// The view of `frame` when it is the client's own.
    view: Option<&'a PartitionedRequest>,
}

/// Answers a partitioned request with NOT_LEADER_OR_FOLLOWER for every
/// partition, so the client refreshes its metadata and retries; an acks=0
/// Produce cannot be answered, so its connection closes (as a broker does).
fn refusal(
    request: &PartitionedRequest,
    header: &RequestHeader,
) -> Result<Option<Pending>, SessionEnd> {
    if !request.expects_answer() {
        return Err(SessionEnd::Unroutable);
    }
    let code = ResponseError::NotLeaderOrFollower;
    m::client_error(header.api_key, code.code());
    let answer = request.refusal(header, code)?;
    Ok(Some(Pending::Ready(answer)))
}

/// Runs a local handler; the virtual brokers its answer names are
/// listening before the answer goes out, and a restricted user's Metadata
/// answer (`screen`, with the request's version and correlation id) is
/// narrowed to what the user may see.
fn announce(
    proxy: Arc<Proxy>,
    answer: impl std::future::Future<Output = Result<Announced, CodecError>> + Send + 'static,
    screen: Option<(acl::MetadataScreen, i16, i32)>,
) -> Pending {
    Pending::Local(tokio::spawn(async move {
        let announced = answer.await?;
        proxy.listen_for(&announced.brokers);
        match screen {
            Some((screen, version, correlation_id)) => {
                screen.filter(version, correlation_id, announced.answer)
            }
            None => Ok(announced.answer),
        }
    }))
}

/// Whether sending a Produce stopped at a batch that came before an
/// earlier one refused by a flip (see
/// [`crate::domain::producer_ids::ProducerIds::out_of_order`]): then it is
/// refused, retriably, rather than the session ended.
fn out_of_order<T>(sent: &Result<T, SessionEnd>) -> bool {
    matches!(sent, Err(SessionEnd::Produce(ProduceError::OutOfOrder(..))))
}

/// The view of a request its class says is partitioned.
fn partitioned(request: &Request) -> Result<&PartitionedRequest, SessionEnd> {
    request.partitioned.as_ref().ok_or_else(|| {
        SessionEnd::Handler(format!(
            "{:?} is classed partitioned but was read without its view",
            request.spec.key
        ))
    })
}

impl Session {
    /// Starts a locally answered request; its body is parsed here, so a
    /// malformed one ends the session before any work is spawned.
    pub(super) fn local(&self, request: &Request) -> Result<Pending, SessionEnd> {
        let proxy = self.proxy.clone();
        let (header, body) = (request.header.clone(), request.body());
        Ok(match request.spec.key {
            ApiKey::ApiVersions => Pending::Ready(handlers::api_versions::answer(&proxy, &header)?),
            ApiKey::Metadata => {
                let mut view = MetadataRequestView::parse(&header, body)?;
                // A user with a topic allow-list sees only those topics.
                let screen = self
                    .auth
                    .user()
                    .and_then(|user| acl::MetadataScreen::new(user, &mut view))
                    .map(|screen| (screen, header.api_version, header.correlation_id));
                let answer = handlers::metadata::metadata(proxy.clone(), header, view);
                announce(proxy, answer, screen)
            }
            ApiKey::DescribeCluster => {
                let view = DescribeClusterView::parse(&header, body)?;
                let answer = handlers::metadata::describe_cluster(proxy.clone(), header, view);
                announce(proxy, answer, None)
            }
            ApiKey::FindCoordinator => {
                let view = FindCoordinatorView::parse(&header, body)?;
                let answer = handlers::coordinator::find_coordinator(proxy.clone(), header, view);
                announce(proxy, answer, None)
            }
            other => {
                return Err(SessionEnd::Handler(format!(
                    "{other:?} is marked local but has no handler"
                )))
            }
        })
    }

    /// Admits a Produce for `topics` past the flip gates, holding it while
    /// a flip fences one of them; `None` when the fence outlasts the hold
    /// (the client is told to retry).
    async fn admit(&self, topics: &TopicPartitions) -> Option<InflightGuard> {
        if self.proxy.store().closed() {
            // Its lease may have expired: the other instances may be
            // flipping without it. Fail closed; the client retries.
            return None;
        }
        let deadline = tokio::time::Instant::now() + FENCE_HOLD;
        let mut held = false;
        loop {
            match self
                .proxy
                .gates()
                .admit(topics.0.iter().map(|(t, _)| t.as_str()))
            {
                Admission::Admitted(guard) => return Some(guard),
                Admission::Held(mut fence) => {
                    if !held {
                        metrics::counter!(m::FENCE_HELD).increment(1);
                        held = true;
                    }
                    // Finishing in time means the fence dropped: ask again.
                    let waited = tokio::time::timeout_at(deadline, fence.changed()).await;
                    if waited.is_err() {
                        metrics::counter!(m::FENCE_REFUSED).increment(1);
                        return None;
                    }
                }
            }
        }
    }

    /// Forwards a request that names partitions to wherever they live now:
    /// a Produce first passes the flip gates; then the whole request goes to
    /// one upstream broker, or the client is told to refresh its metadata.
    pub(super) async fn forward_partitioned(
        &mut self,
        side: RouteSide,
        mut request: Request,
    ) -> Result<Option<Pending>, SessionEnd> {
        let view = partitioned(&request)?;
        let (header, topics) = (&request.header, view.topics());
        let mut guard = None;
        if let Some(produce) = view.produce() {
            if let Some(id) = produce.transactional_id.as_deref() {
                if self.spans_clusters(id, topics) {
                    let code = ResponseError::InvalidTxnState;
                    m::client_error(header.api_key, code.code());
                    let answer = view.refusal(header, code)?;
                    return Ok(Some(Pending::Ready(answer)));
                }
            }
            if !self.refusals.is_empty() {
                let (routes, gates) = (self.proxy.routes(), self.proxy.gates());
                let refuses = |r: &mut Refusals, t: &str| {
                    r.refuses(t, routes.generation(t), gates.held(t).is_some())
                };
                if topics.0.iter().any(|(t, _)| refuses(&mut self.refusals, t)) {
                    // Pipelined behind a refused request: it must not
                    // overtake that one's retry.
                    return self.refused(&request);
                }
            }
            match self.admit(topics).await {
                Some(admitted) => guard = Some(admitted),
                None => {
                    let routes = self.proxy.routes();
                    for (topic, _) in &topics.0 {
                        self.refusals.refused(topic, routes.generation(topic));
                    }
                    return self.refused(&request);
                }
            }
        }
        let own = self.own_broker();
        // Read before the table is: a table put in place after it is
        // noticed when the answer comes.
        let epoch = self.proxy.routes_epoch();
        let mut plan = self.plan(own, side, topics, view.seek());
        if plan.refuses_any() {
            // A topic the proxy has not seen yet (created a moment ago, or
            // asked for without Metadata first): look once before refusing.
            let unknown = {
                let routes = self.proxy.routes();
                let snapshot = Snapshot {
                    routes: &routes,
                    views: &*self.proxy,
                };
                plan::unknown_topics(&snapshot, side, topics)
            };
            if !unknown.is_empty() {
                for (cluster, names) in unknown {
                    let lookup = self
                        .proxy
                        .cluster(cluster)
                        .fetch_metadata(Some(&names), false);
                    if let Err(e) = lookup.await {
                        tracing::debug!(error = %e, "metadata lookup for unknown topics failed");
                    }
                }
                plan = self.plan(own, side, topics, view.seek());
            }
        }
        let (upstream, cluster) = match plan {
            Plan::Mirrored => (
                self.upstream(Target::Mirrored).await?,
                own.map_or_else(|| self.proxy.routes().default_cluster(), |(c, _)| c),
            ),
            Plan::Broker { cluster, address } => {
                (self.connection(cluster, &address).await?, cluster)
            }
            Plan::Refuse => return refusal(view, header),
            Plan::Split(split) => {
                return self
                    .forward_split(&request, view, &split, (epoch, guard))
                    .await;
            }
        };
        let part = Part {
            frame: &request.frame.0,
            view: Some(view),
        };
        let sent = self.send_part(view, header, part, upstream, cluster).await;
        if out_of_order(&sent) {
            return self.refused(&request);
        }
        let reply = sent?;
        if view.api() == ApiKey::Fetch {
            let (version, correlation_id) = (header.api_version, header.correlation_id);
            // The view goes with the answer, for its partitions and fetch
            // offsets: taken, not copied.
            let view = request.partitioned.take().ok_or_else(|| {
                SessionEnd::Handler("a Fetch was forwarded without its view".into())
            })?;
            let recheck = Recheck {
                epoch,
                cluster,
                version,
                correlation_id,
                view,
            };
            return Ok(reply.map(|reply| Pending::Fetched(reply, recheck)));
        }
        Ok(reply.map(|reply| Pending::Upstream(reply, guard)))
    }

    /// Refuses a Produce retriably (NOT_LEADER_OR_FOLLOWER), noting its
    /// idempotent batches as not written.
    fn refused(&self, request: &Request) -> Result<Option<Pending>, SessionEnd> {
        let view = partitioned(request)?;
        if let Some(produce) = view.produce() {
            let body_at = Frame::PREFIX + request.header.body_offset;
            rewrite::produce::note_refused(&self.proxy, &request.frame.0, body_at, produce);
        }
        refusal(view, &request.header)
    }

    /// Sends one request (whole, or one part of a split) to an upstream
    /// broker of `cluster`; a Produce first gets the producer ids that
    /// cluster knows its batches by.
    async fn send_part(
        &self,
        request: &PartitionedRequest,
        header: &RequestHeader,
        part: Part<'_>,
        upstream: Arc<UpstreamConn>,
        cluster: ClusterIdx,
    ) -> Result<Option<Reply>, SessionEnd> {
        let body_at = Frame::PREFIX + header.body_offset;
        let frame = part.frame;
        let rewritten = match (request.produce(), request.api()) {
            (Some(_), _) => {
                // A part cut from a split was encoded anew: its records sit
                // elsewhere than in the client's frame.
                let reread;
                let view = match part.view.and_then(PartitionedRequest::produce) {
                    Some(view) => view,
                    None => {
                        reread = ProduceView::parse(header, &frame[body_at..])?;
                        &reread
                    }
                };
                rewrite::produce::for_cluster(&self.proxy, frame, body_at, view, cluster).await?
            }
            (None, ApiKey::Fetch) => rewrite::fetch::sessionless(frame, header, body_at),
            (None, _) => None,
        };
        let expect_response = request.expects_answer();
        Ok(upstream
            .send(
                rewritten.as_deref().unwrap_or(frame),
                header.correlation_id,
                expect_response,
            )
            .await?)
    }

    /// Sends each broker its part of a split request; the answer, when the
    /// client expects one, is the merge of theirs (and of the proxy's own
    /// refusal of partitions that live nowhere it knows), its offsets moved
    /// into the client's (stitched) log.
    async fn forward_split(
        &mut self,
        request: &Request,
        view: &PartitionedRequest,
        split: &SplitPlan,
        (epoch, guard): (u64, Option<InflightGuard>),
    ) -> Result<Option<Pending>, SessionEnd> {
        let (header, family) = (&request.header, view.family());
        let whole =
            split.destinations.len() == 1 && split.assignment.iter().flatten().all(Option::is_some);
        let parts = if whole && view.produce().is_some() {
            // A Produce names no offset: to one broker it goes as it came,
            // and only its answer is shifted.
            vec![Some(request.frame.0.clone())]
        } else {
            let parts = plan::split::Parts {
                assignment: &split.assignment,
                shifts: &split.shifts,
                destinations: split.destinations.len(),
            };
            family.split(&request.frame.0, header, &parts)?
        };
        if split.destinations.len() > 1 {
            metrics::counter!(m::SPLIT_REQUESTS).increment(1);
        }
        let mut replies = Vec::with_capacity(parts.len());
        for ((cluster, address), frame) in split.destinations.iter().zip(parts) {
            let Some(frame) = frame else { continue };
            let upstream = self.connection(*cluster, address).await?;
            let part = Part {
                frame: &frame,
                view: Some(view).filter(|_| whole),
            };
            let sent = self.send_part(view, header, part, upstream, *cluster).await;
            if out_of_order(&sent) && replies.is_empty() {
                // Nothing of it sent yet: refused whole, retriably.
                return self.refused(request);
            }
            if let Some(reply) = sent? {
                replies.push(reply);
            }
        }
        if !view.expects_answer() {
            return Ok(None);
        }
        let refused = split.refused(view.topics());
        let (version, correlation_id) = (header.api_version, header.correlation_id);
        let mut answers = Vec::with_capacity(replies.len() + 1);
        if !refused.0.is_empty() {
            let refusal = ResponseError::NotLeaderOrFollower.code();
            m::client_error(header.api_key, refusal);
            let code = |_: &str| refusal;
            answers.push(Frame(family.refusal(
                version,
                correlation_id,
                &refused,
                &code,
            )?));
        }
        let (order, mut shifts) = (view.topics().clone(), split.shifts.clone());
        // A Fetch waits for records: the table may change meanwhile.
        let fetch = (view.api() == ApiKey::Fetch).then(|| (self.proxy.clone(), split.clusters()));
        let fetched = fetch
            .is_some()
            .then(|| (view.fetch_offsets().to_vec(), self.gaps.clone()));
        let merged = tokio::spawn(async move {
            for reply in replies {
                answers.push(reply.await.map_err(|_| lost_task())??);
            }
            if let Some((proxy, clusters)) = fetch.filter(|(p, _)| p.routes_epoch() != epoch) {
                plan::split::shifts_now(&proxy.routes(), &order, &clusters, &mut shifts);
            }
            let merge = plan::split::Merge {
                version,
                correlation_id,
                order: &order,
                shifts: &shifts,
                fetched: fetched.as_ref().map(|(o, g)| (o.as_slice(), &**g)),
            };
            Ok(family.merge(&merge, &answers)?)
        });
        Ok(Some(Pending::Merged(merged, guard)))
    }

    /// Topic administration goes to the controller of the cluster its topics
    /// route to; a request whose topics route to several clusters is refused,
    /// topic by topic, with INVALID_REQUEST and a message saying why.
    pub(super) async fn forward_admin(
        &mut self,
        request: &Request,
    ) -> Result<Option<Pending>, SessionEnd> {
        let (api, header) = (request.spec.key, &request.header);
        let names = requests::admin_topic_names(header, request.body())?;
        let routes = self.proxy.routes();
        let mut clusters: Vec<ClusterIdx> =
            names.iter().map(|n| routes.metadata_cluster(n)).collect();
        clusters.sort();
        clusters.dedup();
        // The topics change: no client is answered from what was cached.
        for &c in &clusters {
            self.proxy.cluster(c).forget_metadata();
        }
        let listener_cluster = self
            .own_broker()
            .map_or_else(|| routes.default_cluster(), |(c, _)| c);
        let upstream = match clusters.as_slice() {
            [] => self.upstream(Target::Controller).await?,
            [c] if *c == listener_cluster => self.upstream(Target::Controller).await?,
            [c] => {
                let address = self.proxy.cluster(*c).controller_address();
                self.connection(*c, &address).await?
            }
            several => {
                let names_of: Vec<&str> = several
                    .iter()
                    .map(|c| self.proxy.cluster(*c).name())
                    .collect();
                let message = format!(
                    "the topics of this request route to different clusters ({}); send one request per cluster",
                    names_of.join(", ")
                );
                let answer = topic_error_response(
                    api,
                    header.api_version,
                    header.correlation_id,
                    &names,
                    ResponseError::InvalidRequest.code(),
                    &message,
                )?;
                return Ok(Some(Pending::Ready(answer)));
            }
        };
        forward_whole(&upstream, request, None).await
    }

    /// Sends a transaction request to the coordinator of its transactional
    /// id on the cluster its transactions run on (the default cluster, or a
    /// transaction rule's). Partitions added whose topic is written
    /// elsewhere are refused, every one of them, with INVALID_TXN_STATE:
    /// one transaction cannot span clusters. InitProducerId without a
    /// transactional id (an idempotent producer) goes to the default
    /// cluster, whose producer ids the proxy maps for the others.
    pub(super) async fn forward_transaction(
        &mut self,
        request: &Request,
    ) -> Result<Option<Pending>, SessionEnd> {
        let (api, header, body) = (request.spec.key, &request.header, request.body());
        let Some(id) = requests::transactional_id_of(header, body)? else {
            let upstream = self.upstream(Target::DefaultCluster).await?;
            return forward_whole(&upstream, request, None).await;
        };
        if api == ApiKey::AddPartitionsToTxn {
            let (_, topics) = requests::add_partitions_to_txn(header, body)?;
            if self.spans_clusters(&id, &topics) {
                let (version, correlation_id) = (header.api_version, header.correlation_id);
                let code = ResponseError::InvalidTxnState.code();
                let answer = partition_error_response(api, version, correlation_id, &topics, code)?;
                return Ok(Some(Pending::Ready(answer)));
            }
        }
        let cluster = self.proxy.routes().transaction_cluster(&id);
        let upstream = self
            .coordinator_connection(cluster, TRANSACTION_KEY, id)
            .await?;
        forward_whole(&upstream, request, None).await
    }

    /// Whether a transactional request names topics written to a cluster
    /// other than the one its transaction runs on (it is refused, every
    /// partition INVALID_TXN_STATE).
    fn spans_clusters(&self, transactional_id: &str, topics: &TopicPartitions) -> bool {
        let routes = self.proxy.routes();
        let names = topics.0.iter().map(|(topic, _)| topic.as_str());
        let Some(elsewhere) = routes.written_elsewhere(transactional_id, names) else {
            return false;
        };
        tracing::info!(
            transactional_id,
            topic = elsewhere,
            "refusing a transaction that would span clusters"
        );
        true
    }

    /// Sends a group request to the cluster coordinating its group: the
    /// listener's own broker when that cluster is the listener's (the fast
    /// path), else the group's coordinator there. While the group moves,
    /// its requests wait here; its commits count in flight, so a move waits
    /// for those already sent.
    pub(super) async fn forward_group(
        &mut self,
        request: &Request,
    ) -> Result<Option<Pending>, SessionEnd> {
        let api = request.spec.key;
        let group = requests::group_of(&request.header, request.body())?;
        let mut guard = None;
        if let Some(group) = &group {
            let gates = self.proxy.group_gates().clone();
            loop {
                let held = if api == ApiKey::OffsetCommit {
                    match gates.admit(std::iter::once(group.as_str())) {
                        Admission::Admitted(g) => {
                            guard = Some(g);
                            None
                        }
                        Admission::Held(fence) => Some(fence),
                    }
                } else {
                    gates.held(group)
                };
                match held {
                    // The move ends, done or aborted, by dropping its fence.
                    Some(mut fence) => {
                        let _ = fence.changed().await;
                    }
                    None => break,
                }
            }
        }
        let routes = self.proxy.routes();
        let own_cluster = self
            .own_broker()
            .map_or_else(|| routes.default_cluster(), |(c, _)| c);
        let upstream = match group.map(|g| (routes.group_cluster(&g), g)) {
            Some((cluster, group)) if cluster != own_cluster => {
                self.coordinator_connection(cluster, GROUP_KEY, group)
                    .await?
            }
            _ => self.upstream(Target::Mirrored).await?,
        };
        forward_whole(&upstream, request, guard).await
    }
}
