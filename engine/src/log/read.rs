//! Reads: by position range (the one read path, which rebuilds misleading offsets from
//! the log before blaming it), chain hashes by position, and subscriptions.

#[allow(unused_imports)]
use super::*;

pub(crate) struct Subscription {
    pub(crate) shared: Arc<Shared>,
    pub(crate) rx: watch::Receiver<u64>,
    pub(crate) cursor: u64,
    pub(crate) buffer: std::collections::VecDeque<Event>,
}

/// How many events a subscription reads from the log at a time.
pub(crate) const SUBSCRIPTION_CHUNK: u64 = 1024;

impl Subscription {
    pub(crate) async fn next(&mut self) -> Option<Result<Event>> {
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

/// Visits the raw payloads (and chain hashes) of positions `from..=to` (clamped to the published head),
/// reading the file in large sequential chunks; the one read path of [`Store::scan_raw`]
/// and of subscriptions.
///
/// The offsets come from a derived file (`events.idx`), checked at open only at its
/// end: a damaged entry in its middle would send a read into the middle of a record.
/// So a record that does not read back is first blamed on the offsets: they are rebuilt
/// from the log itself (in memory; a reader writes nothing) and the scan goes on from
/// where it stopped. Only a record that fails where the log itself puts it is
/// [`Error::Corrupt`].
pub(crate) fn scan_shared(
    shared: &Shared,
    from: u64,
    to: u64,
    mut visit: impl FnMut(u64, &[u8], &Hash) -> Result<std::ops::ControlFlow<()>>,
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

pub(crate) fn scan_once(
    shared: &Shared,
    from: u64,
    to: u64,
    visit: &mut impl FnMut(u64, &[u8], &Hash) -> Result<std::ops::ControlFlow<()>>,
) -> Result<(), (u64, Error)> {
    let (start, end, to) = {
        let offsets = shared.offsets.read().map_err(|_| (from, Error::Closed))?;
        let to = to.min(offsets.head());
        if from > to {
            return Ok(());
        }
        let at = |p: u64| offsets.get(p as usize).unwrap_or(HEADER_LEN);
        (at(from - 1), at(to), to)
    };
    let mut scanner = Scanner::new(&shared.reader, start, end);
    let mut position = from;
    while position <= to {
        let corrupt = |reason: &str| (position, Error::Corrupt { position, reason: reason.into() });
        let rec = match scanner.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => return Err(corrupt("record missing")),
            // The offsets put the record past the file's end: they are astray (a damaged
            // events.idx), not the disk: rebuilt from the log like any other astray read.
            Err(ScanStop::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(corrupt("record past the end of the log"))
            }
            Err(ScanStop::Io(e)) => return Err((position, Error::io(&shared.log_path, e))),
            Err(_) => return Err(corrupt("record framing broken")),
        };
        if !rec.crc_ok {
            return Err(corrupt("record checksum mismatch"));
        }
        if position == to && rec.end_offset() != end {
            return Err(corrupt("record framing broken"));
        }
        match visit(position, rec.payload, &rec.chain) {
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
pub(crate) fn rebuild_offsets(shared: &Shared) -> Result<bool> {
    let (head, end) = {
        let offsets = shared.offsets.read().map_err(|_| Error::Closed)?;
        (offsets.head(), offsets.last())
    };
    let mut scanned = scan_log(&shared.reader, HEADER_LEN, end, 1);
    if let Some(e) = scanned.io_error.take() {
        return Err(Error::io(&shared.log_path, e));
    }
    let mut offsets = shared.offsets.write().map_err(|_| Error::Closed)?;
    let found = scanned.ends.len() as u64;
    let mut ends = offsets.to_ends();
    let differs = scanned.ends.iter().take(head as usize).ne(ends.iter().take(found as usize));
    if !differs {
        return Ok(false);
    }
    let keep = found.min(head) as usize;
    ends[..keep].copy_from_slice(&scanned.ends[..keep]);
    *offsets = Offsets::from_ends(ends);
    if let Ok(mut notices) = shared.notices.lock() {
        notices.push(format!(
            "{}: the offsets file is damaged (it sent a read into the middle of a record); offsets were \
             rebuilt from the log for this process, and the next writer open rewrites the file",
            shared.dir.join(INDEX_FILE).display()
        ));
    }
    Ok(true)
}

/// The chain hash of the log at `position` (the genesis hash at 0).
pub(crate) fn chain_at(shared: &Shared, position: u64) -> Result<Hash> {
    if position == 0 {
        return Ok(GENESIS);
    }
    let end = {
        let offsets = shared.offsets.read().map_err(|_| Error::Closed)?;
        offsets.get(position as usize).ok_or(Error::Corrupt { position, reason: "past the head".into() })?
    };
    chain_ending_at(&shared.reader, &shared.log_path, end)
}

pub(crate) fn read_shared(shared: &Shared, from: u64, to: u64) -> Result<Vec<Event>> {
    let mut out = Vec::new();
    scan_shared(shared, from, to, |position, payload, _| {
        let event = format::decode_event(payload)
            .map_err(|reason| Error::Corrupt { position, reason: format!("undecodable record: {reason}") })?;
        out.push(event);
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(out)
}
