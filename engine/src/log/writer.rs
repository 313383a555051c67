//! The writer thread: gathers requests into groups, validates them against the state
//! (references, retractions, idempotency fingerprints; check sessions across parts),
//! frames and writes them, and hands each group to the syncer.

#[allow(unused_imports)]
use super::*;

pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) file: File,
    /// State of the generator of event ids (see [`Writer::new_id`]).
    pub(crate) id_rng: u64,
    /// The second stage, moved to its own thread by [`Writer::run`].
    pub(crate) syncer: Option<Syncer>,
    pub(crate) end: u64,
    pub(crate) state: State,
    /// Whether `state` (and the subject index) reflects the whole log yet. A store
    /// opened only to read never builds it.
    pub(crate) built: bool,
    pub(crate) options: StoreOptions,
}

/// A request that passed validation, waiting for the group's sync.
pub(crate) struct Staged {
    pub(crate) reply: Reply,
    pub(crate) outcomes: Vec<Outcome>,
}

impl Writer {
    /// Takes the waiting requests as one group, validates and writes it, and hands it to
    /// the syncer; meanwhile the next group gathers and is written while the previous one
    /// syncs (a two-stage pipeline: the CPU work of a group overlaps the sync of the one
    /// before, and one sync can cover several written groups).
    pub(crate) fn run(&mut self, rx: mpsc::Receiver<Request>) {
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
                let mut events = group[0].events.get().len();
                while events < MAX_GROUP_EVENTS {
                    match rx.try_recv() {
                        Ok(req) => {
                            events += req.events.get().len();
                            group.push(req);
                        }
                        Err(_) => break,
                    }
                }
                self.commit_group(group, &to_syncer);
            }
            drop(to_syncer);
        });
        self.save_state();
    }

    /// Builds the validation state, once: from `writer.state` when it is sound and names
    /// this log (the chain hash at its head), plus the events after it; else from the
    /// whole log.
    pub(crate) fn ensure_state(&mut self) -> Result<()> {
        if self.built {
            return Ok(());
        }
        let (head, chain) = (self.state.head, self.state.chain);
        let shared = &self.shared;
        let (saved_end, end) = {
            let offsets = shared.offsets.read().map_err(|_| Error::Closed)?;
            let saved = Saved::open(&shared.dir).filter(|s| {
                s.head <= head
                    && offsets
                        .get(s.head as usize)
                        .and_then(|end| chain_at_end(&shared.reader, &shared.log_path, s.head, end).ok())
                        == Some(s.chain)
            });
            let state = saved.map_or_else(State::new, State::from_saved);
            let saved_end = offsets.get(state.head as usize).unwrap_or(HEADER_LEN);
            self.state = state;
            (saved_end, offsets.last())
        };
        let mut scanner = Scanner::new(&shared.reader, saved_end, end);
        let mut position = self.state.head;
        while position < head {
            position += 1;
            let rec = match scanner.next_record() {
                Ok(Some(rec)) if rec.crc_ok => rec,
                Err(ScanStop::Io(e)) => return Err(Error::io(&shared.log_path, e)),
                _ => return Err(Error::Corrupt { position, reason: "record checksum mismatch".into() }),
            };
            let event = format::decode_event(rec.payload)
                .map_err(|reason| Error::Corrupt { position, reason: format!("undecodable record: {reason}") })?;
            if event.position.get() != position {
                return Err(Error::Corrupt { position, reason: format!("record claims position {}", event.position) });
            }
            self.state.apply(&event);
        }
        self.state.head = head;
        self.state.chain = chain;
        self.built = true;
        Ok(())
    }

    /// At close: writes `writer.state` when this process took in
    /// [`StoreOptions::save_state_after`] events or more past it, and everything it took in was acknowledged. A file that
    /// cannot be written is only a cost for the next open.
    pub(crate) fn save_state(&self) {
        let acknowledged = self.shared.head.load(Ordering::Acquire);
        if !self.built || self.state.head != acknowledged || self.shared.failure().is_some() {
            return;
        }
        if self.state.unsaved() >= self.options.save_state_after.max(1) {
            let _ = saved::save(&self.shared.dir, &self.state);
        }
    }

    pub(crate) fn commit_group(&mut self, group: Vec<Request>, to_syncer: &mpsc::SyncSender<Pending>) {
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
                    req.reply
                        .send(Err(Error::Conflict { expected: Position(expected), actual: Position(self.state.head) }));
                    continue;
                }
            }
            if req.dry_run {
                // Validated against the state as it stands after the requests before it
                // (and after the earlier parts of its session).
                let answer = match &req.session {
                    None => self.validate(req.events.get(), None).map(|v| v.outcomes),
                    Some(session) => match session.lock() {
                        Ok(mut session) => self.validate(req.events.get(), Some(&session)).map(|v| {
                            session.take(req.events.get(), &v);
                            v.outcomes
                        }),
                        Err(_) => Err(Error::Closed),
                    },
                };
                req.reply.send(answer);
                continue;
            }
            match self.stage(req.events.get(), now, req.recorded.as_deref(), &mut buf, &mut new_offsets) {
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
    /// and frames its records into `buf`. A rejected batch changes nothing. `recorded`: a
    /// replica's batch, with each event's record time as its source recorded it.
    pub(crate) fn stage(
        &mut self,
        events: &[NewEvent],
        now: Timestamp,
        recorded: Option<&[Timestamp]>,
        buf: &mut Vec<u8>,
        new_offsets: &mut Vec<u64>,
    ) -> Result<Vec<Outcome>> {
        let Validated { outcomes, keys } = self.validate(events, None)?;
        if let Some(recorded) = recorded {
            let mut last = self.state.last_recorded;
            for (index, (outcome, at)) in outcomes.iter().zip(recorded).enumerate() {
                if let Outcome::Duplicate(p) = outcome {
                    let reason = format!("repeats the idempotency key of position {p}: this log is not the source's");
                    return Err(Error::Rejected { index, error: FieldError::new("source_event_id", reason) });
                }
                if *at < last {
                    let reason = format!("{at} is before {last}, recorded earlier: this log is not the source's");
                    return Err(Error::Rejected { index, error: FieldError::new("recorded_at", reason) });
                }
                last = *at;
            }
        }
        let at = |index: usize| recorded.and_then(|r| r.get(index).copied()).unwrap_or(now);
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
                recorded_at: at(index),
                effective_at: event.effective_at,
                source: event.source.as_deref(),
                source_event_id: event.source_event_id.as_deref(),
                actor: event.actor.as_deref(),
                raw: event.raw.as_ref(),
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
            self.state.take(position, at(index), keys[index], &event.data);
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
    pub(crate) fn new_id(&mut self, now: Timestamp) -> Uuid {
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
}
