//! The store facade: open (the writer's, with recovery, and a reader's), append, check,
//! reads, subscriptions, close. The work is done by the modules beside it.

#[allow(unused_imports)]
use super::*;

/// The most events one append may carry.
pub const MAX_BATCH_EVENTS: usize = 1 << 20;

/// The most events the writer gathers into one sync (group commit). A single batch larger
/// than this is still written whole.
pub const MAX_GROUP_EVENTS: usize = 1 << 16;

/// The answer for one event of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded at this position.
    Stored(Position),
    /// Its `(source, source_event_id)` was already recorded, at this position.
    Duplicate(Position),
}

impl Outcome {
    pub fn position(self) -> Position {
        match self {
            Outcome::Stored(p) | Outcome::Duplicate(p) => p,
        }
    }
}

/// A replicated batch handed to the writer ([`Store::replicate_start`]).
#[must_use = "a batch is acknowledged only by its wait"]
pub struct Replicating {
    last: Position,
    reply: Option<mpsc::Receiver<Result<Vec<Outcome>>>>,
}

impl Replicating {
    /// Waits until the batch is on the device; returns its last position.
    pub fn wait(self) -> Result<Position> {
        if let Some(rx) = self.reply {
            rx.recv().map_err(|_| Error::Closed)??;
        }
        Ok(self.last)
    }
}

/// Options of [`Store::open_with`].
pub struct StoreOptions {
    /// The engine clock, which stamps `recorded_at`. Replaceable for tests.
    pub clock: Box<dyn Fn() -> Timestamp + Send>,
    /// Call `fdatasync` before acknowledging. Only benchmarks that measure the cost of
    /// syncing turn this off; a store opened without it makes no durability promise.
    pub sync: bool,
    /// Failures to inject into the log's writes and syncs (tests of the failure paths:
    /// a failed, short or ENOSPC write, a failed sync). `None` in every real use.
    pub faults: Option<Arc<dyn Faults>>,
    /// A writer that closes having taken in this many events or more past its
    /// `writer.state` writes a new one (see [`STATE_FILE`]). Tests lower it.
    pub save_state_after: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { clock: Box::new(Timestamp::now), sync: true, faults: None, save_state_after: SAVE_AFTER }
    }
}

/// A fault-injecting file layer under the writer: each method is asked before the real
/// operation and may make it fail.
pub trait Faults: Send + Sync {
    /// Before writing a group of `len` bytes: `Some((n, e))` writes only the first `n`
    /// bytes, then fails with `e` (a short write, ENOSPC part way, an EIO).
    fn write(&self, len: usize) -> Option<(usize, std::io::Error)>;
    /// Before a sync: `Some(e)` fails it (the data may or may not be on the device).
    fn sync(&self) -> Option<std::io::Error>;
}

/// The append-only event log of one data directory.
pub struct Store {
    pub(super) shared: Arc<Shared>,
    pub(super) sender: Mutex<Option<mpsc::Sender<Request>>>,
    pub(super) writer: Mutex<Option<JoinHandle<()>>>,
    /// Held (an exclusive advisory lock on `LOCK`) while a writing store is open; `None`
    /// for a read-only handle, which takes no lock.
    pub(super) lock: Option<File>,
}

impl Store {
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The last acknowledged position (0 for an empty log).
    pub fn head(&self) -> Position {
        Position(self.shared.head.load(Ordering::Acquire))
    }

    /// The chain hash of the head, hex.
    pub fn head_hash(&self) -> String {
        match self.shared.head_hash.lock() {
            Ok(h) => format::hex(&h),
            Err(p) => format::hex(&p.into_inner()),
        }
    }

    pub(crate) fn submit(
        &self,
        events: Vec<NewEvent>,
        expected_head: Option<u64>,
        dry_run: bool,
        reply: Reply,
    ) -> Result<()> {
        self.submit_in(Batch::whole(events), expected_head, dry_run, None, reply)
    }

    pub(crate) fn submit_in(
        &self,
        events: Batch,
        expected_head: Option<u64>,
        dry_run: bool,
        session: Option<Arc<Mutex<CheckSession>>>,
        reply: Reply,
    ) -> Result<()> {
        self.submit_request(Request { events, expected_head, dry_run, session, recorded: None, reply })
    }

    fn submit_request(&self, request: Request) -> Result<()> {
        let len = request.events.get().len();
        if len > MAX_BATCH_EVENTS {
            return Err(Error::BatchTooLarge { len, limit: MAX_BATCH_EVENTS });
        }
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let guard = self.sender.lock().map_err(|_| Error::Closed)?;
        let sender = guard.as_ref().ok_or(Error::Closed)?;
        sender.send(request).map_err(|_| Error::Closed)
    }

    /// Appends a batch atomically and returns, for each event, where it is stored. Returns
    /// after the batch is synced to the device. A rejected batch stores nothing.
    pub fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Outcome>> {
        self.append_inner(events, None)
    }

