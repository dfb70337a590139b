//! Requests whose partitions live on several upstream brokers: one request
//! per broker, and their answers merged back into one, in request order.
//!
//! This happens after a flip while a client's metadata is still stale, and
//! in steady state whenever a topic's Produce and Fetch point at different
//! clusters. Pure: frames in, frames out; the session moves the bytes.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    fetch_response, list_offsets_response, offset_for_leader_epoch_response, produce_response,
    ApiKey, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::domain::stitch::{self, OffsetField, Shift};
use crate::wire::codec::{decode_response, response_body, response_frame, CodecError};
use crate::wire::requests::TopicPartitions;
use crate::wire::{Frame, Reader, RequestHeader};

/// Where each partition of a request goes, in request order (`[topic][partition]`):
/// the index of its destination, or `None` when it has none (the proxy
/// answers it with an error itself).
pub type Assignment = Vec<Vec<Option<usize>>>;

/// One request frame per destination, each carrying only the partitions
/// `assignment` gives it, under the client's own header; `None` for a
/// destination that gets no partition.
///
/// `frame` must have passed its API's view in [`crate::wire::requests`]
/// first: that checks every count against the bytes present, so the full
/// decode here cannot be made to over-allocate.
pub fn split(
    api: ApiKey,
    frame: &Bytes,
    header: &RequestHeader,
    plan: &Parts<'_>,
) -> Result<Vec<Option<Bytes>>, CodecError> {
    match api {
        ApiKey::Produce => split_as::<ProduceRequest>(frame, header, plan),
        ApiKey::Fetch => split_as::<FetchRequest>(frame, header, plan),
        ApiKey::ListOffsets => split_as::<ListOffsetsRequest>(frame, header, plan),
        ApiKey::OffsetForLeaderEpoch => {
            split_as::<OffsetForLeaderEpochRequest>(frame, header, plan)
        }
        other => Err(unsplittable(other, header.api_version)),
    }
}

/// How a request is cut up: where each partition goes, how its offsets
/// shift (both `[topic][partition]` in request order), and how many
/// destinations there are.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    pub assignment: &'a Assignment,
    pub shifts: &'a [Vec<Shift>],
    pub destinations: usize,
}

/// The client's answer from the parts' answers (upstream response frames,
/// in any order): every partition of `order`, in request order, its
/// offsets shifted by `shifts` (same shape) into the client's log, with the
/// worst throttle time of any part.
pub fn merge(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    order: &TopicPartitions,
    shifts: &[Vec<Shift>],
    parts: &[Frame],
) -> Result<Bytes, CodecError> {
    let merge = match api {
        ApiKey::Produce => merge_as::<ProduceRequest>,
        ApiKey::Fetch => merge_as::<FetchRequest>,
        ApiKey::ListOffsets => merge_as::<ListOffsetsRequest>,
        ApiKey::OffsetForLeaderEpoch => merge_as::<OffsetForLeaderEpochRequest>,
        other => return Err(unsplittable(other, version)),
    };
    merge(version, correlation_id, order, shifts, parts)
}

fn unsplittable(api: ApiKey, version: i16) -> CodecError {
    CodecError::Encode {
        api,
        version,
        message: "the proxy does not split this API across brokers".into(),
    }
}

/// A request that lists topics, each with partitions, answered per
/// partition in a response of the same shape.
trait Partitioned: Decodable + Encodable + Clone {
    const API: ApiKey;
    type Response: Decodable + Encodable;
    type Topic: TopicAnswer;

    /// Keeps the partitions `keep(topic position, partition position)`
    /// accepts and drops topics left empty; false when nothing is left.
    fn retain(&mut self, keep: &mut dyn FnMut(usize, usize) -> bool) -> bool;

    /// Makes the request stand alone for one broker.
    fn detach(&mut self) {}

    /// Moves the offsets a request names (by position) into the upstream
    /// log each partition is read from.
    fn shift(&mut self, _shifts: &[Vec<Shift>]) {}

