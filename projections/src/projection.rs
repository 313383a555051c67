//! The [`Projection`] trait and the [`Runner`] that feeds a projection from its checkpoint.
//!
//! A projection's state and its checkpoint (the last position it reflects) are written
//! together in one atomic sled batch. After a crash the runner loads the pair and
//! replays the log from the checkpoint: no event is applied twice, none is skipped. A
//! checkpoint only ever names a position read from the log, so it cannot point past it.

use crate::error::ProjectionError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tenure_engine::{Event, Position};

/// A read model fed by the log, in position order, each event once.
pub trait Projection {
    /// A stable name, the key of its checkpoint and state.
    fn name(&self) -> &str;
    /// Takes the next event into the state.
    fn apply(&mut self, event: &Event);
    /// The state to persist beside the checkpoint.
    fn save(&self) -> Vec<u8>;
    /// Why a saved state does not load (a decoding error of the projection's own format).
    type LoadError: std::error::Error + Send + Sync + 'static;
    /// Replaces the state with a saved one.
    fn load(&mut self, bytes: &[u8]) -> Result<(), Self::LoadError>;
}

/// Saved states are cut into pieces of this size (sled prefers values well under its
/// segment size).
const CHUNK_BYTES: usize = 1 << 20;

#[derive(Serialize, Deserialize)]
struct Meta {
    position: u64,
    chunks: u32,
    len: u64,
}

/// Checkpoints and saved states of projections, in a sled database.
pub struct Checkpoints {
    db: sled::Db,
}

impl Checkpoints {
    /// Opens (creating) the projection database in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, ProjectionError> {
        let db = sled::Config::new().path(dir.as_ref()).mode(sled::Mode::HighThroughput).open()?;
        Ok(Checkpoints { db })
    }

    fn meta_key(name: &str) -> Vec<u8> {
        format!("p/{name}/meta").into_bytes()
    }

    fn chunk_key(name: &str, i: u32) -> Vec<u8> {
        format!("p/{name}/c/{i:08}").into_bytes()
    }

    /// The checkpoint of `name`, 0 when it has none.
    pub fn position(&self, name: &str) -> Result<Position, ProjectionError> {
        Ok(Position(self.meta(name)?.map(|m| m.position).unwrap_or(0)))
    }

    fn meta(&self, name: &str) -> Result<Option<Meta>, ProjectionError> {
        match self.db.get(Self::meta_key(name))? {
            None => Ok(None),
            Some(v) => rmp_serde::from_slice(&v)
                .map(Some)
                .map_err(|e| ProjectionError::BadState { name: name.to_string(), reason: Box::new(e) }),
        }
    }

    /// Loads the saved state into `p` and returns its checkpoint (0: nothing saved).
    pub fn load<P: Projection>(&self, p: &mut P) -> Result<Position, ProjectionError> {
        let name = p.name().to_string();
        let Some(meta) = self.meta(&name)? else { return Ok(Position(0)) };
        let mut bytes = Vec::with_capacity(meta.len as usize);
        for i in 0..meta.chunks {
            let chunk = self.db.get(Self::chunk_key(&name, i))?.ok_or_else(|| ProjectionError::BadState {
                name: name.clone(),
                reason: format!("chunk {i} missing").into(),
            })?;
            bytes.extend_from_slice(&chunk);
        }
        if bytes.len() as u64 != meta.len {
            return Err(ProjectionError::BadState { name, reason: "length mismatch".into() });
        }
        p.load(&bytes).map_err(|e| ProjectionError::BadState { name, reason: Box::new(e) })?;
        Ok(Position(meta.position))
    }

    /// Saves the state of `p` as reflecting `position`, atomically, and flushes.
    pub fn save<P: Projection>(&self, p: &P, position: Position) -> Result<(), ProjectionError> {
        let name = p.name();
        let bytes = p.save();
        let old_chunks = self.meta(name)?.map(|m| m.chunks).unwrap_or(0);
        let mut batch = sled::Batch::default();
        let mut chunks = 0u32;
        for (i, piece) in bytes.chunks(CHUNK_BYTES).enumerate() {
            batch.insert(Self::chunk_key(name, i as u32), piece);
            chunks += 1;
        }
        for i in chunks..old_chunks {
            batch.remove(Self::chunk_key(name, i));
        }
        let meta = Meta { position: position.get(), chunks, len: bytes.len() as u64 };
        let meta = rmp_serde::to_vec(&meta).expect("plain data");
        batch.insert(Self::meta_key(name), meta);
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}

impl Projection for crate::AccessIndex {
    fn name(&self) -> &str {
        "access-index"
    }

    fn apply(&mut self, event: &Event) {
        crate::AccessIndex::apply(self, event)
    }

    fn save(&self) -> Vec<u8> {
        self.to_bytes()
    }

    type LoadError = crate::CorruptIndex;

    fn load(&mut self, bytes: &[u8]) -> Result<(), crate::CorruptIndex> {
        *self = crate::AccessIndex::from_bytes(bytes)?;
        Ok(())
    }
}
