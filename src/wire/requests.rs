//! Shallow views of the requests the proxy reads: only the fields it acts
//! on, parsed with [`Reader`] so that no count is trusted.

use std::ops::RangeInclusive;

use kafka_protocol::messages::ApiKey;

use super::header::RequestHeader;
use super::reader::{Reader, WireError};

/// A topic named in a Metadata request: by name, or (v10+) by id alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataTopic {
    pub id: [u8; 16],
    pub name: Option<String>,
}

/// What a client asks of Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataRequestView {
    /// `None` asks for every topic.
    pub topics: Option<Vec<MetadataTopic>>,
    pub allow_auto_topic_creation: bool,
    pub include_topic_authorized_operations: bool,
}

impl MetadataRequestView {
    pub fn parse(header: &RequestHeader, body: &[u8]) -> Result<Self, WireError> {
        let v = header.api_version;
        let flexible = v >= 9;
        let mut r = Reader::new(body, "Metadata request");
        // Smallest encoding of one topic entry: id (v10+), name length,
        // tagged-field count (flexible).
        let min_topic = if v >= 10 { 18 } else { 2 };
        let topics = match r.array_len(flexible, min_topic)? {
            None => None,
            // Before v1 an empty list means every topic.
            Some(0) if v == 0 => None,
            Some(n) => {
                let mut topics = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = if v >= 10 { r.uuid()? } else { [0; 16] };
                    // An empty name is no topic: with an id, the id names it.
                    let name = r
                        .nullable_string(flexible)?
                        .filter(|n| !n.is_empty() || id == [0; 16])
                        .map(str::to_owned);
                    if flexible {
                        r.skip_tagged_fields()?;
                    }
                    if name.is_none() && id == [0; 16] {
                        return Err(r.error("topic with neither a name nor an id"));
                    }
                    topics.push(MetadataTopic { id, name });
                }
                Some(topics)
            }
        };
        let allow_auto_topic_creation = if v >= 4 { r.bool()? } else { true };
        if (8..=10).contains(&v) {
            r.bool()?; // include_cluster_authorized_operations
        }
        let include_topic_authorized_operations = if v >= 8 { r.bool()? } else { false };
        if flexible {
            r.skip_tagged_fields()?;
        }
        Ok(MetadataRequestView {
            topics,
            allow_auto_topic_creation,
            include_topic_authorized_operations,
        })
    }
}

/// What a client asks of FindCoordinator: one key before v4, a batch after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindCoordinatorView {
    /// 0 = consumer group, 1 = transactional id.
    pub key_type: i8,
    pub keys: Vec<String>,
}

impl FindCoordinatorView {
    pub fn parse(header: &RequestHeader, body: &[u8]) -> Result<Self, WireError> {
        let v = header.api_version;
        let flexible = v >= 3;
        let mut r = Reader::new(body, "FindCoordinator request");
        let view = if v >= 4 {
            let key_type = r.i8()?;
            let n = r.array_len(true, 1)?.unwrap_or(0);
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                keys.push(r.string(true)?.to_owned());
            }
            FindCoordinatorView { key_type, keys }
        } else {
            let key = r.string(flexible)?.to_owned();
            let key_type = if v >= 1 { r.i8()? } else { 0 };
            FindCoordinatorView {
                key_type,
                keys: vec![key],
            }
        };
        if flexible {
            r.skip_tagged_fields()?;
        }
        Ok(view)
    }
}

/// What a client asks of DescribeCluster (always flexible).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeClusterView {
    /// 1 = brokers, 2 = controllers (v1+).
    pub endpoint_type: i8,
}

impl DescribeClusterView {
    pub fn parse(header: &RequestHeader, body: &[u8]) -> Result<Self, WireError> {
        let v = header.api_version;
        let mut r = Reader::new(body, "DescribeCluster request");
        r.bool()?; // include_cluster_authorized_operations
        let endpoint_type = if v >= 1 { r.i8()? } else { 1 };
        if v >= 2 {
            r.bool()?; // include_fenced_brokers
        }
        r.skip_tagged_fields()?;
        Ok(DescribeClusterView { endpoint_type })
    }
}

/// The topics and partitions a partitioned request touches, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicPartitions(pub Vec<(String, Vec<i32>)>);

/// Produce request (v3..=12): transactional id, acks, and what it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceView {
    /// Where each partition's record batches sit in the body, one range per
    /// partition in the order of `topics`.
    pub records: Vec<std::ops::Range<usize>>,
    /// Set for transactional producers, whose writes need their coordinator.
    pub transactional_id: Option<String>,
    /// 0 means the client expects no response.
    pub acks: i16,
    /// Where the records go, which decides where the request is routed.
    pub topics: TopicPartitions,
}

impl ProduceView {
    /// Reads what the proxy routes and authorises a Produce on, skipping the
    /// record bytes without copying them.
    pub fn parse(header: &RequestHeader, body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body, "Produce request");
        let v = check_version(&r, header, ApiKey::Produce, 3..=12)?;
        let flexible = v >= 9;
        let transactional_id = r.nullable_string(flexible)?.map(str::to_owned);
        let acks = r.i16()?;
        skip(&mut r, 4)?; // timeout_ms
                          // Smallest partition: index, records length (int32, or a one-byte
                          // varint and a tagged-field count when flexible).
        let partition_min = if flexible { 6 } else { 8 };
        let mut records = Vec::new();
        let topics = read_topics(&mut r, flexible, partition_min, |r| {
            records.push(skip_nullable_bytes(r, flexible)?);
            Ok(())
        })?;
        finish(&mut r, flexible)?;
        Ok(ProduceView {
            transactional_id,
            acks,
            topics,
            records,
        })
    }
}

