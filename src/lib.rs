//! Tenure: an event-sourced identity lifecycle engine.
//!
//! An append-only log of joiner / mover / leaver events ([`engine`]) feeds projections
//! ([`projections`]) that answer, for any past instant and as known at any point of the
//! log: who had access to what, when, and why. See `ARCHITECTURE.md` for the map.
#![forbid(unsafe_code)]

pub use tenure_engine as engine;
pub use tenure_projections as projections;

pub use tenure_engine::{Entitlement, Event, EventData, NewEvent, Outcome, Position, Store, Timestamp};
pub use tenure_projections::{AccessIndex, AsOf, Checkpoints, Held, Holder, Projection, Runner, Target, Via};
