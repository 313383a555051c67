//! The durable append-only log.
//!
//! One writer thread owns the file and the validation state; appenders hand it requests
//! through a channel and wait for its answer. The writer takes every request waiting at
//! once (group commit): it validates each, frames its records, writes them all, calls
//! `fdatasync` once, and only then publishes the new head and answers. Readers use their
//! own file handle and never see a position before it is synced.
//!
//! Recovery (in [`Store::open`]): scan the file, cut a torn tail (a record that reaches
//! past the end, or bad records with no good record after them, or a batch whose last
//! record is missing), refuse to open over corruption in the middle, rebuild the
//! in-memory state.

use crate::error::{Error, Result};
use crate::event::{Event, EventData, FieldError, NewEvent};
use crate::format::{self, Hash, ScanStop, Scanner, GENESIS, HEADER_LEN};
use crate::hash::{Map, Set};
use crate::ids::Position;
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
pub const MAX_BATCH_EVENTS: usize = 1 << 20;
/// The most events the writer gathers into one sync (group commit). A single batch larger
/// than this is still written whole.
pub const MAX_GROUP_EVENTS: usize = 1 << 16;

pub const LOG_FILE: &str = "events.log";
pub const LOCK_FILE: &str = "LOCK";
/// End offset of every record, 8 bytes each: lets `open` skip scanning the log.
pub const INDEX_FILE: &str = "events.idx";

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

enum Reply {
    Blocking(mpsc::SyncSender<Result<Vec<Outcome>>>),
    Async(oneshot::Sender<Result<Vec<Outcome>>>),
}

impl Reply {
    fn send(self, answer: Result<Vec<Outcome>>) {
        // An appender that stopped waiting has nobody to tell.
        match self {
            Reply::Blocking(tx) => {
                let _ = tx.send(answer);
            }
            Reply::Async(tx) => {
                let _ = tx.send(answer);
            }
        }
    }
}

struct Request {
    events: Vec<NewEvent>,
    expected_head: Option<u64>,
    /// Validate only: answer what an append would, store nothing.
    dry_run: bool,
    /// With `dry_run`: validate after the events of earlier checks of the same session
    /// (as if they were stored), and add this batch's to it.
    session: Option<Arc<Mutex<CheckSession>>>,
    reply: Reply,
}

/// State readers share with the writer. Everything here describes synced data only.
struct Shared {
    log_path: PathBuf,
    reader: File,
    /// `offsets[p - 1]` is where position `p` starts; the last entry is the end of the
    /// last record. So `offsets.len() == head + 1`.
    offsets: RwLock<Vec<u64>>,
    /// Loaded on the first read by subject (see `crate::subjects`); the writer files its
    /// appends in it either way.
    subjects: RwLock<SubjectIndex>,
    /// The data directory, where the subject index keeps its snapshot.
    dir: PathBuf,
    /// The head when the store was opened: the subject index reads the log up to it, the
    /// writer files everything after it.
    open_head: u64,
    head: AtomicU64,
    head_tx: watch::Sender<u64>,
    head_hash: Mutex<Hash>,
    /// Set by the syncer when a sync failed: the disk may not hold what memory believes,
    /// so every later append fails.
    poisoned: Mutex<Option<String>>,
    /// Things a user should hear of that were not errors (a derived file found damaged
    /// and rebuilt), for [`Store::take_notices`].
    notices: Mutex<Vec<String>>,
}

impl Shared {
    fn new(dir: &Path, path: &Path, offsets: Vec<u64>, chain: Hash) -> Result<Arc<Shared>> {
        let head = offsets.len() as u64 - 1;
        let reader = File::open(path).map_err(|e| Error::io(path, e))?;
        let (head_tx, _) = watch::channel(head);
        Ok(Arc::new(Shared {
            log_path: path.to_path_buf(),
            reader,
            offsets: RwLock::new(offsets),
            subjects: RwLock::new(SubjectIndex::default()),
            dir: dir.to_path_buf(),
            open_head: head,
            head: AtomicU64::new(head),
            head_tx,
            head_hash: Mutex::new(chain),
            poisoned: Mutex::new(None),
            notices: Mutex::new(Vec::new()),
        }))
    }

    /// Marks the store failed: every later append, and every group written but not yet
    /// synced, is answered with this reason.
    fn poison(&self, reason: String) {
        if let Ok(mut p) = self.poisoned.lock() {
            p.get_or_insert(reason);
        }
    }

    /// Why the store failed, if it did.
    fn failure(&self) -> Option<String> {
        self.poisoned.lock().map_or_else(|e| Some(e.to_string()), |p| p.clone())
    }
}

/// Answers every one of `replies` with [`Error::Poisoned`].
fn refuse(replies: impl IntoIterator<Item = Reply>, reason: &str) {
    for reply in replies {
        reply.send(Err(Error::Poisoned(reason.to_string())));
    }
}

/// Validation state, owned by the writer thread.
struct State {
    head: u64,
    chain: Hash,
    last_recorded: Timestamp,
    /// Idempotency keys, by their [`Fingerprints`], and the first position of each.
    dedup: Map<u128, u64>,
    fingerprints: Fingerprints,
    identities: Set<Box<str>>,
    groups: Set<Box<str>>,
    retractions: Set<u64>,
}

impl State {
    fn new() -> Self {
        State {
            head: 0,
            chain: GENESIS,
            last_recorded: Timestamp::MIN,
            dedup: Map::default(),
            fingerprints: Fingerprints::new(),
            identities: Set::default(),
            groups: Set::default(),
            retractions: Set::default(),
        }
    }

    /// Takes a recorded event into the validation state.
    fn apply(&mut self, event: &Event) {
        let key = event.idempotency_key().map(|(s, k)| self.fingerprints.of(s, k));
        self.take(event.position.get(), event.recorded_at, key, &event.data);
    }

    /// Takes an event, given by its parts (its idempotency key as [`Fingerprints::of`]
    /// made it), into the validation state.
    fn take(&mut self, position: u64, recorded_at: Timestamp, key: Option<u128>, data: &EventData) {
        if let Some(key) = key {
            self.dedup.entry(key).or_insert(position);
        }
        match data {
            EventData::IdentityJoined(j) => {
                self.identities.insert(j.identity.as_str().into());
            }
            EventData::GroupCreated(g) => {
                self.groups.insert(g.group.as_str().into());
            }
            EventData::EventRetracted(_) => {
                self.retractions.insert(position);
            }
            _ => {}
        }
        self.head = position;
        self.last_recorded = self.last_recorded.max(recorded_at);
    }
}

/// The events of a file checked part by part with [`Store::check_in`], as the validation
/// of the next part must see them: as if stored after the log's head.
#[derive(Default)]
pub struct CheckSession {
    /// How many of them would be stored.
    stored: u64,
    keys: Map<u128, u64>,
    identities: Set<Box<str>>,
    groups: Set<Box<str>>,
    retractions: Set<u64>,
}

impl CheckSession {
    /// A new session, shared with the writer thread while a part is checked.
    pub fn new() -> Arc<Mutex<CheckSession>> {
        Arc::new(Mutex::new(CheckSession::default()))
    }

    /// How many events of the session's parts would be stored (the rest are duplicates).
    pub fn stored(&self) -> u64 {
        self.stored
    }

    /// Takes a part that passed validation into the session.
    fn take(&mut self, events: &[NewEvent], v: &Validated) {
        for ((event, outcome), key) in events.iter().zip(&v.outcomes).zip(&v.keys) {
            let Outcome::Stored(position) = *outcome else { continue };
            if let Some(key) = key {
                self.keys.entry(*key).or_insert(position.get());
            }
            match &event.data {
                EventData::IdentityJoined(j) => {
                    self.identities.insert(j.identity.as_str().into());
                }
                EventData::GroupCreated(g) => {
                    self.groups.insert(g.group.as_str().into());
                }
                EventData::EventRetracted(_) => {
                    self.retractions.insert(position.get());
                }
                _ => {}
            }
            self.stored += 1;
        }
    }
}

