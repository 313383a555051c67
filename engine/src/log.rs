//! [`EventLog`]: what the rest of Tenure needs of a log, whatever keeps it.
//!
//! The projections (the runner, index builds, reopen) and the reports read the log only
//! through this trait, so a second backend (PostgreSQL, for deployments that outgrow one
//! machine) can be added without touching them. [`crate::Store`], the embedded log (a
//! file of our own on this machine's disk), is the implementation today. A backend must
//! keep the contract of `ARCHITECTURE.md`: positions dense from 1 in recording order,
//! `recorded_at` never decreasing, an append acknowledged only once durable, idempotency
//! on `(source, source_event_id)`, a rejected batch storing nothing, and a subscription
//! with no gap and no duplicate.

use crate::{Event, NewEvent, Outcome, Result, Subject, Timestamp};
use std::ops::ControlFlow;
use std::pin::Pin;

/// A stream of recorded events, as [`EventLog::subscribe`] returns it.
pub type EventStream = Pin<Box<dyn futures_util::Stream<Item = Result<Event>> + Send + 'static>>;

/// An append-only, hash-chained event log.
pub trait EventLog: Send + Sync {
    /// The last acknowledged position (0 for an empty log).
    fn head(&self) -> u64;
    /// The chain hash of the head, hex.
    fn head_hash(&self) -> String;
    /// Appends a batch atomically; see [`crate::Store::append`].
    fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Outcome>>;
    /// Appends unless the head moved from `expected_head` (optimistic concurrency).
    fn append_expecting(&self, events: Vec<NewEvent>, expected_head: u64) -> Result<Vec<Outcome>>;
    /// Validates a batch as an append would, storing nothing.
    fn check(&self, events: Vec<NewEvent>) -> Result<Vec<Outcome>>;
    /// Visits positions `from..=to` (clamped to the head) in order.
    fn scan_events(&self, from: u64, to: u64, visit: &mut dyn FnMut(Event) -> ControlFlow<()>) -> Result<()>;
    /// Positions of the events that name `subject`, ascending.
    fn positions_of(&self, subject: &Subject) -> Result<Vec<u64>>;
    /// The last position recorded at or before `t`.
    fn position_at_recorded(&self, t: Timestamp) -> Result<u64>;
    /// Every event after `after`, then each new one as it is appended.
    fn subscribe_events(&self, after: u64) -> EventStream;
    /// Where errors about this log should point a user (a directory, a connection name).
    fn location(&self) -> String;
    /// For a handle that reads what another process writes: moves the head on to what
    /// that writer has acknowledged since, and returns it.
    fn refresh(&self) -> Result<u64> {
        Ok(self.head())
    }
}

impl EventLog for crate::Store {
    fn head(&self) -> u64 {
        crate::Store::head(self)
    }
    fn head_hash(&self) -> String {
        crate::Store::head_hash(self)
    }
    fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Outcome>> {
        crate::Store::append(self, events)
    }
    fn append_expecting(&self, events: Vec<NewEvent>, expected_head: u64) -> Result<Vec<Outcome>> {
        crate::Store::append_expecting(self, events, expected_head)
    }
    fn check(&self, events: Vec<NewEvent>) -> Result<Vec<Outcome>> {
        crate::Store::check(self, events)
    }
    fn scan_events(&self, from: u64, to: u64, visit: &mut dyn FnMut(Event) -> ControlFlow<()>) -> Result<()> {
        crate::Store::scan(self, from, to, visit)
    }
    fn positions_of(&self, subject: &Subject) -> Result<Vec<u64>> {
        crate::Store::positions_of(self, subject)
    }
    fn position_at_recorded(&self, t: Timestamp) -> Result<u64> {
        crate::Store::position_at_recorded(self, t)
    }
    fn subscribe_events(&self, after: u64) -> EventStream {
        Box::pin(crate::Store::subscribe(self, after))
    }
    fn location(&self) -> String {
        self.dir().display().to_string()
    }
    fn refresh(&self) -> Result<u64> {
        crate::Store::refresh(self)
    }
}
