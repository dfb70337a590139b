//! MirrorMaker 2's own records, and its rule for translating an offset on
//! the source cluster to the copy on the target.
//!
//! Used when a group leaves the proxy (detach): its offsets below a stitch
//! point name records of the old cluster, and on the new cluster those
//! records sit wherever MirrorMaker 2 copied them. Pure: bytes in, offsets
//! out; the records are read by [`crate::upstream::cluster`].

use std::collections::HashMap;

use crate::domain::offsets::{Offset, UpstreamOffset};
use crate::wire::{Reader, WireError};

/// One offset sync: record `upstream` of the source partition was copied
/// to offset `downstream` of the target partition (each an offset of its
/// own cluster's log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OffsetSync {
    pub upstream: UpstreamOffset,
    pub downstream: UpstreamOffset,
}

/// Offset syncs by source topic and partition.
pub type Syncs = HashMap<(String, i32), Vec<OffsetSync>>;

/// The name of the topic holding offset syncs for replication into the
/// cluster MirrorMaker 2 calls `target_alias`.
pub fn offset_syncs_topic(target_alias: &str) -> String {
    format!("mm2-offset-syncs.{target_alias}.internal")
}

/// An offset-sync record: key `topic STRING, partition INT32`, value
/// `upstreamOffset INT64, offset INT64`.
pub fn parse_offset_sync(key: &[u8], value: &[u8]) -> Result<(String, i32, OffsetSync), WireError> {
    let mut k = Reader::new(key, "offset-sync key");
    let topic = k.string(false)?.to_owned();
    let partition = k.i32()?;
    let mut v = Reader::new(value, "offset-sync value");
    let upstream = UpstreamOffset(v.i64()?);
    let downstream = UpstreamOffset(v.i64()?);
    Ok((
        topic,
        partition,
        OffsetSync {
            upstream,
            downstream,
        },
    ))
}

/// Translates source offset `upstream` with a partition's syncs, by the
/// rule MirrorMaker 2 follows since Kafka 3.5: the latest sync at or below
/// the offset; its downstream offset when the offset is the synced one,
/// else one past it (the copy of a later record is somewhere after it, so
/// at least once, never a skip). `None` when no sync is at or below it.
pub fn translate(syncs: &[OffsetSync], upstream: UpstreamOffset) -> Option<UpstreamOffset> {
    let sync = syncs
        .iter()
        .filter(|s| s.upstream <= upstream)
        .max_by_key(|s| (s.upstream, s.downstream))?;
    Some(sync.downstream.plus(i64::from(upstream != sync.upstream)))
}

/// How far on the source a partition's copy has reached, when it ends at
/// `end` on the target: its latest sync carried forward one for one
/// (MirrorMaker 2 copies records in order). `None` without a sync.
pub fn reached(syncs: &[OffsetSync], end: UpstreamOffset) -> Option<UpstreamOffset> {
    syncs
        .iter()
        .max()
        .map(|s| s.upstream.plus(end.since(s.downstream)))
}

/// A record's key and value, borrowed from its batch.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// The key and value of each record in a records blob (v2 batches), in
/// order. Every length is checked against the bytes present; compressed
/// batches are refused (MirrorMaker 2 writes its own records
/// uncompressed unless told otherwise).
pub fn records(blob: &[u8]) -> Result<Vec<KeyValue<'_>>, WireError> {
    let mut out = Vec::new();
    let mut r = Reader::new(blob, "record batches");
    while r.remaining() >= 12 {
        let start = r.position();
        r.bytes(8)?; // base offset
        let length = r.i32()?;
        let length = usize::try_from(length)
            .ok()
            .filter(|l| *l <= r.remaining())
            .ok_or_else(|| r.error(format!("batch at {start} claims length {length}")))?;
        let batch = r.bytes(length)?;
        records_of_batch(batch, &mut out)?;
    }
    Ok(out)
}

