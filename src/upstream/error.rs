//! What can go wrong talking to an upstream broker, said so that the
//! operator knows which address and what to check.

use std::time::Duration;

use crate::wire::codec::CodecError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connection to {addr} lost: {reason}")]
    Lost { addr: String, reason: String },
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr}: {reason}")]
    Protocol { addr: String, reason: String },
}

impl UpstreamError {
    /// The broker address the error is about.
    pub fn addr(&self) -> &str {
        match self {
            UpstreamError::Connect { addr, .. }
            | UpstreamError::Lost { addr, .. }
            | UpstreamError::Timeout { addr, .. }
            | UpstreamError::Protocol { addr, .. } => addr,
        }
    }
}

impl From<(String, CodecError)> for UpstreamError {
    fn from((addr, e): (String, CodecError)) -> Self {
        UpstreamError::Protocol {
            addr,
            reason: e.to_string(),
        }
    }
}
