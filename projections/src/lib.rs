//! Tenure's projections: the [`Projection`] trait and its checkpointed [`Runner`], and the
//! built-in [`AccessIndex`] behind every audit query.
//!
//! ```no_run
//! use tenure_engine::{Store, Timestamp};
//! use tenure_projections::{AccessIndex, AsOf, Checkpoints, Runner};
//! let store = Store::open("tenure-data")?;
//! let checkpoints = Checkpoints::open("tenure-data/projections")?;
//! let mut runner = Runner::new(&store, &checkpoints, AccessIndex::new())?;
//! runner.catch_up()?;
//! let at = Timestamp::parse_lenient("2025-03-14")?;
//! for held in runner.projection().access("alice", at, AsOf::Head)? {
//!     println!("{}#{} via {:?}", held.resource, held.permission, held.via);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]

pub mod answers;
mod codec;
mod ents;
pub mod error;
pub mod fold;
pub mod frozen;
pub mod index;
mod lists;
pub mod model;
mod open;
mod par;
mod persist;
pub mod projection;
pub mod query;
mod recorded;
pub mod reports;
mod runner;
mod runs;
pub mod view;

pub use error::{CorruptIndex, ProjectionError, QueryError, WriteError};
pub use fold::{Anomaly, AnomalyKind, FoldScope, IdentityFold, State};
pub use index::AccessIndex;
pub use open::{open_access_index, open_access_index_with, rewrite_access_index, ACCESS_INDEX_FILE, REWRITE_AFTER};
pub use projection::{Checkpoints, Projection};
pub use query::{AsOf, Change, Diff, Held, Holder, Profile, Target, Timeline, Via};
pub use runner::{replay, Runner};
pub use view::IndexView;
