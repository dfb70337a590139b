//! The control plane: the admin socket and what it runs. Flips of topics,
//! moves of consumer groups, detaching groups, drain progress, and the
//! state those leave behind (the state file). Nothing here is on a
//! client's request path; sessions see its effects through the route
//! table and the gates.

pub mod admin;
pub mod console;
pub mod detach;
pub mod drain;
pub mod fleet;
pub mod flip;
pub mod group_move;
pub mod journal;
pub mod state;
pub mod state_topic;
pub mod steps;