    /// As [`Store::append`], but fails with [`Error::Conflict`] unless the head is
    /// `expected_head` when the batch is written (optimistic concurrency).
    pub fn append_expecting(&self, events: Vec<NewEvent>, expected_head: Position) -> Result<Vec<Outcome>> {
        self.append_inner(events, Some(expected_head.get()))
    }

    pub(crate) fn append_inner(&self, events: Vec<NewEvent>, expected_head: Option<u64>) -> Result<Vec<Outcome>> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(events, expected_head, false, Reply::Blocking(tx))?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// Appends, as one batch, events another store recorded (a replica following it):
    /// each keeps its id and `recorded_at` and must land at the position it has there, so
    /// the records' payloads, and with them the chain, equal the source's. The batch is
    /// validated like any append, and refused whole when its first position is not the
    /// head's next ([`Error::Conflict`]), its positions are not dense, an event repeats an
    /// idempotency key already recorded, or its record times go back. Returns the new head
    /// once the batch is on the device.
    pub fn replicate(&self, events: Vec<Event>) -> Result<Position> {
        self.replicate_start(events)?.wait()
    }

    /// As [`Store::replicate`], but returns once the batch is handed to the writer: the
    /// next batch can be handed on while this one is written and synced (a follower
    /// catching up keeps one in flight). The batch is acknowledged, and its events safe,
    /// only when [`Replicating::wait`] returns; batches are written in the order started,
    /// and one refused fails its `wait` (the next then fails with [`Error::Conflict`]).
    pub fn replicate_start(&self, events: Vec<Event>) -> Result<Replicating> {
        let Some(first) = events.first().map(|e| e.position.get()) else {
            return Ok(Replicating { last: self.head(), reply: None });
        };
        for (i, e) in events.iter().enumerate() {
            if e.position.get() != first.saturating_add(i as u64) || first == 0 {
                let reason = format!(
                    "position {} where {} was due: a replica's positions are dense",
                    e.position,
                    first + i as u64
                );
                return Err(Error::Rejected { index: i, error: FieldError::new("position", reason) });
            }
        }
        let last = Position(first + events.len() as u64 - 1);
        let recorded = events.iter().map(|e| e.recorded_at).collect();
        let events = events
            .into_iter()
            .map(|e| NewEvent {
                data: e.data,
                effective_at: e.effective_at,
                id: Some(e.id),
                source: e.source,
                source_event_id: e.source_event_id,
                actor: e.actor,
                raw: e.raw,
            })
            .collect();
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit_request(Request {
            events: Batch::whole(events),
            expected_head: Some(first - 1),
            dry_run: false,
            session: None,
            recorded: Some(recorded),
            reply: Reply::Blocking(tx),
        })?;
        Ok(Replicating { last, reply: Some(rx) })
    }

    /// The chain hash (hex) after `position`, which must be published.
    pub fn chain_hash_at(&self, position: Position) -> Result<String> {
        Ok(format::hex(&read::chain_at(&self.shared, position.get())?))
    }

