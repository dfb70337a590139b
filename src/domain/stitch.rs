//! Virtual offsets: after Produce of a partition moves, its log as clients
//! see it is the old log up to the move followed by the new one, shifted.
//!
//! Each Produce move appends a segment: from virtual offset `start` on, the
//! partition lives on `cluster`, where upstream offset = virtual − `delta`.
//! Pure: the session asks which segment an offset falls in, and shifts
//! requests and answers by it.

use std::collections::HashMap;

use crate::domain::ids::ClusterIdx;
use crate::domain::offsets::{self, Offset};
pub use crate::domain::offsets::{UpstreamOffset, VirtualOffset};

/// One stretch of a partition's virtual log, on one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub cluster: ClusterIdx,
    /// First virtual offset served from this segment.
    pub start: VirtualOffset,
    /// Virtual − upstream, within this segment.
    pub delta: i64,
    /// When the segment began (ms since the Unix epoch; 0 for the first),
    /// which bounds the timestamps of its records from below.
    pub since_ms: u64,
}

/// How one partition's offsets move between the virtual log and the
/// upstream log a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    /// Virtual − upstream.
    pub delta: i64,
    /// Upstream offset where this segment ends (exclusive) when a later
    /// segment follows; answers are cut there.
    pub end: Option<UpstreamOffset>,
    /// Where the stitched log begins, when this segment is not the first:
    /// its broker's log start is not the log's.
    pub oldest: Option<VirtualOffset>,
}

impl Shift {
    /// No stitch: offsets are the upstream ones.
    pub const NONE: Shift = Shift {
        delta: 0,
        end: None,
        oldest: None,
    };

    pub fn is_none(&self) -> bool {
        *self == Shift::NONE
    }

    /// A virtual offset in this segment's upstream log.
    pub fn to_upstream(&self, v: VirtualOffset) -> UpstreamOffset {
        v.to_upstream(self.delta)
    }

    /// An upstream offset as clients see it, capped at the segment's end.
    pub fn to_virtual(&self, u: UpstreamOffset) -> VirtualOffset {
        self.end.map_or(u, |end| u.min(end)).to_virtual(self.delta)
    }

    /// An offset field of a client's request (virtual) as the upstream
    /// broker must read it; a field holding no offset passes as it came.
    pub fn request(&self, wire: i64) -> i64 {
        offsets::carry(wire, |v| self.to_upstream(v))
    }

    /// The offset fields of one partition's answer from this segment's
    /// broker, as the stitched log's: the one rule every answer type
    /// (Produce, Fetch, ListOffsets, OffsetForLeaderEpoch) applies. A field
    /// holding no offset passes as it came.
    ///
    /// - the log start is the oldest stretch's, not this segment's broker's
    ///   (librdkafka caches it from Fetch answers and resets to it);
    /// - a stretch a later one follows is complete up to its end, whatever
    ///   its cluster reports now: every record there was written and
    ///   acknowledged before the flip fenced it, so that end is its high
    ///   watermark and last stable offset;
    /// - any other offset is shifted, capped at the segment's end.
    pub fn answer(&self, field: OffsetField, reported: i64) -> i64 {
        offsets::carry(reported, |u| match field {
            OffsetField::LogStart => self.oldest.unwrap_or_else(|| self.to_virtual(u)),
            OffsetField::HighWatermark | OffsetField::LastStable => {
                self.to_virtual(self.end.unwrap_or(u))
            }
            OffsetField::Offset => self.to_virtual(u),
        })
    }

    /// A ListOffsets answer's offset. Where this segment has no record at
    /// or after the timestamp (no offset, no error) and a later segment
    /// follows, the answer is that segment's first record: its records are
    /// all later.
    pub fn listed(&self, reported: i64, answered: bool) -> i64 {
        match self.end {
            Some(end) if answered && UpstreamOffset::from_wire(reported).is_none() => {
                self.to_virtual(end).wire()
            }
            _ => self.answer(OffsetField::Offset, reported),
        }
    }
}

