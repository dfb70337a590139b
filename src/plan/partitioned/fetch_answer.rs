//! A Fetch answer's offsets moved into the client's log by patching its
//! bytes, not by decoding and encoding it: the bounded walk
//! ([`crate::wire::bounded`]) finds the offset fields of the partitions to
//! shift and their record batches, and a copy of the frame gets the new
//! values where the old ones were. Records, the bulk of an answer, are
//! copied once (twice when a segment's end cuts some off) and never read
//! past their batch headers.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use crate::domain::stitch::{self, OffsetField, Shift, UpstreamOffset};
use crate::wire::bounded::{self, Span, Visit};
use crate::wire::codec::{body_start, CodecError};
use crate::wire::layout::Layout;
use crate::wire::response_layouts::{
    FETCH_RESPONSE__ABORTED_TRANSACTION as ABORTED,
    FETCH_RESPONSE__FETCHABLE_TOPIC_RESPONSE as TOPIC, FETCH_RESPONSE__PARTITION_DATA as PARTITION,
};
use crate::wire::{Frame, WireError};

/// How each partition of an answer is patched, by topic name and
/// partition index. Topics named by id (v13+) have the empty name.
pub type TreatOf<'a> = &'a mut dyn FnMut(&str, i32) -> Treat;

/// How one partition of a Fetch answer is patched.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Treat {
    /// Its offsets moved into the client's log (`None`: as they came).
    pub shift: Option<Shift>,
    /// The upstream offset it was fetched from, when its records are
    /// checked for a gap that may still fill ([`GapHolds`]).
    pub fetched_from: Option<i64>,
}

/// How long records past a gap in a partition's offsets are held back.
pub const GAP_HOLD: Duration = Duration::from_millis(500);
/// How recent the records after a gap must be (by their batch's newest
/// timestamp) for the gap to be one that may still fill.
pub const GAP_YOUNG: Duration = Duration::from_secs(30);
/// How long an answer that held records back waits before it goes.
pub const GAP_PACE: Duration = Duration::from_millis(10);
/// How many gaps one connection keeps track of; past that, records after
/// a new gap pass at once.
const MAX_GAPS: usize = 1_024;

/// The gaps in partitions' offsets one client connection's Fetch answers
/// met, and when each was first met.
///
/// A broker may answer with records past offsets it has assigned and not
/// yet stored (tansu stores a batch after it moves the partition's end),
/// and a client given the later records skips the earlier ones for good.
/// So the records past such a gap are left out of the answer (the client
/// fetches there again) until the gap fills, or until it has stood for
/// [`GAP_HOLD`]: then it is taken for offsets that are gone (compacted
/// away, or left out by the broker) and the records pass.
#[derive(Debug, Default)]
pub struct GapHolds {
    seen: Mutex<HashMap<(String, i32), (i64, Instant)>>,
    /// Whether records were held back since [`GapHolds::take_held`] last
    /// looked.
    held: AtomicBool,
}

impl GapHolds {
    /// Whether the records of `topic`/`partition` past `gap`, which starts
    /// at offset `at`, are held back now. Only records written lately can
    /// be waiting for earlier ones: past a gap whose next batch is older
    /// than [`GAP_YOUNG`] by its timestamp (the records a compaction keeps
    /// past what it removed, say) they pass at once.
    pub fn hold(&self, topic: &str, partition: i32, at: i64, gap: stitch::Gap) -> bool {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let young_ms = GAP_YOUNG.as_millis() as i64;
        if gap.max_timestamp.is_none_or(|t| t < now_ms - young_ms) {
            return false;
        }
        let held = self.hold_at(topic, partition, at, Instant::now());
        if held {
            self.held.store(true, Ordering::Relaxed);
        }
        held
    }

    /// Whether any records were held back since the last look: then the
    /// answer is paced by [`GAP_PACE`], or the client, told there is more,
    /// would fetch again at once, and again, until the gap fills.
    pub fn take_held(&self) -> bool {
        self.held.swap(false, Ordering::Relaxed)
    }

