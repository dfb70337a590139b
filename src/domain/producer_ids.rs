//! Per-cluster producer ids for idempotent producers.
//!
//! A producer id belongs to the cluster that issued it: on another cluster
//! it is unknown, or worse, that cluster issued the same number to someone
//! else and drops the batch as a duplicate. And a broker takes a fresh id
//! only from sequence 0. So wherever a client's batches go other than to
//! the cluster that issued its id (the default cluster), and after every
//! flip of their topic, the proxy gives them an id from the destination
//! cluster, rebases their sequences to start at 0, and rewrites each batch
//! in place: producer id, epoch, base sequence, CRC-32C. Nothing else of the
//! request is touched.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::domain::ids::ClusterIdx;
use crate::wire::WireError;

// Byte offsets in a record batch (magic 2).
const LENGTH: usize = 8;
const MAGIC: usize = 16;
const CRC: usize = 17;
/// The CRC covers the batch from its attributes to its end.
const CRC_FROM: usize = 21;
const ATTRIBUTES: usize = 21;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
/// A batch's fixed header, up to and including its record count.
const HEADER: usize = 61;
const TRANSACTIONAL: u16 = 0x10;

/// The producer fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
}

fn error(detail: String) -> WireError {
    WireError {
        what: "record batch",
        detail,
    }
}

/// Where each batch of a records blob sits, every length checked.
pub fn batches(records: &[u8]) -> Result<Vec<Range<usize>>, WireError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let header = records.get(pos..pos + HEADER).ok_or_else(|| {
            error(format!(
                "batch at {pos} shorter than its {HEADER}-byte header"
            ))
        })?;
        let length = i32::from_be_bytes([
            header[LENGTH],
            header[LENGTH + 1],
            header[LENGTH + 2],
            header[LENGTH + 3],
        ]);
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| (pos + 12).checked_add(l))
            .filter(|end| *end >= pos + HEADER && *end <= records.len())
            .ok_or_else(|| error(format!("batch at {pos} claims length {length}")))?;
        if header[MAGIC] != 2 {
            return Err(error(format!(
                "batch at {pos} has magic {}, not 2",
                header[MAGIC]
            )));
        }
        out.push(pos..end);
        pos = end;
    }
    Ok(out)
}

fn be<const N: usize>(batch: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&batch[at..at + N]);
    out
}

/// The producer fields of a batch found by [`batches`].
pub fn producer_of(batch: &[u8]) -> BatchProducer {
    BatchProducer {
        producer_id: i64::from_be_bytes(be(batch, PRODUCER_ID)),
        producer_epoch: i16::from_be_bytes(be(batch, PRODUCER_EPOCH)),
        base_sequence: i32::from_be_bytes(be(batch, BASE_SEQUENCE)),
        transactional: u16::from_be_bytes(be(batch, ATTRIBUTES)) & TRANSACTIONAL != 0,
    }
}

/// Gives a batch found by [`batches`] another producer, and a CRC to match.
pub fn rewrite(batch: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    batch[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_FROM..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Whether sequence `a` comes after `b` (within half the wrap of 2^31).
fn later(a: i32, b: i32) -> bool {
    (1..1 << 30).contains(&rebase(a, b))
}

/// A client's sequence counted from `base` (sequences wrap at 2^31).
pub fn rebase(sequence: i32, base: i32) -> i32 {
    (i64::from(sequence) - i64::from(base)).rem_euclid(1 << 31) as i32
}

/// One run of a client producer's batches for one topic on one cluster,
/// between two flips of the topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment {
    pub client_pid: i64,
    pub client_epoch: i16,
    pub cluster: ClusterIdx,
    pub topic: String,
    /// How many times the topic has been flipped.
    pub generation: u64,
}

impl Segment {
    /// The segment's key where instances share it:
    /// `CLUSTER/TOPIC/GENERATION/PID/EPOCH`.
    pub fn key(&self, cluster: &str) -> String {
        format!(
            "{cluster}/{}/{}/{}/{}",
            self.topic, self.generation, self.client_pid, self.client_epoch
        )
    }
}

/// What instances sharing a store claim for a segment: the producer id
/// one obtained, and where each partition's sequences start. The first
/// claim of each (the id, each partition's base) in the store stands for
/// every instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The producer id and epoch obtained for the segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<(i64, i16)>,
    /// The first sequence seen, by partition.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bases: BTreeMap<i32, i32>,
}

