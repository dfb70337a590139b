//! A client's whole byte stream: frames, headers, then the shallow view the
//! proxy reads for that api_key. Errors are fine; panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::wire::{read_frame, RequestHeader};

#[path = "views.rs"]
mod views;

#[path = "runtime.rs"]
mod runtime;
use runtime::runtime;

fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    runtime().block_on(async {
        while let Ok(Some(frame)) = read_frame(&mut stream, 1 << 20).await {
            let Ok(header) = RequestHeader::parse(frame.body()) else {
                continue;
            };
            let body = &frame.body()[header.body_offset..];
            views::parse_view(&header, body);
        }
    });
});