    fn topics(response: &mut Self::Response) -> &mut Vec<Self::Topic>;

    /// Decodes a part's answer.
    fn decode_answer(version: i16, frame: &Frame) -> Result<Self::Response, CodecError> {
        decode_response(Self::API, version, frame)
    }

    /// Folds a part's top-level fields into the merged answer.
    fn fold(merged: &mut Self::Response, part: &Self::Response);
}

/// A topic entry of a per-partition response.
trait TopicAnswer: Clone {
    type Partition: PartitionAnswer;
    fn name(&self) -> &str;
    fn partitions(&mut self) -> &mut Vec<Self::Partition>;
    fn index(partition: &Self::Partition) -> i32;
}

/// Keeps the partitions of a `topics[].partitions[]` list that `keep`
/// accepts, by position; true when any is left.
fn retain_nested<T, P>(
    topics: &mut Vec<T>,
    partitions: impl Fn(&mut T) -> &mut Vec<P>,
    keep: &mut dyn FnMut(usize, usize) -> bool,
) -> bool {
    let mut t = 0;
    topics.retain_mut(|topic| {
        let mut p = 0;
        partitions(topic).retain(|_| {
            let kept = keep(t, p);
            p += 1;
            kept
        });
        t += 1;
        !partitions(topic).is_empty()
    });
    !topics.is_empty()
}

impl Partitioned for ProduceRequest {
    const API: ApiKey = ApiKey::Produce;
    type Response = ProduceResponse;
    type Topic = produce_response::TopicProduceResponse;

    fn retain(&mut self, keep: &mut dyn FnMut(usize, usize) -> bool) -> bool {
        retain_nested(&mut self.topic_data, |t| &mut t.partition_data, keep)
    }

    fn topics(response: &mut ProduceResponse) -> &mut Vec<Self::Topic> {
        &mut response.responses
    }

    fn decode_answer(version: i16, frame: &Frame) -> Result<ProduceResponse, CodecError> {
        let mut body = response_body(Self::API, version, frame)?;
        let responses = topic_array(Self::API, version, &mut body, version >= 9)?;
        let mut r = Reader::new(&body, "Produce response");
        let throttle_time_ms = r.i32()?;
        Ok(ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle_time_ms))
    }

    fn fold(merged: &mut ProduceResponse, part: &ProduceResponse) {
        merged.throttle_time_ms = merged.throttle_time_ms.max(part.throttle_time_ms);
        merged.node_endpoints.clear();
    }
}

impl Partitioned for FetchRequest {
    const API: ApiKey = ApiKey::Fetch;
    type Response = FetchResponse;
    type Topic = fetch_response::FetchableTopicResponse;

    fn retain(&mut self, keep: &mut dyn FnMut(usize, usize) -> bool) -> bool {
        retain_nested(&mut self.topics, |t| &mut t.partitions, keep)
    }

    fn shift(&mut self, shifts: &[Vec<Shift>]) {
        for (topic, shifts) in self.topics.iter_mut().zip(shifts) {
            for (partition, shift) in topic.partitions.iter_mut().zip(shifts) {
                partition.fetch_offset = shift.to_upstream(partition.fetch_offset);
                partition.log_start_offset = shift.to_upstream(partition.log_start_offset);
            }
        }
    }

    /// A full fetch outside any fetch session: a session belongs to one
    /// broker, and a part names only some of the client's partitions.
    fn detach(&mut self) {
        self.session_id = 0;
        self.session_epoch = -1;
        self.forgotten_topics_data.clear();
    }

    fn topics(response: &mut FetchResponse) -> &mut Vec<Self::Topic> {
        &mut response.responses
    }

    fn decode_answer(version: i16, frame: &Frame) -> Result<FetchResponse, CodecError> {
        let mut body = response_body(Self::API, version, frame)?;
        let mut r = Reader::new(&body, "Fetch response");
        let throttle_time_ms = r.i32()?;
        let (error_code, session_id) = if version >= 7 {
            (r.i16()?, r.i32()?)
        } else {
            (0, 0)
        };
        body.advance(r.position());
        let responses = topic_array(Self::API, version, &mut body, version >= 12)?;
        Ok(FetchResponse::default()
            .with_throttle_time_ms(throttle_time_ms)
            .with_error_code(error_code)
            .with_session_id(session_id)
            .with_responses(responses))
    }

