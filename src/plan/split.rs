//! Requests whose partitions live on several upstream brokers: one request
//! per broker, and their answers merged back into one, in request order.
//!
//! This happens after a flip while a client's metadata is still stale, and
//! in steady state whenever a topic's Produce and Fetch point at different
//! clusters. Pure: frames in, frames out; the session moves the bytes. The
//! same for every partitioned API, through its unit in
//! [`crate::plan::partitioned`].

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Decodable;

use crate::domain::ids::ClusterIdx;
use crate::domain::routes::RouteTable;
use crate::domain::stitch::Shift;
pub use crate::plan::partitioned::Merge;
use crate::plan::partitioned::{PartitionAnswer, PartitionedApi, TopicAnswer};
use crate::plan::route::Assignment;
use crate::wire::codec::{response_frame, CodecError};
use crate::wire::requests::TopicPartitions;
use crate::wire::{Frame, Reader, RequestHeader};

/// How a request is cut up: where each partition goes, how its offsets
/// shift (both `[topic][partition]` in request order), and how many
/// destinations there are.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    pub assignment: &'a Assignment,
    pub shifts: &'a [Vec<Shift>],
    pub destinations: usize,
}

/// Decodes a response's topic array, each entry with `kafka-protocol`, and
/// leaves `body` after it. What follows (the top-level tagged fields) is
/// left unread on purpose: brokers send some at versions that do not define
/// them (tansu names its endpoints in every flexible Fetch answer), and a
/// merged answer drops them anyway.
pub(crate) fn topic_array<T: Decodable>(
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

pub(crate) fn split_as<R: PartitionedApi>(
    frame: &Bytes,
    header: &RequestHeader,
    plan: &Parts<'_>,
) -> Result<Vec<Option<Bytes>>, CodecError> {
    let version = header.api_version;
    let body_at = Frame::PREFIX + header.body_offset;
    let client_header = frame
        .get(Frame::PREFIX..body_at)
        .ok_or_else(|| CodecError::encode(R::API, version, "header runs past the frame"))?;
    let mut body = frame.slice(body_at..);
    let mut request = R::decode(&mut body, version).map_err(|e| {
        CodecError::encode(
            R::API,
            version,
            format!("request passed its view but not the full decode: {e}"),
        )
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
                .map_err(|e| CodecError::encode(R::API, version, e.to_string()))?;
            let size = i32::try_from(buf.len() - Frame::PREFIX).map_err(|_| {
                CodecError::encode(R::API, version, "part larger than a frame can be")
            })?;
            buf[..Frame::PREFIX].copy_from_slice(&size.to_be_bytes());
            Ok(Some(buf.freeze()))
        })
        .collect()
}

/// Each partition's planned shift as the route table `routes` has it now
/// (see [`crate::domain::stitch::Segments::now`]): for a Fetch planned on
/// an older table, cut where its stretch now ends. `clusters`: where each
/// partition went, in the shape of `shifts`.
pub fn shifts_now(
    routes: &RouteTable,
    order: &TopicPartitions,
    clusters: &[Vec<Option<ClusterIdx>>],
    shifts: &mut [Vec<Shift>],
) {
    for (((topic, indices), clusters), shifts) in order.0.iter().zip(clusters).zip(shifts) {
        for ((&index, cluster), shift) in indices.iter().zip(clusters).zip(shifts.iter_mut()) {
            let now = cluster.and_then(|c| routes.stitches().get(topic, index)?.now(c, *shift));
            if let Some(now) = now {
                *shift = now;
            }
        }
    }
}

pub(crate) fn merge_as<R: PartitionedApi>(
    merge: &Merge<'_>,
    parts: &[Frame],
) -> Result<Bytes, CodecError> {
    let Merge {
        version,
        correlation_id,
        order,
        shifts,
        ..
    } = *merge;
    if let [part] = parts {
        if let Some(answer) = R::answer_in_order(*merge, part)? {
            return Ok(answer);
        }
    }
    let mut merged = R::Response::default();
    // Every answered partition, by topic and index; a queue, in case a
    // request names a partition twice.
    let mut answers: HashMap<(String, i32), VecDeque<_>> = HashMap::new();
    let mut shells: HashMap<String, R::Topic> = HashMap::new();
    for frame in parts {
        let mut part = R::decode_answer(version, frame)?;
        let throttle = *R::throttle_time_ms(&mut part);
        let worst = R::throttle_time_ms(&mut merged);
        *worst = (*worst).max(throttle);
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
    let (offsets, holds) = merge.fetched.unzip();
    let mut offsets = offsets.map(|o| o.iter());
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
            let from = offsets.as_mut().and_then(Iterator::next);
            if let (Some(from), Some(holds)) = (from, holds) {
                partition.hold_at_gap(name, shift.request(*from), holds);
            }
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
    use crate::plan::partitioned::Family;
    use crate::wire::codec::decode_response;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{
        fetch_response, list_offsets_response, offset_for_leader_epoch_response, produce_response,
        FetchRequest, FetchResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    fn split(
        api: ApiKey,
        frame: &Bytes,
        header: &RequestHeader,
        parts: &Parts<'_>,
    ) -> Result<Vec<Option<Bytes>>, CodecError> {
        Family::of_api(api).unwrap().split(frame, header, parts)
    }

    fn merge(
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        order: &TopicPartitions,
        shifts: &[Vec<Shift>],
        parts: &[Frame],
    ) -> Result<Bytes, CodecError> {
        let merge = Merge {
            version,
            correlation_id,
            order,
            shifts,
            fetched: None,
        };
        Family::of_api(api).unwrap().merge(&merge, parts)
    }

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
