//! A one-partition log of small records on this cluster, written and read
//! by the proxy itself: the state topic that instances of one deployment
//! share. One record per batch, so every record's offset is a batch
//! boundary (where every broker's Fetch starts cleanly).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::domain::offsets::UpstreamOffset;

/// One record of the log: its key, and its value (`None`: a tombstone).
pub type LogRecord = (Vec<u8>, Option<Vec<u8>>);

/// A record of no producer, no transaction, no headers: at `offset` in
/// its batch, created at `timestamp` (ms since the Unix epoch).
pub fn plain_record(
    (offset, timestamp): (i64, i64),
    key: Option<Bytes>,
    value: Option<Bytes>,
) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// Record batches as [`plain_record`]s go in them: v2, uncompressed.
pub const PLAIN: RecordEncodeOptions = RecordEncodeOptions {
    version: 2,
    compression: Compression::None,
};

/// What one read of a log gave: its records up to the first gap in their
/// offsets, the offset after them, and the gap, when the broker sent
/// records after one.
pub struct LogRead {
    pub records: Vec<LogRecord>,
    pub next: UpstreamOffset,
    pub gap: Option<crate::domain::stitch::Gap>,
}

impl Cluster {
    /// A connection to the leader of partition 0 of `topic`, from a fresh
    /// metadata query (so a moved leader is found).
    pub async fn log_leader(&self, topic: &str) -> Result<Arc<UpstreamConn>, UpstreamError> {
        let resp = self
            .fetch_metadata(Some(&[topic.to_owned()]), false)
            .await?;
        let leader = resp
            .topics
            .iter()
            .filter(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == 0 && p.error_code == 0)
            .map(|p| UpstreamNodeId(p.leader_id.0))
            .and_then(|node| self.broker_address(node))
            .ok_or_else(|| UpstreamError::Protocol {
                addr: self.config.bootstrap.join(","),
                reason: format!(
                    "cluster '{}' names no leader for partition 0 of '{topic}'",
                    self.name()
                ),
            })?;
        self.connect(&leader).await
    }

    /// Appends `record` to partition 0 of `topic` on the leader `conn`,
    /// acknowledged by every in-sync replica; its offset.
    pub async fn append(
        &self,
        conn: &UpstreamConn,
        topic: &str,
        (key, value): (&[u8], Option<&[u8]>),
    ) -> Result<UpstreamOffset, UpstreamError> {
        let version = self
            .version_for(ApiKey::Produce, 9)
            .filter(|v| *v >= 3)
            .ok_or_else(|| UpstreamError::Protocol {
                addr: conn.addr().to_owned(),
                reason: format!("cluster '{}' does not support Produce v3+", self.name()),
            })?;
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let record = plain_record(
            (0, timestamp),
            Some(Bytes::copy_from_slice(key)),
            value.map(Bytes::copy_from_slice),
        );
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(&mut batch, [&record], &PLAIN).map_err(|e| {
            UpstreamError::Protocol {
                addr: conn.addr().to_owned(),
                reason: format!("encoding a record for '{topic}': {e}"),
            }
        })?;
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(self.request_timeout.as_millis() as i32)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.freeze()))])]);
        let resp: ProduceResponse = conn
            .call(ApiKey::Produce, version, &request, self.request_timeout)
            .await?;
        let answer = resp
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == 0)
            .ok_or_else(|| UpstreamError::Protocol {
                addr: conn.addr().to_owned(),
                reason: format!("Produce to '{topic}' answered no partition"),
            })?;
        if let Some(e) = answer.error_code.err() {
            return Err(self.partition_error(conn, ("Produce", topic, 0), e));
        }
        Ok(UpstreamOffset(answer.base_offset))
    }

    /// The records of partition 0 of `topic` from `from`, in order, up to
    /// the first gap in their offsets: none (and `from`) when nothing is
    /// there yet.
    pub async fn read_log(
        &self,
        conn: &UpstreamConn,
        topic: &str,
        from: UpstreamOffset,
    ) -> Result<LogRead, UpstreamError> {
        let nothing = LogRead {
            records: Vec::new(),
            next: from,
            gap: None,
        };
        let Some(blob) = self.fetch_from(conn, topic, 0, from).await? else {
            return Ok(nothing);
        };
        let (len, next, gap) = crate::domain::stitch::gapless_prefix(&blob, from.0);
        if next <= from.0 {
            return Ok(LogRead { gap, ..nothing });
        }
        let records =
            crate::domain::mirror::records(&blob[..len]).map_err(|e| UpstreamError::Protocol {
                addr: conn.addr().to_owned(),
                reason: format!("reading '{topic}' on cluster '{}': {e}", self.name()),
            })?;
        let records = records
            .into_iter()
            .filter_map(|(k, v)| Some((k?.to_vec(), v.map(<[u8]>::to_vec))))
            .collect();
        Ok(LogRead {
            records,
            next: UpstreamOffset(next),
            gap,
        })
    }
}
