//! Fetch (v4..=12): routed by the partitions it reads, each to the stretch
//! of the stitched log its fetch offset falls in; parts run outside any
//! fetch session, and answers come back with their offsets (and those of
//! the records they carry) in the client's log.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};

use super::fetch_answer::{self, GapHolds, Treat};
use super::{lists, topic_answer, Body, Merge, PartitionAnswer, PartitionedApi, Positions};
use crate::domain::ids::ClusterIdx;
use crate::domain::routes::RouteTable;
use crate::domain::stitch::{self, OffsetField, Shift};
use crate::plan::split::topic_array;
use crate::wire::codec::{response_body, CodecError};
use crate::wire::requests::{self, TopicPartitions};
use crate::wire::{Frame, Reader, RequestHeader, WireError};

impl PartitionedApi for FetchRequest {
    const API: ApiKey = ApiKey::Fetch;
    // v13 names topics by id.
    const NAMED_UP_TO: i16 = 12;
    type Response = FetchResponse;
    type Topic = FetchableTopicResponse;

    fn view(header: &RequestHeader, body: &[u8]) -> Result<Body, WireError> {
        let (topics, offsets) = requests::fetch_positions(header, body)?;
        Ok(Body::Read {
            topics,
            positions: Positions::Offsets(offsets),
        })
    }

    lists!(topics.partitions => responses);