    fn fold(merged: &mut FetchResponse, part: &FetchResponse) {
        merged.throttle_time_ms = merged.throttle_time_ms.max(part.throttle_time_ms);
        if merged.error_code == 0 {
            merged.error_code = part.error_code;
        }
        merged.session_id = 0;
        merged.node_endpoints.clear();
    }
}

impl Partitioned for ListOffsetsRequest {
    const API: ApiKey = ApiKey::ListOffsets;
    type Response = ListOffsetsResponse;
    type Topic = list_offsets_response::ListOffsetsTopicResponse;

    fn retain(&mut self, keep: &mut dyn FnMut(usize, usize) -> bool) -> bool {
        retain_nested(&mut self.topics, |t| &mut t.partitions, keep)
    }

    fn topics(response: &mut ListOffsetsResponse) -> &mut Vec<Self::Topic> {
        &mut response.topics
    }

    fn fold(merged: &mut ListOffsetsResponse, part: &ListOffsetsResponse) {
        merged.throttle_time_ms = merged.throttle_time_ms.max(part.throttle_time_ms);
    }
}

impl Partitioned for OffsetForLeaderEpochRequest {
    const API: ApiKey = ApiKey::OffsetForLeaderEpoch;
    type Response = OffsetForLeaderEpochResponse;
    type Topic = offset_for_leader_epoch_response::OffsetForLeaderTopicResult;

    fn retain(&mut self, keep: &mut dyn FnMut(usize, usize) -> bool) -> bool {
        retain_nested(&mut self.topics, |t| &mut t.partitions, keep)
    }

    fn topics(response: &mut OffsetForLeaderEpochResponse) -> &mut Vec<Self::Topic> {
        &mut response.topics
    }

    fn fold(merged: &mut OffsetForLeaderEpochResponse, part: &OffsetForLeaderEpochResponse) {
        merged.throttle_time_ms = merged.throttle_time_ms.max(part.throttle_time_ms);
    }
}

/// Implements [`TopicAnswer`] for a response topic type from its field
/// names.
macro_rules! topic_answer {
    ($topic:ty, $name:ident, $partitions:ident, $partition:ty, $index:ident) => {
        impl TopicAnswer for $topic {
            type Partition = $partition;
            fn name(&self) -> &str {
                &self.$name.0
            }
            fn partitions(&mut self) -> &mut Vec<$partition> {
                &mut self.$partitions
            }
            fn index(partition: &$partition) -> i32 {
                partition.$index
            }
        }
    };
}

topic_answer!(
    produce_response::TopicProduceResponse,
    name,
    partition_responses,
    produce_response::PartitionProduceResponse,
    index
);
topic_answer!(
    fetch_response::FetchableTopicResponse,
    topic,
    partitions,
    fetch_response::PartitionData,
    partition_index
);
topic_answer!(
    list_offsets_response::ListOffsetsTopicResponse,
    name,
    partitions,
    list_offsets_response::ListOffsetsPartitionResponse,
    partition_index
);
topic_answer!(
    offset_for_leader_epoch_response::OffsetForLeaderTopicResult,
    topic,
    partitions,
    offset_for_leader_epoch_response::EpochEndOffset,
    partition
);

/// One partition's answer on its way back: its offsets into the client's
/// (virtual) log, and no upstream broker named.
trait PartitionAnswer {
    fn shift(&mut self, shift: Shift);
    /// Clears what names an upstream broker, which a merged answer from
    /// several brokers cannot name truthfully.
    fn forget_leader(&mut self) {}
}

