//! What readers and the writer share (all of it about synced data only), and the
//! requests appenders send the writer.

#[allow(unused_imports)]
use super::*;

pub(crate) enum Reply {
    Blocking(mpsc::SyncSender<Result<Vec<Outcome>>>),
    Async(oneshot::Sender<Result<Vec<Outcome>>>),
}

impl Reply {
    pub(crate) fn send(self, answer: Result<Vec<Outcome>>) {
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

/// The events of a request: a range of a shared list, so that a caller can have parts of
/// one list checked in turn without copying it.
pub(crate) struct Batch {
    pub(crate) events: Arc<Vec<NewEvent>>,
    pub(crate) range: std::ops::Range<usize>,
}

impl Batch {
    pub(crate) fn whole(events: Vec<NewEvent>) -> Self {
        let range = 0..events.len();
        Batch { events: Arc::new(events), range }
    }

    pub(crate) fn get(&self) -> &[NewEvent] {
        self.events.get(self.range.clone()).unwrap_or(&[])
    }
}

pub(crate) struct Request {
    pub(crate) events: Batch,
    pub(crate) expected_head: Option<u64>,
    /// Validate only: answer what an append would, store nothing.
    pub(crate) dry_run: bool,
    /// With `dry_run`: validate after the events of earlier checks of the same session
    /// (as if they were stored), and add this batch's to it.
    pub(crate) session: Option<Arc<Mutex<CheckSession>>>,
    /// A replica's batch ([`Store::replicate`]): the time each event was recorded at by
    /// the store it comes from, kept instead of the engine clock's.
    pub(crate) recorded: Option<Vec<Timestamp>>,
    pub(crate) reply: Reply,
}

/// State readers share with the writer. Everything here describes synced data only.
pub(crate) struct Shared {
    pub(crate) log_path: PathBuf,
    pub(crate) reader: File,
    /// `offsets[p - 1]` is where position `p` starts; the last entry is the end of the
    /// last record. So `offsets.len() == head + 1`.
    pub(crate) offsets: RwLock<Offsets>,
    /// Loaded on the first read by subject (see `crate::subjects`); the writer files its
    /// appends in it either way.
    pub(crate) subjects: RwLock<SubjectIndex>,
    /// The data directory, where the subject index keeps its snapshot.
    pub(crate) dir: PathBuf,
    /// The head when the store was opened: the subject index reads the log up to it, the
    /// writer files everything after it.
    pub(crate) open_head: u64,
    pub(crate) head: AtomicU64,
    pub(crate) head_tx: watch::Sender<u64>,
    pub(crate) head_hash: Mutex<Hash>,
    /// Set by the syncer when a sync failed: the disk may not hold what memory believes,
    /// so every later append fails.
    pub(crate) poisoned: Mutex<Option<String>>,
    /// Things a user should hear of that were not errors (a derived file found damaged
    /// and rebuilt), for [`Store::take_notices`].
    pub(crate) notices: Mutex<Vec<String>>,
}

impl Shared {
    pub(crate) fn new(dir: &Path, path: &Path, offsets: Offsets, chain: Hash) -> Result<Arc<Shared>> {
        let head = offsets.head();
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
    pub(crate) fn poison(&self, reason: String) {
        if let Ok(mut p) = self.poisoned.lock() {
            p.get_or_insert(reason);
        }
    }

    /// Why the store failed, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        self.poisoned.lock().map_or_else(|e| Some(e.to_string()), |p| p.clone())
    }
}

/// Answers every one of `replies` with [`Error::Poisoned`].
pub(crate) fn refuse(replies: impl IntoIterator<Item = Reply>, reason: &str) {
    for reply in replies {
        reply.send(Err(Error::Poisoned(reason.to_string())));
    }
}