impl Claim {
    /// Takes what `later` claims that this claim does not hold yet.
    pub fn merge(&mut self, later: &Claim) {
        if self.id.is_none() {
            self.id = later.id;
        }
        for (partition, base) in &later.bases {
            self.bases.entry(*partition).or_insert(*base);
        }
    }
}

/// The producer ids the proxy obtained, and where each partition's
/// sequences start, per segment. Shared by all sessions: a retry may come
/// back on another connection. A segment is dropped once a later flip of
/// its topic has a segment here: the flip ended its run.
#[derive(Default)]
pub struct ProducerIds {
    ids: Mutex<HashMap<Segment, (i64, i16)>>,
    /// By segment, then by partition.
    bases: Mutex<HashMap<Segment, BTreeMap<i32, i32>>>,
    /// The oldest sequence of each client producer's batches refused here
    /// (by a flip's fence) and not written since, by partition.
    refused: Mutex<HashMap<Unwritten, (i32, std::time::Instant)>>,
    /// Whether `refused` holds any.
    any_refused: std::sync::atomic::AtomicBool,
    /// When a batch was last refused (see [`ProducerIds::any_refused`]).
    last_refused: Mutex<Option<std::time::Instant>>,
}

/// A client producer's partition: its id and epoch, topic and partition.
pub type Unwritten = (i64, i16, String, i32);