impl PartitionAnswer for produce_response::PartitionProduceResponse {
    fn shift(&mut self, shift: Shift) {
        self.base_offset = shift.answer(OffsetField::Offset, self.base_offset);
        self.log_start_offset = shift.answer(OffsetField::LogStart, self.log_start_offset);
    }
    fn forget_leader(&mut self) {
        self.current_leader = Default::default();
    }
}

impl PartitionAnswer for fetch_response::PartitionData {
    fn shift(&mut self, shift: Shift) {
        self.high_watermark = shift.answer(OffsetField::HighWatermark, self.high_watermark);
        self.last_stable_offset = shift.answer(OffsetField::LastStable, self.last_stable_offset);
        self.log_start_offset = shift.answer(OffsetField::LogStart, self.log_start_offset);
        for aborted in self.aborted_transactions.iter_mut().flatten() {
            aborted.first_offset = shift.answer(OffsetField::Offset, aborted.first_offset);
        }
        if let Some(records) = &self.records {
            self.records = Some(Bytes::from(stitch::shift_records(records, shift)));
        }
    }
    fn forget_leader(&mut self) {
        self.current_leader = Default::default();
        self.preferred_read_replica = (-1).into();
    }
}

impl PartitionAnswer for list_offsets_response::ListOffsetsPartitionResponse {
    fn shift(&mut self, shift: Shift) {
        self.offset = match (self.offset, shift.end) {
            // Nothing at or after the timestamp in this segment: the next
            // segment's first record is (its records are all later).
            (-1, Some(end)) if self.error_code == 0 => end.0.saturating_add(shift.delta),
            (offset, _) => shift.answer(OffsetField::Offset, offset),
        };
    }
}

impl PartitionAnswer for offset_for_leader_epoch_response::EpochEndOffset {
    fn shift(&mut self, shift: Shift) {
        self.end_offset = shift.answer(OffsetField::Offset, self.end_offset);
    }
}

/// Decodes a response's topic array, each entry with `kafka-protocol`, and
/// leaves `body` after it. What follows (the top-level tagged fields) is
/// left unread on purpose: brokers send some at versions that do not define
/// them (tansu names its endpoints in every flexible Fetch answer), and a
/// merged answer drops them anyway.
fn topic_array<T: Decodable>(
    api: ApiKey,
    version: i16,
    body: &mut Bytes,
    flexible: bool,
) -> Result<Vec<T>, CodecError> {
    let mut r = Reader::new(body, "response topics");
    // Every topic takes at least one byte: no count can claim more.
    let count = r
        .array_len(flexible, 1)?
        .ok_or_else(|| r.error("topics array is null"))?;
    body.advance(r.position());
    (0..count)
        .map(|_| {
            T::decode(body, version).map_err(|e| CodecError::Decode {
                api,
                version,
                message: e.to_string(),
            })
        })
        .collect()
}

fn split_as<R: Partitioned>(
    frame: &Bytes,
    header: &RequestHeader,
    plan: &Parts<'_>,
) -> Result<Vec<Option<Bytes>>, CodecError> {
    let version = header.api_version;
    let body_at = Frame::PREFIX + header.body_offset;
    let client_header = frame
        .get(Frame::PREFIX..body_at)
        .ok_or_else(|| CodecError::Encode {
            api: R::API,
            version,
            message: "header runs past the frame".into(),
        })?;
    let mut body = frame.slice(body_at..);
    let mut request = R::decode(&mut body, version).map_err(|e| CodecError::Encode {
        api: R::API,
        version,
        message: format!("request passed its view but not the full decode: {e}"),
    })?;
    request.shift(plan.shifts);
    (0..plan.destinations)
        .map(|d| {
            let mut part = request.clone();
            let mut keep = |t: usize, p: usize| {
                plan.assignment.get(t).and_then(|ps| ps.get(p)) == Some(&Some(d))
            };
            if !part.retain(&mut keep) {
                return Ok(None);
            }
            part.detach();
            let mut buf = BytesMut::with_capacity(frame.len());
            buf.put_i32(0);
            buf.put_slice(client_header);
            part.encode(&mut buf, version)
                .map_err(|e| CodecError::Encode {
                    api: R::API,
                    version,
                    message: e.to_string(),
                })?;
            let size =
                i32::try_from(buf.len() - Frame::PREFIX).map_err(|_| CodecError::Encode {
                    api: R::API,
                    version,
                    message: "part larger than a frame can be".into(),
                })?;
            buf[..Frame::PREFIX].copy_from_slice(&size.to_be_bytes());
            Ok(Some(buf.freeze()))
        })
        .collect()
}

