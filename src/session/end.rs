//! Why a session ended, and whether the client is to blame.

use crate::auth::AuthError;
use crate::rewrite;
use crate::upstream::UpstreamError;
use crate::wire::codec::CodecError;
use crate::wire::{FrameError, WireError};

/// Why a session ended other than by the client closing it.
#[derive(Debug, thiserror::Error)]
pub(super) enum SessionEnd {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("unsupported request: API key {api_key} version {version}")]
    Unsupported { api_key: i16, version: i16 },
    #[error("upstream: {0}")]
    Upstream(#[from] UpstreamError),
    #[error("upstream: {0}")]
    NoRoute(String),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("writing to client: {0}")]
    Write(std::io::Error),
    #[error("local handler failed: {0}")]
    Handler(String),
    #[error("no request for {0:?}")]
    Idle(std::time::Duration),
    #[error("a request frame took longer than {0:?} to arrive")]
    SlowFrame(std::time::Duration),
    #[error("acks=0 produce for partitions this connection cannot reach")]
    Unroutable,
    #[error(transparent)]
    Produce(#[from] rewrite::produce::ProduceError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl SessionEnd {
    /// A label for the protocol-error metric, or `None` when the client did
    /// nothing wrong.
    pub(super) fn client_fault(&self) -> Option<&'static str> {
        match self {
            SessionEnd::Frame(FrameError::TooLarge { .. } | FrameError::Negative(_)) => {
                Some("frame_size")
            }
            SessionEnd::Frame(FrameError::Truncated { .. }) => Some("truncated"),
            SessionEnd::Wire(_) => Some("malformed"),
            SessionEnd::Unsupported { .. } => Some("unsupported"),
            SessionEnd::SlowFrame(_) => Some("slow"),
            SessionEnd::Auth(e) => e.client_fault(),
            _ => None,
        }
    }
}