/// Idempotency keys `(source, source_event_id)` as 128-bit fingerprints: two SipHash-1-3
/// with independent random keys (std's `RandomState`), over the length of the source, the
/// source and the event id. The validation state keeps 16 bytes per key instead of a
/// string (a heap allocation and a pointer to follow on every lookup of 10M keys), and a
/// key is hashed once per event. With secret keys drawn per process, a source cannot aim
/// at a collision, and the chance of one by accident among 10M keys is about 10^-25:
/// far below that of an undetected disk error (docs/decisions.md).
struct Fingerprints(std::collections::hash_map::RandomState, std::collections::hash_map::RandomState);

impl Fingerprints {
    fn new() -> Self {
        Fingerprints(Default::default(), Default::default())
    }

    fn of(&self, source: &str, source_event_id: &str) -> u128 {
        use std::hash::{BuildHasher, Hasher};
        let half = |state: &std::collections::hash_map::RandomState| {
            let mut h = state.build_hasher();
            h.write_usize(source.len());
            h.write(source.as_bytes());
            h.write(source_event_id.as_bytes());
            h.finish()
        };
        (u128::from(half(&self.0)) << 64) | u128::from(half(&self.1))
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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { clock: Box::new(Timestamp::now), sync: true, faults: None }
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
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Held (an exclusive advisory lock on `LOCK`) while a writing store is open; `None`
    /// for a read-only handle, which takes no lock.
    lock: Option<File>,
}

/// What the integrity check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Positions checked and found intact.
    pub intact: u64,
    /// The chain hash of the last intact position (hex), which an auditor can note and
    /// compare later.
    pub head_hash: String,
    /// The first position whose stored bytes do not match the chain, and why: damage to
    /// acknowledged evidence.
    pub first_bad: Option<(u64, String)>,
    /// The acknowledged head that the head marker names (`None`: no readable marker).
    pub acknowledged: Option<u64>,
    /// The head marker file exists but neither of its slots reads back.
    pub marker_damaged: bool,
    /// Bytes past the acknowledged head that do not form whole records: a write that
    /// was never acknowledged (a crash or a full disk). Not damage to evidence; the
    /// writer's next open moves them to the quarantine.
    pub torn_tail: Option<TornTail>,
    /// What the check of the offsets file (`events.idx`, derived) against the log found
    /// (`None`: there is none).
    pub offsets_file: Option<String>,
    /// What the check of the subject index snapshot (`subjects.idx`, derived) found.
    pub subjects_file: Option<String>,
}

/// An unacknowledged torn tail, as [`verify`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The first position that does not read back whole.
    pub position: u64,
    pub from_byte: u64,
    pub bytes: u64,
    pub reason: String,
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// Opens (creating if absent) the log file of `dir` and checks its header.
fn open_log_file(dir: &Path) -> Result<(File, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(LOG_FILE);
    let existed = path.exists();
    let mut file =
        OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(|e| Error::io(&path, e))?;
    let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
    if len == 0 {
        file.write_all(&format::header()).map_err(|e| Error::io(&path, e))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        if !existed {
            sync_dir(dir)?;
        }
    } else {
        check_log_header(&file, &path, len)?;
    }
    Ok((file, path))
}

/// Checks the magic bytes and the format version of a log file of `len` bytes.
pub(crate) fn check_log_header(file: &File, path: &Path, len: u64) -> Result<()> {
    let not_a_log = |reason: String| Error::NotALog { path: path.to_path_buf(), reason };
    if len < HEADER_LEN {
        return Err(not_a_log("shorter than its header".into()));
    }
    let mut h = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut h, 0).map_err(|e| Error::io(path, e))?;
    if &h[..8] != format::MAGIC {
        return Err(not_a_log("bad magic bytes".into()));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != format::FORMAT_VERSION {
        return Err(not_a_log(format!("unknown format version {version}")));
    }
    Ok(())
}

