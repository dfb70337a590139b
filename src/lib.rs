//! Switchyard: a Kafka wire-protocol proxy that moves clients from one
//! cluster to another one topic at a time, at runtime.
//!
//! The request path: [`runtime::server`] accepts a client, [`auth`]
//! terminates its TLS and SASL, [`session`] reads its frames ([`wire`]),
//! answers the APIs the proxy owns with [`handlers`] from the proxy's view
//! of the [`upstream`] clusters, and forwards the rest where [`plan`]
//! decides from the route table ([`domain::routes`]) and the stitched log
//! ([`domain::stitch`]), splitting and merging when the partitions of one
//! request live on several brokers, with the byte rewrites of [`rewrite`]
//! on the way up; answers go back in request order.
//! The control plane ([`ops`]) flips routes from the admin socket through
//! the fence gates ([`domain::gates`]) and keeps the state file.
//!
//! Which layer may use which: [`domain`] and [`wire`] use nothing of the
//! rest but the typed [`config`]; [`plan`] uses those; [`upstream`] and
//! [`auth`] use those too; [`handlers`], [`rewrite`], [`session`] and
//! [`ops`] use all of them and the shared
//! state in [`runtime::proxy`]; only [`runtime::server`] starts things. The
//! proxy reaches the session's accept loop only through the function the
//! server hands it at start-up ([`runtime::proxy::AcceptLoop`]), so no
//! module imports one that imports it back (`scripts/module_cycles.py`
//! checks it).

pub mod auth;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod metrics;
pub mod ops;
pub mod plan;
pub mod rewrite;
pub mod runtime;
pub mod session;
pub mod upstream;
pub mod wire;
