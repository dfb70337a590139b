//! Record bytes an upstream broker sends: the batches the proxy shifts into
//! the stitched log, and the MirrorMaker 2 records it reads. Errors are
//! fine; panics, and a shift that changes anything but base offsets, are
//! not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::domain::mirror;
use switchyard::domain::stitch::{self, Shift, UpstreamOffset};

fuzz_target!(|data: &[u8]| {
    let (head, records) = data.split_at(data.len().min(9));
    let delta = head
        .get(..8)
        .map_or(0, |b| i64::from_be_bytes(b.try_into().unwrap_or([0; 8])) >> 16);
    let end = head.get(8).map(|e| UpstreamOffset(i64::from(*e)));

    // Unshifted, the bytes come back as they came.
    assert_eq!(stitch::shift_records(records, Shift::NONE), records);
    let shifted = stitch::shift_records(records, Shift {
            delta,
            end,
            ..Shift::NONE
        });
    assert!(shifted.len() <= records.len());
    stitch::records_end(records);
    // The gapless prefix is whole batches of the blob, ending where it says.
    let from = end.map_or(0, |e| e.0);
    let (len, next, _) = stitch::gapless_prefix(records, from);
    assert!(len <= records.len());
    assert!(next >= from);

    if let Ok(all) = mirror::records(records) {
        for (key, value) in all {
            if let (Some(key), Some(value)) = (key, value) {
                let _ = mirror::parse_offset_sync(key, value);
            }
        }
    }
});
