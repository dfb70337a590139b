//! Switchyard: a Kafka wire-protocol proxy that moves clients from one
//! cluster to another one topic at a time, at runtime.
//!
//! The request path, in file order: [`server`] accepts, [`session`] reads
//! frames ([`wire`]) and dispatches to [`handlers`], which answer from the
//! [`proxy`]'s view of the [`upstream`] clusters or forward to them.

pub mod admin;
pub mod auth;
pub mod config;
pub mod detach;
pub mod domain;
pub mod drain;
pub mod flip;
pub mod group_move;
pub mod handlers;
pub mod metrics;
pub mod runtime;
pub mod session;
pub mod state;
pub mod upstream;
pub mod wire;
