//! Opening a store: the writer's open (lock, recovery, the torn tail to the quarantine, the
//! marker and the offsets file brought in line, the writer and syncer threads started),
//! a reader's open (no lock, nothing written, the acknowledged prefix), and a reader's
//! `refresh`.

#[allow(unused_imports)]
use super::*;

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
            offsets.truncate(offsets.count_at_or_before(damage.cut_at));
        }
        let head = offsets.head();
        let end = offsets.last();
        let chain = match head {
            0 => GENESIS,
            _ => chain_ending_at(&file, &path, end)?,
        };
        // Whole batches found past the marker (written, not acknowledged when the last
        // process stopped) are kept: synced now, then named by a new marker, so that
        // they count as acknowledged from here on.
        let marker_file = marker::open_file(&dir)?;
        // `seq` is the sequence number of the slot that holds the current marker: the
        // syncer writes the next one into the other slot, so a torn write never costs
        // the newest whole marker.
        let seq = match acked {
            Some(m) if (m.head, m.end, m.chain) == (head, end, chain) => m.seq,
            _ => {
                let seq = acked.map_or(0, |m| m.seq + 1);
                file.sync_all().map_err(|e| Error::io(&path, e))?;
                Marker { seq, head, end, chain }.write_synced(&marker_file, &dir)?;
                sync_dir(&dir)?;
                seq
            }
        };
        // Bring the offsets file in line with the log (it is derived; not synced). A new
        // file renamed into place: readers may be reading the old one.
        let idx_path = dir.join(INDEX_FILE);
        let idx_len = std::fs::metadata(&idx_path).map(|m| m.len()).unwrap_or(u64::MAX);
        if idx_len != head * 8 {
            write_renamed(&idx_path, &offsets.file_bytes())?;
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
        // The marker first, then the length: a writer writes a marker only after the data
        // it names, so the length read after it covers it. (The other way round, a length
        // read in the middle of a writer's write and a marker written just after it would
        // look like acknowledged bytes missing.)
        let marker = marker::read(&dir).map_err(|e| Error::io(dir.join(marker::MARKER_FILE), e))?;
        let file_len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        check_log_header(&file, &path, file_len)?;
        let recovered = recover(&dir, &file, &path, file_len, marker, Mode::Read)?;
        let offsets = recovered.offsets;
        let end = offsets.last();
        let chain = match offsets.head() {
            0 => GENESIS,
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
    pub fn refresh(&self) -> Result<Position> {
        if !self.is_read_only() {
            return Ok(self.head());
        }
        let shared = &self.shared;
        let Ok(marker::Read::Found(m)) = marker::read(&shared.dir) else { return Ok(self.head()) };
        let (head, start) = {
            let offsets = shared.offsets.read().map_err(|_| Error::Closed)?;
            (offsets.head(), offsets.last())
        };
        if m.head <= head {
            return Ok(Position(head));
        }
        let file_len = shared.reader.metadata().map_err(|e| Error::io(&shared.log_path, e))?.len();
        let mut scanned = scan_log(&shared.reader, start, m.end.min(file_len), head + 1);
        if let Some(e) = scanned.io_error.take() {
            return Err(Error::io(&shared.log_path, e));
        }
        // Checked against the marker the same way a reader's open checks the log.
        let reached = head + scanned.ends.len() as u64;
        let head_end = m.head.checked_sub(head + 1).and_then(|i| scanned.ends.get(i as usize)).copied();
        check_reaches(&shared.reader, &shared.log_path, &m, (reached, head_end), &scanned.damage, start, file_len)?;
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
        Ok(Position(m.head))
    }
}