    /// [`GapHolds::hold`], at `now`.
    pub(super) fn hold_at(&self, topic: &str, partition: i32, at: i64, now: Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_GAPS {
            seen.retain(|_, (_, since)| now.duration_since(*since) < GAP_HOLD);
        }
        let key = (topic.to_owned(), partition);
        match seen.get(&key) {
            Some((gap, since)) if *gap == at => {
                if now.duration_since(*since) < GAP_HOLD {
                    return true;
                }
                seen.remove(&key);
                tracing::info!(
                    topic,
                    partition,
                    offset = at,
                    "offsets missing from a partition for {GAP_HOLD:?}: taken as gone, the records after them pass"
                );
                false
            }
            _ if seen.len() >= MAX_GAPS => false,
            _ => {
                seen.insert(key, (at, now));
                true
            }
        }
    }
}

/// The Fetch answer `frame` (at `version`) under `correlation_id`, each
/// partition `treat_of` shifts shifted as [`super::PartitionAnswer::shift`]
/// shifts a decoded one: high watermark, last stable offset, log start
/// offset, aborted transactions' first offsets, and each record batch's
/// base offset, the batches past the end of a segment that ended left out;
/// with `holds`, the records past a gap that may still fill left out too.
/// `None` when nothing changes.
///
/// The answer is walked, count by count, as a decoder would read it, so a
/// malformed one is refused with an error before any byte is copied, and
/// nothing is allocated beyond one copy of the frame and one patch per
/// field the frame holds.
pub fn patched_answer(
    version: i16,
    correlation_id: i32,
    frame: &Frame,
    treat_of: TreatOf<'_>,
    holds: Option<&GapHolds>,
) -> Result<Option<Bytes>, CodecError> {
    let body_at = body_start(ApiKey::Fetch, version, frame)?;
    let mut found = Found {
        body: &frame.0[body_at..],
        treat_of,
        holds,
        topic: "",
        index: 0,
        treat: Treat::default(),
        stitched: false,
        patches: Vec::new(),
    };
    bounded::checked_walk(ApiKey::Fetch, version, found.body, &mut found)?;
    if !found.stitched {
        return Ok(None);
    }
    let compact = version >= 12;
    patched(&frame.0, body_at, correlation_id, compact, &found.patches)
        .map(Some)
        .map_err(|message| CodecError::encode(ApiKey::Fetch, version, message))
}

/// One change to an answer, at a place in its body.
#[derive(Debug)]
enum Patch {
    /// The offset field at `at` holds `value`.
    Offset { at: usize, value: i64 },
    /// A partition's records (at `value`, their length prefix from
    /// `prefix`), shifted by `shift`.
    Records {
        prefix: usize,
        value: Range<usize>,
        shift: Shift,
    },
}

/// What the walk of an answer finds to patch.
struct Found<'a, 'f> {
    body: &'a [u8],
    treat_of: TreatOf<'f>,
    holds: Option<&'f GapHolds>,
    /// The topic walked now.
    topic: &'a str,
    /// The partition walked now, and how it is patched.
    index: i32,
    treat: Treat,
    /// Whether any partition changes.
    stitched: bool,
    patches: Vec<Patch>,
}

impl Found<'_, '_> {
    fn i64_at(&self, span: &Span) -> Result<i64, WireError> {
        self.fixed(span).map(i64::from_be_bytes)
    }

    fn fixed<const N: usize>(&self, span: &Span) -> Result<[u8; N], WireError> {
        span.value
            .clone()
            .and_then(|v| self.body.get(v))
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| WireError {
                what: "Fetch response",
                detail: format!("no {N}-byte field at offset {}", span.start),
            })
    }

    /// The partition's shift cut where a gap in its records' offsets
    /// begins, when what follows the gap is held back ([`GapHolds`]).
    fn held_at_gap(&mut self, records: Range<usize>) -> Option<Shift> {
        let (from, holds) = (self.treat.fetched_from?, self.holds?);
        let records = self.body.get(records)?;
        let (_, at, gap) = stitch::gapless_prefix(records, from);
        let gap = gap?;
        if !holds.hold(self.topic, self.index, at, gap) {
            return None;
        }
        let shift = self.treat.shift.unwrap_or(Shift::NONE);
        let end = shift.end.map_or(gap.to, |e| e.0.min(gap.to));
        self.stitched = true;
        Some(Shift {
            end: Some(UpstreamOffset(end)),
            ..shift
        })
    }

    fn offset(&mut self, span: &Span, field: OffsetField, shift: Shift) -> Result<(), WireError> {
        let value = shift.answer(field, self.i64_at(span)?);
        self.patches.push(Patch::Offset {
            at: span.start,
            value,
        });
        Ok(())
    }
}

