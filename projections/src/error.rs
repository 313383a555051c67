//! The crate's errors, one per kind of operation: an index file that does not read back
//! ([`CorruptIndex`], always naming its file), writing one ([`WriteError`]), a query
//! ([`QueryError`]), feeding or opening a projection ([`ProjectionError`]). A leaf.

use tenure_engine::{Position, Timestamp};

/// A frozen index file that does not read back as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access index file {path}: {reason}")]
pub struct CorruptIndex {
    pub path: String,
    pub reason: String,
}

/// Why writing an index file failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Corrupt(#[from] CorruptIndex),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown identity '{0}': no event names it")]
    UnknownIdentity(String),
    #[error("empty time window: {from} is not before {to}")]
    EmptyWindow { from: Timestamp, to: Timestamp },
    #[error(transparent)]
    Corrupt(#[from] CorruptIndex),
    /// A report that reads the log besides the index (a leave's source) could not.
    #[error("reading the log: {0}")]
    Log(String),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    #[error(transparent)]
    Engine(#[from] tenure_engine::Error),
    #[error("projection store: {0}")]
    Sled(#[from] sled::Error),
    #[error("projection '{name}': saved state does not load: {reason}")]
    BadState { name: String, reason: Box<dyn std::error::Error + Send + Sync> },
    #[error("projection '{name}': checkpoint {checkpoint} is past the log head {head}; was the log replaced?")]
    CheckpointAhead { name: String, checkpoint: Position, head: Position },
    #[error("writing the access index: {0}")]
    WriteIndex(#[from] WriteError),
}