    /// Validates a batch as [`Store::append`] would, without storing it: the same errors,
    /// and the positions it would get if appended now. Lets a caller check a whole file
    /// before appending it in several batches.
    pub fn check(&self, events: Vec<NewEvent>) -> Result<Vec<Outcome>> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(events, None, true, Reply::Blocking(tx))?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// Validates a batch as [`Store::check`] does, but after the batches checked before it
    /// in `session`, as if they had been stored; when it passes, it joins the session.
    /// Lets a caller validate a file too large for one batch, part by part, before
    /// storing any of it. The session keeps, per event checked, the names it creates and
    /// its idempotency fingerprint (16 bytes), nothing else.
    pub fn check_in(&self, session: &Arc<Mutex<CheckSession>>, events: Vec<NewEvent>) -> Result<Vec<Outcome>> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit_in(Batch::whole(events), None, true, Some(session.clone()), Reply::Blocking(tx))?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// [`Store::check_in`] of `events[range]`, sharing the list instead of copying it: a
    /// caller that drops rejected events one by one checks what follows each without a
    /// copy of the rest (an error's index is relative to `range.start`).
    pub fn check_range_in(
        &self,
        session: &Arc<Mutex<CheckSession>>,
        events: &Arc<Vec<NewEvent>>,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<Outcome>> {
        let (tx, rx) = mpsc::sync_channel(1);
        let batch = Batch { events: events.clone(), range };
        self.submit_in(batch, None, true, Some(session.clone()), Reply::Blocking(tx))?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// The async form of [`Store::append`], for tokio tasks: many of them appending at
    /// once share syncs.
    pub async fn append_async(&self, events: Vec<NewEvent>, expected_head: Option<Position>) -> Result<Vec<Outcome>> {
        let (tx, rx) = oneshot::channel();
        self.submit(events, expected_head.map(Position::get), false, Reply::Async(tx))?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Reads one event.
    pub fn read(&self, position: Position) -> Result<Event> {
        let mut out = self.read_range(position, position)?;
        out.pop().ok_or(Error::NoSuchPosition(position))
    }

    /// Reads positions `from..=to`, clamped to the head.
    pub fn read_range(&self, from: Position, to: Position) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        self.scan(from, to, |e| {
            out.push(e);
            std::ops::ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Visits positions `from..=to` (clamped to the head) in order, reading the file in
    /// large sequential chunks.
    pub fn scan(
        &self,
        from: Position,
        to: Position,
        mut visit: impl FnMut(Event) -> std::ops::ControlFlow<()>,
    ) -> Result<()> {
        self.scan_raw(from, to, |position, payload| {
            let event = format::decode_event(payload).map_err(|reason| Error::Corrupt {
                position: position.get(),
                reason: format!("undecodable record: {reason}"),
            })?;
            Ok(visit(event))
        })
    }

    /// Visits the raw payloads of positions `from..=to`.
    pub fn scan_raw(
        &self,
        from: Position,
        to: Position,
        mut visit: impl FnMut(Position, &[u8]) -> Result<std::ops::ControlFlow<()>>,
    ) -> Result<()> {
        scan_shared(&self.shared, from.get(), to.get(), |p, payload, _| visit(Position(p), payload))
    }

    /// Visits the records of positions `from..=to` as stored: each payload with the chain
    /// hash that ends its record. What a follower is sent, byte for byte.
    pub fn scan_records(
        &self,
        from: Position,
        to: Position,
        mut visit: impl FnMut(Position, &[u8], &crate::chain::Hash) -> Result<std::ops::ControlFlow<()>>,
    ) -> Result<()> {
        scan_shared(&self.shared, from.get(), to.get(), |p, payload, chain| visit(Position(p), payload, chain))
    }

    /// Positions of the events that name `subject` (as identity, member, owner or group),
    /// ascending, up to the head. A secondary index: the first call in a process loads its
    /// snapshot and reads only the log after it (`crate::subjects`).
    pub fn positions_of(&self, subject: &Subject) -> Result<Vec<Position>> {
        let head = self.head().get();
        {
            let index = self.shared.subjects.read().map_err(|_| Error::Closed)?;
            if index.is_loaded() {
                return Ok(index.positions(subject, head).into_iter().map(Position).collect());
            }
        }
        let mut index = self.shared.subjects.write().map_err(|_| Error::Closed)?;
        if !index.is_loaded() {
            let shared = &self.shared;
            let chain_at = |position: u64| chain_at(shared, position).ok();
            index.load(&shared.dir, shared.open_head, &chain_at, |from, to, visit| {
                scan_shared(shared, from, to, |position, payload, _| {
                    let event = format::decode_event(payload).map_err(|reason| Error::Corrupt {
                        position,
                        reason: format!("undecodable record: {reason}"),
                    })?;
                    visit(position, &event.data);
                    Ok(std::ops::ControlFlow::Continue(()))
                })
            })?;
        }
        Ok(index.positions(subject, head).into_iter().map(Position).collect())
    }

    /// The events that name `subject`, from position `from` on.
    pub fn read_subject(&self, subject: &Subject, from: Position) -> Result<Vec<Event>> {
        let positions = self.positions_of(subject)?;
        let start = positions.partition_point(|&p| p < from);
        positions[start..].iter().map(|&p| self.read(p)).collect()
    }

    /// The greatest position recorded at or before `t` (0 if none): turns "as known at a
    /// recorded time" into "as known at a position". `recorded_at` never decreases along
    /// the log, so this is a binary search.
    pub fn position_at_recorded(&self, t: Timestamp) -> Result<Position> {
        let (mut lo, mut hi) = (0u64, self.head().get());
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.read(Position(mid))?.recorded_at <= t {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok(Position(lo))
    }

    /// A stream of every event after `after`, then of new events as they are appended:
    /// no gap and no duplicate across the switch, since both come from the log by position.
    pub fn subscribe(&self, after: Position) -> impl futures_util::Stream<Item = Result<Event>> + Send + 'static {
        let shared = self.shared.clone();
        let rx = shared.head_tx.subscribe();
        let sub = Subscription { shared, rx, cursor: after.get(), buffer: std::collections::VecDeque::new() };
        futures_util::stream::unfold(sub, |mut sub| async move {
            let item = sub.next().await?;
            Some((item, sub))
        })
    }

    /// Bytes the log occupies on disk.
    pub fn disk_bytes(&self) -> u64 {
        std::fs::metadata(&self.shared.log_path).map(|m| m.len()).unwrap_or(0)
    }

    /// Stops the writer after the requests already sent. Called by `Drop` too.
    pub fn close(&self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        if let Ok(mut w) = self.writer.lock() {
            if let Some(handle) = w.take() {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}