/// Which offset of an answer [`Shift::answer`] moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetField {
    /// `log_start_offset` (Produce, Fetch).
    LogStart,
    /// `high_watermark` (Fetch).
    HighWatermark,
    /// `last_stable_offset` (Fetch).
    LastStable,
    /// A record's offset: Produce `base_offset`, ListOffsets `offset`,
    /// OffsetForLeaderEpoch `end_offset`, aborted transactions'
    /// `first_offset`.
    Offset,
}

/// A partition's segments, oldest first; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments(Vec<Segment>);

impl Segments {
    /// The segment serving virtual offset `v`, and the shift into it.
    pub fn at(&self, v: VirtualOffset) -> (ClusterIdx, Shift) {
        let i = self.0.partition_point(|s| s.start <= v).saturating_sub(1);
        self.shift_of(i)
    }

    /// The segment Produce writes to: the newest.
    pub fn last(&self) -> (ClusterIdx, Shift) {
        self.shift_of(self.0.len() - 1)
    }

    /// The oldest segment, where the log begins.
    pub fn first(&self) -> (ClusterIdx, Shift) {
        self.shift_of(0)
    }

    /// The segment whose records a timestamp lookup for `ms` should
    /// search: the newest that began at or before it.
    pub fn for_timestamp(&self, ms: i64) -> (ClusterIdx, Shift) {
        let ms = u64::try_from(ms).unwrap_or(0);
        let i = self
            .0
            .partition_point(|s| s.since_ms <= ms)
            .saturating_sub(1);
        self.shift_of(i)
    }

    fn shift_of(&self, i: usize) -> (ClusterIdx, Shift) {
        let s = self.0[i];
        let end = self
            .0
            .get(i + 1)
            .map(|next| next.start.to_upstream(s.delta));
        let oldest = (i > 0).then(|| self.0[0].start);
        (
            s.cluster,
            Shift {
                delta: s.delta,
                end,
                oldest,
            },
        )
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// `planned` (a shift into a segment on `cluster`, or none for the log
    /// before any move) as these segments have it now: a request planned
    /// before a move and answered after it is cut where its segment now
    /// ends. The newest segment on `cluster` with the same delta is the
    /// one it read (the log before any move is the first segment, delta
    /// 0); `None` when no segment matches.
    pub fn now(&self, cluster: ClusterIdx, planned: Shift) -> Option<Shift> {
        let i = self
            .0
            .iter()
            .rposition(|s| s.cluster == cluster && s.delta == planned.delta)?;
        Some(self.shift_of(i).1)
    }

    /// Where each cluster's part of the log ended, for every cluster but
    /// the one the newest segment is on (its last segment's end, in its
    /// own offsets): records beyond it were written without the proxy.
    pub fn old_ends(&self) -> Vec<(ClusterIdx, UpstreamOffset)> {
        let Some(newest) = self.0.last() else {
            return Vec::new();
        };
        let mut ends: Vec<(ClusterIdx, UpstreamOffset)> = Vec::new();
        for pair in self.0.windows(2) {
            let (segment, next) = (pair[0], pair[1]);
            if segment.cluster == newest.cluster {
                continue;
            }
            let end = UpstreamOffset(next.start.0 - segment.delta);
            ends.retain(|(c, _)| *c != segment.cluster);
            ends.push((segment.cluster, end));
        }
        ends
    }
}

/// Every stitched partition, by topic and partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stitches(HashMap<String, HashMap<i32, Segments>>);

impl Stitches {
    /// The segments of a partition whose Produce has moved, if it has.
    pub fn get(&self, topic: &str, partition: i32) -> Option<&Segments> {
        self.0.get(topic)?.get(&partition)
    }

    pub fn has_topic(&self, topic: &str) -> bool {
        self.0.contains_key(topic)
    }

