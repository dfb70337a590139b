//! Log ends (verified by fetching, see [`crate::domain::log_end`]), open
//! transactions, and reads of the small bookkeeping topics.

use super::*;
use crate::domain::log_end::LogEnds;
use crate::domain::offsets::{Offset, UpstreamOffset};

impl Cluster {
    /// The end of the log of each partition of `topic`: the first offset
    /// at which a Fetch returns no records, verified by fetching there
    /// whatever the broker reports (see [`crate::domain::log_end`]).
    pub async fn log_ends(&self, topic: &str) -> Result<LogEnds, UpstreamError> {
        let reported = self.list_offsets(topic, OffsetQuery::Latest).await?;
        let starts = self.list_offsets(topic, OffsetQuery::Earliest).await?;
        let mut search = EndSearch::new(
            reported
                .iter()
                .map(|(p, end)| (*p, starts.get(p).copied().unwrap_or_default(), *end)),
        );
        loop {
            if let Some(ends) = search.ends() {
                return Ok(ends);
            }
            let answers = self.probe(topic, &search.next_round()).await?;
            search
                .answer(&answers)
                .map_err(|e| UpstreamError::Protocol {
                    addr: self.config.bootstrap.join(","),
                    reason: format!(
                        "finding the log end of '{topic}' on cluster '{}': {e}",
                        self.name()
                    ),
                })?;
        }
    }

    /// The end of each partition's log of `topic` as its broker reports it
    /// (ListOffsets latest), unverified: it moves with every append, so it
    /// tells whether a log stands still, not where it ends.
    pub async fn reported_ends(&self, topic: &str) -> Result<LogEnds, UpstreamError> {
        self.list_offsets(topic, OffsetQuery::Latest).await
    }

    /// Partitions of `topic` with a transaction open: where the last
    /// stable offset is below the high watermark, with both (as the broker
    /// reports them: both are off the same way when they are off).
    pub async fn open_transactions(
        &self,
        topic: &str,
    ) -> Result<Vec<(i32, UpstreamOffset, UpstreamOffset)>, UpstreamError> {
        let stable = self.list_offsets(topic, OffsetQuery::LatestStable).await?;
        let ends = self.list_offsets(topic, OffsetQuery::Latest).await?;
        Ok(ends
            .iter()
            .filter_map(|(p, end)| {
                let lso = stable.get(p).copied().unwrap_or(*end);
                (lso < *end).then_some((*p, lso, *end))
            })
            .collect())
    }

    /// ListOffsets for every partition of `topic`, asked of each
    /// partition's leader: what the broker reports, unverified. A partition
    /// answered with no offset has none to report: it counts as 0.
    async fn list_offsets(
        &self,
        topic: &str,
        query: OffsetQuery,
    ) -> Result<BTreeMap<i32, UpstreamOffset>, UpstreamError> {
        let resp = self
            .fetch_metadata(Some(&[topic.to_owned()]), false)
            .await?;
        let meta = resp
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic) && t.error_code == 0)
            .ok_or_else(|| UpstreamError::Protocol {
                addr: self.config.bootstrap.join(","),
                reason: format!("cluster '{}' has no topic '{topic}'", self.name()),
            })?;
        let partitions: Vec<i32> = meta.partitions.iter().map(|p| p.partition_index).collect();
        let mut offsets = BTreeMap::new();
        for (conn, partitions) in self.by_leader(topic, &partitions).await? {
            let version = self.version_for(ApiKey::ListOffsets, 7).unwrap_or(1);
            let (timestamp, isolation) = match query {
                OffsetQuery::Latest => (-1, 0),
                OffsetQuery::LatestStable => (-1, 1),
                OffsetQuery::Earliest => (-2, 0),
            };
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(isolation)
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
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
                    )]);
            let resp: ListOffsetsResponse = conn
                .call(ApiKey::ListOffsets, version, &request, self.request_timeout)
                .await?;
            for p in resp.topics.into_iter().flat_map(|t| t.partitions) {
                if let Some(e) = p.error_code.err() {
                    let what = ("ListOffsets", topic, p.partition_index);
                    return Err(self.partition_error(&conn, what, e));
                }
                let offset = UpstreamOffset::from_wire(p.offset).unwrap_or_default();
                offsets.insert(p.partition_index, offset);
            }
        }
        Ok(offsets)
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

    /// `partitions` of `topic` grouped by the connection to their leader,
    /// from the view.
    async fn by_leader(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Vec<(Arc<UpstreamConn>, Vec<i32>)>, UpstreamError> {
        let leaders: BTreeMap<i32, i32> = self.with_view(|v| {
            v.topics
                .get(topic)
                .map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (p.partition_index, p.leader_id.0))
                        .collect()
                })
                .unwrap_or_default()
        });
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in partitions {
            let leader = leaders.get(p).copied().unwrap_or(-1);
            by_leader.entry(leader).or_default().push(*p);
        }
        let mut out = Vec::with_capacity(by_leader.len());
        for (leader, partitions) in by_leader {
            let addr = self.broker_address(UpstreamNodeId(leader)).ok_or_else(|| {
                UpstreamError::Protocol {
                    addr: self.config.bootstrap.join(","),
                    reason: format!(
                        "partitions {partitions:?} of '{topic}' on cluster '{}' have no live leader",
                        self.name()
                    ),
                }
            })?;
            out.push((self.connect(&addr).await?, partitions));
        }
        Ok(out)
    }

    /// One round of an end search: a Fetch of each (partition, offset) in
    /// `round`, one request per leader, and what each brought back.
    async fn probe(
        &self,
        topic: &str,
        round: &[(i32, UpstreamOffset)],
    ) -> Result<BTreeMap<i32, Probe>, UpstreamError> {
        let at: BTreeMap<i32, UpstreamOffset> = round.iter().copied().collect();
        let partitions: Vec<i32> = at.keys().copied().collect();
        let mut answers = BTreeMap::new();
        for (conn, partitions) in self.by_leader(topic, &partitions).await? {
            let wanted: Vec<(i32, UpstreamOffset)> =
                partitions.iter().map(|p| (*p, at[p])).collect();
            let Some(resp) = self.fetch_at(&conn, topic, &wanted).await? else {
                continue; // no Fetch to ask with: every partition Missing
            };
            for p in resp.responses.into_iter().flat_map(|t| t.partitions) {
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
                        let what = ("Fetch", topic, p.partition_index);
                        return Err(self.partition_error(&conn, what, e));
                    }
                };
                answers.insert(p.partition_index, probe);
            }
        }
        Ok(answers)
    }

    /// A Fetch of `topic` at (partition, offset) each, that waits a moment
    /// for records rather than answering at once: asked to answer at once,
    /// some brokers leave every partition out. `None` when the cluster has
    /// no Fetch version the proxy reads.
    async fn fetch_at(
        &self,
        conn: &UpstreamConn,
        topic: &str,
        at: &[(i32, UpstreamOffset)],
    ) -> Result<Option<FetchResponse>, UpstreamError> {
        // Flexible Fetch answers (v12+) carry tagged fields some brokers
        // put at versions that do not define them: ask below.
        let Some(version) = self.version_for(ApiKey::Fetch, 11).filter(|v| *v >= 4) else {
            return Ok(None);
        };
        const PARTITION_BYTES: i32 = 1 << 20;
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(PROBE_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(PARTITION_BYTES.saturating_mul(at.len().min(16) as i32))
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(
                    at.iter()
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
                )]);
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
        let resp = self.fetch_at(conn, topic, &[(partition, offset)]).await?;
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
