//! The syncer thread: one `fdatasync` for every group written so far, then the offsets
//! file and the head marker, then publish and answer, in order.

#[allow(unused_imports)]
use super::*;

/// A group written to the file, waiting for its sync: what to publish, whom to answer.
pub(crate) struct Pending {
    pub(crate) head: u64,
    pub(crate) chain: Hash,
    /// The end of the file after this group.
    pub(crate) end: u64,
    pub(crate) new_offsets: Vec<u64>,
    pub(crate) staged: Vec<Staged>,
}

/// The writer's second stage: syncs the written groups (one `fdatasync` for all those
/// waiting), then publishes them in order and answers their appenders. Nothing is
/// published or acknowledged before the sync that covers it returned.
pub(crate) struct Syncer {
    pub(crate) shared: Arc<Shared>,
    /// The log file (a handle of the writer's open file).
    pub(crate) file: File,
    pub(crate) idx_file: File,
    /// The head marker (`crate::marker`), rewritten after every sync.
    pub(crate) marker_file: File,
    pub(crate) marker_seq: u64,
    pub(crate) sync: bool,
    pub(crate) faults: Option<Arc<dyn Faults>>,
    /// Appenders answered by the last sync, and how long that sync took (see
    /// [`Syncer::gather_cohort`]).
    pub(crate) last_cohort: usize,
    pub(crate) last_sync: Duration,
}

/// The longest a sync waits for appenders that are likely on their way.
pub(crate) const MAX_COMMIT_DELAY: Duration = Duration::from_millis(1);

impl Syncer {
    pub(crate) fn run(&mut self, rx: mpsc::Receiver<Pending>) {
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
    pub(crate) fn gather_cohort(&self, rx: &mpsc::Receiver<Pending>, groups: &mut Vec<Pending>) {
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

    pub(crate) fn publish(&mut self, p: Pending) {
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
            debug_assert_eq!(offsets.head(), p.head);
            debug_assert_eq!(offsets.last(), p.end);
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
