//! The shallow request views straight from a chosen api_key and api_version,
//! to reach version-specific paths without first finding a valid header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::wire::RequestHeader;

#[path = "views.rs"]
mod views;

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_first_chunk::<4>() else {
        return;
    };
    let header = RequestHeader {
        api_key: i16::from_be_bytes([head[0], head[1]]),
        api_version: i16::from_be_bytes([head[2], head[3]]),
        correlation_id: 0,
        client_id: None,
        body_offset: 0,
    };
    views::parse_view(&header, body);
});