fn merge_as<R: Partitioned>(
    version: i16,
    correlation_id: i32,
    order: &TopicPartitions,
    shifts: &[Vec<Shift>],
    parts: &[Frame],
) -> Result<Bytes, CodecError>
where
    R::Response: Default,
{
    let mut merged = R::Response::default();
    // Every answered partition, by topic and index; a queue, in case a
    // request names a partition twice.
    let mut answers: HashMap<(String, i32), VecDeque<_>> = HashMap::new();
    let mut shells: HashMap<String, R::Topic> = HashMap::new();
    for frame in parts {
        let mut part = R::decode_answer(version, frame)?;
        R::fold(&mut merged, &part);
        for mut topic in std::mem::take(R::topics(&mut part)) {
            for mut partition in std::mem::take(topic.partitions()) {
                if parts.len() > 1 {
                    partition.forget_leader();
                }
                let key = (topic.name().to_owned(), R::Topic::index(&partition));
                answers.entry(key).or_default().push_back(partition);
            }
            shells.entry(topic.name().to_owned()).or_insert(topic);
        }
    }
    let missing = |topic: &str, partition: i32| CodecError::Decode {
        api: R::API,
        version,
        message: format!("no broker answered for {topic}-{partition}"),
    };
    let topics = R::topics(&mut merged);
    for ((name, indices), shifts) in order.0.iter().zip(shifts) {
        // Cloned, not taken: a request may name a topic twice.
        let mut topic = shells
            .get(name)
            .cloned()
            .ok_or_else(|| missing(name, indices.first().copied().unwrap_or(-1)))?;
        for (&index, shift) in indices.iter().zip(shifts) {
            let mut partition = answers
                .get_mut(&(name.clone(), index))
                .and_then(VecDeque::pop_front)
                .ok_or_else(|| missing(name, index))?;
            if !shift.is_none() {
                partition.shift(*shift);
            }
            topic.partitions().push(partition);
        }
        topics.push(topic);
    }
    response_frame(R::API, version, correlation_id, &merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn name(n: &str) -> TopicName {
        TopicName(StrBytes::from_string(n.to_owned()))
    }

    const VERSION: i16 = 12;

    /// A Fetch for a-0, a-1 and b-0, in a client frame.
    fn fetch_frame() -> (Bytes, RequestHeader) {
        let topic = |n: &str, ps: &[i32]| {
            FetchTopic::default().with_topic(name(n)).with_partitions(
                ps.iter()
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(10 * *p as i64)
                    })
                    .collect(),
            )
        };
        let request = FetchRequest::default()
            .with_max_wait_ms(100)
            .with_session_epoch(0)
            .with_topics(vec![topic("a", &[0, 1]), topic("b", &[0])]);
        let frame = crate::wire::codec::request_frame(ApiKey::Fetch, VERSION, 9, &request).unwrap();
        let header = RequestHeader::parse(&frame[Frame::PREFIX..]).unwrap();
        (frame, header)
    }

    fn order() -> TopicPartitions {
        TopicPartitions(vec![("a".into(), vec![0, 1]), ("b".into(), vec![0])])
    }

    #[test]
    fn each_part_carries_only_its_partitions_outside_any_session() {
        let (frame, header) = fetch_frame();
        let assignment = vec![vec![Some(1), Some(0)], vec![Some(1)]];
        // a-1 is read from a segment that starts 4 upstream offsets earlier.
        let shift = Shift {
            delta: 4,
            ..Shift::NONE
        };
        let shifts = vec![vec![Shift::NONE, shift], vec![Shift::NONE]];
        let plan = Parts {
            assignment: &assignment,
            shifts: &shifts,
            destinations: 3,
        };
        let parts = split(ApiKey::Fetch, &frame, &header, &plan).unwrap();
        assert_eq!(parts.len(), 3);
        assert!(
            parts[2].is_none(),
            "a destination with no partition gets no request"
        );
        let decode = |part: &Bytes| {
            let part_header = RequestHeader::parse(&part[Frame::PREFIX..]).unwrap();
            assert_eq!(part_header.correlation_id, 9);
            assert_eq!(
                i32::from_be_bytes(part[..4].try_into().unwrap()) as usize,
                part.len() - 4
            );
            let mut body = part.slice(Frame::PREFIX + part_header.body_offset..);
            FetchRequest::decode(&mut body, VERSION).unwrap()
        };
        let first = decode(parts[0].as_ref().unwrap());
        let second = decode(parts[1].as_ref().unwrap());
        let shape = |r: &FetchRequest| -> Vec<(String, Vec<(i32, i64)>)> {
            r.topics
                .iter()
                .map(|t| {
                    let ps = t
                        .partitions
                        .iter()
                        .map(|p| (p.partition, p.fetch_offset))
                        .collect();
                    (t.topic.0.to_string(), ps)
                })
                .collect()
        };
        assert_eq!(shape(&first), vec![("a".to_string(), vec![(1, 6)])]);
        assert_eq!(
            shape(&second),
            vec![
                ("a".to_string(), vec![(0, 0)]),
                ("b".to_string(), vec![(0, 0)])
            ]
        );
        assert_eq!((second.session_id, second.session_epoch), (0, -1));
        assert_eq!(second.max_wait_ms, 100);
    }

    fn fetch_answer(topics: &[(&str, &[(i32, i64)])], throttle: i32) -> Frame {
        let response = FetchResponse::default()
            .with_throttle_time_ms(throttle)
            .with_responses(
                topics
                    .iter()
                    .map(|(n, ps)| {
                        fetch_response::FetchableTopicResponse::default()
                            .with_topic(name(n))
                            .with_partitions(
                                ps.iter()
                                    .map(|(p, hw)| {
                                        fetch_response::PartitionData::default()
                                            .with_partition_index(*p)
                                            .with_high_watermark(*hw)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        Frame(response_frame(ApiKey::Fetch, VERSION, 9, &response).unwrap())
    }

    #[test]
    fn answers_merge_in_request_order_with_the_worst_throttle() {
        // The parts answer in another order than the request's.
        let parts = [
            fetch_answer(&[("b", &[(0, 7)]), ("a", &[(0, 5)])], 3),
            fetch_answer(&[("a", &[(1, 6)])], 20),
        ];
        let shifts = vec![
            vec![
                Shift::NONE,
                Shift {
                    delta: 100,
                    end: Some(crate::domain::stitch::UpstreamOffset(5)),
                    ..Shift::NONE
                },
            ],
            vec![Shift::NONE],
        ];
        let merged = merge(ApiKey::Fetch, VERSION, 9, &order(), &shifts, &parts).unwrap();
        let back: FetchResponse = decode_response(ApiKey::Fetch, VERSION, &Frame(merged)).unwrap();
        assert_eq!(back.throttle_time_ms, 20);
        let shape: Vec<(String, Vec<(i32, i64)>)> = back
            .responses
            .iter()
            .map(|t| {
                let ps = t
                    .partitions
                    .iter()
                    .map(|p| (p.partition_index, p.high_watermark))
                    .collect();
                (t.topic.0.to_string(), ps)
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("a".to_string(), vec![(0, 5), (1, 105)]),
                ("b".to_string(), vec![(0, 7)])
            ],
            "a-1's high watermark is capped at its segment's end, then shifted"
        );
    }

    /// The segments of one partition moved old → new → old: virtual 0..100
    /// on old, 100..150 on new (upstream 0..50), then old again from its
    /// upstream 100.
    fn three_stretches() -> crate::domain::stitch::Segments {
        use crate::domain::ids::ClusterIdx;
        use crate::domain::stitch::{Stitches, UpstreamOffset as U};
        let mut s = Stitches::default();
        s.record_move("t", ClusterIdx(0), ClusterIdx(1), 1, [(0, U(100), U(0))]);
        s.record_move("t", ClusterIdx(1), ClusterIdx(0), 2, [(0, U(50), U(100))]);
        s.get("t", 0).unwrap().clone()
    }

    #[test]
    fn every_answer_type_speaks_of_the_stitched_log() {
        use crate::domain::stitch::VirtualOffset as V;
        let segments = three_stretches();
        let first = segments.at(V(10)).1;
        let middle = segments.at(V(120)).1;
        let newest = segments.last().1;

        // Fetch: the log start is the oldest stretch's (0) on every
        // stretch; a complete stretch ends where the next begins.
        let fetch = |shift: Shift, start: i64, hw: i64| {
            let mut p = fetch_response::PartitionData::default()
                .with_log_start_offset(start)
                .with_high_watermark(hw)
                .with_last_stable_offset(hw);
            p.shift(shift);
            (p.log_start_offset, p.high_watermark, p.last_stable_offset)
        };
        assert_eq!(fetch(first, 0, 180), (0, 100, 100));
        assert_eq!(fetch(middle, 0, 57), (0, 150, 150));
        assert_eq!(fetch(newest, 0, 180), (0, 230, 230));
        assert_eq!(
            fetch(newest, 60, 180),
            (0, 230, 230),
            "old's start 60 is not the log's"
        );
        assert_eq!(
            fetch(first, 30, 180),
            (30, 100, 100),
            "the oldest stretch's own start"
        );
        assert_eq!(fetch(newest, -1, -1), (-1, -1, -1), "sentinels pass");

        // Produce: the record's offset shifted, the log start the log's.
        let mut produce = produce_response::PartitionProduceResponse::default()
            .with_base_offset(120)
            .with_log_start_offset(0);
        produce.shift(newest);
        assert_eq!((produce.base_offset, produce.log_start_offset), (170, 0));
        let mut produce = produce_response::PartitionProduceResponse::default()
            .with_base_offset(7)
            .with_log_start_offset(0);
        produce.shift(middle);
        assert_eq!((produce.base_offset, produce.log_start_offset), (107, 0));

        // ListOffsets: an offset shifted; nothing in a complete stretch
        // at a timestamp means the next stretch's first record.
        let list = |shift: Shift, offset: i64| {
            let mut p =
                list_offsets_response::ListOffsetsPartitionResponse::default().with_offset(offset);
            p.shift(shift);
            p.offset
        };
        assert_eq!(list(first, 0), 0);
        assert_eq!(list(middle, 20), 120);
        assert_eq!(list(middle, -1), 150);
        assert_eq!(list(newest, 130), 180);
        assert_eq!(list(newest, -1), -1);

        // OffsetForLeaderEpoch: the epoch's end, capped at the stretch's.
        let epoch_end = |shift: Shift, end: i64| {
            let mut p =
                offset_for_leader_epoch_response::EpochEndOffset::default().with_end_offset(end);
            p.shift(shift);
            p.end_offset
        };
        assert_eq!(epoch_end(first, 180), 100);
        assert_eq!(epoch_end(middle, 50), 150);
        assert_eq!(epoch_end(newest, 180), 230);
    }

    #[test]
    fn a_partition_no_broker_answered_is_an_error_not_a_gap() {
        let parts = [fetch_answer(&[("a", &[(0, 5), (1, 6)])], 0)];
        let shifts = vec![vec![Shift::NONE; 2], vec![Shift::NONE]];
        let e = merge(ApiKey::Fetch, VERSION, 9, &order(), &shifts, &parts).unwrap_err();
        assert!(e.to_string().contains("no broker answered for b-0"), "{e}");
    }
}