impl Store {
    /// Opens the store in `dir`, creating it when absent, and recovers from a crash.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir, StoreOptions::default())
    }

    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        // One writer per store: a second process would interleave records. Readers take
        // no lock (see `open_read_only`).
        let lock = take_writer_lock(&dir)?;
        remove_stale_temporaries(&dir);
        let (file, path) = open_log_file(&dir)?;
        let file_len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let marker = marker::read(&dir).map_err(|e| Error::io(dir.join(marker::MARKER_FILE), e))?;
        let recovered = recover(&dir, &file, &path, file_len, marker, Mode::Write)?;
        let mut offsets = recovered.offsets;
        let acked = recovered.acknowledged;
        if let Some(damage) = recovered.damage {
            // Past the acknowledged head (`recover` refused anything else): written, never
            // acknowledged. Its bytes go to the quarantine before the log is cut.
            crate::repair::quarantine(
                &dir,
                &file,
                damage.cut_at,
                file_len,
                damage.position,
                &format!("unacknowledged torn tail cut at open: {}", damage.reason),
            )?;
            file.set_len(damage.cut_at).map_err(|e| Error::io(&path, e))?;
            offsets.truncate(offsets.partition_point(|&o| o <= damage.cut_at));
        }
        let head = offsets.len() as u64 - 1;
        let end = *offsets.last().unwrap_or(&HEADER_LEN);
        let chain = match head {
            0 => GENESIS,
            _ => chain_ending_at(&file, &path, end)?,
        };
        // Whole batches found past the marker (written, not acknowledged when the last
        // process stopped) are kept: synced now, then named by a new marker, so that
        // they count as acknowledged from here on.
        let marker_path = dir.join(marker::MARKER_FILE);
        let marker_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&marker_path)
            .map_err(|e| Error::io(&marker_path, e))?;
        let seq = acked.map_or(0, |m| m.seq + 1);
        let current = Marker { seq, head, end, chain };
        if acked.map(|m| (m.head, m.end, m.chain)) != Some((head, end, chain)) {
            file.sync_all().map_err(|e| Error::io(&path, e))?;
            current.write(&marker_file).map_err(|e| Error::io(&marker_path, e))?;
            marker_file.sync_all().map_err(|e| Error::io(&marker_path, e))?;
            sync_dir(&dir)?;
        }
        // Bring the offsets file in line with the log (it is derived; not synced). A new
        // file renamed into place: readers may be reading the old one.
        let idx_path = dir.join(INDEX_FILE);
        let idx_len = std::fs::metadata(&idx_path).map(|m| m.len()).unwrap_or(u64::MAX);
        if idx_len != head * 8 {
            let mut bytes = Vec::with_capacity(offsets.len() * 8);
            for o in &offsets[1..] {
                bytes.extend_from_slice(&o.to_le_bytes());
            }
            write_renamed(&idx_path, &bytes)?;
        }
        let idx_file =
            OpenOptions::new().read(true).write(true).open(&idx_path).map_err(|e| Error::io(&idx_path, e))?;

        let shared = Shared::new(&dir, &path, offsets, chain)?;
        let mut state = State::new();
        state.head = head;
        state.chain = chain;
        let (tx, rx) = mpsc::channel::<Request>();
        let syncer = Syncer {
            shared: shared.clone(),
            file: file.try_clone().map_err(|e| Error::io(&path, e))?,
            idx_file,
            marker_file,
            marker_seq: seq,
            sync: options.sync,
            faults: options.faults.clone(),
            last_cohort: 0,
            last_sync: Duration::ZERO,
        };
        // 64 of the random bits of a UUIDv7 from the OS seed the id generator.
        let seed = Uuid::now_v7().as_u128() as u64;
        let mut writer = Writer {
            shared: shared.clone(),
            file,
            id_rng: seed,
            syncer: Some(syncer),
            end,
            state,
            built: false,
            options,
        };
        let handle = std::thread::Builder::new()
            .name("tenure-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io(&path, e))?;
        Ok(Store { shared, sender: Mutex::new(Some(tx)), writer: Mutex::new(Some(handle)), lock: Some(lock) })
    }

    /// Opens the store in `dir` to read only: takes no lock, writes nothing to the log,
    /// its offsets or its marker (it works on read-only media), and sees exactly the
    /// acknowledged prefix, the head that the writer published after its last sync
    /// (`events.head`). Damage to acknowledged records is refused with
    /// [`Error::Corrupt`]; bytes past the acknowledged head (a writer's work in
    /// flight, or a torn tail) are not looked at. [`Store::refresh`] moves the head on.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join(LOG_FILE);
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        check_log_header(&file, &path, file_len)?;
        let marker = marker::read(&dir).map_err(|e| Error::io(dir.join(marker::MARKER_FILE), e))?;
        let recovered = recover(&dir, &file, &path, file_len, marker, Mode::Read)?;
        let offsets = recovered.offsets;
        let end = *offsets.last().unwrap_or(&HEADER_LEN);
        let chain = match offsets.len() {
            1 => GENESIS,
            _ => chain_ending_at(&file, &path, end)?,
        };
        let shared = Shared::new(&dir, &path, offsets, chain)?;
        Ok(Store { shared, sender: Mutex::new(None), writer: Mutex::new(None), lock: None })
    }

    /// What this handle found and mended on the way that a user should hear of (a
    /// damaged derived file, rebuilt), since the last call.
    pub fn take_notices(&self) -> Vec<String> {
        self.shared.notices.lock().map(|mut n| std::mem::take(&mut *n)).unwrap_or_default()
    }

    /// True when this handle was opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.lock.is_none()
    }

    /// For a read-only handle: moves the head on to what the writer has acknowledged
    /// since (checking the new records' framing and their chain against the marker).
    /// Returns the head. A writing handle's head is always current.
    pub fn refresh(&self) -> Result<u64> {
        if !self.is_read_only() {
            return Ok(self.head());
        }
        let shared = &self.shared;
        let Ok(marker::Read::Found(m)) = marker::read(&shared.dir) else { return Ok(self.head()) };
        let (head, start) = {
            let offsets = shared.offsets.read().map_err(|_| Error::Closed)?;
            (offsets.len() as u64 - 1, *offsets.last().unwrap_or(&HEADER_LEN))
        };
        if m.head <= head {
            return Ok(head);
        }
        let file_len = shared.reader.metadata().map_err(|e| Error::io(&shared.log_path, e))?.len();
        let mut scanned = scan_log(&shared.reader, start, m.end.min(file_len), head + 1);
        if let Some(e) = scanned.io_error.take() {
            return Err(Error::io(&shared.log_path, e));
        }
        let reached = head + scanned.ends.len() as u64;
        if reached != m.head || scanned.ends.last() != Some(&m.end) {
            let d = scanned.damage.unwrap_or(Damage {
                cut_at: start,
                position: reached + 1,
                reason: "acknowledged record missing".into(),
            });
            return Err(Error::Corrupt { position: d.position, reason: acknowledged_damage(&d, &m, file_len) });
        }
        if chain_at_end(&shared.reader, &shared.log_path, m.head, m.end)? != m.chain {
            return Err(Error::Corrupt {
                position: m.head,
                reason: "the record does not match the acknowledged head (events.head)".into(),
            });
        }
        // The subject index files the new positions, as the writer does for its own.
        {
            let mut subjects = shared.subjects.write().map_err(|_| Error::Closed)?;
            let mut scanner = Scanner::new(&shared.reader, start, m.end);
            let mut position = head;
            while let Ok(Some(rec)) = scanner.next_record() {
                position += 1;
                let event = format::decode_event(rec.payload)
                    .map_err(|reason| Error::Corrupt { position, reason: format!("undecodable record: {reason}") })?;
                subjects.add_live(&event.data, position);
            }
        }
        if let Ok(mut offsets) = shared.offsets.write() {
            offsets.extend_from_slice(&scanned.ends);
        }
        if let Ok(mut h) = shared.head_hash.lock() {
            *h = m.chain;
        }
        shared.head.store(m.head, Ordering::Release);
        shared.head_tx.send_replace(m.head);
        Ok(m.head)
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The last acknowledged position (0 for an empty log).
    pub fn head(&self) -> u64 {
        self.shared.head.load(Ordering::Acquire)
    }

    /// The chain hash of the head, hex.
    pub fn head_hash(&self) -> String {
        match self.shared.head_hash.lock() {
            Ok(h) => format::hex(&h),
            Err(p) => format::hex(&p.into_inner()),
        }
    }

    fn submit(&self, events: Vec<NewEvent>, expected_head: Option<u64>, dry_run: bool, reply: Reply) -> Result<()> {
        self.submit_in(events, expected_head, dry_run, None, reply)
    }

    fn submit_in(
        &self,
        events: Vec<NewEvent>,
        expected_head: Option<u64>,
        dry_run: bool,
        session: Option<Arc<Mutex<CheckSession>>>,
        reply: Reply,
    ) -> Result<()> {
        if events.len() > MAX_BATCH_EVENTS {
            return Err(Error::BatchTooLarge { len: events.len(), limit: MAX_BATCH_EVENTS });
        }
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let guard = self.sender.lock().map_err(|_| Error::Closed)?;
        let sender = guard.as_ref().ok_or(Error::Closed)?;
        sender.send(Request { events, expected_head, dry_run, session, reply }).map_err(|_| Error::Closed)
    }

    /// Appends a batch atomically and returns, for each event, where it is stored. Returns
    /// after the batch is synced to the device. A rejected batch stores nothing.
    pub fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Outcome>> {
        self.append_inner(events, None)
    }

    /// As [`Store::append`], but fails with [`Error::Conflict`] unless the head is
    /// `expected_head` when the batch is written (optimistic concurrency).
    pub fn append_expecting(&self, events: Vec<NewEvent>, expected_head: u64) -> Result<Vec<Outcome>> {
        self.append_inner(events, Some(expected_head))
    }

    fn append_inner(&self, events: Vec<NewEvent>, expected_head: Option<u64>) -> Result<Vec<Outcome>> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(events, expected_head, false, Reply::Blocking(tx))?;
        rx.recv().map_err(|_| Error::Closed)?
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
        self.submit_in(events, None, true, Some(session.clone()), Reply::Blocking(tx))?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// The async form of [`Store::append`], for tokio tasks: many of them appending at
    /// once share syncs.
    pub async fn append_async(&self, events: Vec<NewEvent>, expected_head: Option<u64>) -> Result<Vec<Outcome>> {
        let (tx, rx) = oneshot::channel();
        self.submit(events, expected_head, false, Reply::Async(tx))?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Reads one event.
    pub fn read(&self, position: u64) -> Result<Event> {
        let mut out = self.read_range(position, position)?;
        out.pop().ok_or(Error::NoSuchPosition(position))
    }

    /// Reads positions `from..=to`, clamped to the head.
    pub fn read_range(&self, from: u64, to: u64) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        self.scan(from, to, |e| {
            out.push(e);
            std::ops::ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Visits positions `from..=to` (clamped to the head) in order, reading the file in
    /// large sequential chunks.
    pub fn scan(&self, from: u64, to: u64, mut visit: impl FnMut(Event) -> std::ops::ControlFlow<()>) -> Result<()> {
        self.scan_raw(from, to, |position, payload| {
            let event = format::decode_event(payload)
                .map_err(|reason| Error::Corrupt { position, reason: format!("undecodable record: {reason}") })?;
            Ok(visit(event))
        })
    }

    /// Visits the raw payloads of positions `from..=to`.
    pub fn scan_raw(
        &self,
        from: u64,
        to: u64,
        visit: impl FnMut(u64, &[u8]) -> Result<std::ops::ControlFlow<()>>,
    ) -> Result<()> {
        scan_shared(&self.shared, from, to, visit)
    }

    /// Positions of the events that name `subject` (as identity, member, owner or group),
    /// ascending, up to the head. A secondary index: the first call in a process loads its
    /// snapshot and reads only the log after it (`crate::subjects`).
    pub fn positions_of(&self, subject: &Subject) -> Result<Vec<u64>> {
        let head = self.head();
        {
            let index = self.shared.subjects.read().map_err(|_| Error::Closed)?;
            if index.is_loaded() {
                return Ok(index.positions(subject, head));
            }
        }
        let mut index = self.shared.subjects.write().map_err(|_| Error::Closed)?;
        if !index.is_loaded() {
            let shared = &self.shared;
            let chain_at = |position: u64| chain_at(shared, position).ok();
            index.load(&shared.dir, shared.open_head, &chain_at, |from, to, visit| {
                scan_shared(shared, from, to, |position, payload| {
                    let event = format::decode_event(payload).map_err(|reason| Error::Corrupt {
                        position,
                        reason: format!("undecodable record: {reason}"),
                    })?;
                    visit(position, &event.data);
                    Ok(std::ops::ControlFlow::Continue(()))
                })
            })?;
        }
        Ok(index.positions(subject, head))
    }

    /// The events that name `subject`, from position `from` on.
    pub fn read_subject(&self, subject: &Subject, from: u64) -> Result<Vec<Event>> {
        let positions = self.positions_of(subject)?;
        let start = positions.partition_point(|&p| p < from);
        positions[start..].iter().map(|&p| self.read(p)).collect()
    }

    /// The greatest position recorded at or before `t` (0 if none): turns "as known at a
    /// recorded time" into "as known at a position". `recorded_at` never decreases along
    /// the log, so this is a binary search.
    pub fn position_at_recorded(&self, t: Timestamp) -> Result<u64> {
        let (mut lo, mut hi) = (0u64, self.head());
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.read(mid)?.recorded_at <= t {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok(lo)
    }

    /// A stream of every event after `after`, then of new events as they are appended:
    /// no gap and no duplicate across the switch, since both come from the log by position.
    pub fn subscribe(&self, after: u64) -> impl futures_util::Stream<Item = Result<Event>> + Send + 'static {
        let shared = self.shared.clone();
        let rx = shared.head_tx.subscribe();
        let sub = Subscription { shared, rx, cursor: after, buffer: std::collections::VecDeque::new() };
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

/// Takes the writer's exclusive lock on the store in `dir`.
pub(crate) fn take_writer_lock(dir: &Path) -> Result<File> {
    let lock_path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path: dir.to_path_buf() }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&lock_path, e)),
    }
}

/// Writes `bytes` to `path` as a new file renamed into place (under a name of this
/// process's own first), so that a concurrent reader sees the old file or the new one,
/// whole. Not synced: for derived files, which are checked before they are believed.
pub(crate) fn write_renamed(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("derived");
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::io(path, e))
}