/// The topics and partitions a Fetch request (v4..=12) reads, so the proxy
/// can route or refuse it without decoding the rest, with each partition's
/// fetch offset in the same order (flattened): where a stitched partition
/// is read from depends on it.
pub fn fetch_positions(
    header: &RequestHeader,
    body: &[u8],
) -> Result<(TopicPartitions, Vec<i64>), WireError> {
    let mut r = Reader::new(body, "Fetch request");
    let v = check_version(&r, header, ApiKey::Fetch, 4..=12)?;
    let flexible = v >= 12;
    // replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level, then
    // session_id and session_epoch (v7+).
    skip(&mut r, 17 + if v >= 7 { 8 } else { 0 })?;
    // Partition: index, current_leader_epoch (v9+), fetch_offset,
    // last_fetched_epoch (v12+), log_start_offset (v5+),
    // partition_max_bytes; the tagged-field count is added by read_topics.
    let rest = (if v >= 9 { 4 } else { 0 })
        + 8
        + (if v >= 12 { 4 } else { 0 })
        + (if v >= 5 { 8 } else { 0 })
        + 4;
    let partition_min = 4 + rest + usize::from(flexible);
    let epoch = if v >= 9 { 4 } else { 0 };
    let mut offsets = Vec::new();
    let topics = read_topics(&mut r, flexible, partition_min, |r| {
        skip(r, epoch)?;
        offsets.push(r.i64()?);
        skip(r, rest - epoch - 8)
    })?;
    if v >= 7 {
        // forgotten_topics_data: name and an int32 array of partitions.
        let n = required_len(&mut r, flexible, topic_min(flexible), "forgotten topics")?;
        for _ in 0..n {
            r.string(flexible)?;
            let m = required_len(&mut r, flexible, 4, "forgotten partitions")?;
            skip(&mut r, m * 4)?;
            if flexible {
                r.skip_tagged_fields()?;
            }
        }
    }
    if v >= 11 {
        r.string(flexible)?; // rack_id
    }
    finish(&mut r, flexible)?;
    Ok((topics, offsets))
}

/// The topics and partitions a ListOffsets request (v1..=10) asks about, so
/// the proxy can route or refuse it without decoding the rest, with each
/// partition's timestamp (or -1 latest, -2 earliest, …) in the same order
/// (flattened).
pub fn list_offsets_positions(
    header: &RequestHeader,
    body: &[u8],
) -> Result<(TopicPartitions, Vec<i64>), WireError> {
    let mut r = Reader::new(body, "ListOffsets request");
    let v = check_version(&r, header, ApiKey::ListOffsets, 1..=10)?;
    let flexible = v >= 6;
    // replica_id, isolation_level (v2+).
    skip(&mut r, 4 + usize::from(v >= 2))?;
    // Partition: index, current_leader_epoch (v4+), timestamp.
    let epoch = if v >= 4 { 4 } else { 0 };
    let partition_min = 4 + epoch + 8 + usize::from(flexible);
    let mut timestamps = Vec::new();
    let topics = read_topics(&mut r, flexible, partition_min, |r| {
        skip(r, epoch)?;
        timestamps.push(r.i64()?);
        Ok(())
    })?;
    if v >= 10 {
        skip(&mut r, 4)?; // timeout_ms
    }
    finish(&mut r, flexible)?;
    Ok((topics, timestamps))
}

/// The topics and partitions an OffsetForLeaderEpoch request (v2..=4) asks
/// about, so the proxy can route or refuse it without decoding the rest.
pub fn offset_for_leader_epoch_topics(
    header: &RequestHeader,
    body: &[u8],
) -> Result<TopicPartitions, WireError> {
    let mut r = Reader::new(body, "OffsetForLeaderEpoch request");
    let v = check_version(&r, header, ApiKey::OffsetForLeaderEpoch, 2..=4)?;
    let flexible = v >= 4;
    if v >= 3 {
        skip(&mut r, 4)?; // replica_id
    }
    // Partition: index, current_leader_epoch, leader_epoch.
    let partition_min = 12 + usize::from(flexible);
    let topics = read_topics(&mut r, flexible, partition_min, |r| skip(r, 8))?;
    finish(&mut r, flexible)?;
    Ok(topics)
}

/// Refuses a header for another API or a version outside `versions`.
fn check_version(
    r: &Reader<'_>,
    header: &RequestHeader,
    api: ApiKey,
    versions: RangeInclusive<i16>,
) -> Result<i16, WireError> {
    if header.api_key != api as i16 {
        return Err(r.error(format!("API key {} is not {api:?}", header.api_key)));
    }
    let v = header.api_version;
    if !versions.contains(&v) {
        return Err(r.error(format!(
            "version {v} is outside the supported {}..={}",
            versions.start(),
            versions.end()
        )));
    }
    Ok(v)
}

/// The smallest encoding of a topic entry: an empty name and an empty
/// partition array (and a tagged-field count when flexible).
fn topic_min(flexible: bool) -> usize {
    if flexible {
        3
    } else {
        6
    }
}

/// An array count where null is not allowed.
fn required_len(
    r: &mut Reader<'_>,
    flexible: bool,
    min_size: usize,
    field: &str,
) -> Result<usize, WireError> {
    r.array_len(flexible, min_size)?
        .ok_or_else(|| r.error(format!("{field} array is null")))
}

fn skip(r: &mut Reader<'_>, n: usize) -> Result<(), WireError> {
    r.bytes(n).map(|_| ())
}

