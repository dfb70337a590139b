//! Why the security layer closed a client connection.

use std::time::Duration;

use crate::wire::codec::CodecError;
use crate::wire::WireError;

/// Why a client connection was closed by the security layer.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "{api} request before authentication; a client must finish SASL \
         (SaslHandshake, SaslAuthenticate) first: check its security.protocol and sasl settings"
    )]
    NotAuthenticated { api: String },
    #[error("{api} v{version} is not supported (the proxy speaks SaslHandshake v0-1, SaslAuthenticate v0-2)")]
    Version { api: &'static str, version: i16 },
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("TLS handshake did not finish within {0:?}")]
    TlsTimeout(Duration),
    /// Closed without sending a byte: a port probe or a health check, not
    /// a failed client.
    #[error("closed before the TLS handshake began")]
    ClosedBeforeTls,
    #[error("user '{user}' may not use {what}: not in its [[users]] allow-list")]
    Denied { user: String, what: String },
    #[error("{0}")]
    Internal(String),
}

impl AuthError {
    /// The label of `switchyard_client_protocol_errors_total`, or `None`
    /// when the client did nothing wrong.
    pub fn client_fault(&self) -> Option<&'static str> {
        match self {
            AuthError::NotAuthenticated { .. } => Some("unauthenticated"),
            AuthError::Version { .. } => Some("unsupported"),
            AuthError::Wire(_) => Some("malformed"),
            AuthError::Tls(_) | AuthError::TlsTimeout(_) | AuthError::ClosedBeforeTls => {
                Some("tls")
            }
            AuthError::Denied { .. } => Some("unauthorized"),
            AuthError::Codec(_) | AuthError::Internal(_) => None,
        }
    }
}