fn records_of_batch<'a>(batch: &'a [u8], out: &mut Vec<KeyValue<'a>>) -> Result<(), WireError> {
    let mut r = Reader::new(batch, "record batch");
    r.bytes(4)?; // partition leader epoch
    let magic = r.i8()?;
    if magic != 2 {
        return Err(r.error(format!("magic {magic}, expected 2")));
    }
    r.bytes(4)?; // crc
    let attributes = r.i16()?;
    if attributes & 0x07 != 0 {
        return Err(r.error("compressed batch; the proxy reads only uncompressed ones"));
    }
    if attributes & 0x20 != 0 {
        return Ok(()); // a control batch (transaction marker)
    }
    r.bytes(4 + 8 + 8 + 8 + 2 + 4)?; // last offset delta .. base sequence
    let count = r.i32()?;
    // Each record takes at least 7 bytes: no count can claim more.
    let count = usize::try_from(count)
        .ok()
        .filter(|c| c.saturating_mul(7) <= r.remaining())
        .ok_or_else(|| r.error(format!("batch claims {count} records")))?;
    for _ in 0..count {
        let length = varint(&mut r)?;
        let record = usize::try_from(length)
            .ok()
            .and_then(|l| r.bytes(l).ok())
            .ok_or_else(|| r.error(format!("record length {length}")))?;
        let mut rec = Reader::new(record, "record");
        rec.i8()?; // attributes
        varint(&mut rec)?; // timestamp delta
        varint(&mut rec)?; // offset delta
        let key = var_bytes(&mut rec)?;
        let value = var_bytes(&mut rec)?;
        out.push((key, value));
    }
    Ok(())
}

/// A zig-zag varint (varlong range), as record fields use.
fn varint(r: &mut Reader<'_>) -> Result<i64, WireError> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = r.i8()? as u8;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(r.error("varint longer than 10 bytes"))
}

fn var_bytes<'a>(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>, WireError> {
    match varint(r)? {
        -1 => Ok(None),
        n => usize::try_from(n)
            .ok()
            .and_then(|n| r.bytes(n).ok())
            .map(Some)
            .ok_or_else(|| r.error(format!("field length {n}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::offsets::UpstreamOffset as U;

    fn sync(upstream: i64, downstream: i64) -> OffsetSync {
        OffsetSync {
            upstream: U(upstream),
            downstream: U(downstream),
        }
    }

    #[test]
    fn translation_follows_the_kafka_3_5_rule() {
        let syncs = [sync(0, 10), sync(50, 60), sync(80, 95)];
        assert_eq!(
            translate(&syncs, U(0)),
            Some(U(10)),
            "a synced offset maps exactly"
        );
        assert_eq!(
            translate(&syncs, U(30)),
            Some(U(11)),
            "past a sync: one after it"
        );
        assert_eq!(translate(&syncs, U(50)), Some(U(60)));
        assert_eq!(translate(&syncs, U(79)), Some(U(61)));
        assert_eq!(translate(&syncs, U(1_000)), Some(U(96)));
        assert_eq!(translate(&syncs[1..], U(20)), None, "nothing at or below");
    }

    #[test]
    fn a_copy_reaches_past_its_latest_sync_one_for_one() {
        let syncs = [sync(0, 10), sync(50, 60)];
        assert_eq!(reached(&syncs, U(60)), Some(U(50)));
        assert_eq!(reached(&syncs, U(75)), Some(U(65)));
        assert_eq!(
            reached(&syncs, U(55)),
            Some(U(45)),
            "below the sync: before it"
        );
        assert_eq!(reached(&[], U(75)), None, "no sync: nothing known");
    }

    #[test]
    fn offset_sync_records_parse_and_lies_are_refused() {
        let mut key = vec![0, 6];
        key.extend_from_slice(b"orders");
        key.extend_from_slice(&3i32.to_be_bytes());
        let value = [50i64.to_be_bytes(), 61i64.to_be_bytes()].concat();
        assert_eq!(
            parse_offset_sync(&key, &value).unwrap(),
            ("orders".into(), 3, sync(50, 61))
        );
        assert!(parse_offset_sync(&[0x7f, 0xff, b'o'], &value).is_err());
        assert!(parse_offset_sync(&key, &value[..12]).is_err());
    }

    #[test]
    fn a_record_count_beyond_the_bytes_is_refused() {
        let mut batch = vec![0u8; 61];
        batch[8..12].copy_from_slice(&49i32.to_be_bytes()); // length after offset+length
        batch[16] = 2; // magic
        batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let e = records(&batch).unwrap_err();
        assert!(e.to_string().contains("claims 2147483647 records"), "{e}");
    }
}