/// The partitions an AddPartitionsToTxn request (v0..=3) adds to its
/// transaction, and the transaction's id.
pub fn add_partitions_to_txn(
    header: &RequestHeader,
    body: &[u8],
) -> Result<(String, TopicPartitions), WireError> {
    let mut r = Reader::new(body, "AddPartitionsToTxn request");
    let v = check_version(&r, header, ApiKey::AddPartitionsToTxn, 0..=3)?;
    let flexible = v >= 3;
    let transactional_id = r.string(flexible)?.to_owned();
    skip(&mut r, 8 + 2)?; // producer id, epoch
    let n = required_len(&mut r, flexible, topic_min(flexible), "topics")?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string(flexible)?.to_owned();
        let m = required_len(&mut r, flexible, 4, "partitions")?;
        let partitions = (0..m).map(|_| r.i32()).collect::<Result<Vec<_>, _>>()?;
        if flexible {
            r.skip_tagged_fields()?;
        }
        topics.push((name, partitions));
    }
    finish(&mut r, flexible)?;
    Ok((transactional_id, TopicPartitions(topics)))
}

/// The transactional id a transaction request names: InitProducerId's
/// (`None` for an idempotent producer without transactions),
/// AddPartitionsToTxn's (v0..=3), AddOffsetsToTxn's, EndTxn's and
/// TxnOffsetCommit's, all their first field.
pub fn transactional_id_of(
    header: &RequestHeader,
    body: &[u8],
) -> Result<Option<String>, WireError> {
    let mut r = Reader::new(body, "transaction request");
    let flexible_from = match ApiKey::try_from(header.api_key) {
        Ok(ApiKey::InitProducerId) => 2,
        Ok(
            ApiKey::AddPartitionsToTxn
            | ApiKey::AddOffsetsToTxn
            | ApiKey::EndTxn
            | ApiKey::TxnOffsetCommit,
        ) => 3,
        _ => {
            return Err(r.error(format!(
                "API key {} names no transactional id",
                header.api_key
            )))
        }
    };
    Ok(r.nullable_string(header.api_version >= flexible_from)?
        .map(str::to_owned))
}

/// The consumer group a group request is about, so that it goes to the
/// cluster coordinating that group: the group of JoinGroup, SyncGroup,
/// Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch and TxnOffsetCommit, and
/// the first group of a request naming several (OffsetFetch v8+, DescribeGroups,
/// DeleteGroups). `None` for a request naming no group.
pub fn group_of(header: &RequestHeader, body: &[u8]) -> Result<Option<String>, WireError> {
    let mut r = Reader::new(body, "group request");
    let v = header.api_version;
    // Where each API turns flexible, and whether it lists groups.
    let (flexible_from, listed) = match ApiKey::try_from(header.api_key) {
        Ok(ApiKey::JoinGroup) => (6, false),
        Ok(ApiKey::SyncGroup | ApiKey::Heartbeat | ApiKey::LeaveGroup) => (4, false),
        Ok(ApiKey::OffsetCommit) => (8, false),
        Ok(ApiKey::OffsetFetch) => (6, v >= 8),
        Ok(ApiKey::DescribeGroups) => (5, true),
        Ok(ApiKey::DeleteGroups) => (2, true),
        // After the transactional id.
        Ok(ApiKey::TxnOffsetCommit) => {
            let flexible = v >= 3;
            r.string(flexible)?;
            return Ok(Some(r.string(flexible)?.to_owned()));
        }
        _ => {
            return Err(r.error(format!(
                "API key {} names no consumer group",
                header.api_key
            )))
        }
    };
    let flexible = v >= flexible_from;
    if listed {
        // Each entry starts with the group id: at least a length.
        match r.array_len(flexible, 1)? {
            None | Some(0) => return Ok(None),
            Some(_) => {}
        }
    }
    Ok(Some(r.string(flexible)?.to_owned()))
}

/// The topics a topic-administration request names (CreateTopics v2..=6,
/// DeleteTopics v1..=5, CreatePartitions v0..=3), so that it can go to the
/// controller of the cluster they route to.
pub fn admin_topic_names(header: &RequestHeader, body: &[u8]) -> Result<Vec<String>, WireError> {
    let mut r = Reader::new(body, "topic administration request");
    let (api, versions, flexible_from) = match ApiKey::try_from(header.api_key) {
        Ok(ApiKey::CreateTopics) => (ApiKey::CreateTopics, 2..=6, 5),
        Ok(ApiKey::DeleteTopics) => (ApiKey::DeleteTopics, 1..=5, 4),
        Ok(ApiKey::CreatePartitions) => (ApiKey::CreatePartitions, 0..=3, 2),
        _ => {
            return Err(r.error(format!(
                "API key {} is not topic administration",
                header.api_key
            )))
        }
    };
    let v = check_version(&r, header, api, versions)?;
    let flexible = v >= flexible_from;
    let tags = usize::from(flexible);
    // An array length: int32, or a one-byte varint when flexible.
    let len = if flexible { 1 } else { 4 };
    let name_min = if flexible { 1 } else { 2 };
    let mut names = Vec::new();
    match api {
        ApiKey::DeleteTopics => {
            let n = required_len(&mut r, flexible, name_min, "topic names")?;
            for _ in 0..n {
                names.push(r.string(flexible)?.to_owned());
            }
            skip(&mut r, 4)?; // timeout_ms
        }
        ApiKey::CreateTopics => {
            let topic_min = name_min + 4 + 2 + len + len + tags;
            let n = required_len(&mut r, flexible, topic_min, "topics")?;
            for _ in 0..n {
                names.push(r.string(flexible)?.to_owned());
                skip(&mut r, 6)?; // num_partitions, replication_factor
                let assignments = required_len(&mut r, flexible, 4 + len + tags, "assignments")?;
                for _ in 0..assignments {
                    skip(&mut r, 4)?; // partition_index
                    let brokers = required_len(&mut r, flexible, 4, "broker ids")?;
                    skip(&mut r, brokers * 4)?;
                    if flexible {
                        r.skip_tagged_fields()?;
                    }
                }
                let configs = required_len(&mut r, flexible, 2 * name_min + tags, "configs")?;
                for _ in 0..configs {
                    r.string(flexible)?;
                    r.nullable_string(flexible)?;
                    if flexible {
                        r.skip_tagged_fields()?;
                    }
                }
                if flexible {
                    r.skip_tagged_fields()?;
                }
            }
            skip(&mut r, 5)?; // timeout_ms, validate_only
        }
        _ => {
            let topic_min = name_min + 4 + len + tags;
            let n = required_len(&mut r, flexible, topic_min, "topics")?;
            for _ in 0..n {
                names.push(r.string(flexible)?.to_owned());
                skip(&mut r, 4)?; // count
                if let Some(assignments) = r.array_len(flexible, len + tags)? {
                    for _ in 0..assignments {
                        let brokers = required_len(&mut r, flexible, 4, "broker ids")?;
                        skip(&mut r, brokers * 4)?;
                        if flexible {
                            r.skip_tagged_fields()?;
                        }
                    }
                }
                if flexible {
                    r.skip_tagged_fields()?;
                }
            }
            skip(&mut r, 5)?; // timeout_ms, validate_only
        }
    }
    finish(&mut r, flexible)?;
    Ok(names)
}

