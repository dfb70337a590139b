//! An upstream broker's Metadata response, decoded in full with kafka-protocol.
//! Known limitation: kafka-protocol 0.18 preallocates from wire counts, so a
//! huge array count aborts on allocation; run with -malloc_limit_mb.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, MetadataResponse};
use libfuzzer_sys::fuzz_target;
use switchyard::wire::codec::decode_response;
use switchyard::wire::Frame;

fuzz_target!(|data: &[u8]| {
    let Some((&version, body)) = data.split_first() else {
        return;
    };
    if body.len() > 4096 {
        return;
    }
    let version = (version % 13) as i16;
    let mut framed = Vec::with_capacity(Frame::PREFIX + body.len());
    framed.extend_from_slice(&(body.len() as i32).to_be_bytes());
    framed.extend_from_slice(body);
    let _ =
        decode_response::<MetadataResponse>(ApiKey::Metadata, version, &Frame(Bytes::from(framed)));
});
