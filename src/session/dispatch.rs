//! One dispatch per route class (see [`crate::plan::classify`]): answered
//! here, partitioned (planned, then forwarded whole or split), group,
//! transaction, topic administration.

use super::*;

/// Answers a partitioned request with NOT_LEADER_OR_FOLLOWER for every
/// partition, so the client refreshes its metadata and retries; an acks=0
/// Produce cannot be answered, so its connection closes (as a broker does).
pub(super) fn refusal(
    api: ApiKey,
    header: &RequestHeader,
    topics: &TopicPartitions,
    expect_response: bool,
) -> Result<Option<Pending>, SessionEnd> {
    if !expect_response {
        return Err(SessionEnd::Unroutable);
    }
    let code = ResponseError::NotLeaderOrFollower;
    Ok(Some(every_partition(api, header, topics, code)?))
}

/// The answer that gives every partition of a request one error.
pub(super) fn every_partition(
    api: ApiKey,
    header: &RequestHeader,
    topics: &TopicPartitions,
    error: ResponseError,
) -> Result<Pending, SessionEnd> {
    let (version, correlation_id) = (header.api_version, header.correlation_id);
    let answer = partition_error_response(api, version, correlation_id, topics, error.code())?;
    Ok(Pending::Ready(answer))
}

/// What every step of forwarding a partitioned request reads of it,
/// parsed once.
#[derive(Clone, Copy)]
pub(super) struct Outbound<'a> {
    pub api: ApiKey,
    pub header: &'a RequestHeader,
    /// False for an acks=0 Produce: the client expects no answer.
    pub expect_response: bool,
}

impl Session {
    /// Starts a locally answered request; its body is parsed here, so a
    /// malformed one ends the session before any work is spawned.
    pub(super) fn local(
        &self,
        api: ApiKey,
        header: RequestHeader,
        body: &[u8],
    ) -> Result<Pending, SessionEnd> {
        let proxy = self.proxy.clone();
        Ok(match api {
            ApiKey::ApiVersions => Pending::Ready(handlers::api_versions::answer(&proxy, &header)?),
            ApiKey::Metadata => {
                let request = MetadataRequestView::parse(&header, body)?;
                Pending::Local(tokio::spawn(handlers::metadata::metadata(
                    proxy, header, request,
                )))
            }
            ApiKey::DescribeCluster => {
                let request = DescribeClusterView::parse(&header, body)?;
                Pending::Local(tokio::spawn(handlers::metadata::describe_cluster(
                    proxy, header, request,
                )))
            }
            ApiKey::FindCoordinator => {
                let request = FindCoordinatorView::parse(&header, body)?;
                Pending::Local(tokio::spawn(handlers::coordinator::find_coordinator(
                    proxy, header, request,
                )))
            }
            other => {
                return Err(SessionEnd::Handler(format!(
                    "{other:?} is marked local but has no handler"
                )))
            }
        })
    }