/// Skips nullable bytes; returns where they sit in the message (empty for
/// null).
fn skip_nullable_bytes(
    r: &mut Reader<'_>,
    flexible: bool,
) -> Result<std::ops::Range<usize>, WireError> {
    let len = if flexible {
        match r.unsigned_varint()? {
            0 => return Ok(r.position()..r.position()),
            n => (n - 1) as usize,
        }
    } else {
        match r.i32()? {
            -1 => return Ok(r.position()..r.position()),
            n if n < 0 => return Err(r.error(format!("bytes length {n} is negative"))),
            n => n as usize,
        }
    };
    let start = r.position();
    skip(r, len)?;
    Ok(start..start + len)
}

/// Reads a topics array whose entries are a name, an array of partitions
/// and (flexible) tagged fields, where each partition starts with its index;
/// `partition_rest` reads a partition's fields after the index, and the
/// partition's tagged fields are skipped here.
fn read_topics(
    r: &mut Reader<'_>,
    flexible: bool,
    partition_min: usize,
    mut partition_rest: impl FnMut(&mut Reader<'_>) -> Result<(), WireError>,
) -> Result<TopicPartitions, WireError> {
    let n = required_len(r, flexible, topic_min(flexible), "topics")?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string(flexible)?.to_owned();
        let m = required_len(r, flexible, partition_min, "partitions")?;
        let mut partitions = Vec::with_capacity(m);
        for _ in 0..m {
            partitions.push(r.i32()?);
            partition_rest(r)?;
            if flexible {
                r.skip_tagged_fields()?;
            }
        }
        if flexible {
            r.skip_tagged_fields()?;
        }
        topics.push((name, partitions));
    }
    Ok(TopicPartitions(topics))
}

