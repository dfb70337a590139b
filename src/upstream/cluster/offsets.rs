//! Log ends (verified by fetching, see [`crate::domain::log_end`]), open
//! transactions, and reads of the small bookkeeping topics. Every query
//! takes many topics at once (one request per leader), so a flip of a
//! thousand topics costs about as many round trips as a flip of one.

use super::*;
use crate::domain::log_end::{LogEnds, OpenTransaction};
use crate::domain::offsets::{Offset, UpstreamOffset};

/// Each topic's partitions' offsets, by topic name.
pub type TopicEnds = BTreeMap<String, LogEnds>;

impl Cluster {
    /// The end of the log of each partition of `topic` (see
    /// [`Cluster::log_ends_of`]).
    pub async fn log_ends(&self, topic: &str) -> Result<LogEnds, UpstreamError> {
        let mut ends = self.log_ends_of(&[topic.to_owned()]).await?;
        Ok(ends.remove(topic).unwrap_or_default())
    }

    /// The end of the log of each partition of each of `topics`: the first
    /// offset at which a Fetch returns no records, verified by fetching
    /// there whatever the broker reports (see [`crate::domain::log_end`]).
    /// One search per topic, all probed in the same rounds.
    pub async fn log_ends_of(&self, topics: &[String]) -> Result<TopicEnds, UpstreamError> {
        let reported = self.list_offsets(topics, OffsetQuery::Latest).await?;
        let starts = self.list_offsets(topics, OffsetQuery::Earliest).await?;
        let mut searches: BTreeMap<&str, EndSearch> = reported
            .iter()
            .map(|(topic, ends)| {
                let start = |p: &i32| {
                    starts
                        .get(topic)
                        .and_then(|s| s.get(p))
                        .copied()
                        .unwrap_or_default()
                };
                let bounds = ends.iter().map(|(p, end)| (*p, start(p), *end));
                (topic.as_str(), EndSearch::new(bounds))
            })
            .collect();
        loop {
            let round: BTreeMap<&str, Vec<(i32, UpstreamOffset)>> = searches
                .iter()
                .map(|(topic, search)| (*topic, search.next_round()))
                .filter(|(_, probes)| !probes.is_empty())
                .collect();
            if round.is_empty() {
                let ends = searches
                    .into_iter()
                    .map(|(topic, search)| (topic.to_owned(), search.ends().unwrap_or_default()));
                return Ok(ends.collect());
            }
            let answers = inconclusive_beside_records(self.probe(&round).await?);
            let none = BTreeMap::new();
            for topic in round.keys() {
                let answer = answers.get(*topic).unwrap_or(&none);
                let search = searches.get_mut(topic).expect("a search per probed topic");
                search.answer(answer).map_err(|e| UpstreamError::Protocol {
                    addr: self.config.bootstrap.join(","),
                    reason: format!(
                        "finding the log end of '{topic}' on cluster '{}': {e}",
                        self.name()
                    ),
                })?;
            }
        }
    }

    /// The end of each partition's log of each of `topics` as its broker
    /// reports it (ListOffsets latest), unverified: it moves with every
    /// append, so it tells whether a log stands still, not where it ends.
    pub async fn reported_ends_of(&self, topics: &[String]) -> Result<TopicEnds, UpstreamError> {
        self.list_offsets(topics, OffsetQuery::Latest).await
    }

    /// Partitions of each of `topics` with a transaction open: where the
    /// last stable offset is below the high watermark, with both (as the
    /// broker reports them: both are off the same way when they are off).
    /// A topic with none open is left out.
    pub async fn open_transactions_of(
        &self,
        topics: &[String],
    ) -> Result<BTreeMap<String, Vec<OpenTransaction>>, UpstreamError> {
        let stable = self.list_offsets(topics, OffsetQuery::LatestStable).await?;
        let ends = self.list_offsets(topics, OffsetQuery::Latest).await?;
        let open = ends.into_iter().filter_map(|(topic, ends)| {
            let stable = stable.get(&topic);
            let open: Vec<OpenTransaction> = ends
                .iter()
                .filter_map(|(p, end)| {
                    let lso = stable.and_then(|s| s.get(p)).copied().unwrap_or(*end);
                    (lso < *end).then_some((*p, lso, *end))
                })
                .collect();
            (!open.is_empty()).then_some((topic, open))
        });
        Ok(open.collect())
    }