    /// Every stitched partition's segments, by topic and partition.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, &Segments)> {
        self.0.iter().flat_map(|(topic, partitions)| {
            partitions
                .iter()
                .map(move |(p, segments)| (topic.as_str(), *p, segments))
        })
    }

    /// Records a Produce move of `topic` from cluster `from` to `to` at
    /// `at_ms`: for each partition, `l_old` is where the log ended on
    /// `from` and `l_new` where it ended on `to` (upstream offsets).
    pub fn record_move(
        &mut self,
        topic: &str,
        from: ClusterIdx,
        to: ClusterIdx,
        at_ms: u64,
        points: impl IntoIterator<Item = (i32, UpstreamOffset, UpstreamOffset)>,
    ) {
        let partitions = self.0.entry(topic.to_owned()).or_default();
        for (partition, l_old, l_new) in points {
            let segments = partitions.entry(partition).or_insert_with(|| {
                Segments(vec![Segment {
                    cluster: from,
                    start: VirtualOffset(0),
                    delta: 0,
                    since_ms: 0,
                }])
            });
            let before = segments.0[segments.0.len() - 1];
            let start = l_old.to_virtual(before.delta);
            segments.0.push(Segment {
                cluster: to,
                start,
                delta: start.delta_from(l_new),
                since_ms: at_ms,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::offsets::VirtualOffset as V;

    const OLD: ClusterIdx = ClusterIdx(0);
    const NEW: ClusterIdx = ClusterIdx(1);

    fn u(o: i64) -> UpstreamOffset {
        UpstreamOffset(o)
    }

    #[test]
    fn one_move_continues_the_old_log_on_the_new_cluster() {
        let mut s = Stitches::default();
        // 'old' ended at 500; 'new' already held 20 records of its own.
        s.record_move("t", OLD, NEW, 1_000, [(0, u(500), u(20))]);
        let seg = s.get("t", 0).unwrap();
        let (cluster, shift) = seg.at(VirtualOffset(499));
        assert_eq!((cluster, shift.to_upstream(V(499))), (OLD, u(499)));
        assert_eq!(
            shift.to_virtual(u(800)),
            V(500),
            "answers from 'old' stop at 500"
        );
        let (cluster, shift) = seg.at(VirtualOffset(500));
        assert_eq!((cluster, shift.to_upstream(V(500))), (NEW, u(20)));
        assert_eq!(shift.to_virtual(u(25)), V(505));
        assert_eq!(seg.last().0, NEW);
        assert_eq!(seg.first().0, OLD);
        assert!(s.get("t", 1).is_none());
    }

    #[test]
    fn a_shift_planned_before_a_move_is_cut_where_its_segment_now_ends() {
        let mut s = Stitches::default();
        s.record_move("t", OLD, NEW, 1_000, [(0, u(500), u(20))]);
        let seg = s.get("t", 0).unwrap();
        // Read from 'old' before the move: now it ends at 500.
        let before = seg.now(OLD, Shift::NONE).unwrap();
        assert_eq!(before, seg.first().1);
        assert_eq!(before.end, Some(u(500)));
        // The newest stretch, planned before a move back to 'old'.
        let newest = seg.last().1;
        assert_eq!(newest.end, None);
        s.record_move("t", NEW, OLD, 2_000, [(0, u(30), u(500))]);
        let seg = s.get("t", 0).unwrap();
        assert_eq!(seg.now(NEW, newest).unwrap().end, Some(u(30)));
        // No segment on that cluster with that delta.
        assert_eq!(seg.now(NEW, Shift::NONE), None);
    }

    #[test]
    fn old_ends_are_where_each_other_cluster_stopped() {
        let mut s = Stitches::default();
        s.record_move("t", OLD, NEW, 10, [(0, u(100), u(0))]); // v 100.. = new 0..
        assert_eq!(s.get("t", 0).unwrap().old_ends(), [(OLD, u(100))]);
        s.record_move("t", NEW, OLD, 20, [(0, u(50), u(100))]); // v 150.. = old 100..
        assert_eq!(s.get("t", 0).unwrap().old_ends(), [(NEW, u(50))]);
        s.record_move("t", OLD, NEW, 30, [(0, u(130), u(50))]); // v 180.. = new 50..
        assert_eq!(s.get("t", 0).unwrap().old_ends(), [(OLD, u(130))]);
        let listed: Vec<(&str, i32)> = s.iter().map(|(t, p, _)| (t, p)).collect();
        assert_eq!(listed, [("t", 0)]);
    }

    #[test]
    fn moving_back_and_forth_keeps_one_exact_offset_space() {
        let mut s = Stitches::default();
        s.record_move("t", OLD, NEW, 10, [(0, u(100), u(0))]); // v 100.. = new 0..
        s.record_move("t", NEW, OLD, 20, [(0, u(50), u(100))]); // v 150.. = old 100..
        s.record_move("t", OLD, NEW, 30, [(0, u(130), u(50))]); // v 180.. = new 50..
        let seg = s.get("t", 0).unwrap();
        let place = |v: i64| {
            let (c, shift) = seg.at(VirtualOffset(v));
            (c, shift.to_upstream(VirtualOffset(v)).0)
        };
        assert_eq!(place(0), (OLD, 0));
        assert_eq!(place(99), (OLD, 99));
        assert_eq!(place(100), (NEW, 0));
        assert_eq!(place(149), (NEW, 49));
        assert_eq!(place(150), (OLD, 100));
        assert_eq!(place(179), (OLD, 129));
        assert_eq!(place(180), (NEW, 50));
        assert_eq!(place(1_000), (NEW, 870));
        // The first stretch of 'old' is cut where the second one's
        // records begin, so nothing is served twice.
        assert_eq!(seg.at(VirtualOffset(5)).1.end, Some(u(100)));
        assert_eq!(seg.for_timestamp(25).0, OLD);
        assert_eq!(seg.for_timestamp(25).1.to_upstream(V(150)), u(100));
        assert_eq!(seg.for_timestamp(5).0, OLD);
        assert_eq!(seg.for_timestamp(5).1.delta, 0);
    }

    #[test]
    fn answers_move_into_the_stitched_log_and_requests_out_of_it() {
        let mut s = Stitches::default();
        s.record_move("t", OLD, NEW, 10, [(0, u(100), u(20))]);
        s.record_move("t", NEW, OLD, 20, [(0, u(50), u(100))]);
        let seg = s.get("t", 0).unwrap();
        // The middle stretch: v 100..130 = new 20..50, then back on 'old'.
        let (cluster, middle) = seg.at(V(110));
        assert_eq!((cluster, middle.request(110)), (NEW, 30));
        assert_eq!(middle.answer(OffsetField::Offset, 45), 125);
        assert_eq!(
            middle.answer(OffsetField::Offset, 70),
            130,
            "cut at its end"
        );
        assert_eq!(middle.answer(OffsetField::HighWatermark, 20), 130);
        assert_eq!(middle.answer(OffsetField::LastStable, 61), 130);
        assert_eq!(
            middle.answer(OffsetField::LogStart, 20),
            0,
            "the oldest stretch's"
        );
        for field in [OffsetField::LogStart, OffsetField::HighWatermark] {
            assert_eq!(middle.answer(field, -1), -1, "{field:?}: none stays none");
        }
        // ListOffsets: nothing at or after the timestamp in this stretch
        // is the next stretch's first record; an error's -1 stays.
        assert_eq!(middle.listed(-1, true), 130);
        assert_eq!(middle.listed(-1, false), -1);
        assert_eq!(middle.listed(25, true), 105);
        let (_, newest) = seg.last();
        assert_eq!(newest.listed(-1, true), -1, "no stretch follows");
        assert_eq!(newest.answer(OffsetField::HighWatermark, 140), 170);
        assert_eq!(newest.to_virtual(u(140)), V(170));
        assert_eq!(newest.to_upstream(V(170)), u(140));
    }

    #[test]
    fn sentinels_are_not_shifted() {
        let shift = Shift {
            delta: 40,
            ..Shift::NONE
        };
        assert_eq!(shift.answer(OffsetField::Offset, -1), -1);
        assert_eq!(shift.request(-1), -1);
        // ListOffsets' -2 (earliest) and other negatives are no offsets
        // either, and pass as they came.
        assert_eq!(shift.request(-2), -2);
        assert_eq!(shift.answer(OffsetField::LogStart, -2), -2);
    }
}

/// A records blob (record batches, as in a Fetch answer) as clients see
/// it: each batch's base offset shifted, and, when the segment ends, the
/// batches at or past its end left out. A batch cut short by the broker's
/// size limit stays, shifted, as the client would have seen it: a client
/// whose first batch is cut short asks again for more bytes.
pub fn shift_records(records: &[u8], shift: Shift) -> Vec<u8> {
    let mut out = records.to_vec();
    let kept = shift_records_in_place(&mut out, shift);
    out.truncate(kept);
    out
}

/// [`shift_records`] in place: each batch's base offset shifted where it
/// sits; returns how many leading bytes clients see (fewer than all when
/// the segment ends before the last batches, which are left out).
///
/// Base offset and length sit at the same place in every message format
/// (offset int64, then size int32), and the base offset is outside the
/// batch's CRC (which covers attributes on, in v2), so no checksum changes.
pub fn shift_records_in_place(records: &mut [u8], shift: Shift) -> usize {
    const PREFIX: usize = 12;
    let mut pos = 0;
    while let Some(base) = records.get_mut(pos..pos + 8) {
        let upstream = UpstreamOffset(i64::from_be_bytes(base.try_into().unwrap_or([0; 8])));
        if shift.end.is_some_and(|e| upstream >= e) {
            return pos; // the next segment's records
        }
        base.copy_from_slice(&upstream.to_virtual(shift.delta).0.to_be_bytes());
        pos = records
            .get(pos + 8..pos + PREFIX)
            .and_then(|l| usize::try_from(i32::from_be_bytes(l.try_into().ok()?)).ok())
            .and_then(|l| (pos + PREFIX).checked_add(l))
            .map_or(records.len(), |end| end.min(records.len()));
    }
    // Fewer than 8 bytes left: a fragment no client reads, kept.
    records.len()
}

/// The offset after the last record of the last whole batch in a records
/// blob (0 for none): from each batch's base offset and last offset delta.
pub fn records_end(records: &[u8]) -> i64 {
    whole_batches(records).map(|b| b.end).max().unwrap_or(0)
}

/// One whole batch of a records blob: its base offset, the offset after
/// its last record, its newest record's timestamp (v2), and where in the
/// blob it ends.
struct BatchSpan {
    base: i64,
    end: i64,
    max_timestamp: Option<i64>,
    bytes_end: usize,
}

/// The whole batches of a records blob, in order, from their headers; a
/// batch cut short by a size limit ends the walk.
fn whole_batches(records: &[u8]) -> impl Iterator<Item = BatchSpan> + '_ {
    const LAST_OFFSET_DELTA: usize = 23;
    const MAX_TIMESTAMP: usize = 35;
    let mut pos = 0;
    std::iter::from_fn(move || {
        let head = records.get(pos..pos + LAST_OFFSET_DELTA + 4)?;
        let base = i64::from_be_bytes(head[..8].try_into().unwrap_or([0; 8]));
        let length = i32::from_be_bytes(head[8..12].try_into().unwrap_or([0; 4]));
        let delta = i32::from_be_bytes(head[LAST_OFFSET_DELTA..].try_into().unwrap_or([0; 4]));
        let next = usize::try_from(length)
            .ok()
            .and_then(|l| (pos + 12).checked_add(l))
            .filter(|next| *next <= records.len())?;
        // Before v2 (magic at byte 16) the delta is not there; such an
        // entry's offset is its last.
        let v2 = head[16] == 2;
        let last = if v2 {
            base.saturating_add(i64::from(delta))
        } else {
            base
        };
        let max_timestamp = records
            .get(pos + MAX_TIMESTAMP..pos + MAX_TIMESTAMP + 8)
            .filter(|_| v2 && pos + MAX_TIMESTAMP + 8 <= next)
            .map(|t| i64::from_be_bytes(t.try_into().unwrap_or([0; 8])));
        pos = next;
        Some(BatchSpan {
            base,
            end: last.saturating_add(1),
            max_timestamp,
            bytes_end: next,
        })
    })
}

/// A gap in a log's offsets, met reading it: the offset the records
/// after it start at, and the newest timestamp of their first batch
/// (`None` before v2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gap {
    pub to: i64,
    pub max_timestamp: Option<i64>,
}

/// The part of a records blob read from offset `from` that runs on
/// without a gap: its length in bytes (whole batches up to the first that
/// starts past where the ones before it ended), the offset after it, and
/// the gap, when records follow one.
///
/// A broker may answer with a later batch while an earlier offset is
/// still being written (tansu assigns offsets before it stores the batch),
/// or because compaction removed the offsets between; a reader that must
/// not miss a record tells the two apart by the later batch's age, or by
/// waiting.
pub fn gapless_prefix(records: &[u8], from: i64) -> (usize, i64, Option<Gap>) {
    let (mut len, mut end) = (0, from);
    for batch in whole_batches(records) {
        if batch.base > end {
            let gap = Gap {
                to: batch.base,
                max_timestamp: batch.max_timestamp,
            };
            return (len, end, Some(gap));
        }
        len = batch.bytes_end;
        end = end.max(batch.end);
    }
    (len, end, None)
}

/// The offset of the last record in a records blob, from each batch's
/// header (base offset, last offset delta), a batch cut short by the
/// broker's size limit included: its header still says where it ends.
/// `None` when no batch header is whole.
pub fn last_offset(records: &[u8]) -> Option<i64> {
    const LAST_OFFSET_DELTA: usize = 23;
    let mut last = None;
    let mut pos = 0;
    while let Some(head) = records.get(pos..pos + LAST_OFFSET_DELTA + 4) {
        let base = i64::from_be_bytes(head[..8].try_into().unwrap_or([0; 8]));
        let length = i32::from_be_bytes(head[8..12].try_into().unwrap_or([0; 4]));
        let delta = i32::from_be_bytes(head[LAST_OFFSET_DELTA..].try_into().unwrap_or([0; 4]));
        // Before v2 (magic at byte 16) there is no delta: an entry's
        // offset is its last.
        let batch_last = if head[16] == 2 {
            base.saturating_add(i64::from(delta.max(0)))
        } else {
            base
        };
        last = Some(last.map_or(batch_last, |l: i64| l.max(batch_last)));
        let Some(next) = usize::try_from(length)
            .ok()
            .filter(|l| *l > 0)
            .and_then(|l| (pos + 12).checked_add(l))
        else {
            break;
        };
        pos = next;
    }
    last
}

#[cfg(test)]
mod record_tests {
    use super::*;

    /// A stand-in batch: base offset, length, then `len` bytes of body.
    fn batch(base: i64, len: usize) -> Vec<u8> {
        let mut b = base.to_be_bytes().to_vec();
        b.extend_from_slice(&(len as i32).to_be_bytes());
        b.extend(std::iter::repeat_n(0xab, len));
        b
    }

    #[test]
    fn batches_shift_and_stop_at_the_segment_end() {
        let blob = [batch(10, 20), batch(15, 30), batch(20, 5)].concat();
        let shift = Shift {
            delta: 1_000,
            end: Some(UpstreamOffset(20)),
            ..Shift::NONE
        };
        let out = shift_records(&blob, shift);
        assert_eq!(
            out.len(),
            32 + 42,
            "the batch at the segment's end is left out"
        );
        assert_eq!(i64::from_be_bytes(out[..8].try_into().unwrap()), 1_010);
        assert_eq!(i64::from_be_bytes(out[32..40].try_into().unwrap()), 1_015);
        assert_eq!(
            &out[40..],
            &blob[40..74],
            "the rest of a batch is untouched"
        );
    }

    #[test]
    fn a_batch_cut_short_stays_shifted() {
        // The only batch, cut short by the broker's size limit: dropping it
        // would leave the client asking for the same bytes forever.
        let blob = batch(7, 100)[..60].to_vec();
        let out = shift_records(
            &blob,
            Shift {
                delta: 3,
                ..Shift::NONE
            },
        );
        assert_eq!(out.len(), 60);
        assert_eq!(i64::from_be_bytes(out[..8].try_into().unwrap()), 10);
        let mut tail = [batch(1, 4), batch(5, 100)[..10].to_vec(), vec![1, 2]].concat();
        let out = shift_records(&tail, Shift::NONE);
        assert_eq!(out, tail);
        tail.truncate(16 + 5);
        assert_eq!(
            shift_records(&tail, Shift::NONE),
            tail,
            "a fragment passes as it came"
        );
    }
}

#[cfg(test)]
mod last_offset_tests {
    use super::*;

    /// A v2 batch of `records` records from `base`, `len` bytes after its
    /// length field.
    fn v2_batch(base: i64, records: i32, len: usize) -> Vec<u8> {
        let mut b = base.to_be_bytes().to_vec();
        b.extend_from_slice(&(len as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 6]); // crc, attributes
        b.extend_from_slice(&(records - 1).to_be_bytes());
        b.resize(12 + len, 0xcd);
        b
    }

    #[test]
    fn the_last_record_comes_from_the_last_batch_header() {
        let blob = [v2_batch(100, 50, 80), v2_batch(150, 400, 300)].concat();
        assert_eq!(last_offset(&blob), Some(549));
        assert_eq!(records_end(&blob), 550);
    }

    #[test]
    fn a_batch_cut_short_still_says_where_it_ends() {
        let blob = [v2_batch(0, 10, 40), v2_batch(10, 1_000, 5_000)].concat();
        let cut = &blob[..52 + 40];
        assert_eq!(last_offset(cut), Some(1_009));
        assert_eq!(records_end(cut), 10, "whole batches only");
        assert_eq!(last_offset(&blob[..20]), None, "no whole header");
        assert_eq!(last_offset(&[]), None);
    }

    #[test]
    fn a_gap_between_batches_ends_the_gapless_prefix() {
        let (a, b, mut c) = (
            v2_batch(10, 5, 40),
            v2_batch(15, 5, 40),
            v2_batch(30, 2, 40),
        );
        c[35..43].copy_from_slice(&1_700_000_000_000i64.to_be_bytes());
        let blob = [a.clone(), b.clone(), c].concat();
        let at = |to, max_timestamp| Some(Gap { to, max_timestamp });
        let gap = at(30, Some(1_700_000_000_000));
        assert_eq!(gapless_prefix(&blob, 10), (104, 20, gap));
        assert_eq!(
            gapless_prefix(&blob, 12),
            (104, 20, gap),
            "from within a batch"
        );
        let stamp = Some(i64::from_be_bytes([0xcd; 8]));
        assert_eq!(
            gapless_prefix(&blob, 8),
            (0, 8, at(10, stamp)),
            "a gap at the start"
        );
        let whole = [a, b].concat();
        assert_eq!(gapless_prefix(&whole, 10), (104, 20, None));
        assert_eq!(
            gapless_prefix(&whole[..60], 10),
            (52, 15, None),
            "whole batches only"
        );
        assert_eq!(gapless_prefix(&[], 7), (0, 7, None));
    }
}