/// Skips the top-level tagged fields (flexible) and refuses trailing bytes.
fn finish(r: &mut Reader<'_>, flexible: bool) -> Result<(), WireError> {
    if flexible {
        r.skip_tagged_fields()?;
    }
    match r.remaining() {
        0 => Ok(()),
        n => Err(r.error(format!("{n} trailing bytes"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(api_key: i16, api_version: i16) -> RequestHeader {
        RequestHeader {
            api_key,
            api_version,
            correlation_id: 1,
            client_id: None,
            body_offset: 0,
        }
    }

    fn encoded<R: kafka_protocol::protocol::Encodable>(request: &R, version: i16) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        request.encode(&mut buf, version).unwrap();
        buf.to_vec()
    }

    #[test]
    fn group_requests_name_their_group_in_every_encoding() {
        use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
        use kafka_protocol::messages::{
            DescribeGroupsRequest, GroupId, HeartbeatRequest, OffsetFetchRequest,
        };
        use kafka_protocol::protocol::StrBytes;
        let id = || GroupId(StrBytes::from_static_str("billing"));
        let group = |api: ApiKey, version: i16, body: Vec<u8>| {
            group_of(&header(api as i16, version), &body).unwrap()
        };
        let beat = HeartbeatRequest::default().with_group_id(id());
        for v in [0, 3, 4] {
            let body = encoded(&beat, v);
            assert_eq!(
                group(ApiKey::Heartbeat, v, body).as_deref(),
                Some("billing")
            );
        }
        let fetch = OffsetFetchRequest::default()
            .with_groups(vec![OffsetFetchRequestGroup::default().with_group_id(id())]);
        let body = encoded(&fetch, 8);
        assert_eq!(
            group(ApiKey::OffsetFetch, 8, body).as_deref(),
            Some("billing")
        );
        let describe = DescribeGroupsRequest::default().with_groups(vec![id()]);
        let body = encoded(&describe, 5);
        assert_eq!(
            group(ApiKey::DescribeGroups, 5, body).as_deref(),
            Some("billing")
        );
        let none = DescribeGroupsRequest::default();
        assert_eq!(group(ApiKey::DescribeGroups, 0, encoded(&none, 0)), None);
        // A length running past the body is refused, not trusted.
        assert!(group_of(&header(ApiKey::Heartbeat as i16, 0), &[0x7f, 0xff, b'b']).is_err());
    }

    #[test]
    fn metadata_bomb_is_refused() {
        // topics count 2^31-1 with nothing behind it.
        let body = [0x7f, 0xff, 0xff, 0xff, 0x01];
        let e = MetadataRequestView::parse(&header(3, 4), &body).unwrap_err();
        assert!(
            e.to_string().contains("array claims 2147483647 elements"),
            "{e}"
        );
        // The compact (flexible) form of the same lie.
        let body = [0xff, 0xff, 0xff, 0xff, 0x07, 0x01];
        assert!(MetadataRequestView::parse(&header(3, 12), &body).is_err());
    }

    #[test]
    fn metadata_v1_null_is_all_and_v0_empty_is_all() {
        let all = MetadataRequestView::parse(&header(3, 1), &[0xff, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(all.topics, None);
        let v0 = MetadataRequestView::parse(&header(3, 0), &[0, 0, 0, 0]).unwrap();
        assert_eq!(v0.topics, None);
        let none = MetadataRequestView::parse(&header(3, 1), &[0, 0, 0, 0]).unwrap();
        assert_eq!(none.topics, Some(vec![]));
    }

    #[test]
    fn metadata_v12_topic_by_name() {
        let mut body = vec![2]; // one topic
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&[4, b'a', b'b', b'c', 0]); // name "abc", no tags
        body.extend_from_slice(&[1, 0, 0]); // auto-create, topic ops, no tags
        let m = MetadataRequestView::parse(&header(3, 12), &body).unwrap();
        let topics = m.topics.unwrap();
        assert_eq!(topics[0].name.as_deref(), Some("abc"));
        assert!(m.allow_auto_topic_creation);
    }

    #[test]
    fn find_coordinator_single_and_batched() {
        let body = [0, 1, b'g', 0];
        let v1 = FindCoordinatorView::parse(&header(10, 1), &body).unwrap();
        assert_eq!((v1.key_type, v1.keys), (0, vec!["g".to_owned()]));
        let body = [1, 3, 2, b'a', 2, b'b', 0];
        let v4 = FindCoordinatorView::parse(&header(10, 4), &body).unwrap();
        assert_eq!(
            (v4.key_type, v4.keys),
            (1, vec!["a".to_owned(), "b".to_owned()])
        );
    }
}

#[cfg(test)]
mod partitioned_tests {
    use super::*;

    /// The partitions alone, as the tables below compare them.
    fn fetch_topics(h: &RequestHeader, b: &[u8]) -> Result<TopicPartitions, WireError> {
        fetch_positions(h, b).map(|(topics, _)| topics)
    }

    fn list_offsets_topics(h: &RequestHeader, b: &[u8]) -> Result<TopicPartitions, WireError> {
        list_offsets_positions(h, b).map(|(topics, _)| topics)
    }
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::fetch_request::{
        FetchPartition, FetchRequest, FetchTopic, ForgottenTopic,
    };
    use kafka_protocol::messages::list_offsets_request::{
        ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
    };
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderEpochRequest, OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::produce_request::{
        PartitionProduceData, ProduceRequest, TopicProduceData,
    };
    use kafka_protocol::messages::{TopicName, TransactionalId};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    type Parser = fn(&RequestHeader, &[u8]) -> Result<TopicPartitions, WireError>;

    fn header(api: ApiKey, api_version: i16) -> RequestHeader {
        RequestHeader {
            api_key: api as i16,
            api_version,
            correlation_id: 1,
            client_id: None,
            body_offset: 0,
        }
    }

    fn encode<M: Encodable>(m: &M, version: i16) -> Vec<u8> {
        let mut buf = BytesMut::new();
        m.encode(&mut buf, version).expect("encodable test request");
        buf.to_vec()
    }

    fn name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_owned()))
    }

    /// `$message` carrying an unknown tagged field `$number` when `$flexible`.
    macro_rules! tagged {
        ($flexible:expr, $message:expr, $number:expr) => {{
            let message = $message;
            if $flexible {
                message.with_unknown_tagged_field($number, tag())
            } else {
                message
            }
        }};
    }

    fn tag() -> Bytes {
        Bytes::from_static(b"\x01\x02\x03")
    }

    /// Topics with an empty name, a long one, a repeated one and a topic
    /// with no partitions, to show order and repetition are kept.
    fn expected() -> TopicPartitions {
        TopicPartitions(vec![
            ("orders".to_owned(), vec![0, 2, 1]),
            (String::new(), vec![5]),
            ("x".repeat(300), vec![]),
            ("orders".to_owned(), vec![7]),
        ])
    }

    fn produce_request(v: i16, transactional_id: Option<&str>, acks: i16) -> ProduceRequest {
        let flexible = v >= 9;
        let records = [
            Some(Bytes::from_static(b"not really a record batch")),
            None,
            Some(Bytes::new()),
        ];
        let topics = expected()
            .0
            .into_iter()
            .map(|(t, ps)| {
                let partitions = ps
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| {
                        tagged!(
                            flexible,
                            PartitionProduceData::default()
                                .with_index(p)
                                .with_records(records[i % 3].clone()),
                            3
                        )
                    })
                    .collect();
                tagged!(
                    flexible,
                    TopicProduceData::default()
                        .with_name(name(&t))
                        .with_partition_data(partitions),
                    9
                )
            })
            .collect();
        tagged!(
            flexible,
            ProduceRequest::default()
                .with_transactional_id(
                    transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_owned()))),
                )
                .with_acks(acks)
                .with_timeout_ms(30_000)
                .with_topic_data(topics),
            1
        )
    }

    fn fetch_request(v: i16) -> FetchRequest {
        let flexible = v >= 12;
        let topics = expected()
            .0
            .into_iter()
            .map(|(t, ps)| {
                let partitions = ps
                    .iter()
                    .map(|&p| {
                        let part = FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(1234)
                            .with_partition_max_bytes(1 << 20);
                        let part = if v >= 9 {
                            part.with_current_leader_epoch(3)
                        } else {
                            part
                        };
                        if v >= 12 {
                            part.with_last_fetched_epoch(2)
                                .with_unknown_tagged_field(5, tag())
                        } else {
                            part
                        }
                    })
                    .collect();
                tagged!(
                    flexible,
                    FetchTopic::default()
                        .with_topic(name(&t))
                        .with_partitions(partitions),
                    4
                )
            })
            .collect();
        let mut req = FetchRequest::default()
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_isolation_level(1)
            .with_topics(topics);
        if v >= 7 {
            req = req.with_session_id(9).with_forgotten_topics_data(vec![
                ForgottenTopic::default()
                    .with_topic(name("gone"))
                    .with_partitions(vec![1, 2, 3]),
                ForgottenTopic::default().with_topic(name("gone2")),
            ]);
        }
        if v >= 11 {
            req = req.with_rack_id(StrBytes::from_static_str("rack-a"));
        }
        if v >= 12 {
            req = req
                .with_cluster_id(Some(StrBytes::from_static_str("cluster")))
                .with_unknown_tagged_field(7, tag());
        }
        req
    }

    fn list_offsets_request(v: i16) -> ListOffsetsRequest {
        let flexible = v >= 6;
        let topics = expected()
            .0
            .into_iter()
            .map(|(t, ps)| {
                let partitions = ps
                    .iter()
                    .map(|&p| {
                        tagged!(
                            flexible,
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(-2)
                                .with_current_leader_epoch(4),
                            0
                        )
                    })
                    .collect();
                ListOffsetsTopic::default()
                    .with_name(name(&t))
                    .with_partitions(partitions)
            })
            .collect();
        let req = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(topics)
            .with_timeout_ms(if v >= 10 { 1000 } else { 0 });
        if v >= 2 {
            req.with_isolation_level(1)
        } else {
            req
        }
    }

    fn offset_for_leader_epoch_request(v: i16) -> OffsetForLeaderEpochRequest {
        let topics = expected()
            .0
            .into_iter()
            .map(|(t, ps)| {
                let partitions = ps
                    .iter()
                    .map(|&p| {
                        OffsetForLeaderPartition::default()
                            .with_partition(p)
                            .with_current_leader_epoch(6)
                            .with_leader_epoch(5)
                    })
                    .collect();
                tagged!(
                    v >= 4,
                    OffsetForLeaderTopic::default()
                        .with_topic(name(&t))
                        .with_partitions(partitions),
                    2
                )
            })
            .collect();
        OffsetForLeaderEpochRequest::default().with_topics(topics)
    }

    fn produce_topics(h: &RequestHeader, body: &[u8]) -> Result<TopicPartitions, WireError> {
        ProduceView::parse(h, body).map(|p| p.topics)
    }

    /// Every parser with the versions its tests cover and a valid body for
    /// each.
    fn cases() -> Vec<(ApiKey, Parser, i16, Vec<u8>)> {
        let mut out: Vec<(ApiKey, Parser, i16, Vec<u8>)> = Vec::new();
        for v in [3, 5, 7, 8, 9, 10, 12] {
            let body = encode(&produce_request(v, Some("tx"), -1), v);
            out.push((ApiKey::Produce, produce_topics, v, body));
        }
        for v in [4, 5, 7, 9, 10, 11, 12] {
            out.push((ApiKey::Fetch, fetch_topics, v, encode(&fetch_request(v), v)));
        }
        for v in [1, 2, 4, 5, 6, 8, 10] {
            let body = encode(&list_offsets_request(v), v);
            out.push((ApiKey::ListOffsets, list_offsets_topics, v, body));
        }
        for v in [2, 3, 4] {
            let body = encode(&offset_for_leader_epoch_request(v), v);
            out.push((
                ApiKey::OffsetForLeaderEpoch,
                offset_for_leader_epoch_topics,
                v,
                body,
            ));
        }
        out
    }

    #[test]
    fn every_parser_reads_real_requests_at_every_tested_version() {
        for (api, parse, v, body) in cases() {
            let got = parse(&header(api, v), &body);
            assert_eq!(got, Ok(expected()), "{api:?} v{v}");
        }
    }

    #[test]
    fn produce_view_reads_transactional_id_and_acks() {
        for v in [3, 8, 9, 12] {
            let body = encode(&produce_request(v, Some("tx-1"), -1), v);
            let view = ProduceView::parse(&header(ApiKey::Produce, v), &body).unwrap();
            assert_eq!(view.transactional_id.as_deref(), Some("tx-1"), "v{v}");
            assert_eq!(view.acks, -1);
            assert_eq!(view.topics, expected());
            let body = encode(&produce_request(v, None, 0), v);
            let view = ProduceView::parse(&header(ApiKey::Produce, v), &body).unwrap();
            assert_eq!((view.transactional_id, view.acks), (None, 0), "v{v}");
        }
    }

    #[test]
    fn every_prefix_is_an_error_and_so_is_a_trailing_byte() {
        for (api, parse, v, body) in cases() {
            let h = header(api, v);
            for len in 0..body.len() {
                assert!(parse(&h, &body[..len]).is_err(), "{api:?} v{v} len {len}");
            }
            let mut longer = body.clone();
            longer.push(0);
            let e = parse(&h, &longer).unwrap_err();
            assert!(e.detail.contains("trailing"), "{api:?} v{v}: {e}");
        }
    }

    #[test]
    fn wrong_api_or_version_is_refused() {
        let body = encode(&produce_request(9, None, 1), 9);
        assert!(ProduceView::parse(&header(ApiKey::Fetch, 9), &body).is_err());
        for (api, parse, v) in [
            (ApiKey::Produce, produce_topics as Parser, 2),
            (ApiKey::Produce, produce_topics, 13),
            (ApiKey::Fetch, fetch_topics, 3),
            (ApiKey::Fetch, fetch_topics, 13),
            (ApiKey::ListOffsets, list_offsets_topics, 0),
            (ApiKey::ListOffsets, list_offsets_topics, 11),
            (
                ApiKey::OffsetForLeaderEpoch,
                offset_for_leader_epoch_topics,
                1,
            ),
            (
                ApiKey::OffsetForLeaderEpoch,
                offset_for_leader_epoch_topics,
                5,
            ),
        ] {
            let e = parse(&header(api, v), &[0; 64]).unwrap_err();
            assert!(e.detail.contains("outside"), "{api:?} v{v}: {e}");
        }
    }

    /// The fields before the topics array: `(api, parser, version, prefix)`.
    fn prefixes() -> Vec<(ApiKey, Parser, i16, Vec<u8>)> {
        vec![
            // Null transactional id, acks, timeout.
            (
                ApiKey::Produce,
                produce_topics,
                3,
                vec![0xff, 0xff, 0, 1, 0, 0, 0, 0],
            ),
            (
                ApiKey::Produce,
                produce_topics,
                12,
                vec![0, 0, 1, 0, 0, 0, 0],
            ),
            // replica_id .. isolation_level (17), session id/epoch (8).
            (ApiKey::Fetch, fetch_topics, 4, vec![0; 17]),
            (ApiKey::Fetch, fetch_topics, 11, vec![0; 25]),
            (ApiKey::Fetch, fetch_topics, 12, vec![0; 25]),
            // replica_id, isolation_level (v2+).
            (ApiKey::ListOffsets, list_offsets_topics, 1, vec![0; 4]),
            (ApiKey::ListOffsets, list_offsets_topics, 6, vec![0; 5]),
            (ApiKey::ListOffsets, list_offsets_topics, 10, vec![0; 5]),
            // replica_id (v3+).
            (
                ApiKey::OffsetForLeaderEpoch,
                offset_for_leader_epoch_topics,
                2,
                vec![],
            ),
            (
                ApiKey::OffsetForLeaderEpoch,
                offset_for_leader_epoch_topics,
                4,
                vec![0; 4],
            ),
        ]
    }

    fn is_flexible(api: ApiKey, v: i16) -> bool {
        api.request_header_version(v) >= 2
    }

    /// 2^31-1 as an int32 count, or as a compact count (varint 2^31).
    fn bomb(flexible: bool) -> Vec<u8> {
        if flexible {
            vec![0x80, 0x80, 0x80, 0x80, 0x08]
        } else {
            vec![0x7f, 0xff, 0xff, 0xff]
        }
    }

    /// One topic named "t": its count and its name.
    fn one_topic(flexible: bool) -> Vec<u8> {
        if flexible {
            vec![2, 2, b't']
        } else {
            vec![0, 0, 0, 1, 0, 1, b't']
        }
    }

    #[test]
    fn topic_count_bombs_are_refused() {
        for (api, parse, v, prefix) in prefixes() {
            let mut body = prefix;
            body.extend(bomb(is_flexible(api, v)));
            body.extend([0; 64]);
            let e = parse(&header(api, v), &body).unwrap_err();
            assert!(e.detail.contains("array claims"), "{api:?} v{v}: {e}");
        }
    }

    #[test]
    fn partition_count_bombs_are_refused() {
        for (api, parse, v, prefix) in prefixes() {
            let flexible = is_flexible(api, v);
            let mut body = prefix;
            body.extend(one_topic(flexible));
            body.extend(bomb(flexible));
            body.extend([0; 64]);
            let e = parse(&header(api, v), &body).unwrap_err();
            assert!(e.detail.contains("array claims"), "{api:?} v{v}: {e}");
        }
    }

    #[test]
    fn null_topic_array_is_refused() {
        for (api, parse, v, prefix) in prefixes() {
            let mut body = prefix;
            body.extend(if is_flexible(api, v) {
                vec![0]
            } else {
                vec![0xff; 4]
            });
            body.extend([0; 8]);
            let e = parse(&header(api, v), &body).unwrap_err();
            assert!(e.detail.contains("null"), "{api:?} v{v}: {e}");
        }
    }

    #[test]
    fn fetch_forgotten_topics_bomb_is_refused() {
        for v in [7, 12] {
            let flexible = v >= 12;
            let mut body = vec![0; 25];
            body.extend(if flexible { vec![1] } else { vec![0; 4] }); // no topics
            body.extend(bomb(flexible));
            body.extend([0; 64]);
            let e = fetch_topics(&header(ApiKey::Fetch, v), &body).unwrap_err();
            assert!(e.detail.contains("array claims"), "v{v}: {e}");
        }
    }

    #[test]
    fn produce_record_length_bombs_are_refused() {
        for v in [3, 12] {
            let flexible = v >= 9;
            let mut body = if flexible {
                vec![0, 0, 1, 0, 0, 0, 0]
            } else {
                vec![0xff, 0xff, 0, 1, 0, 0, 0, 0]
            };
            body.extend(one_topic(flexible));
            body.extend(if flexible { vec![2] } else { vec![0, 0, 0, 1] });
            body.extend([0, 0, 0, 0]); // partition index
            body.extend(bomb(flexible)); // records length
            body.extend([0; 64]);
            assert!(ProduceView::parse(&header(ApiKey::Produce, v), &body).is_err());
        }
        // A negative length other than -1 is malformed too.
        let mut body = vec![0xff, 0xff, 0, 1, 0, 0, 0, 0];
        body.extend(one_topic(false));
        body.extend([0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe]);
        assert!(ProduceView::parse(&header(ApiKey::Produce, 3), &body).is_err());
    }

    #[test]
    fn garbage_inside_a_partition_entry_is_refused() {
        // OffsetForLeaderEpoch v2: one topic "t", two partitions; a stray
        // byte after the first partition misaligns everything behind it.
        let req = OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(name("t"))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default().with_partition(0),
                    OffsetForLeaderPartition::default().with_partition(1),
                ]),
        ]);
        let h = header(ApiKey::OffsetForLeaderEpoch, 2);
        let mut body = encode(&req, 2);
        assert!(offset_for_leader_epoch_topics(&h, &body).is_ok());
        body.insert(4 + 3 + 4 + 12, 0);
        assert!(offset_for_leader_epoch_topics(&h, &body).is_err());
        // Flexible: a partition's tagged field claims more than is there.
        let h = header(ApiKey::OffsetForLeaderEpoch, 4);
        let mut body = encode(&req, 4);
        let tags = 4 + 1 + 2 + 1 + 12; // first partition's tagged-field count
        assert_eq!(body[tags], 0);
        body[tags] = 1;
        body.splice(tags + 1..tags + 1, [0, 100]);
        assert!(offset_for_leader_epoch_topics(&h, &body).is_err());
    }
}