/// Removes the temporary files (`.NAME.PID.N.tmp`, see [`write_renamed`]) that processes
/// killed while writing a derived file left behind. Only those of processes that no
/// longer run: a live one may be about to rename its file.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else { continue };
        let mut parts = inner.rsplitn(3, '.');
        let (_, pid) = (parts.next(), parts.next());
        let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Reads the offsets file: entry `i` is the end offset of position `i + 1`. Returns the
/// longest prefix that is consistent with the log up to `limit` and ends at a batch
/// boundary, as `offsets` (with the header length first). The file is derived and
/// written after each sync without a sync of its own, so any suffix of it may be missing
/// or stale.
fn load_offsets(log: &File, idx_path: &Path, limit: u64) -> Result<Vec<u64>> {
    let mut offsets = vec![HEADER_LEN];
    let file = match File::open(idx_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offsets),
        Err(e) => return Err(Error::io(idx_path, e)),
    };
    // Read through a large buffer straight into the offsets (no second copy of a file of
    // 8 bytes per event), stopping at the first entry that cannot be right.
    let len = file.metadata().map_err(|e| Error::io(idx_path, e))?.len();
    offsets.reserve_exact((len / 8) as usize);
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut entry = [0u8; 8];
    loop {
        match reader.read_exact(&mut entry) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(Error::io(idx_path, e)),
        }
        let end = u64::from_le_bytes(entry);
        let start = *offsets.last().unwrap_or(&HEADER_LEN);
        if end < start + format::RECORD_OVERHEAD as u64 || end > limit {
            break;
        }
        offsets.push(end);
    }
    // Back off to the last whole record whose batch ends with it, checking its framing.
    while offsets.len() > 1 {
        let n = offsets.len();
        let (start, end) = (offsets[n - 2], offsets[n - 1]);
        let mut scanner = Scanner::new(log, start, end);
        match scanner.next_record() {
            Ok(Some(rec)) if rec.crc_ok && rec.end_offset() == end && !rec.continues => break,
            Ok(Some(rec)) if rec.crc_ok && rec.end_offset() == end => {
                offsets.pop();
            }
            // The file disagrees with the log: trust neither, scan the log from the start.
            _ => return Ok(vec![HEADER_LEN]),
        }
    }
    Ok(offsets)
}

/// Where a scan of the log stopped short of a clean end.
#[derive(Debug, Clone)]
pub(crate) struct Damage {
    /// Where the batch holding the first record that does not read back starts: a cut
    /// keeps batches whole.
    pub cut_at: u64,
    /// The first position that does not read back.
    pub position: u64,
    pub reason: String,
}

/// What [`scan_log`] found: the end offsets of the whole batches read, and why it
/// stopped before `end`, if it did.
pub(crate) struct Scanned {
    pub ends: Vec<u64>,
    pub damage: Option<Damage>,
    pub io_error: Option<std::io::Error>,
}

/// Scans the records between `start` and `end` (at most the file's length), whose first
/// is `first_position`, keeping whole batches only.
pub(crate) fn scan_log(file: &File, start: u64, end: u64, first_position: u64) -> Scanned {
    let mut scanner = Scanner::new(file, start, end);
    let (mut ends, mut batch) = (Vec::new(), Vec::new());
    let mut batch_start = start;
    let (mut damage, mut io_error) = (None, None);
    loop {
        let position = first_position + (ends.len() + batch.len()) as u64;
        let stop = |reason: String| Damage { cut_at: batch_start, position, reason };
        let rec = match scanner.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(ScanStop::Truncated { offset }) => {
                damage = Some(stop(format!("the record at byte {offset} reaches past the end of the file")));
                break;
            }
            Err(ScanStop::BadLength { offset, len }) => {
                damage = Some(stop(format!("the record at byte {offset} claims an impossible length ({len} bytes)")));
                break;
            }
            Err(ScanStop::Io(e)) => {
                io_error = Some(e);
                break;
            }
        };
        if !rec.crc_ok {
            damage = Some(stop(format!("record checksum mismatch (the record at byte {})", rec.offset)));
            break;
        }
        batch.push(rec.end_offset());
        if !rec.continues {
            batch_start = rec.end_offset();
            ends.append(&mut batch);
        }
    }
    if damage.is_none() && io_error.is_none() && !batch.is_empty() {
        damage = Some(Damage {
            cut_at: batch_start,
            position: first_position + (ends.len() + batch.len()) as u64,
            reason: format!("the batch that starts at byte {batch_start} has lost its last record"),
        });
    }
    Scanned { ends, damage, io_error }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The writer's open: may cut an unacknowledged torn tail (to the quarantine).
    Write,
    /// A reader's open: sees the acknowledged prefix and nothing past it.
    Read,
}

/// What recovery found: the records that read back whole (by their end offsets), the
/// acknowledged head, and damage past it (for the writer to cut).
struct Recovered {
    offsets: Vec<u64>,
    acknowledged: Option<Marker>,
    damage: Option<Damage>,
}

