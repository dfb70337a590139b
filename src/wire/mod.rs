//! Bytes on the wire: framing, and bounded, shallow views of the frames the
//! proxy must look into.
//!
//! Nothing here trusts a length or a count it reads: every one is checked
//! against the bytes that are really there before anything is allocated.

pub mod bounded;
pub mod codec;
pub mod frame;
pub mod header;
pub mod layout;
pub mod reader;
pub mod requests;
pub mod topic_errors;
// Generated from kafka-protocol's decoders; kept as generated.
#[rustfmt::skip]
pub mod response_layouts;

pub use frame::{read_frame, Frame, FrameError};
pub use header::RequestHeader;
pub use reader::{Reader, WireError};