impl Visit for Found<'_, '_> {
    fn enter(&mut self, layout: &'static Layout) {
        if std::ptr::eq(layout, &TOPIC) {
            self.topic = "";
        } else if std::ptr::eq(layout, &PARTITION) {
            self.treat = Treat::default();
        }
    }

    fn field(
        &mut self,
        layout: &'static Layout,
        name: &'static str,
        span: Span,
    ) -> Result<(), WireError> {
        if std::ptr::eq(layout, &TOPIC) && name == "topic" {
            let raw = span
                .value
                .and_then(|v| self.body.get(v))
                .unwrap_or_default();
            self.topic = std::str::from_utf8(raw).map_err(|_| WireError {
                what: "Fetch response",
                detail: format!("topic name at offset {} is not UTF-8", span.start),
            })?;
            return Ok(());
        }
        let in_partition = std::ptr::eq(layout, &PARTITION);
        if in_partition && name == "partition_index" {
            self.index = i32::from_be_bytes(self.fixed(&span)?);
            self.treat = (self.treat_of)(self.topic, self.index);
            self.stitched |= self.treat.shift.is_some();
            return Ok(());
        }
        if in_partition && name == "records" {
            // Null records stay null.
            if let Some(value) = span.value {
                let shift = self.held_at_gap(value.clone()).or(self.treat.shift);
                if let Some(shift) = shift {
                    self.patches.push(Patch::Records {
                        prefix: span.start,
                        value,
                        shift,
                    });
                }
            }
            return Ok(());
        }
        let Some(shift) = self.treat.shift else {
            return Ok(());
        };
        let field = match name {
            "high_watermark" if in_partition => OffsetField::HighWatermark,
            "last_stable_offset" if in_partition => OffsetField::LastStable,
            "log_start_offset" if in_partition => OffsetField::LogStart,
            "first_offset" if std::ptr::eq(layout, &ABORTED) => OffsetField::Offset,
            _ => return Ok(()),
        };
        self.offset(&span, field, shift)
    }
}

/// Records a segment's end cuts short: where they sit in the patched
/// frame and how many of their bytes stay.
struct Cut {
    prefix: usize,
    value: Range<usize>,
    kept: usize,
}

/// A copy of `frame` (its body from `body_at`) with `patches` applied, in
/// place, under `correlation_id`.
fn patched(
    frame: &[u8],
    body_at: usize,
    correlation_id: i32,
    compact: bool,
    patches: &[Patch],
) -> Result<Bytes, String> {
    let mut out = BytesMut::from(frame);
    out[Frame::PREFIX..Frame::PREFIX + 4].copy_from_slice(&correlation_id.to_be_bytes());
    let mut cuts = Vec::new();
    for patch in patches {
        match patch {
            Patch::Offset { at, value } => {
                let at = body_at + at;
                out[at..at + 8].copy_from_slice(&value.to_be_bytes());
            }
            Patch::Records {
                prefix,
                value,
                shift,
            } => {
                let value = body_at + value.start..body_at + value.end;
                let kept = stitch::shift_records_in_place(&mut out[value.clone()], *shift);
                if kept < value.len() {
                    cuts.push(Cut {
                        prefix: body_at + prefix,
                        value,
                        kept,
                    });
                }
            }
        }
    }
    if cuts.is_empty() {
        return Ok(out.freeze());
    }
    spliced(&out, &cuts, compact)
}