    /// Forwards a request that names partitions to wherever they live now:
    /// a Produce first passes the flip gates; then the whole request goes to
    /// one upstream broker, or the client is told to refresh its metadata.
    pub(super) async fn forward_partitioned(
        &mut self,
        api: ApiKey,
        side: RouteSide,
        frame: &Frame,
        header: &RequestHeader,
        body: &[u8],
    ) -> Result<Option<Pending>, SessionEnd> {
        let produce = match api {
            ApiKey::Produce => Some(ProduceView::parse(header, body)?),
            _ => None,
        };
        let read;
        let mut positions = Vec::new();
        let topics: &TopicPartitions = match &produce {
            Some(view) => &view.topics,
            None => {
                read = match api {
                    ApiKey::Fetch => {
                        let (topics, offsets) = requests::fetch_positions(header, body)?;
                        positions = offsets;
                        topics
                    }
                    ApiKey::ListOffsets => {
                        let (topics, timestamps) = requests::list_offsets_positions(header, body)?;
                        positions = timestamps;
                        topics
                    }
                    _ => requests::offset_for_leader_epoch_topics(header, body)?,
                };
                &read
            }
        };
        let seek = match api {
            ApiKey::Fetch => Seek::Offsets(&positions),
            ApiKey::ListOffsets => Seek::Timestamps(&positions),
            _ => Seek::Newest,
        };
        // acks=0: the client expects no answer at all.
        let expect_response = produce.as_ref().is_none_or(|view| view.acks != 0);
        let out = Outbound {
            api,
            header,
            expect_response,
        };
        if let Some(id) = produce.as_ref().and_then(|v| v.transactional_id.as_deref()) {
            if let Some(refusal) = self.spanning_transaction(api, id, header, topics)? {
                return Ok(Some(refusal));
            }
        }
        let mut guard = None;
        if api == ApiKey::Produce {
            let deadline = tokio::time::Instant::now() + FENCE_HOLD;
            loop {
                match self
                    .proxy
                    .gates
                    .admit(topics.0.iter().map(|(t, _)| t.as_str()))
                {
                    Admission::Admitted(g) => {
                        guard = Some(g);
                        break;
                    }
                    Admission::Held(mut fence) => {
                        // Finishing in time means the fence dropped: ask again.
                        if tokio::time::timeout_at(deadline, fence.changed())
                            .await
                            .is_err()
                        {
                            return refusal(api, header, topics, expect_response);
                        }
                    }
                }
            }
        }
        let own = self.own_broker();
        let mut plan = self.plan(own, side, topics, seek);
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
                plan = self.plan(own, side, topics, seek);
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
            Plan::Refuse => return refusal(api, header, topics, expect_response),
            Plan::Split(split) => {
                let pending = self
                    .forward_split(&out, frame, topics, produce.as_ref(), &split)
                    .await?;
                return Ok(pending.map(|task| Pending::Merged(task, guard)));
            }
        };
        let reply = self
            .send_part(&out, &frame.0, produce.as_ref(), upstream, cluster)
            .await?;
        Ok(reply.map(|reply| Pending::Upstream(reply, guard)))
    }

    /// Sends one request (whole, or one part of a split) to an upstream
    /// broker of `cluster`; a Produce first gets the producer ids that
    /// cluster knows its batches by (`produce` is its view when already
    /// parsed).
    pub(super) async fn send_part(
        &self,
        out: &Outbound<'_>,
        frame: &Bytes,
        produce: Option<&ProduceView>,
        upstream: Arc<UpstreamConn>,
        cluster: ClusterIdx,
    ) -> Result<Option<Reply>, SessionEnd> {
        let Outbound {
            api,
            header,
            expect_response,
        } = *out;
        let body_at = Frame::PREFIX + header.body_offset;
        let rewritten = match (api, produce) {
            (ApiKey::Produce, Some(view)) => {
                handlers::produce::for_cluster(&self.proxy, frame, body_at, view, cluster).await?
            }
            (ApiKey::Produce, None) => {
                let view = ProduceView::parse(header, &frame[body_at..])?;
                handlers::produce::for_cluster(&self.proxy, frame, body_at, &view, cluster).await?
            }
            (ApiKey::Fetch, _) => handlers::fetch::sessionless(frame, header, body_at),
            _ => None,
        };
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
    pub(super) async fn forward_split(
        &mut self,
        out: &Outbound<'_>,
        frame: &Frame,
        topics: &TopicPartitions,
        produce: Option<&ProduceView>,
        split: &SplitPlan,
    ) -> Result<Option<JoinHandle<Result<Bytes, SessionEnd>>>, SessionEnd> {
        let Outbound {
            api,
            header,
            expect_response,
        } = *out;
        let whole =
            split.destinations.len() == 1 && split.assignment.iter().flatten().all(Option::is_some);
        let parts = if whole && api == ApiKey::Produce {
            // A Produce names no offset: to one broker it goes as it came,
            // and only its answer is shifted.
            vec![Some(frame.0.clone())]
        } else {
            let parts = plan::split::Parts {
                assignment: &split.assignment,
                shifts: &split.shifts,
                destinations: split.destinations.len(),
            };
            plan::split::split(api, &frame.0, header, &parts)?
        };
        if split.destinations.len() > 1 {
            metrics::counter!(m::SPLIT_REQUESTS).increment(1);
        }
        let mut replies = Vec::with_capacity(parts.len());
        for ((cluster, address), part) in split.destinations.iter().zip(parts) {
            let Some(part) = part else { continue };
            let upstream = self.connection(*cluster, address).await?;
            let view = produce.filter(|_| whole);
            if let Some(reply) = self.send_part(out, &part, view, upstream, *cluster).await? {
                replies.push(reply);
            }
        }
        if !expect_response {
            return Ok(None);
        }
        let refused = split.refused(topics);
        let mut answers = Vec::with_capacity(replies.len() + 1);
        if !refused.0.is_empty() {
            answers.push(Frame(partition_error_response(
                api,
                header.api_version,
                header.correlation_id,
                &refused,
                ResponseError::NotLeaderOrFollower.code(),
            )?));
        }
        let (version, correlation_id, order, shifts) = (
            header.api_version,
            header.correlation_id,
            topics.clone(),
            split.shifts.clone(),
        );
        Ok(Some(tokio::spawn(async move {
            for reply in replies {
                answers.push(reply.await.map_err(|_| lost_task())??);
            }
            Ok(plan::split::merge(
                api,
                version,
                correlation_id,
                &order,
                &shifts,
                &answers,
            )?)
        })))
    }

    /// Topic administration goes to the controller of the cluster its topics
    /// route to; a request whose topics route to several clusters is refused,
    /// topic by topic, with INVALID_REQUEST and a message saying why.
    pub(super) async fn forward_admin(
        &mut self,
        api: ApiKey,
        frame: &[u8],
        header: &RequestHeader,
        body: &[u8],
    ) -> Result<Option<Pending>, SessionEnd> {
        let names = requests::admin_topic_names(header, body)?;
        let routes = self.proxy.routes();
        let mut clusters: Vec<ClusterIdx> =
            names.iter().map(|n| routes.metadata_cluster(n)).collect();
        clusters.sort();
        clusters.dedup();
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
        let reply = upstream.send(frame, header.correlation_id, true).await?;
        Ok(reply.map(|reply| Pending::Upstream(reply, None)))
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
        api: ApiKey,
        frame: &Frame,
        header: &RequestHeader,
        body: &[u8],
    ) -> Result<Option<Pending>, SessionEnd> {
        let Some(id) = requests::transactional_id_of(header, body)? else {
            let upstream = self.upstream(Target::DefaultCluster).await?;
            let reply = upstream.send(&frame.0, header.correlation_id, true).await?;
            return Ok(reply.map(|reply| Pending::Upstream(reply, None)));
        };
        if api == ApiKey::AddPartitionsToTxn {
            let (_, topics) = requests::add_partitions_to_txn(header, body)?;
            if let Some(refusal) = self.spanning_transaction(api, &id, header, &topics)? {
                return Ok(Some(refusal));
            }
        }
        let cluster = self.proxy.routes().transaction_cluster(&id);
        let upstream = self
            .coordinator_connection(cluster, TRANSACTION_KEY, id)
            .await?;
        let reply = upstream.send(&frame.0, header.correlation_id, true).await?;
        Ok(reply.map(|reply| Pending::Upstream(reply, None)))
    }

    /// The refusal of a transactional request naming topics written to a
    /// cluster other than the one its transaction runs on, or `None` when
    /// all of them are written there.
    pub(super) fn spanning_transaction(
        &self,
        api: ApiKey,
        transactional_id: &str,
        header: &RequestHeader,
        topics: &TopicPartitions,
    ) -> Result<Option<Pending>, SessionEnd> {
        let routes = self.proxy.routes();
        let home = routes.transaction_cluster(transactional_id);
        let Some((elsewhere, _)) = topics
            .0
            .iter()
            .find(|(topic, _)| RouteSide::Produce.cluster(&routes.route(topic)) != home)
        else {
            return Ok(None);
        };
        tracing::info!(
            transactional_id,
            topic = elsewhere.as_str(),
            "refusing a transaction that would span clusters"
        );
        let code = ResponseError::InvalidTxnState;
        Ok(Some(every_partition(api, header, topics, code)?))
    }

    /// Sends a group request to the cluster coordinating its group: the
    /// listener's own broker when that cluster is the listener's (the fast
    /// path), else the group's coordinator there. While the group moves,
    /// its requests wait here; its commits count in flight, so a move waits
    /// for those already sent.
    pub(super) async fn forward_group(
        &mut self,
        api: ApiKey,
        frame: &Frame,
        header: &RequestHeader,
        body: &[u8],
    ) -> Result<Option<Pending>, SessionEnd> {
        let group = requests::group_of(header, body)?;
        let mut guard = None;
        if let Some(group) = &group {
            let gates = self.proxy.group_gates.clone();
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
        let reply = upstream.send(&frame.0, header.correlation_id, true).await?;
        Ok(reply.map(|reply| Pending::Upstream(reply, guard)))
    }
}