/// How many refused producers' partitions are remembered; past that, a
/// new one is not.
const MAX_REFUSED: usize = 100_000;
/// How long after a producer's last refused batch on a partition its
/// oldest one is waited for: a client resends refused batches within its
/// retry backoff, and one that has given a batch up must not be held
/// back for good.
const REFUSED_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl ProducerIds {
    pub fn id(&self, segment: &Segment) -> Option<(i64, i16)> {
        lock(&self.ids).get(segment).copied()
    }

    /// Records the id obtained for `segment`; when two sessions raced, the
    /// first one's id stands and is returned.
    pub fn set_id(&self, segment: Segment, id: (i64, i16)) -> (i64, i16) {
        let mut ids = lock(&self.ids);
        if !ids.contains_key(&segment) {
            ids.retain(|s, _| !s.ended_by(&segment));
        }
        *ids.entry(segment).or_insert(id)
    }

    /// Where `partition`'s sequences start in `segment`, once known.
    pub fn base(&self, segment: &Segment, partition: i32) -> Option<i32> {
        lock(&self.bases)
            .get(segment)
            .and_then(|b| b.get(&partition))
            .copied()
    }

    /// Records where `partition`'s sequences start in `segment`: the first
    /// sequence seen there, which is the oldest one not yet acknowledged
    /// elsewhere. The first one recorded stands and is returned.
    pub fn set_base(&self, segment: &Segment, partition: i32, seen: i32) -> i32 {
        let mut bases = lock(&self.bases);
        if !bases.contains_key(segment) {
            bases.retain(|s, _| !s.ended_by(segment));
        }
        *bases
            .entry(segment.clone())
            .or_default()
            .entry(partition)
            .or_insert(seen)
    }

    /// Notes that a batch of `key` from `sequence` on was refused, not
    /// written: until one of its batches is, none of a later sequence
    /// starts a segment ([`ProducerIds::out_of_order`]).
    pub fn refused(&self, key: Unwritten, sequence: i32) {
        let mut refused = lock(&self.refused);
        let now = std::time::Instant::now();
        if refused.len() >= MAX_REFUSED && !refused.contains_key(&key) {
            refused.retain(|_, (_, at)| now.duration_since(*at) < REFUSED_FOR);
            if refused.len() >= MAX_REFUSED {
                return;
            }
        }
        let oldest = refused.entry(key).or_insert((sequence, now));
        if later(oldest.0, sequence) {
            oldest.0 = sequence;
        }
        oldest.1 = now;
        *lock(&self.last_refused) = Some(now);
        self.any_refused
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a batch of `key` from `sequence` would start a segment out
    /// of order: an earlier batch of the same producer was refused and is
    /// not written yet. A client that resends refused batches in another
    /// order than it sent them (kafka-python does) would otherwise have the
    /// later one taken as where its sequences start there, and the earlier
    /// one land after it or not at all; a broker refuses it too
    /// (OUT_OF_ORDER_SEQUENCE_NUMBER), and so, retriably, does the proxy.
    pub fn out_of_order(&self, key: &Unwritten, sequence: i32) -> bool {
        self.out_of_order_at(key, sequence, std::time::Instant::now())
    }

    fn out_of_order_at(&self, key: &Unwritten, sequence: i32, now: std::time::Instant) -> bool {
        let mut refused = lock(&self.refused);
        match refused.get(key) {
            Some((_, at)) if now.duration_since(*at) >= REFUSED_FOR => {
                refused.remove(key);
                false
            }
            Some((oldest, _)) => later(sequence, *oldest),
            None => false,
        }
    }

    /// A batch of `key` from `sequence` on goes upstream: once it is the
    /// oldest one refused, or older, nothing refused waits any more.
    pub fn forwarded(&self, key: &Unwritten, sequence: i32) {
        let mut refused = lock(&self.refused);
        if refused
            .get(key)
            .is_some_and(|(oldest, _)| !later(sequence, *oldest))
        {
            refused.remove(key);
        }
        self.any_refused
            .store(!refused.is_empty(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether any batch refused here waits to be written: checked before
    /// a Produce's batches are looked at for [`ProducerIds::forwarded`].
    /// [`REFUSED_FOR`] after the last refusal nothing waits any more (a
    /// producer that never sent its refused batch again is forgotten), so
    /// Produce goes back to not looking at all.
    pub fn any_refused(&self) -> bool {
        self.any_refused_at(std::time::Instant::now())
    }

    fn any_refused_at(&self, now: std::time::Instant) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.any_refused.load(Relaxed) {
            return false;
        }
        // Under the table's lock, as a refusal takes it: none is lost.
        let mut refused = lock(&self.refused);
        let last = *lock(&self.last_refused);
        if last.is_some_and(|at| now.duration_since(at) < REFUSED_FOR) {
            return true;
        }
        refused.clear();
        self.any_refused.store(false, Relaxed);
        false
    }

    /// Segments held, and partition bases held: what the table costs.
    #[cfg(test)]
    pub fn len(&self) -> (usize, usize) {
        let bases = lock(&self.bases).values().map(BTreeMap::len).sum();
        (lock(&self.ids).len(), bases)
    }
}

impl Segment {
    /// Whether `later` shows this segment's run over: the same topic,
    /// flipped since (to whichever cluster).
    fn ended_by(&self, later: &Segment) -> bool {
        self.topic == later.topic && self.generation < later.generation
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn batch(producer_id: i64, sequence: i32, count: usize) -> BytesMut {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch: 3,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: sequence + i as i32,
                timestamp: 1_700_000_000_000,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, records.iter(), &options).unwrap();
        buf
    }

    #[test]
    fn rewritten_batch_decodes_with_new_producer_and_valid_crc() {
        let mut blob = batch(7, 500, 3);
        blob.extend_from_slice(&batch(7, 503, 2));
        let found = batches(&blob).unwrap();
        assert_eq!(found.len(), 2);
        let first = producer_of(&blob[found[0].clone()]);
        assert_eq!(
            (first.producer_id, first.producer_epoch, first.base_sequence),
            (7, 3, 500)
        );
        for range in &found {
            let seq = producer_of(&blob[range.clone()]).base_sequence;
            rewrite(&mut blob[range.clone()], 42, 0, rebase(seq, 500));
        }
        // The decoder checks each batch's CRC; it reads one batch a call.
        let mut bytes = blob.freeze();
        let mut seen = Vec::new();
        for _ in 0..2 {
            let decoded =
                RecordBatchDecoder::decode(&mut bytes).expect("valid batch after rewrite");
            for r in decoded.records {
                let value = String::from_utf8_lossy(r.value.as_ref().unwrap()).into_owned();
                seen.push((r.producer_id, r.producer_epoch, r.sequence, value));
            }
        }
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[0], (42, 0, 0, "v0".to_owned()));
        assert_eq!(seen[2].2, 2);
        assert_eq!(
            seen[3],
            (42, 0, 3, "v0".to_owned()),
            "second batch continues the rebased sequence"
        );
    }

    #[test]
    fn lying_lengths_and_old_magic_are_errors() {
        let good = batch(1, 0, 1);
        let mut long = good.clone();
        long[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(batches(&long).is_err());
        let mut short = good.clone();
        short[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(batches(&short).is_err());
        let mut negative = good.clone();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(batches(&negative).is_err());
        let mut magic1 = good.clone();
        magic1[16] = 1;
        assert!(batches(&magic1).is_err());
        for len in 1..good.len() {
            assert!(batches(&good[..len]).is_err(), "cut at {len}");
        }
        assert!(batches(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_batch_after_a_refused_one_does_not_start_a_segment() {
        let ids = ProducerIds::default();
        let key = (7, 0, "t".to_owned(), 2);
        assert!(!ids.out_of_order(&key, 15), "nothing refused");
        ids.refused(key.clone(), 15);
        ids.refused(key.clone(), 10);
        ids.refused(key.clone(), 20);
        assert!(
            ids.out_of_order(&key, 15),
            "10 was refused and is unwritten"
        );
        assert!(!ids.out_of_order(&key, 10), "the oldest refused");
        assert!(!ids.out_of_order(&key, 5), "older still (failed elsewhere)");
        let other = (7, 1, "t".to_owned(), 2);
        assert!(!ids.out_of_order(&other, 15), "another epoch");
        ids.forwarded(&key, 15);
        assert!(
            ids.out_of_order(&key, 15),
            "a later one forwarded: 10 still waits"
        );
        assert!(ids.any_refused());
        ids.forwarded(&key, 10);
        assert!(!ids.out_of_order(&key, 15), "the oldest refused forwarded");
        assert!(!ids.any_refused());
        ids.refused(key.clone(), i32::MAX);
        assert!(ids.out_of_order(&key, 3), "across the wrap");
        let much_later = std::time::Instant::now() + REFUSED_FOR;
        assert!(ids.any_refused());
        assert!(!ids.any_refused_at(much_later), "no refusal for a while");
        assert!(!ids.out_of_order(&key, 3), "forgotten with it");
        ids.refused(key.clone(), i32::MAX);
        let later = std::time::Instant::now() + REFUSED_FOR;
        assert!(!ids.out_of_order_at(&key, 3, later), "given up on");
        assert!(!ids.out_of_order(&key, 3), "and forgotten");
    }

    #[test]
    fn rebase_counts_from_the_first_sequence_and_wraps() {
        assert_eq!(rebase(500, 500), 0);
        assert_eq!(rebase(505, 500), 5);
        assert_eq!(rebase(2, i32::MAX - 1), 4);
    }

    #[test]
    fn segment_keeps_its_first_id_and_base() {
        let ids = ProducerIds::default();
        let seg = Segment {
            client_pid: 7,
            client_epoch: 0,
            cluster: ClusterIdx(1),
            topic: "t".into(),
            generation: 1,
        };
        assert_eq!(ids.id(&seg), None);
        assert_eq!(ids.set_id(seg.clone(), (42, 0)), (42, 0));
        assert_eq!(ids.set_id(seg.clone(), (43, 0)), (42, 0), "first id stands");
        assert_eq!(ids.set_base(&seg, 0, 500), 500);
        assert_eq!(ids.set_base(&seg, 0, 510), 500);
        assert_eq!(ids.base(&seg, 0), Some(500));
        assert_eq!(ids.set_base(&seg, 1, 9), 9);
        assert_eq!(seg.key("new"), "new/t/1/7/0");
    }

    #[test]
    fn a_later_flip_of_the_topic_ends_its_segments() {
        let ids = ProducerIds::default();
        let seg = |topic: &str, generation| Segment {
            client_pid: 7,
            client_epoch: 0,
            cluster: ClusterIdx(1),
            topic: topic.into(),
            generation,
        };
        ids.set_id(seg("t", 1), (42, 0));
        ids.set_base(&seg("t", 1), 0, 5);
        ids.set_id(seg("u", 1), (43, 0));
        assert_eq!(ids.len(), (2, 1));
        // Flipped back: the producer's next batch opens a new segment.
        ids.set_id(seg("t", 2), (44, 0));
        ids.set_base(&seg("t", 2), 0, 9);
        assert_eq!(ids.id(&seg("t", 1)), None, "ended by the flip");
        assert_eq!(ids.base(&seg("t", 1), 0), None);
        assert_eq!(ids.id(&seg("u", 1)), Some((43, 0)), "another topic's stays");
        assert_eq!(ids.len(), (2, 1));
        let mut first: Claim = serde_json::from_str(r#"{"bases":{"0":3}}"#).unwrap();
        let later: Claim = serde_json::from_str(r#"{"id":[44,0],"bases":{"0":9,"1":5}}"#).unwrap();
        first.merge(&later);
        assert_eq!(first.id, Some((44, 0)));
        assert_eq!(
            first.bases,
            BTreeMap::from([(0, 3), (1, 5)]),
            "each first stands"
        );
    }
}