/// The patched answer without the records its cuts leave out.
///
/// The one patch that changes the answer's length: a partition whose
/// segment ended while the Fetch waited loses the batches past that end
/// (records written to its old cluster behind the proxy), so its records
/// field is shorter, and so is its length prefix when it is a varint
/// (flexible versions); the frame's size follows. Every other patch
/// rewrites a fixed-width field where it sits.
fn spliced(patched: &[u8], cuts: &[Cut], compact: bool) -> Result<Bytes, String> {
    let mut out = BytesMut::with_capacity(patched.len());
    let mut from = 0;
    for cut in cuts {
        out.extend_from_slice(&patched[from..cut.prefix]);
        if compact {
            let length = u32::try_from(cut.kept + 1).map_err(|e| e.to_string())?;
            put_unsigned_varint(&mut out, length);
        } else {
            out.put_i32(i32::try_from(cut.kept).map_err(|e| e.to_string())?);
        }
        out.extend_from_slice(&patched[cut.value.start..cut.value.start + cut.kept]);
        from = cut.value.end;
    }
    out.extend_from_slice(&patched[from..]);
    let size = i32::try_from(out.len() - Frame::PREFIX).map_err(|e| e.to_string())?;
    out[..Frame::PREFIX].copy_from_slice(&size.to_be_bytes());
    Ok(out.freeze())
}