/// Finds the log's whole batches and tells a torn tail (past the acknowledged head, see
/// `crate::marker`) from damage to acknowledged records, which is refused with
/// [`Error::Corrupt`] naming the first position that does not read back. Writes nothing.
fn recover(dir: &Path, file: &File, path: &Path, file_len: u64, marker: marker::Read, mode: Mode) -> Result<Recovered> {
    let acked = match marker {
        marker::Read::Found(m) => Some(m),
        _ => None,
    };
    let limit = match (acked, mode) {
        (Some(m), Mode::Read) => m.end.min(file_len),
        _ => file_len,
    };
    let mut offsets = load_offsets(file, &dir.join(INDEX_FILE), limit)?;
    let start = *offsets.last().unwrap_or(&HEADER_LEN);
    let mut scanned = scan_log(file, start, limit, offsets.len() as u64);
    if let Some(e) = scanned.io_error.take() {
        return Err(Error::io(path, e));
    }
    offsets.append(&mut scanned.ends);
    let reached = offsets.len() as u64 - 1;
    let Some(m) = acked else {
        if let Some(d) = scanned.damage {
            let why = match marker {
                marker::Read::Absent => "the store has no head marker (events.head)",
                _ => "its head marker (events.head) is damaged",
            };
            return Err(Error::Corrupt {
                position: d.position,
                reason: format!(
                    "{}; {why}, so this cannot be told from an unacknowledged torn tail: nothing was cut \
                     (`tenure repair` shows what it would move to the quarantine)",
                    d.reason
                ),
            });
        }
        return Ok(Recovered { offsets, acknowledged: None, damage: None });
    };
    if reached < m.head {
        let d = scanned.damage.unwrap_or(Damage {
            cut_at: start,
            position: reached + 1,
            reason: "acknowledged record missing".into(),
        });
        return Err(Error::Corrupt { position: d.position, reason: acknowledged_damage(&d, &m, file_len) });
    }
    if offsets[m.head as usize] != m.end || chain_at_end(file, path, m.head, m.end)? != m.chain {
        return Err(Error::Corrupt {
            position: m.head,
            reason: "the record does not match the acknowledged head (events.head)".into(),
        });
    }
    if mode == Mode::Read {
        offsets.truncate(m.head as usize + 1);
        return Ok(Recovered { offsets, acknowledged: acked, damage: None });
    }
    Ok(Recovered { offsets, acknowledged: acked, damage: scanned.damage })
}

/// The message for damage at or before the acknowledged head.
fn acknowledged_damage(d: &Damage, m: &Marker, file_len: u64) -> String {
    format!(
        "{}; positions up to {} were acknowledged (synced, ending at byte {}) and the log has {file_len} bytes: \
         acknowledged evidence is damaged and nothing was cut (`tenure repair` shows what it would move to the \
         quarantine)",
        d.reason, m.head, m.end
    )
}

struct Subscription {
    shared: Arc<Shared>,
    rx: watch::Receiver<u64>,
    cursor: u64,
    buffer: std::collections::VecDeque<Event>,
}

/// How many events a subscription reads from the log at a time.
const SUBSCRIPTION_CHUNK: u64 = 1024;

impl Subscription {
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                self.cursor = e.position.get();
                return Some(Ok(e));
            }
            let head = *self.rx.borrow_and_update();
            let head = head.max(self.shared.head.load(Ordering::Acquire));
            if head > self.cursor {
                let to = head.min(self.cursor + SUBSCRIPTION_CHUNK);
                match read_shared(&self.shared, self.cursor + 1, to) {
                    Ok(events) => self.buffer.extend(events),
                    Err(e) => return Some(Err(e)),
                }
                continue;
            }
            // The store was dropped: the stream ends.
            self.rx.changed().await.ok()?;
        }
    }
}

/// Visits the raw payloads of positions `from..=to` (clamped to the published head),
/// reading the file in large sequential chunks; the one read path of [`Store::scan_raw`]
/// and of subscriptions.
///
/// The offsets come from a derived file (`events.idx`), checked at open only at its
/// end: a damaged entry in its middle would send a read into the middle of a record.
/// So a record that does not read back is first blamed on the offsets: they are rebuilt
/// from the log itself (in memory; a reader writes nothing) and the scan goes on from
/// where it stopped. Only a record that fails where the log itself puts it is
/// [`Error::Corrupt`].
fn scan_shared(
    shared: &Shared,
    from: u64,
    to: u64,
    mut visit: impl FnMut(u64, &[u8]) -> Result<std::ops::ControlFlow<()>>,
) -> Result<()> {
    let mut next = from.max(1);
    let mut rebuilt = false;
    loop {
        match scan_once(shared, next, to, &mut visit) {
            Ok(()) => return Ok(()),
            Err((position, error @ Error::Corrupt { .. })) if !rebuilt => {
                rebuilt = true;
                if !rebuild_offsets(shared)? {
                    return Err(error);
                }
                next = position;
            }
            Err((_, error)) => return Err(error),
        }
    }
}

fn scan_once(
    shared: &Shared,
    from: u64,
    to: u64,
    visit: &mut impl FnMut(u64, &[u8]) -> Result<std::ops::ControlFlow<()>>,
) -> Result<(), (u64, Error)> {
    let (start, end, to) = {
        let offsets = shared.offsets.read().map_err(|_| (from, Error::Closed))?;
        let to = to.min(offsets.len() as u64 - 1);
        if from > to {
            return Ok(());
        }
        (offsets[(from - 1) as usize], offsets[to as usize], to)
    };
    let mut scanner = Scanner::new(&shared.reader, start, end);
    let mut position = from;
    while position <= to {
        let corrupt = |reason: &str| (position, Error::Corrupt { position, reason: reason.into() });
        let rec = match scanner.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => return Err(corrupt("record missing")),
            Err(ScanStop::Io(e)) => return Err((position, Error::io(&shared.log_path, e))),
            Err(_) => return Err(corrupt("record framing broken")),
        };
        if !rec.crc_ok {
            return Err(corrupt("record checksum mismatch"));
        }
        if position == to && rec.end_offset() != end {
            return Err(corrupt("record framing broken"));
        }
        match visit(position, rec.payload) {
            Ok(flow) if flow.is_break() => break,
            Ok(_) => {}
            Err(e) => return Err((position, e)),
        }
        position += 1;
    }
    Ok(())
}

/// Rebuilds the offsets of the published positions from the log itself. Returns whether
/// they differed from the ones in memory (taken from a damaged `events.idx`), and leaves
/// a notice saying so.
fn rebuild_offsets(shared: &Shared) -> Result<bool> {
    let (head, end) = {
        let offsets = shared.offsets.read().map_err(|_| Error::Closed)?;
        (offsets.len() as u64 - 1, *offsets.last().unwrap_or(&HEADER_LEN))
    };
    let mut scanned = scan_log(&shared.reader, HEADER_LEN, end, 1);
    if let Some(e) = scanned.io_error.take() {
        return Err(Error::io(&shared.log_path, e));
    }
    let mut offsets = shared.offsets.write().map_err(|_| Error::Closed)?;
    let found = scanned.ends.len() as u64;
    let differs = scanned.ends.iter().take(head as usize).ne(offsets[1..].iter().take(found as usize));
    if !differs {
        return Ok(false);
    }
    let keep = found.min(head) as usize;
    offsets[1..=keep].copy_from_slice(&scanned.ends[..keep]);
    if let Ok(mut notices) = shared.notices.lock() {
        notices.push(format!(
            "{}: the offsets file is damaged (it sent a read into the middle of a record); offsets were \
             rebuilt from the log for this process, and the next writer open rewrites the file",
            shared.dir.join(INDEX_FILE).display()
        ));
    }
    Ok(true)
}

/// The chain hash at position `head`, whose record ends at `end` (the genesis hash for
/// an empty log).
fn chain_at_end(file: &File, path: &Path, head: u64, end: u64) -> Result<Hash> {
    match head {
        0 if end == HEADER_LEN => Ok(GENESIS),
        _ => chain_ending_at(file, path, end),
    }
}