    /// ListOffsets for every partition of each of `topics`, asked of each
    /// partition's leader (one request per leader): what the brokers
    /// report, unverified. A partition answered with no offset has none to
    /// report: it counts as 0.
    async fn list_offsets(
        &self,
        topics: &[String],
        query: OffsetQuery,
    ) -> Result<TopicEnds, UpstreamError> {
        let partitions = self.partitions_of(topics).await?;
        let wanted = partitions
            .iter()
            .flat_map(|(topic, ps)| ps.iter().map(move |p| (topic.as_str(), *p)))
            .collect();
        let (timestamp, isolation) = match query {
            OffsetQuery::Latest => (-1, 0),
            OffsetQuery::LatestStable => (-1, 1),
            OffsetQuery::Earliest => (-2, 0),
        };
        let version = self.version_for(ApiKey::ListOffsets, 7).unwrap_or(1);
        let mut offsets: TopicEnds = topics.iter().map(|t| (t.clone(), LogEnds::new())).collect();
        for (conn, by_topic) in self.by_leader(wanted).await? {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(isolation)
                .with_topics(
                    by_topic
                        .iter()
                        .map(|(topic, partitions)| {
                            ListOffsetsTopic::default()
                                .with_name(topic_name(topic))
                                .with_partitions(
                                    partitions
                                        .iter()
                                        .map(|p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(*p)
                                                .with_current_leader_epoch(-1)
                                                .with_timestamp(timestamp)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let resp: ListOffsetsResponse = conn
                .call(ApiKey::ListOffsets, version, &request, self.request_timeout)
                .await?;
            for t in resp.topics {
                let Some(ends) = offsets.get_mut(t.name.as_str()) else {
                    continue; // not asked for
                };
                for p in t.partitions {
                    if let Some(e) = p.error_code.err() {
                        let what = ("ListOffsets", t.name.as_str(), p.partition_index);
                        return Err(self.partition_error(&conn, what, e));
                    }
                    let offset = UpstreamOffset::from_wire(p.offset).unwrap_or_default();
                    ends.insert(p.partition_index, offset);
                }
            }
        }
        Ok(offsets)
    }

    /// Every partition of each of `topics`, from one live Metadata query;
    /// a topic the cluster does not have is an error naming it.
    async fn partitions_of(
        &self,
        topics: &[String],
    ) -> Result<BTreeMap<String, Vec<i32>>, UpstreamError> {
        let resp = self.fetch_metadata(Some(topics), false).await?;
        let known: BTreeMap<&str, Vec<i32>> = resp
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| {
                let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                Some((t.name.as_ref()?.as_str(), partitions))
            })
            .collect();
        topics
            .iter()
            .map(|topic| match known.get(topic.as_str()) {
                Some(partitions) => Ok((topic.clone(), partitions.clone())),
                None => Err(UpstreamError::Protocol {
                    addr: self.config.bootstrap.join(","),
                    reason: format!("cluster '{}' has no topic '{topic}'", self.name()),
                }),
            })
            .collect()
    }

    /// A partition's error in an answer to `what` (api, topic, partition).
    pub(super) fn partition_error(
        &self,
        conn: &UpstreamConn,
        (api, topic, partition): (&str, &str, i32),
        e: ResponseError,
    ) -> UpstreamError {
        UpstreamError::Protocol {
            addr: conn.addr().to_owned(),
            reason: format!(
                "{api} of '{topic}' partition {partition} on cluster '{}' failed: {e} (error code {})",
                self.name(),
                e.code()
            ),
        }
    }

    /// Topic-partitions grouped by the connection to their leader, from the
    /// view: per leader, each topic's partitions.
    async fn by_leader<'t>(
        &self,
        partitions: Vec<(&'t str, i32)>,
    ) -> Result<Vec<(Arc<UpstreamConn>, BTreeMap<&'t str, Vec<i32>>)>, UpstreamError> {
        let mut by_leader: BTreeMap<i32, BTreeMap<&'t str, Vec<i32>>> = BTreeMap::new();
        self.with_view(|v| {
            for (topic, partition) in partitions {
                let leader = v
                    .topics
                    .get(topic)
                    .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition))
                    .map_or(-1, |p| p.leader_id.0);
                let of_leader = by_leader.entry(leader).or_default();
                of_leader.entry(topic).or_default().push(partition);
            }
        });
        let mut out = Vec::with_capacity(by_leader.len());
        for (leader, by_topic) in by_leader {
            let addr = self.broker_address(UpstreamNodeId(leader)).ok_or_else(|| {
                let (topic, partitions) = by_topic.iter().next().expect("grouped, so not empty");
                UpstreamError::Protocol {
                    addr: self.config.bootstrap.join(","),
                    reason: format!(
                        "partitions {partitions:?} of '{topic}' on cluster '{}' have no live leader",
                        self.name()
                    ),
                }
            })?;
            out.push((self.connect(&addr).await?, by_topic));
        }
        Ok(out)
    }

    /// One round of the end searches: a Fetch of each (partition, offset)
    /// of each topic in `round`, one request per leader, and what each
    /// brought back, by topic.
    async fn probe(
        &self,
        round: &BTreeMap<&str, Vec<(i32, UpstreamOffset)>>,
    ) -> Result<BTreeMap<String, BTreeMap<i32, Probe>>, UpstreamError> {
        let wanted = round
            .iter()
            .flat_map(|(topic, probes)| probes.iter().map(move |(p, _)| (*topic, *p)))
            .collect();
        let mut answers: BTreeMap<String, BTreeMap<i32, Probe>> = BTreeMap::new();
        let offsets: BTreeMap<(&str, i32), UpstreamOffset> = round
            .iter()
            .flat_map(|(topic, probes)| probes.iter().map(move |(p, at)| ((*topic, *p), *at)))
            .collect();
        for (conn, by_topic) in self.by_leader(wanted).await? {
            let wanted: BTreeMap<&str, Vec<(i32, UpstreamOffset)>> = by_topic
                .iter()
                .map(|(topic, ps)| {
                    let at =
                        |p: &i32| (*p, offsets.get(&(*topic, *p)).copied().unwrap_or_default());
                    (*topic, ps.iter().map(at).collect())
                })
                .collect();
            let Some(resp) = self.fetch_at(&conn, &wanted).await? else {
                continue; // no Fetch to ask with: every partition Missing
            };
            for t in resp.responses {
                let topic = t.topic.to_string();
                for p in t.partitions {
                    let probe = match p.error_code.err() {
                        None => p
                            .records
                            .as_deref()
                            .and_then(crate::domain::stitch::last_offset)
                            .map_or(Probe::Empty, |last| Probe::Records {
                                last: UpstreamOffset(last),
                            }),
                        Some(ResponseError::OffsetOutOfRange) => Probe::OutOfRange,
                        Some(e) => {
                            let what = ("Fetch", topic.as_str(), p.partition_index);
                            return Err(self.partition_error(&conn, what, e));
                        }
                    };
                    answers
                        .entry(topic.clone())
                        .or_default()
                        .insert(p.partition_index, probe);
                }
            }
        }
        Ok(answers)
    }

    /// A Fetch of each topic's (partition, offset) in `at`, that waits a
    /// moment for records rather than answering at once: asked to answer
    /// at once, some brokers leave every partition out. `None` when the
    /// cluster has no Fetch version the proxy reads.
    async fn fetch_at(
        &self,
        conn: &UpstreamConn,
        at: &BTreeMap<&str, Vec<(i32, UpstreamOffset)>>,
    ) -> Result<Option<FetchResponse>, UpstreamError> {
        // Flexible Fetch answers (v12+) carry tagged fields some brokers
        // put at versions that do not define them: ask below.
        let Some(version) = self.version_for(ApiKey::Fetch, 11).filter(|v| *v >= 4) else {
            return Ok(None);
        };
        const PARTITION_BYTES: i32 = 1 << 20;
        let count = at.values().map(Vec::len).sum::<usize>();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(PROBE_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(PARTITION_BYTES.saturating_mul(count.min(16) as i32))
            .with_session_epoch(-1)
            .with_topics(
                at.iter()
                    .map(|(topic, partitions)| {
                        FetchTopic::default()
                            .with_topic(topic_name(topic))
                            .with_partitions(
                                partitions
                                    .iter()
                                    .map(|(partition, offset)| {
                                        FetchPartition::default()
                                            .with_partition(*partition)
                                            .with_current_leader_epoch(-1)
                                            .with_fetch_offset(offset.wire())
                                            .with_last_fetched_epoch(-1)
                                            .with_log_start_offset(-1)
                                            .with_partition_max_bytes(PARTITION_BYTES)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp: FetchResponse = conn
            .call(ApiKey::Fetch, version, &request, self.request_timeout)
            .await?;
        Ok(Some(resp))
    }

    /// The records blob of one partition from `offset` (up to about a
    /// MiB), or `None` when the broker has none there for us.
    pub(super) async fn fetch_from(
        &self,
        conn: &UpstreamConn,
        topic: &str,
        partition: i32,
        offset: UpstreamOffset,
    ) -> Result<Option<bytes::Bytes>, UpstreamError> {
        let at = BTreeMap::from([(topic, vec![(partition, offset)])]);
        let resp = self.fetch_at(conn, &at).await?;
        Ok(resp
            .into_iter()
            .flat_map(|r| r.responses)
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == partition && p.error_code == 0)
            .and_then(|p| p.records))
    }

    /// The MirrorMaker 2 offset syncs in `syncs_topic` on this cluster, by
    /// source topic and partition; empty when the cluster has no such
    /// topic. A malformed record is skipped (and logged).
    pub async fn offset_syncs(
        &self,
        syncs_topic: &str,
    ) -> Result<crate::domain::mirror::Syncs, UpstreamError> {
        let mut syncs = crate::domain::mirror::Syncs::new();
        for (_, key, value) in self.read_topic(syncs_topic).await? {
            let (Some(key), Some(value)) = (key, value) else {
                continue;
            };
            match crate::domain::mirror::parse_offset_sync(&key, &value) {
                Ok((t, p, sync)) => syncs.entry((t, p)).or_default().push(sync),
                Err(e) => {
                    tracing::warn!(topic = syncs_topic, error = %e, "skipping a malformed offset sync")
                }
            }
        }
        Ok(syncs)
    }

    /// Every record (key, value) of `topic` on this cluster, partition by
    /// partition; empty when the cluster has no such topic. For the small
    /// bookkeeping topics of MirrorMaker 2, not for data.
    pub async fn read_topic(
        &self,
        topic: &str,
    ) -> Result<Vec<(i32, Option<Vec<u8>>, Option<Vec<u8>>)>, UpstreamError> {
        if self.partition_count(topic).await?.is_none() {
            return Ok(Vec::new());
        }
        let ends = self.log_ends(topic).await?;
        let mut out = Vec::new();
        for (&partition, &end) in &ends {
            let leader = self.with_view(|v| {
                let meta = v.topics.get(topic)?;
                let p = meta
                    .partitions
                    .iter()
                    .find(|p| p.partition_index == partition)?;
                v.brokers
                    .get(&UpstreamNodeId(p.leader_id.0))
                    .map(BrokerAddr::address)
            });
            let conn = self
                .connect(&leader.unwrap_or_else(|| self.any_broker_address()))
                .await?;
            let mut offset = UpstreamOffset(0);
            while offset < end {
                let Some(blob) = self.fetch_from(&conn, topic, partition, offset).await? else {
                    break;
                };
                let next = UpstreamOffset(crate::domain::stitch::records_end(&blob));
                let records =
                    crate::domain::mirror::records(&blob).map_err(|e| UpstreamError::Protocol {
                        addr: conn.addr().to_owned(),
                        reason: format!("reading '{topic}' on cluster '{}': {e}", self.name()),
                    })?;
                out.extend(
                    records
                        .into_iter()
                        .map(|(k, v)| (partition, k.map(<[u8]>::to_vec), v.map(<[u8]>::to_vec))),
                );
                if next <= offset {
                    break; // no progress: nothing more to read
                }
                offset = next;
            }
        }
        Ok(out)
    }
}

/// What ListOffsets asks a broker for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OffsetQuery {
    /// The high watermark, as the broker reports it.
    Latest,
    /// The last stable offset: below it, no transaction is open.
    LatestStable,
    /// The log start offset.
    Earliest,
}

/// How long a Fetch of an end search waits for records at an offset where
/// there are none: each verified end costs one such wait.
const PROBE_WAIT_MS: i32 = 100;

/// A topic name for a request.
fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// One round's probes with rule 5 of [`crate::domain::log_end`] applied
/// across topics: "nothing came back" counts only from a round in which no
/// partition of any topic returned a record, so where another topic's
/// records came, a topic answered only with nothing is asked again.
fn inconclusive_beside_records(
    mut answers: BTreeMap<String, BTreeMap<i32, Probe>>,
) -> BTreeMap<String, BTreeMap<i32, Probe>> {
    let records =
        |probes: &BTreeMap<i32, Probe>| probes.values().any(|p| matches!(p, Probe::Records { .. }));
    if answers.values().any(records) {
        for probes in answers.values_mut().filter(|probes| !records(probes)) {
            probes.values_mut().for_each(|p| *p = Probe::Missing);
        }
    }
    answers
}
