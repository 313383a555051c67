//! Tenure's engine: the event model, the durable append-only log with its integrity
//! chain, reads by position and by subject, and subscriptions.
//!
//! ```no_run
//! use tenure_engine::{NewEvent, Store};
//! let store = Store::open("tenure-data")?;
//! let line = r#"{"type":"group.created","effective_at":"2024-01-01T00:00:00Z","data":{"group":"fin"}}"#;
//! let outcomes = store.append(vec![NewEvent::from_json(line)?])?;
//! println!("stored at {:?}", outcomes[0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// One exception, allowed where it is: mapping derived files (`writer.state`) that are
// only ever replaced by a rename, never written in place.
#![deny(unsafe_code)]

pub mod chain;
pub mod error;
pub mod event;
pub mod files;
pub mod format;
pub mod ids;
pub mod json;
pub mod log;
pub mod maps;
/// The store, by its former path (`tenure_engine::store::LOG_FILE`, ...).
pub use log as store;
pub mod marker;
pub mod payload;
pub mod record;
pub mod repair;
pub mod subjects;
pub mod time;
pub mod varint;

pub use error::{Error, Result};
pub use event::{Entitlement, Event, EventData, FieldError, IdentityKind, NewEvent};
pub use ids::{CredentialId, GroupId, IdentityId, Position};
pub use log::{EventLog, EventStream};
pub use repair::{repair, RepairReport};
pub use store::{verify, CheckSession, Faults, Outcome, Replicating, Store, StoreOptions, TornTail, VerifyReport};
pub use subjects::Subject;
pub use time::Timestamp;
/// The type of event ids, re-exported so that users need not depend on `uuid` themselves.
pub use uuid::Uuid;