#[cfg(test)]
mod admin_tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
    };
    use kafka_protocol::messages::{
        BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, TopicName,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    fn header(api: ApiKey, version: i16) -> RequestHeader {
        RequestHeader {
            api_key: api as i16,
            api_version: version,
            correlation_id: 1,
            client_id: None,
            body_offset: 0,
        }
    }

    fn name(n: &str) -> TopicName {
        TopicName(StrBytes::from_string(n.to_owned()))
    }

    fn encode(body: &impl Encodable, version: i16) -> Vec<u8> {
        let mut buf = BytesMut::new();
        body.encode(&mut buf, version).unwrap();
        buf.to_vec()
    }

    /// Parses `bytes` as `api` v`version`, checks the names, and that every
    /// cut-short body is an error rather than a panic.
    fn check(api: ApiKey, version: i16, bytes: &[u8]) {
        let h = header(api, version);
        assert_eq!(
            admin_topic_names(&h, bytes).unwrap(),
            ["a", "b"],
            "{api:?} v{version}"
        );
        for len in 0..bytes.len() {
            assert!(
                admin_topic_names(&h, &bytes[..len]).is_err(),
                "{api:?} v{version} cut at {len}"
            );
        }
    }

    #[test]
    fn create_topics_names_at_every_version() {
        let topic = |n: &str| {
            CreatableTopic::default()
                .with_name(name(n))
                .with_num_partitions(3)
                .with_replication_factor(-1)
                .with_assignments(vec![CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(1), BrokerId(2)])])
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("cleanup.policy"))
                    .with_value(Some(StrBytes::from_static_str("compact")))])
        };
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic("a"), topic("b")])
            .with_timeout_ms(1000);
        for v in 2..=6 {
            check(ApiKey::CreateTopics, v, &encode(&request, v));
        }
    }

    #[test]
    fn delete_topics_and_create_partitions_names() {
        let delete = DeleteTopicsRequest::default()
            .with_topic_names(vec![name("a"), name("b")])
            .with_timeout_ms(1000);
        for v in 1..=5 {
            check(ApiKey::DeleteTopics, v, &encode(&delete, v));
        }
        let topic = |n: &str, assignments| {
            CreatePartitionsTopic::default()
                .with_name(name(n))
                .with_count(4)
                .with_assignments(assignments)
        };
        let create = CreatePartitionsRequest::default().with_topics(vec![
            topic("a", None),
            topic(
                "b",
                Some(vec![
                    CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)])
                ]),
            ),
        ]);
        for v in 0..=3 {
            check(ApiKey::CreatePartitions, v, &encode(&create, v));
        }
    }

    #[test]
    fn admin_count_bombs_and_other_apis_are_refused() {
        let bomb = [0x7f, 0xff, 0xff, 0xff, 0, 0];
        assert!(admin_topic_names(&header(ApiKey::CreateTopics, 2), &bomb).is_err());
        assert!(admin_topic_names(&header(ApiKey::DeleteTopics, 1), &bomb).is_err());
        assert!(admin_topic_names(&header(ApiKey::CreatePartitions, 0), &bomb).is_err());
        let compact = [0xff, 0xff, 0xff, 0xff, 0x07, 0];
        assert!(admin_topic_names(&header(ApiKey::CreateTopics, 5), &compact).is_err());
        assert!(admin_topic_names(&header(ApiKey::Metadata, 1), &[0, 0, 0, 0]).is_err());
        assert!(admin_topic_names(&header(ApiKey::CreateTopics, 1), &[0, 0, 0, 0]).is_err());
    }
}