/// The chain hash of the record that ends at `end`: its last 32 bytes.
fn chain_ending_at(file: &File, path: &Path, end: u64) -> Result<Hash> {
    let mut chain = [0u8; 32];
    let at = end
        .checked_sub(32)
        .filter(|&at| at >= HEADER_LEN)
        .ok_or_else(|| Error::Corrupt { position: 0, reason: format!("no record can end at byte {end}") })?;
    file.read_exact_at(&mut chain, at).map_err(|e| Error::io(path, e))?;
    Ok(chain)
}

/// The chain hash of the log at `position` (the genesis hash at 0).
fn chain_at(shared: &Shared, position: u64) -> Result<Hash> {
    if position == 0 {
        return Ok(GENESIS);
    }
    let end = {
        let offsets = shared.offsets.read().map_err(|_| Error::Closed)?;
        *offsets.get(position as usize).ok_or(Error::Corrupt { position, reason: "past the head".into() })?
    };
    chain_ending_at(&shared.reader, &shared.log_path, end)
}

fn read_shared(shared: &Shared, from: u64, to: u64) -> Result<Vec<Event>> {
    let mut out = Vec::new();
    scan_shared(shared, from, to, |position, payload| {
        let event = format::decode_event(payload)
            .map_err(|reason| Error::Corrupt { position, reason: format!("undecodable record: {reason}") })?;
        out.push(event);
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(out)
}

struct Writer {
    shared: Arc<Shared>,
    file: File,
    /// State of the generator of event ids (see [`Writer::new_id`]).
    id_rng: u64,
    /// The second stage, moved to its own thread by [`Writer::run`].
    syncer: Option<Syncer>,
    end: u64,
    state: State,
    /// Whether `state` (and the subject index) reflects the whole log yet. A store
    /// opened only to read never builds it.
    built: bool,
    options: StoreOptions,
}

/// A group written to the file, waiting for its sync: what to publish, whom to answer.
struct Pending {
    head: u64,
    chain: Hash,
    /// The end of the file after this group.
    end: u64,
    new_offsets: Vec<u64>,
    staged: Vec<Staged>,
}

/// The writer's second stage: syncs the written groups (one `fdatasync` for all those
/// waiting), then publishes them in order and answers their appenders. Nothing is
/// published or acknowledged before the sync that covers it returned.
struct Syncer {
    shared: Arc<Shared>,
    /// The log file (a handle of the writer's open file).
    file: File,
    idx_file: File,
    /// The head marker (`crate::marker`), rewritten after every sync.
    marker_file: File,
    marker_seq: u64,
    sync: bool,
    faults: Option<Arc<dyn Faults>>,
    /// Appenders answered by the last sync, and how long that sync took (see
    /// [`Syncer::gather_cohort`]).
    last_cohort: usize,
    last_sync: Duration,
}

/// The longest a sync waits for appenders that are likely on their way.
const MAX_COMMIT_DELAY: Duration = Duration::from_millis(1);

impl Syncer {
    fn run(&mut self, rx: mpsc::Receiver<Pending>) {
        while let Ok(first) = rx.recv() {
            let mut groups = vec![first];
            while let Ok(more) = rx.try_recv() {
                groups.push(more);
            }
            self.gather_cohort(&rx, &mut groups);
            if self.sync && self.shared.failure().is_none() {
                let started = Instant::now();
                let synced = match self.faults.as_ref().and_then(|f| f.sync()) {
                    Some(e) => Err(e),
                    None => self.file.sync_data(),
                };
                if let Err(e) = synced {
                    self.shared.poison(format!("{}: {e}", self.shared.log_path.display()));
                }
                self.last_sync = started.elapsed();
            }
            self.last_cohort = groups.iter().map(|g| g.staged.len()).sum();
            for group in groups {
                self.publish(group);
            }
        }
    }

    /// The group-commit delay. Appenders answered together by one sync tend to come back
    /// together; a sync started on the first few of them leaves the others a whole sync
    /// to wait, and halves the group. So when the last sync answered several appenders,
    /// wait until as many have been written, for at most a quarter of the last sync's
    /// time (and [`MAX_COMMIT_DELAY`]). A lone appender never waits: its cohort is one.
    fn gather_cohort(&self, rx: &mpsc::Receiver<Pending>, groups: &mut Vec<Pending>) {
        if !self.sync || self.last_cohort <= 1 {
            return;
        }
        let deadline = Instant::now() + (self.last_sync / 4).min(MAX_COMMIT_DELAY);
        let mut have: usize = groups.iter().map(|g| g.staged.len()).sum();
        while have < self.last_cohort {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            match rx.recv_timeout(left) {
                Ok(more) => {
                    have += more.staged.len();
                    groups.push(more);
                }
                Err(_) => break,
            }
        }
    }

    fn publish(&mut self, p: Pending) {
        if let Some(reason) = self.shared.failure() {
            return refuse(p.staged.into_iter().map(|s| s.reply), &reason);
        }
        // The offsets file is derived: written after the sync, never synced itself.
        let mut idx = Vec::with_capacity(p.new_offsets.len() * 8);
        for o in &p.new_offsets {
            idx.extend_from_slice(&o.to_le_bytes());
        }
        let idx_at = (p.head - p.new_offsets.len() as u64) * 8;
        if self.idx_file.write_all_at(&idx, idx_at).is_err() {
            // Only costs a scan at the next open.
            let _ = self.idx_file.set_len(0);
        }
        // The head marker names every position answered below (not synced: see
        // `crate::marker`). Without it, recovery could not tell these records from a torn
        // tail, so a failure to write it refuses the group.
        self.marker_seq += 1;
        let marker = Marker { seq: self.marker_seq, head: p.head, end: p.end, chain: p.chain };
        if let Err(e) = marker.write(&self.marker_file) {
            let reason = format!("{}: {e}", self.shared.dir.join(marker::MARKER_FILE).display());
            self.shared.poison(reason.clone());
            return refuse(p.staged.into_iter().map(|s| s.reply), &reason);
        }
        // Publish: offsets first (the subject index already has the positions), then the
        // head, then answer.
        if let Ok(mut offsets) = self.shared.offsets.write() {
            offsets.extend_from_slice(&p.new_offsets);
            debug_assert_eq!(offsets.len() as u64, p.head + 1);
            debug_assert_eq!(offsets.last().copied(), Some(p.end));
        }
        if let Ok(mut h) = self.shared.head_hash.lock() {
            *h = p.chain;
        }
        self.shared.head.store(p.head, Ordering::Release);
        self.shared.head_tx.send_replace(p.head);
        for s in p.staged {
            s.reply.send(Ok(s.outcomes));
        }
    }
}

/// What validation found of a batch: per event, its outcome and its idempotency key's
/// fingerprint (computed once, for the lookup and then for the state).
struct Validated {
    outcomes: Vec<Outcome>,
    keys: Vec<Option<u128>>,
}

/// A request that passed validation, waiting for the group's sync.
struct Staged {
    reply: Reply,
    outcomes: Vec<Outcome>,
}

impl Writer {
    /// Takes the waiting requests as one group, validates and writes it, and hands it to
    /// the syncer; meanwhile the next group gathers and is written while the previous one
    /// syncs (a two-stage pipeline: the CPU work of a group overlaps the sync of the one
    /// before, and one sync can cover several written groups).
    fn run(&mut self, rx: mpsc::Receiver<Request>) {
        let Some(mut syncer) = self.syncer.take() else { return };
        let (to_syncer, pending) = mpsc::sync_channel::<Pending>(4);
        std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                .name("tenure-log-syncer".into())
                .spawn_scoped(scope, move || syncer.run(pending));
            if let Err(e) = spawned {
                self.shared.poison(format!("cannot start the syncer thread: {e}"));
            }
            while let Ok(first) = rx.recv() {
                let mut group = vec![first];
                let mut events = group[0].events.len();
                while events < MAX_GROUP_EVENTS {
                    match rx.try_recv() {
                        Ok(req) => {
                            events += req.events.len();
                            group.push(req);
                        }
                        Err(_) => break,
                    }
                }
                self.commit_group(group, &to_syncer);
            }
            drop(to_syncer);
        });
    }

    /// Builds the validation state from the log, once.
    fn ensure_state(&mut self) -> Result<()> {
        if self.built {
            return Ok(());
        }
        let (head, chain) = (self.state.head, self.state.chain);
        let mut state = State::new();
        let (start, end) = {
            let offsets = self.shared.offsets.read().map_err(|_| Error::Closed)?;
            (offsets[0], *offsets.last().unwrap_or(&HEADER_LEN))
        };
        let mut scanner = Scanner::new(&self.shared.reader, start, end);
        let mut position = 0u64;
        while position < head {
            position += 1;
            let rec = match scanner.next_record() {
                Ok(Some(rec)) if rec.crc_ok => rec,
                Err(ScanStop::Io(e)) => return Err(Error::io(&self.shared.log_path, e)),
                _ => return Err(Error::Corrupt { position, reason: "record checksum mismatch".into() }),
            };
            let event = format::decode_event(rec.payload)
                .map_err(|reason| Error::Corrupt { position, reason: format!("undecodable record: {reason}") })?;
            if event.position.get() != position {
                return Err(Error::Corrupt { position, reason: format!("record claims position {}", event.position) });
            }
            state.apply(&event);
        }
        state.head = head;
        state.chain = chain;
        self.state = state;
        self.built = true;
        Ok(())
    }

    fn commit_group(&mut self, group: Vec<Request>, to_syncer: &mpsc::SyncSender<Pending>) {
        if let Err(e) = self.ensure_state() {
            return refuse(group.into_iter().map(|r| r.reply), &e.to_string());
        }
        if let Some(reason) = self.shared.failure() {
            return refuse(group.into_iter().map(|r| r.reply), &reason);
        }
        let mut buf = Vec::new();
        let mut new_offsets = Vec::new();
        let mut staged = Vec::with_capacity(group.len());
        let now = (self.options.clock)().max(self.state.last_recorded);
        for req in group {
            if let Some(expected) = req.expected_head {
                if expected != self.state.head {
                    req.reply.send(Err(Error::Conflict { expected, actual: self.state.head }));
                    continue;
                }
            }
            if req.dry_run {
                // Validated against the state as it stands after the requests before it
                // (and after the earlier parts of its session).
                let answer = match &req.session {
                    None => self.validate(&req.events, None).map(|v| v.outcomes),
                    Some(session) => match session.lock() {
                        Ok(mut session) => self.validate(&req.events, Some(&session)).map(|v| {
                            session.take(&req.events, &v);
                            v.outcomes
                        }),
                        Err(_) => Err(Error::Closed),
                    },
                };
                req.reply.send(answer);
                continue;
            }
            match self.stage(&req.events, now, &mut buf, &mut new_offsets) {
                Ok(outcomes) => staged.push(Staged { reply: req.reply, outcomes }),
                Err(e) => req.reply.send(Err(e)),
            }
        }
        if staged.is_empty() {
            return;
        }
        // A group of duplicates only writes nothing, but still goes through the syncer:
        // the positions it answers with may belong to a group whose sync is under way.
        let written = match self.options.faults.as_ref().and_then(|f| f.write(buf.len())) {
            Some((n, e)) => {
                let _ = self.file.write_all(&buf[..n.min(buf.len())]);
                Err(e)
            }
            None => self.file.write_all(&buf),
        };
        if let Err(e) = written {
            let reason = format!("{}: {e}", self.shared.log_path.display());
            self.shared.poison(reason.clone());
            return refuse(staged.into_iter().map(|s| s.reply), &reason);
        }
        self.end += buf.len() as u64;
        let pending = Pending { head: self.state.head, chain: self.state.chain, end: self.end, new_offsets, staged };
        if let Err(mpsc::SendError(pending)) = to_syncer.send(pending) {
            let reason = "the syncer thread stopped";
            self.shared.poison(reason.to_string());
            refuse(pending.staged.into_iter().map(|s| s.reply), reason);
        }
    }

    /// Validates a batch against the state; when all of it passes, takes it into the state
    /// and frames its records into `buf`. A rejected batch changes nothing.
    fn stage(
        &mut self,
        events: &[NewEvent],
        now: Timestamp,
        buf: &mut Vec<u8>,
        new_offsets: &mut Vec<u64>,
    ) -> Result<Vec<Outcome>> {
        let Validated { outcomes, keys } = self.validate(events, None)?;
        // Pass 2: encode (from the delivered event, copying nothing), and refuse the batch
        // if a record would be too large.
        let mut payloads = Vec::new();
        let mut records: Vec<(usize, u64, std::ops::Range<usize>)> = Vec::with_capacity(outcomes.len());
        for (index, (event, outcome)) in events.iter().zip(&outcomes).enumerate() {
            let Outcome::Stored(position) = *outcome else { continue };
            let id = match event.id {
                Some(id) => id,
                None => self.new_id(now),
            };
            let start = payloads.len();
            let parts = format::EventParts {
                position: position.get(),
                id: &id,
                recorded_at: now,
                effective_at: event.effective_at,
                source: event.source.as_deref(),
                source_event_id: event.source_event_id.as_deref(),
                actor: event.actor.as_deref(),
                data: &event.data,
            };
            format::encode_parts(&parts, &mut payloads);
            if payloads.len() - start > format::MAX_PAYLOAD_BYTES {
                let reason = format!("event larger than {} bytes", format::MAX_PAYLOAD_BYTES);
                return Err(Error::Rejected { index, error: FieldError::new("-", reason) });
            }
            records.push((index, position.get(), start..payloads.len()));
        }

        // Pass 3: frame and take into the state. Nothing can fail from here on.
        let count = records.len();
        for (i, (index, position, range)) in records.into_iter().enumerate() {
            debug_assert_eq!(position, self.state.head + 1, "positions are dense");
            let event = &events[index];
            let continues = i + 1 < count;
            self.state.chain = format::frame_record(buf, &payloads[range], &self.state.chain, continues);
            new_offsets.push(self.end + buf.len() as u64);
            self.state.take(position, now, keys[index], &event.data);
        }
        // The subject index takes the positions now (readers see them once the head
        // passes them), under its lock for this loop only.
        let mut subjects = self.shared.subjects.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (event, outcome) in events.iter().zip(&outcomes) {
            if let Outcome::Stored(position) = *outcome {
                subjects.add_live(&event.data, position.get());
            }
        }
        Ok(outcomes)
    }

    /// A UUIDv7 for an event delivered without an id (RFC 9562 §5.7): the recording time in
    /// milliseconds and 74 bits from a SplitMix64 generator seeded from the operating
    /// system once (`Uuid::now_v7` asks the OS for random bytes at every call, a system
    /// call per event).
    fn new_id(&mut self, now: Timestamp) -> Uuid {
        let mut next = || {
            self.id_rng = self.id_rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.id_rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let (a, b) = (next(), next());
        let mut bytes = [0u8; 10];
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes()[..2]);
        let millis = u64::try_from(now.as_micros() / 1000).unwrap_or(0);
        uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
    }

    /// Pass 1: validates a batch against the state plus what the batch itself creates
    /// before each event. Changes nothing.
    fn validate(&self, events: &[NewEvent], session: Option<&CheckSession>) -> Result<Validated> {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut keys = Vec::with_capacity(events.len());
        let mut batch_keys: Map<u128, u64> = Map::default();
        let mut batch_identities: Set<&str> = Set::default();
        let mut batch_groups: Set<&str> = Set::default();
        let mut batch_retractions: Set<u64> = Set::default();
        let empty = CheckSession::default();
        let session = session.unwrap_or(&empty);
        let mut next = self.state.head + 1 + session.stored;
        for (index, event) in events.iter().enumerate() {
            let reject = |field: &str, reason: String| Error::Rejected { index, error: FieldError::new(field, reason) };
            crate::json::validate_data(&event.data).map_err(|error| Error::Rejected { index, error })?;
            let key = event.idempotency_key().map(|(s, k)| self.state.fingerprints.of(s, k));
            keys.push(key);
            if let Some(key) = key {
                let earlier = self.state.dedup.get(&key).or_else(|| session.keys.get(&key));
                if let Some(&p) = earlier.or_else(|| batch_keys.get(&key)) {
                    outcomes.push(Outcome::Duplicate(Position(p)));
                    continue;
                }
            }
            let known_identity = |id: &str| {
                self.state.identities.contains(id) || session.identities.contains(id) || batch_identities.contains(id)
            };
            match &event.data {
                EventData::IdentityJoined(_) => {}
                data => {
                    if let Some(id) = data.identity() {
                        if !known_identity(id.as_str()) {
                            return Err(reject(
                                "data.identity",
                                format!("unknown identity '{id}': no earlier event joined it"),
                            ));
                        }
                    }
                }
            }
            if let Some(owner) = event.data.referenced_owner() {
                if !known_identity(owner.as_str()) {
                    return Err(reject(
                        "data.owner",
                        format!("unknown identity '{owner}': no earlier event joined it"),
                    ));
                }
            }
            if let Some(group) = event.data.group() {
                let created = matches!(event.data, EventData::GroupCreated(_));
                let known = self.state.groups.contains(group.as_str())
                    || session.groups.contains(group.as_str())
                    || batch_groups.contains(group.as_str());
                if !created && !known {
                    return Err(reject("data.group", format!("unknown group '{group}': no earlier event created it")));
                }
            }
            if let EventData::EventRetracted(r) = &event.data {
                let target = r.position.get();
                if target >= next {
                    return Err(reject("data.position", format!("position {target} does not exist")));
                }
                if self.state.retractions.contains(&target)
                    || session.retractions.contains(&target)
                    || batch_retractions.contains(&target)
                {
                    return Err(reject("data.position", format!("position {target} is itself a retraction")));
                }
                batch_retractions.insert(next);
            }
            if let EventData::IdentityJoined(j) = &event.data {
                batch_identities.insert(j.identity.as_str());
            }
            if let EventData::GroupCreated(g) = &event.data {
                batch_groups.insert(g.group.as_str());
            }
            if let Some(key) = key {
                batch_keys.insert(key, next);
            }
            outcomes.push(Outcome::Stored(Position(next)));
            next += 1;
        }

        Ok(Validated { outcomes, keys })
    }
}

