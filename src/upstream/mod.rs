//! Everything that talks to real brokers: one connection type, and the
//! proxy's own view of each upstream cluster.

pub mod cluster;
pub mod conn;
pub mod error;
pub mod reach;
pub mod security;

pub use cluster::log::LogRead;
pub use cluster::{BrokerAddr, Cluster, ClusterView};
pub use conn::UpstreamConn;
pub use error::UpstreamError;
pub use security::UpstreamSecurity;
