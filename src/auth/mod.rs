//! Client-side security: TLS on accept, then SASL before any other request.
//!
//! The accept loop hands each connection to [`ClientSecurity::accept`]
//! (TLS handshake, when `[proxy.tls]` is set); the session then shows every
//! frame to its [`ClientAuth`] first, which answers the SASL exchange
//! itself and lets nothing but ApiVersions through until it succeeds.

pub mod acl;
pub mod client;
pub mod credentials;
pub mod error;
pub mod sasl;
pub mod scram;
pub mod tls;
pub mod users;

pub use client::{ClientAuth, ClientSecurity, Gate};
pub use credentials::{Credential, Mechanism};
pub use error::AuthError;
pub use tls::{ClientRead, ClientStream, ClientWrite, MaybeTls};
pub use users::{User, Users};