/// Checks the integrity chain of the log in `dir` without opening it for writing (it
/// takes no lock and writes nothing), so that it works on a store that no longer opens,
/// beside a running writer, and on read-only media. Names the first position whose
/// stored bytes were altered, and tells an unacknowledged torn tail (past the head
/// marker, see `crate::marker`) from damage to acknowledged records.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let dir = dir.as_ref();
    let path = dir.join(LOG_FILE);
    let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
    check_log_header(&file, &path, len)?;
    let marker = marker::read(dir).map_err(|e| Error::io(dir.join(marker::MARKER_FILE), e))?;
    let acked = match marker {
        marker::Read::Found(m) => Some(m),
        _ => None,
    };
    let mut scanner = Scanner::new(&file, HEADER_LEN, len);
    let mut chain = GENESIS;
    let mut position = 0u64;
    // The offsets file, read beside the log: each entry must be where its record ends.
    let mut idx = File::open(dir.join(INDEX_FILE)).ok().map(|f| std::io::BufReader::with_capacity(1 << 20, f));
    let mut idx_entries = 0u64;
    let mut idx_wrong: Option<(u64, u64, u64)> = None;
    // The subject index snapshot: whole, and made beside this log (its chain hash at its head).
    let subjects = crate::subjects::check_snapshot_file(dir);
    let mut subjects_chain_ok = matches!(subjects, Ok(Some((0, c))) if c == GENESIS);
    // The last batch boundary seen: its offset, position and chain.
    let (mut whole_end, mut whole) = (HEADER_LEN, 0u64);
    let mut bad: Option<(u64, String)> = None;
    loop {
        position += 1;
        let rec = match scanner.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(ScanStop::Io(e)) => return Err(Error::io(&path, e)),
            Err(_) => {
                bad = Some((position, "record framing broken".into()));
                break;
            }
        };
        let expected = format::chain_hash(&chain, &format::leaf_hash(rec.payload));
        if expected != rec.chain {
            bad = Some((position, "chain hash mismatch".into()));
            break;
        }
        if !rec.crc_ok {
            bad = Some((position, "record checksum mismatch".into()));
            break;
        }
        // The payload is not decoded: the chain covers every byte of it, and a record
        // moved to another place breaks the chain there.
        chain = rec.chain;
        if !rec.continues {
            (whole_end, whole) = (rec.end_offset(), position);
        }
        if matches!(subjects, Ok(Some((head, c))) if head == position && c == chain) {
            subjects_chain_ok = true;
        }
        if let Some(reader) = idx.as_mut() {
            let mut entry = [0u8; 8];
            match reader.read_exact(&mut entry) {
                Ok(()) => {
                    idx_entries += 1;
                    let said = u64::from_le_bytes(entry);
                    if said != rec.end_offset() && idx_wrong.is_none() {
                        idx_wrong = Some((position, said, rec.end_offset()));
                    }
                }
                Err(_) => idx = None,
            }
        }
    }
    if bad.is_none() && whole_end < len {
        bad = Some((position, "the last batch has lost its last record".into()));
    }
    let mut report = VerifyReport {
        intact: position - 1,
        head_hash: format::hex(&chain),
        first_bad: None,
        acknowledged: acked.map(|m| m.head),
        marker_damaged: marker == marker::Read::Damaged,
        torn_tail: None,
        subjects_file: match subjects {
            Ok(None) => None,
            Ok(Some((head, _))) if subjects_chain_ok => Some(format!("intact (as of position {head})")),
            Ok(Some((head, _))) => Some(format!(
                "made beside another log (its chain hash at position {head} is not this log's): ignored, replaced by \
                 the next read by subject"
            )),
            Err(e) => Some(format!("damaged ({e}): ignored, replaced by the next read by subject")),
        },
        offsets_file: match (idx_wrong, dir.join(INDEX_FILE).exists()) {
            (_, false) => None,
            (None, true) => Some(format!("consistent with the log ({idx_entries} entries checked)")),
            (Some((p, said, is)), true) => Some(format!(
                "damaged: the entry of position {p} says byte {said}, its record ends at byte {is}; not believed \
                 (reads that it misleads rebuild their offsets from the log), rewritten by the next writer open"
            )),
        },
    };
    match (bad, acked) {
        (None, None) => {}
        (None, Some(m)) if m.head <= whole => {}
        (Some((p, reason)), Some(m)) if whole_end >= m.end && m.head <= whole => {
            // Past the acknowledged head: never acknowledged, so not evidence.
            report.torn_tail = Some(TornTail { position: p, from_byte: whole_end, bytes: len - whole_end, reason });
        }
        (Some((p, reason)), _) => report.first_bad = Some((p, reason)),
        (None, Some(m)) => {
            report.first_bad = Some((
                whole + 1,
                format!(
                    "acknowledged record missing: positions up to {} were acknowledged (ending at byte {}), the log \
                     has {len} bytes",
                    m.head, m.end
                ),
            ))
        }
    }
    if let (None, Some(m)) = (&report.first_bad, acked) {
        if whole >= m.head && chain_at_end(&file, &path, m.head, m.end).ok() != Some(m.chain) {
            report.first_bad = Some((m.head, "the record does not match the acknowledged head (events.head)".into()));
        }
    }
    Ok(report)
}