fn put_unsigned_varint(out: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::stitch::{UpstreamOffset, VirtualOffset};
    use crate::plan::partitioned::{PartitionAnswer, PartitionedApi, TopicAnswer};
    use crate::wire::codec::{decode_response, response_frame};
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::ResponseError;

    /// [`patched_answer`] with shifts alone: which partitions `shift_of`
    /// names, and how; `None` leaves a partition as it came.
    fn shifted(v: i16, id: i32, frame: &Frame, shift_of: ShiftOf<'_>) -> Answer {
        let mut treat_of = |topic: &str, index: i32| Treat {
            shift: shift_of(topic, index),
            fetched_from: None,
        };
        patched_answer(v, id, frame, &mut treat_of, None)
    }

    type Answer = Result<Option<Bytes>, CodecError>;

    /// Which partitions of an answer to shift, and how: by topic name and
    /// partition index; `None` leaves a partition as it came.
    type ShiftOf<'a> = &'a mut dyn FnMut(&str, i32) -> Option<Shift>;

    /// The proxy's Fetch versions, and past them, where topics go by id.
    const VERSIONS: [i16; 9] = [4, 5, 7, 8, 11, 12, 13, 15, 16];

    /// The answer as decoding, shifting and encoding it gives it: what the
    /// patch must match.
    fn decoded(
        version: i16,
        correlation_id: i32,
        frame: &Frame,
        shift_of: ShiftOf<'_>,
    ) -> Result<Option<Bytes>, CodecError> {
        let mut answer = FetchRequest::decode_answer(version, frame)?;
        let mut changed = false;
        for topic in &mut answer.responses {
            let name = topic.name().to_owned();
            for partition in topic.partitions() {
                if let Some(shift) = shift_of(&name, partition.partition_index) {
                    partition.shift(shift);
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(None);
        }
        response_frame(ApiKey::Fetch, version, correlation_id, &answer).map(Some)
    }

    /// A stand-in batch: base offset, length, then `len` bytes of body.
    fn batch(base: i64, len: usize) -> Vec<u8> {
        let mut b = base.to_be_bytes().to_vec();
        b.extend_from_slice(&(len as i32).to_be_bytes());
        b.extend(std::iter::repeat_n(0xab, len));
        b
    }

    fn aborted(producer_id: i64, first_offset: i64) -> AbortedTransaction {
        AbortedTransaction::default()
            .with_producer_id(ProducerId(producer_id))
            .with_first_offset(first_offset)
    }

    fn partition(index: i32, records: Option<Vec<u8>>) -> PartitionData {
        PartitionData::default()
            .with_partition_index(index)
            .with_high_watermark(105)
            .with_last_stable_offset(104)
            .with_log_start_offset(7)
            .with_records(records.map(Bytes::from))
    }

    /// `answer` with what `version` does not carry left at its default.
    fn at_version(mut answer: FetchResponse, version: i16) -> FetchResponse {
        for topic in &mut answer.responses {
            if version >= 13 {
                topic.topic = TopicName::default();
            } else {
                topic.topic_id = uuid::Uuid::nil();
            }
            for partition in &mut topic.partitions {
                if version < 5 {
                    partition.log_start_offset = -1;
                }
                if version < 11 {
                    partition.preferred_read_replica = (-1).into();
                }
            }
        }
        answer
    }

    /// Two topics: "events" with a partition cut where its stretch ends
    /// (more than 127 bytes of records, fewer after the cut, so a compact
    /// length takes a byte less), one left alone, one answered with an
    /// error, one with no records, one ending in a partial batch; "audit"
    /// with one left alone and one ending in a fragment of a batch header.
    fn answer(version: i16) -> Frame {
        let three = [batch(98, 50), batch(100, 100), batch(103, 100)].concat();
        let partitions = vec![
            partition(0, Some(three.clone()))
                .with_aborted_transactions(Some(vec![aborted(5, 99), aborted(6, 101)])),
            partition(1, Some(three)).with_aborted_transactions(Some(vec![aborted(5, 99)])),
            PartitionData::default()
                .with_partition_index(2)
                .with_error_code(ResponseError::NotLeaderOrFollower.code())
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_records(None),
            partition(3, Some(Vec::new())).with_aborted_transactions(Some(Vec::new())),
            partition(
                4,
                Some([batch(10, 20), batch(30, 100)[..40].to_vec()].concat()),
            )
            .with_preferred_read_replica(2.into()),
        ];
        let events = FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("events")))
            .with_topic_id(uuid::Uuid::from_u128(1))
            .with_partitions(partitions);
        let audit = FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("audit")))
            .with_topic_id(uuid::Uuid::from_u128(2))
            .with_partitions(vec![
                partition(0, Some(batch(0, 30))),
                partition(
                    1,
                    Some([batch(40, 30), batch(50, 30)[..10].to_vec()].concat()),
                ),
            ]);
        let response = FetchResponse::default()
            .with_throttle_time_ms(3)
            .with_session_id(0)
            .with_responses(vec![events, audit]);
        let response = at_version(response, version);
        Frame(response_frame(ApiKey::Fetch, version, 7, &response).unwrap())
    }

    /// Shifts for "events" 0 (cut at 100), 2, 3 and 4, and "audit" 1;
    /// topics named by id (v13+) have the empty name, and its partition 1
    /// shifts too.
    fn shifts(topic: &str, partition: i32) -> Option<Shift> {
        let delta = |delta| Shift {
            delta,
            ..Shift::NONE
        };
        match (topic, partition) {
            ("events", 0) => Some(Shift {
                end: Some(UpstreamOffset(100)),
                ..Shift::NONE
            }),
            ("events", 2 | 3) => Some(delta(40)),
            ("events", 4) => Some(delta(1_000)),
            ("audit", 1) => Some(Shift {
                oldest: Some(VirtualOffset(0)),
                ..delta(-10)
            }),
            ("", 1) => Some(delta(500)),
            _ => None,
        }
    }

    #[test]
    fn the_patch_is_byte_for_byte_what_decoding_and_encoding_give() {
        for version in VERSIONS {
            let frame = answer(version);
            let patched = shifted(version, 7, &frame, &mut shifts).unwrap();
            let reference = decoded(version, 7, &frame, &mut shifts).unwrap();
            assert!(patched.is_some(), "v{version}");
            assert_eq!(patched, reference, "v{version}");
        }
    }

    #[test]
    fn stitched_partitions_read_as_the_stitched_log() {
        let frame = answer(12);
        let bytes = shifted(12, 9, &frame, &mut shifts).unwrap().unwrap();
        assert!(bytes.len() < frame.0.len(), "batches past the end are cut");
        let got: FetchResponse = decode_response(ApiKey::Fetch, 12, &Frame(bytes)).unwrap();
        let events = &got.responses[0].partitions;
        let cut = &events[0];
        assert_eq!((cut.high_watermark, cut.last_stable_offset), (100, 100));
        assert_eq!(cut.log_start_offset, 7);
        assert_eq!(cut.records.as_deref(), Some(&batch(98, 50)[..]));
        let firsts: Vec<i64> = cut
            .aborted_transactions
            .iter()
            .flatten()
            .map(|a| a.first_offset)
            .collect();
        assert_eq!(firsts, [99, 100], "capped at the stretch's end");
        assert_eq!(events[1].high_watermark, 105, "not stitched");
        let refused = &events[2];
        assert_eq!(
            (refused.high_watermark, refused.records.as_ref()),
            (-1, None),
            "no offset stays none, no records stay null"
        );
        assert_eq!(events[3].records.as_deref(), Some(&[][..]));
        assert_eq!(events[3].high_watermark, 145);
        let partial = events[4].records.as_deref().unwrap();
        assert_eq!(partial.len(), 32 + 40, "a partial batch stays");
        assert_eq!(
            i64::from_be_bytes(partial[32..40].try_into().unwrap()),
            1_030
        );
        let moved = &got.responses[1].partitions[1];
        assert_eq!(moved.log_start_offset, 0, "the oldest stretch's");
        assert_eq!(moved.high_watermark, 95);
    }

    #[test]
    fn an_answer_naming_no_shifted_partition_is_left_alone() {
        for version in VERSIONS {
            let frame = answer(version);
            let mut none = |_: &str, _: i32| None;
            assert_eq!(shifted(version, 7, &frame, &mut none).unwrap(), None);
        }
    }

    #[test]
    fn a_truncated_answer_is_an_error() {
        for version in [4, 11, 12] {
            let frame = answer(version);
            for len in Frame::PREFIX..frame.0.len() {
                let cut = Frame(frame.0.slice(..len));
                let got = shifted(version, 7, &cut, &mut shifts);
                assert!(
                    matches!(got, Err(CodecError::Wire(_))),
                    "v{version} cut at {len}: {got:?}"
                );
                assert!(decoded(version, 7, &cut, &mut shifts).is_err());
            }
        }
    }

    /// A Fetch answer (v4 to v12): one topic "t" holding `partition`.
    fn one_partition(version: i16, partition: &[u8]) -> Frame {
        let mut body = vec![0, 0, 0, 7]; // correlation id
        if version >= 12 {
            body.push(0); // header tagged fields
            body.extend([0; 10]); // throttle, error, session
            body.extend([2, 2, b't', 2]); // one topic "t", one partition
        } else {
            // Throttle; error and session from v7.
            body.extend(vec![0; if version >= 7 { 10 } else { 4 }]);
            body.extend([0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1]);
        }
        body.extend_from_slice(partition);
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend(body);
        Frame(Bytes::from(frame))
    }

    #[test]
    fn malformed_answers_are_errors() {
        let mut all = |_: &str, _: i32| Some(Shift::NONE);
        let mut head = vec![0, 0, 0, 0, 0, 0]; // partition 0, no error
        head.extend([0; 24]); // high watermark, last stable, log start
        let cases: Vec<(i16, Vec<u8>, &str)> = vec![
            // Aborted transactions claiming i32::MAX entries.
            (
                4,
                [&head[..22], &i32::MAX.to_be_bytes()].concat(),
                "elements but only",
            ),
            // Records of a negative length other than null's.
            (
                11,
                [&head[..], &[0, 0, 0, 0], &[0xff; 4], &(-2i32).to_be_bytes()].concat(),
                "is negative",
            ),
            // Records longer than the answer.
            (
                11,
                [
                    &head[..],
                    &[0, 0, 0, 0],
                    &[0xff; 4],
                    &100i32.to_be_bytes(),
                    &[1, 2],
                ]
                .concat(),
                "needs 100 bytes",
            ),
            // A compact length that never ends.
            (
                12,
                [&head[..], &[1], &[0xff; 4], &[0xff; 6]].concat(),
                "longer than 5 bytes",
            ),
        ];
        for (version, partition, says) in cases {
            let frame = one_partition(version, &partition);
            let e = shifted(version, 7, &frame, &mut all).unwrap_err();
            assert!(e.to_string().contains(says), "v{version}: {e}");
        }
        // A topic name that is not UTF-8.
        let mut frame = one_partition(12, &[]).0.to_vec();
        frame[4 + 4 + 1 + 10 + 2] = 0xff;
        let e = shifted(12, 7, &Frame(Bytes::from(frame)), &mut all).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        // A version the layouts do not know.
        let e = shifted(19, 7, &answer(12), &mut all).unwrap_err();
        assert!(e.to_string().contains("no version 19"), "{e}");
    }
}
