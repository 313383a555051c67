//! The durable append-only log, by concept: the store facade (`store`), recovery (`recovery`,
//! the one owner of the `events.idx` layout), the writer and syncer threads (`writer`,
//! `syncer`), reads and subscriptions (`read`), what they share (`shared`), and `verify`.
//! [`EventLog`] is what the rest of Tenure needs of a log, whatever keeps it.
//!
//! One writer thread owns the file and the validation state; appenders hand it requests
//! through a channel and wait for its answer. The writer takes every request waiting at
//! once (group commit): it validates each, frames its records, writes them all, and hands
//! the group to the syncer, which calls `fdatasync` once for every group written so far,
//! writes the head marker, and only then publishes the new head and answers. Readers use
//! their own file handle and never see a position past the acknowledged head.
//!
//! Recovery (in [`Store::open`]): take the whole batches of the file; damage at or before
//! the acknowledged head (`crate::marker`) is refused, naming the position; a torn tail
//! past it is moved to the quarantine and cut by the writer's open, ignored by a reader's.

use crate::error::{Error, Result};
use crate::event::{Event, EventData, FieldError, NewEvent};
use crate::format::{self, Hash, ScanStop, Scanner, GENESIS, HEADER_LEN};
use crate::ids::Position;
use crate::maps::{Map, Set};
use crate::marker::{self, Marker};
use crate::subjects::{Subject, SubjectIndex};
use crate::time::Timestamp;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

/// The most events one append may carry.
mod open;
mod read;
mod recovery;
mod saved;
mod shared;
mod store;
mod syncer;
mod validate;
mod verify;
mod writer;

pub(crate) use self::read::*;
pub(crate) use self::recovery::*;
pub(crate) use self::saved::Saved;
pub use self::saved::{saved_state_head, SAVE_AFTER};
pub(crate) use self::shared::*;
pub use self::store::*;
pub(crate) use self::syncer::*;
pub use self::validate::CheckSession;
pub(crate) use self::validate::*;
pub use self::verify::*;
pub(crate) use self::writer::*;
pub(crate) use crate::files::*;
pub use crate::files::{INDEX_FILE, LOCK_FILE, LOG_FILE, STATE_FILE};

/// A stream of recorded events, as [`EventLog::subscribe`] returns it.
pub type EventStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Event>> + Send + 'static>>;

/// An append-only, hash-chained event log.
pub trait EventLog: Send + Sync {
    /// The last acknowledged position (0 for an empty log).
    fn head(&self) -> Position;
    /// The chain hash of the head, hex.
    fn head_hash(&self) -> String;
    /// Appends a batch atomically; see [`crate::Store::append`].
    fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Outcome>>;
    /// Appends unless the head moved from `expected_head` (optimistic concurrency).
    fn append_expecting(&self, events: Vec<NewEvent>, expected_head: Position) -> Result<Vec<Outcome>>;
    /// Validates a batch as an append would, storing nothing.
    fn check(&self, events: Vec<NewEvent>) -> Result<Vec<Outcome>>;
    /// Visits positions `from..=to` (clamped to the head) in order.
    fn scan_events(
        &self,
        from: Position,
        to: Position,
        visit: &mut dyn FnMut(Event) -> std::ops::ControlFlow<()>,
    ) -> Result<()>;
    /// Visits the [`crate::format::Head`] of positions `from..=to` (clamped to the head):
    /// what a scan for lags or for one type of event needs, without the bodies. Backends
    /// that can read heads alone override it.
    fn scan_heads(
        &self,
        from: Position,
        to: Position,
        visit: &mut dyn FnMut(crate::format::Head) -> std::ops::ControlFlow<()>,
    ) -> Result<()> {
        self.scan_events(from, to, &mut |e| visit(crate::format::Head::of(&e)))
    }
    /// Positions of the events that name `subject`, ascending.
    fn positions_of(&self, subject: &Subject) -> Result<Vec<Position>>;
    /// The last position recorded at or before `t`.
    fn position_at_recorded(&self, t: Timestamp) -> Result<Position>;
    /// Every event after `after`, then each new one as it is appended.
    fn subscribe_events(&self, after: Position) -> EventStream;
    /// Where errors about this log should point a user (a directory, a connection name).
    fn location(&self) -> String;
    /// For a handle that reads what another process writes: moves the head on to what
    /// that writer has acknowledged since, and returns it.
    fn refresh(&self) -> Result<Position> {
        Ok(self.head())
    }
}

impl EventLog for crate::Store {
    fn head(&self) -> Position {
        crate::Store::head(self)
    }
    fn head_hash(&self) -> String {
        crate::Store::head_hash(self)
    }
    fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Outcome>> {
        crate::Store::append(self, events)
    }
    fn append_expecting(&self, events: Vec<NewEvent>, expected_head: Position) -> Result<Vec<Outcome>> {
        crate::Store::append_expecting(self, events, expected_head)
    }
    fn check(&self, events: Vec<NewEvent>) -> Result<Vec<Outcome>> {
        crate::Store::check(self, events)
    }
    fn scan_events(
        &self,
        from: Position,
        to: Position,
        visit: &mut dyn FnMut(Event) -> std::ops::ControlFlow<()>,
    ) -> Result<()> {
        crate::Store::scan(self, from, to, visit)
    }
    fn scan_heads(
        &self,
        from: Position,
        to: Position,
        visit: &mut dyn FnMut(crate::format::Head) -> std::ops::ControlFlow<()>,
    ) -> Result<()> {
        crate::Store::scan_raw(self, from, to, |position, payload| {
            let head = crate::format::decode_head(payload).map_err(|reason| crate::Error::Corrupt {
                position: position.get(),
                reason: format!("undecodable record: {reason}"),
            })?;
            Ok(visit(head))
        })
    }
    fn positions_of(&self, subject: &Subject) -> Result<Vec<Position>> {
        crate::Store::positions_of(self, subject)
    }
    fn position_at_recorded(&self, t: Timestamp) -> Result<Position> {
        crate::Store::position_at_recorded(self, t)
    }
    fn subscribe_events(&self, after: Position) -> EventStream {
        Box::pin(crate::Store::subscribe(self, after))
    }
    fn location(&self) -> String {
        self.dir().display().to_string()
    }
    fn refresh(&self) -> Result<Position> {
        crate::Store::refresh(self)
    }
}
