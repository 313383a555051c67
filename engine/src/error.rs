//! The engine's one error type. Each variant names the position, field or file at fault.

use crate::event::FieldError;
use crate::ids::Position;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event of an append was refused; nothing of its batch was stored.
    #[error("event {index} of the batch: {error}")]
    Rejected {
        /// Index of the event in the batch, from 0.
        index: usize,
        error: FieldError,
    },
    /// The append stated the head it expected and the log had moved.
    #[error("conflict: expected the log head at position {expected}, it is at {actual}")]
    Conflict { expected: Position, actual: Position },
    /// A batch larger than the engine's limit.
    #[error("batch of {len} events is larger than the limit of {limit}")]
    BatchTooLarge { len: usize, limit: usize },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes that do not read back as what was written.
    #[error("position {position}: {reason} (run `tenure verify`)")]
    Corrupt { position: u64, reason: String },
    #[error("{path}: not a Tenure log ({reason})")]
    NotALog { path: PathBuf, reason: String },
    /// An earlier write or sync failed; the store refuses further appends until reopened,
    /// since the disk may not hold what memory believes.
    #[error("the store is closed after an I/O failure: {0}")]
    Poisoned(String),
    #[error("{path}: the store is in use by another process")]
    Locked { path: PathBuf },
    #[error("the store is closed")]
    Closed,
    /// An append to a store opened with `Store::open_read_only`.
    #[error("the store was opened read-only")]
    ReadOnly,
    #[error("position {0} is not in the log")]
    NoSuchPosition(Position),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