    fn shift(&mut self, shifts: &[Vec<Shift>]) {
        for (topic, shifts) in self.topics.iter_mut().zip(shifts) {
            for (partition, shift) in topic.partitions.iter_mut().zip(shifts) {
                partition.fetch_offset = shift.request(partition.fetch_offset);
                partition.log_start_offset = shift.request(partition.log_start_offset);
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

    fn decode_answer(version: i16, frame: &Frame) -> Result<FetchResponse, CodecError> {
        let mut body = response_body(Self::API, version, frame)?;
        let mut r = Reader::new(body.chunk(), "Fetch response");
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
        if merged.error_code == 0 {
            merged.error_code = part.error_code;
        }
        merged.session_id = 0;
        merged.node_endpoints.clear();
    }

    /// A stitched Fetch sent whole to one broker: its answer keeps the
    /// fast path but for the offsets patched in its bytes (and the records
    /// past a gap that may still fill left out). The part ran outside any
    /// fetch session, so its session id is 0 already.
    fn answer_in_order(merge: Merge<'_>, part: &Frame) -> Result<Option<Bytes>, CodecError> {
        let (offsets, holds) = merge.fetched.unzip();
        let mut expected = in_order(merge.order, merge.shifts, offsets);
        let mut in_order = true;
        let mut treat_of = |topic: &str, index: i32| match expected.next() {
            Some((t, i, shift, fetched)) if t == topic && i == index => Treat {
                shift: Some(shift).filter(|s| !s.is_none()),
                fetched_from: fetched.map(|v| shift.request(v)),
            },
            _ => {
                in_order = false;
                Treat::default()
            }
        };
        let (version, correlation_id) = (merge.version, merge.correlation_id);
        let patched =
            fetch_answer::patched_answer(version, correlation_id, part, &mut treat_of, holds)?;
        if !in_order || expected.next().is_some() {
            return Ok(None);
        }
        Ok(Some(patched.unwrap_or_else(|| part.0.clone())))
    }
}

/// The partitions of `order`, in order, each with its shift and, when
/// `offsets` are there, its fetch offset.
fn in_order<'a>(
    order: &'a TopicPartitions,
    shifts: &'a [Vec<Shift>],
    offsets: Option<&'a [i64]>,
) -> impl Iterator<Item = (&'a str, i32, Shift, Option<i64>)> + 'a {
    let mut offsets = offsets.map(|o| o.iter());
    order
        .0
        .iter()
        .zip(shifts)
        .flat_map(|((topic, indices), shifts)| {
            indices
                .iter()
                .zip(shifts)
                .map(move |(index, shift)| (topic.as_str(), *index, *shift))
        })
        .map(move |(topic, index, shift)| {
            let fetched = offsets.as_mut().and_then(|o| o.next().copied());
            (topic, index, shift, fetched)
        })
}

topic_answer!(
    FetchableTopicResponse,
    topic,
    partitions,
    PartitionData,
    partition_index
);

impl PartitionAnswer for PartitionData {
    fn refused(index: i32, error_code: i16) -> Self {
        PartitionData::default()
            .with_partition_index(index)
            .with_error_code(error_code)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_preferred_read_replica(BrokerId(-1))
            .with_records(None)
    }

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

    fn hold_at_gap(&mut self, topic: &str, from: i64, holds: &GapHolds) {
        let Some(records) = &self.records else {
            return;
        };
        let (len, at, gap) = stitch::gapless_prefix(records, from);
        if gap.is_some_and(|gap| holds.hold(topic, self.partition_index, at, gap)) {
            self.records = Some(records.slice(..len));
        }
    }
}

/// A Fetch answer from a broker of `cluster`, planned with no offset to
/// shift (`fetched`: the request's partitions and fetch offsets), as the
/// client gets it: the records of a partition past a gap in its offsets
/// that may still fill are left out ([`GapHolds`]); and when the route
/// table changed while the Fetch waited (`routes`, the one now), a
/// partition whose Produce moved meanwhile is cut where its first stretch
/// now ends, so that records written there since (behind the proxy) never
/// reach the client at offsets of the new stretch. `None` when nothing
/// changes.
///
/// The answer's bytes are patched where its offsets sit
/// ([`fetch_answer::patched_answer`]), not decoded and encoded anew.
pub fn answered(
    routes: Option<(&RouteTable, ClusterIdx)>,
    (version, correlation_id): (i16, i32),
    fetched: (&TopicPartitions, &[i64]),
    holds: &GapHolds,
    frame: &Frame,
) -> Result<Option<Bytes>, CodecError> {
    let stitches = routes.map(|(routes, cluster)| (routes.stitches(), cluster));
    let mut expected = fetched
        .0
         .0
        .iter()
        .flat_map(|(topic, indices)| indices.iter().map(move |index| (topic.as_str(), *index)));
    let mut offsets = fetched.1.iter();
    let mut treat_of = |topic: &str, index: i32| {
        let shift = stitches.as_ref().and_then(|(stitches, cluster)| {
            stitches
                .get(topic, index)
                .and_then(|s| s.now(*cluster, Shift::NONE))
        });
        // Answered in the order asked, as brokers do: each partition's
        // fetch offset is the next; past a partition out of order, none.
        let fetched_from = match expected.next() {
            Some((t, i)) if t == topic && i == index => offsets.next().copied(),
            _ => {
                offsets = [].iter();
                None
            }
        };
        Treat {
            shift,
            fetched_from,
        }
    };
    fetch_answer::patched_answer(version, correlation_id, frame, &mut treat_of, Some(holds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RoutesConfig;
    use crate::domain::stitch::UpstreamOffset;
    use crate::plan::partitioned::fetch_answer::GAP_HOLD;
    use crate::wire::codec::{decode_response, response_frame};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    const OLD: ClusterIdx = ClusterIdx(0);
    const NEW: ClusterIdx = ClusterIdx(1);

    /// A stand-in batch: base offset, length, then `len` bytes of body.
    fn batch(base: i64, len: usize) -> Vec<u8> {
        let mut b = base.to_be_bytes().to_vec();
        b.extend_from_slice(&(len as i32).to_be_bytes());
        b.extend(std::iter::repeat_n(0xab, len));
        b
    }

    /// 'old' answers partitions 0 and 1 of "events" from 98, its high
    /// watermark 105 on both: two records of its own before 100, then
    /// records written there later.
    fn answer() -> Frame {
        answer_of([batch(98, 20), batch(100, 20), batch(103, 20)].concat())
    }

    /// A v2 batch header of one record at `base`, its newest timestamp
    /// `stamp` (ms since the Unix epoch), padded to 52 bytes.
    fn stamped(base: i64, stamp: i64) -> Vec<u8> {
        let mut b = base.to_be_bytes().to_vec();
        b.extend_from_slice(&40i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 6]); // crc, attributes
        b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
        b.extend_from_slice(&stamp.to_be_bytes()); // base timestamp
        b.extend_from_slice(&stamp.to_be_bytes()); // max timestamp
        b.resize(52, 0xab);
        b
    }

    /// [`answer`]'s batches written just now: 98, then 100 and 103 past
    /// gaps.
    fn just_written() -> Vec<Vec<u8>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        [98, 100, 103].map(|base| stamped(base, now)).to_vec()
    }

    fn answer_of(records: Vec<u8>) -> Frame {
        let records = Bytes::from(records);
        let partition = |index| {
            PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(105)
                .with_last_stable_offset(105)
                .with_log_start_offset(0)
                .with_records(Some(records.clone()))
        };
        let topic = FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("events")))
            .with_partitions(vec![partition(0), partition(1)]);
        let response = FetchResponse::default().with_responses(vec![topic]);
        Frame(response_frame(ApiKey::Fetch, 12, 7, &response).unwrap())
    }

    /// The answer as the client gets it from `cluster` with the route
    /// table `now` (changed since the Fetch was planned), no gap held.
    fn restitched(now: &RouteTable, cluster: ClusterIdx, frame: &Frame) -> Option<Bytes> {
        let asked = order(&[0, 1]);
        let unheld = (&asked, &[][..]);
        answered(
            Some((now, cluster)),
            (12, 7),
            unheld,
            &GapHolds::default(),
            frame,
        )
        .unwrap()
    }

    fn order(partitions: &[i32]) -> TopicPartitions {
        TopicPartitions(vec![("events".to_owned(), partitions.to_vec())])
    }

    fn in_order_answer(
        order: &TopicPartitions,
        shifts: &[Vec<Shift>],
        frame: &Frame,
    ) -> Option<Bytes> {
        let asked = Merge {
            version: 12,
            correlation_id: 7,
            order,
            shifts,
            fetched: None,
        };
        FetchRequest::answer_in_order(asked, frame).unwrap()
    }

    fn routes() -> RouteTable {
        RouteTable::new(&RoutesConfig {
            default: OLD,
            topics: Vec::new(),
            groups: Vec::new(),
            transactions: Vec::new(),
        })
    }

    #[test]
    fn an_answer_planned_before_a_move_is_cut_where_the_old_stretch_ends() {
        let frame = answer();
        // Nothing stitched: the answer passes as it came.
        assert_eq!(restitched(&routes(), OLD, &frame), None);
        // Partition 0 moved to 'new' at 100 while the Fetch waited.
        let moved = routes().with_stitch(
            "events",
            OLD,
            NEW,
            1,
            [(0, UpstreamOffset(100), UpstreamOffset(0))],
        );
        let bytes = restitched(&moved, OLD, &frame).unwrap();
        let got: FetchResponse = decode_response(ApiKey::Fetch, 12, &Frame(bytes)).unwrap();
        let (cut, kept) = (
            &got.responses[0].partitions[0],
            &got.responses[0].partitions[1],
        );
        assert_eq!(cut.high_watermark, 100);
        assert_eq!(cut.last_stable_offset, 100);
        assert_eq!(cut.records.as_deref(), Some(&batch(98, 20)[..]));
        assert_eq!(kept.high_watermark, 105, "partition 1 did not move");
        assert_eq!(kept.records.as_ref().map(|r| r.len()), Some(96));
        // An answer from another cluster than the moved stretch's: as it came.
        assert_eq!(restitched(&moved, NEW, &frame), None);
    }

    #[test]
    fn a_stitched_fetch_sent_whole_to_one_broker_is_patched_in_order_or_merged() {
        let frame = answer();
        let shift = Shift {
            delta: 1_000,
            ..Shift::NONE
        };
        let shifts = vec![vec![shift, Shift::NONE]];
        let got = in_order_answer(&order(&[0, 1]), &shifts, &frame).expect("answered in order");
        let mut reference = FetchRequest::decode_answer(12, &frame).unwrap();
        reference.responses[0].partitions[0].shift(shift);
        let reference = response_frame(ApiKey::Fetch, 12, 7, &reference).unwrap();
        assert_eq!(got, reference, "byte for byte what decoding gives");
        // Nothing to shift: the answer as it came.
        let none = vec![vec![Shift::NONE; 2]];
        let same = in_order_answer(&order(&[0, 1]), &none, &frame);
        assert_eq!(same, Some(frame.0.clone()));
        // Answered in another order than asked, short of a partition or
        // past the last: merged by decoding, which says what is missing.
        for asked in [&[1, 0][..], &[0], &[0, 1, 2]] {
            let shifts = vec![vec![shift; asked.len()]];
            let got = in_order_answer(&order(asked), &shifts, &frame);
            assert_eq!(got, None, "{asked:?}");
        }
    }

    #[test]
    fn records_past_a_gap_that_may_still_fill_are_held_back() {
        let batches = just_written();
        let frame = answer_of(batches.concat());
        let asked = order(&[0, 1]);
        let gaps = GapHolds::default();
        let from = |offsets: &[i64]| {
            let got = answered(None, (12, 7), (&asked, offsets), &gaps, &frame).unwrap();
            let got: FetchResponse = decode_response(ApiKey::Fetch, 12, &Frame(got?)).ok()?;
            let records = |p: usize| got.responses[0].partitions[p].records.clone().unwrap();
            Some((
                records(0),
                records(1),
                got.responses[0].partitions[0].high_watermark,
            ))
        };
        let (first, second, hw) = from(&[98, 100]).expect("held back");
        assert_eq!(first, batches[0], "partition 0: up to the gap at 99");
        let to_101 = batches[..2].concat();
        assert_eq!(
            second, to_101,
            "partition 1, from 100: up to the gap at 101"
        );
        assert_eq!(hw, 105, "the high watermark as it came");
        // Fetched from past every gap: nothing held.
        assert_eq!(from(&[103, 103]), None);
        // Without the fetch offsets (answered out of order): as it came.
        let unknown = answered(None, (12, 7), (&order(&[1, 0]), &[98, 98]), &gaps, &frame);
        assert_eq!(unknown.unwrap(), None);
        // Records written long ago past a gap (compaction kept them, and
        // removed the ones before): they pass at once.
        let old = answer_of(
            [98, 100, 103]
                .map(|b| stamped(b, 1_700_000_000_000))
                .concat(),
        );
        let got = answered(None, (12, 7), (&asked, &[98, 100]), &gaps, &old);
        assert_eq!(got.unwrap(), None);
    }

    #[test]
    fn a_merged_answer_holds_back_records_past_a_gap_too() {
        // Asked in another order than answered: merged by decoding.
        let batches = just_written();
        let (frame, asked) = (answer_of(batches.concat()), order(&[1, 0]));
        let (shifts, gaps) = (vec![vec![Shift::NONE; 2]], GapHolds::default());
        let merge = Merge {
            version: 12,
            correlation_id: 7,
            order: &asked,
            shifts: &shifts,
            fetched: Some((&[100, 98], &gaps)),
        };
        let family = super::super::Family::of_api(ApiKey::Fetch).unwrap();
        let merged = family.merge(&merge, std::slice::from_ref(&frame)).unwrap();
        let got: FetchResponse = decode_response(ApiKey::Fetch, 12, &Frame(merged)).unwrap();
        let records = |p: usize| got.responses[0].partitions[p].records.clone().unwrap();
        assert_eq!(records(0), batches[..2].concat(), "partition 1");
        assert_eq!(records(1), batches[0], "partition 0");
    }

    #[test]
    fn a_gap_that_stands_is_taken_as_gone() {
        let gaps = GapHolds::default();
        let t0 = std::time::Instant::now();
        assert!(gaps.hold_at("events", 0, 99, t0), "first met");
        assert!(
            gaps.hold_at("events", 0, 99, t0 + GAP_HOLD / 2),
            "still young"
        );
        assert!(
            gaps.hold_at("events", 1, 99, t0 + GAP_HOLD / 2),
            "another partition"
        );
        assert!(
            !gaps.hold_at("events", 0, 99, t0 + GAP_HOLD),
            "stood too long"
        );
        assert!(
            gaps.hold_at("events", 0, 99, t0 + GAP_HOLD),
            "met again: anew"
        );
        assert!(
            gaps.hold_at("events", 1, 150, t0 + GAP_HOLD),
            "a later gap, anew"
        );
    }
}
