//! The [`Projection`] trait and the [`Runner`] that feeds a projection from its checkpoint.
//!
//! A projection's state and its checkpoint (the last position it reflects) are written
//! together in one atomic sled batch. After a crash the runner loads the pair and
//! replays the log from the checkpoint: no event is applied twice, none is skipped. A
//! checkpoint only ever names a position read from the log, so it cannot point past it.

use crate::error::ProjectionError;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tenure_engine::{Event, EventLog};

/// A read model fed by the log, in position order, each event once.
pub trait Projection {
    /// A stable name, the key of its checkpoint and state.
    fn name(&self) -> &str;
    /// Takes the next event into the state.
    fn apply(&mut self, event: &Event);
    /// The state to persist beside the checkpoint.
    fn save(&self) -> Vec<u8>;
    /// Replaces the state with a saved one.
    fn load(&mut self, bytes: &[u8]) -> Result<(), String>;
}

/// Feeds `apply` the events `from..=to` in position order. Long ranges are decoded on a
/// second thread, in batches, so that decoding and applying overlap: an index build runs
/// at the pace of the slower of the two rather than of their sum. `apply` may take parts
/// out of each event (the event is dropped afterwards, on the decoding thread).
pub fn replay(
    store: &dyn EventLog,
    from: u64,
    to: u64,
    mut apply: impl FnMut(&mut Event),
) -> Result<(), ProjectionError> {
    use std::ops::ControlFlow::{Break, Continue};
    const BATCH: usize = 4096;
    if to < from {
        return Ok(());
    }
    if to - from < 4 * BATCH as u64 {
        store.scan_events(from, to, &mut |mut event| {
            apply(&mut event);
            Continue(())
        })?;
        return Ok(());
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Event>>(8);
    // Applied batches go back to the decoding thread, which drops their events: freeing
    // memory on the thread that allocated it is cheaper, and it is off the applying one.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Vec<Event>>();
    std::thread::scope(|scope| {
        let decode = move || {
            let mut batch = Vec::with_capacity(BATCH);
            let result = store.scan_events(from, to, &mut |event| {
                batch.push(event);
                if batch.len() == BATCH {
                    let next = match done_rx.try_recv() {
                        Ok(mut spent) => {
                            spent.clear();
                            spent
                        }
                        Err(_) => Vec::with_capacity(BATCH),
                    };
                    if tx.send(std::mem::replace(&mut batch, next)).is_err() {
                        return Break(());
                    }
                }
                Continue(())
            });
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
            result
        };
        let decoder = std::thread::Builder::new()
            .name("tenure-decode".into())
            .spawn_scoped(scope, decode)
            .map_err(|e| tenure_engine::Error::Io { path: store.location().into(), source: e })?;
        for mut batch in rx {
            for event in &mut batch {
                apply(event);
            }
            let _ = done_tx.send(batch);
        }
        match decoder.join() {
            Ok(result) => result.map_err(ProjectionError::from),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Where [`open_access_index`] keeps the index of a store, inside its data directory.
pub const ACCESS_INDEX_FILE: &str = "access.index";

/// The access index is rewritten when this many events were applied since its file.
pub const REWRITE_AFTER: u64 = 50_000;

/// The access index of `store`, kept in the file at `path`: maps the file, applies the
/// events recorded since it was written, and rewrites it (atomically) when those are
/// `REWRITE_AFTER` or more, so that the next process starts from a short tail.
///
/// The file is derived data: one that does not read back (a torn or altered file) is
/// rebuilt from the log. One that is ahead of the log is an error, as for checkpoints.
pub fn open_access_index(store: &dyn EventLog, path: &Path) -> Result<crate::AccessIndex, ProjectionError> {
    open_access_index_with(store, path, false, &mut |_| {})
}

/// [`open_access_index`], telling `note` what a user should hear of: a damaged index
/// file rebuilt from the log, or a rebuilt index that could not be written (read-only
/// media: the answer then comes from memory). With `fresh`, the file is not believed
/// at all (a query found part of it damaged) and the index is built from the log.
///
/// Several processes may do this at once: each writes a file of its own and renames it
/// into place, so every reader maps a whole file, older or newer.
pub fn open_access_index_with(
    store: &dyn EventLog,
    path: &Path,
    fresh: bool,
    note: &mut dyn FnMut(String),
) -> Result<crate::AccessIndex, ProjectionError> {
    let mut rebuilt = fresh;
    let mut index = if fresh {
        crate::AccessIndex::new()
    } else {
        match crate::AccessIndex::open_file(path) {
            Ok(index) => index,
            Err(e) if path.exists() => {
                note(format!("{e}; rebuilt from the log"));
                rebuilt = true;
                crate::AccessIndex::new()
            }
            Err(_) => crate::AccessIndex::new(),
        }
    };
    let mut head = store.head();
    if index.head() > head {
        // Written by a process that saw more of the log than this one's view of it.
        head = store.refresh()?;
    }
    if index.head() > head {
        return Err(ProjectionError::CheckpointAhead {
            name: path.display().to_string(),
            checkpoint: index.head(),
            head,
        });
    }
    index.reserve(head - index.head());
    replay(store, index.head() + 1, head, |event| index.apply(event))?;
    if rebuilt || index.tail_len() >= REWRITE_AFTER {
        match index.write_file(path) {
            Ok(()) => {
                // Another process may have renamed its own file in since: map whichever
                // is there, and bring it to this head; keep the one in memory if that
                // file is ahead of this view of the log or does not read back.
                if let Ok(mut mapped) = crate::AccessIndex::open_file(path) {
                    if mapped.head() <= head {
                        replay(store, mapped.head() + 1, head, |event| mapped.apply(event))?;
                        index = mapped;
                    }
                }
            }
            // A derived file that cannot be written (read-only media, a full disk) is
            // only a cost for the next process.
            Err(e) if rebuilt => {
                note(format!("{}: not rewritten ({e}); this answer comes from memory", path.display()))
            }
            Err(_) => {}
        }
    }
    Ok(index)
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
    pub fn position(&self, name: &str) -> Result<u64, ProjectionError> {
        Ok(self.meta(name)?.map(|m| m.position).unwrap_or(0))
    }

    fn meta(&self, name: &str) -> Result<Option<Meta>, ProjectionError> {
        match self.db.get(Self::meta_key(name))? {
            None => Ok(None),
            Some(v) => rmp_serde::from_slice(&v)
                .map(Some)
                .map_err(|e| ProjectionError::BadState { name: name.to_string(), reason: e.to_string() }),
        }
    }

    /// Loads the saved state into `p` and returns its checkpoint (0: nothing saved).
    pub fn load<P: Projection>(&self, p: &mut P) -> Result<u64, ProjectionError> {
        let name = p.name().to_string();
        let Some(meta) = self.meta(&name)? else { return Ok(0) };
        let mut bytes = Vec::with_capacity(meta.len as usize);
        for i in 0..meta.chunks {
            let chunk = self.db.get(Self::chunk_key(&name, i))?.ok_or_else(|| ProjectionError::BadState {
                name: name.clone(),
                reason: format!("chunk {i} missing"),
            })?;
            bytes.extend_from_slice(&chunk);
        }
        if bytes.len() as u64 != meta.len {
            return Err(ProjectionError::BadState { name, reason: "length mismatch".into() });
        }
        p.load(&bytes).map_err(|reason| ProjectionError::BadState { name, reason })?;
        Ok(meta.position)
    }

    /// Saves the state of `p` as reflecting `position`, atomically, and flushes.
    pub fn save<P: Projection>(&self, p: &P, position: u64) -> Result<(), ProjectionError> {
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
        let meta = Meta { position, chunks, len: bytes.len() as u64 };
        let meta = rmp_serde::to_vec(&meta).expect("plain data");
        batch.insert(Self::meta_key(name), meta);
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}

/// Feeds a projection from its checkpoint: catch up from the log, then follow it.
pub struct Runner<'a, P: Projection> {
    store: &'a dyn EventLog,
    checkpoints: &'a Checkpoints,
    projection: P,
    position: u64,
    /// Save after this many events (and at the end of each catch-up).
    pub save_every: u64,
}

impl<'a, P: Projection> Runner<'a, P> {
    /// Loads the projection's saved state, if any, and checks its checkpoint against the log.
    pub fn new(
        store: &'a dyn EventLog,
        checkpoints: &'a Checkpoints,
        mut projection: P,
    ) -> Result<Self, ProjectionError> {
        let position = checkpoints.load(&mut projection)?;
        let head = store.head();
        if position > head {
            return Err(ProjectionError::CheckpointAhead {
                name: projection.name().to_string(),
                checkpoint: position,
                head,
            });
        }
        Ok(Runner { store, checkpoints, projection, position, save_every: 1_000_000 })
    }

    /// The last position the projection reflects.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn projection(&self) -> &P {
        &self.projection
    }

    pub fn into_projection(self) -> P {
        self.projection
    }

    /// Applies every event after the checkpoint up to the head, saving as it goes and at
    /// the end (when anything was applied). Returns the new position.
    pub fn catch_up(&mut self) -> Result<u64, ProjectionError> {
        let head = self.store.head();
        let start = self.position;
        let mut since_save = 0u64;
        let mut failure = None;
        let (projection, position, checkpoints, save_every) =
            (&mut self.projection, &mut self.position, self.checkpoints, self.save_every);
        self.store.scan_events(start + 1, head, &mut |event| {
            debug_assert_eq!(event.position.get(), *position + 1);
            projection.apply(&event);
            *position = event.position.get();
            since_save += 1;
            if since_save >= save_every {
                since_save = 0;
                if let Err(e) = checkpoints.save(projection, *position) {
                    failure = Some(e);
                    return std::ops::ControlFlow::Break(());
                }
            }
            std::ops::ControlFlow::Continue(())
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if self.position > start {
            self.checkpoints.save(&self.projection, self.position)?;
        }
        Ok(self.position)
    }

    /// Catches up, then follows the live subscription until the log reaches `until`
    /// (or forever with `None`), saving every `save_every` events and at the end.
    pub async fn follow(&mut self, until: Option<u64>) -> Result<u64, ProjectionError> {
        self.catch_up()?;
        let mut stream = self.store.subscribe_events(self.position);
        let mut since_save = 0;
        while until.is_none_or(|u| self.position < u) {
            let Some(event) = stream.next().await else { break };
            let event = event?;
            self.projection.apply(&event);
            self.position = event.position.get();
            since_save += 1;
            if since_save >= self.save_every {
                since_save = 0;
                self.checkpoints.save(&self.projection, self.position)?;
            }
        }
        self.checkpoints.save(&self.projection, self.position)?;
        Ok(self.position)
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

    fn load(&mut self, bytes: &[u8]) -> Result<(), String> {
        *self = crate::AccessIndex::from_bytes(bytes)?;
        Ok(())
    }
}
