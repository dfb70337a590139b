//! The running proxy: its shared state ([`proxy::Proxy`]), its listening
//! sockets and connection caps ([`listeners`]), start-up, the accept
//! loops and background refresh ([`server`]), what it shows on HTTP
//! ([`http`]), each cluster's view kept fresh ([`views`]), the config
//! read again on `switchyard reload` or SIGHUP ([`reload`]), and the drain
//! on SIGTERM or SIGINT ([`shutdown`]).
//!
//! The proxy opens a virtual broker's listener whenever a cluster's view
//! names a new broker, and the accept loop there runs sessions, which use
//! the proxy: so the server hands the proxy its accept loop at start-up
//! ([`proxy::AcceptLoop`]) instead of the proxy importing the server.

pub mod http;
pub mod listeners;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod shutdown;
pub mod views;
