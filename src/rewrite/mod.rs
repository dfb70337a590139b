//! Byte rewrites of requests on their way upstream: Produce batches get
//! the producer id their destination cluster knows them by ([`produce`]),
//! and every forwarded Fetch runs outside any fetch session ([`fetch`]).
//! Everything else travels as the client sent it.

pub mod fetch;
pub mod produce;
