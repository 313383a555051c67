//! Recovery: the one owner of the `events.idx` layout; finds the log's whole batches and
//! tells a torn tail (past the acknowledged head) from damage to acknowledged records.
//! Also the data directory's small file operations (the lock, renamed derived files).

#[allow(unused_imports)]
use super::*;

/// Reads the offsets file: entry `i` is the end offset of position `i + 1`. Returns the
/// longest prefix that is consistent with the log up to `limit` and ends at a batch
/// boundary, as `offsets` (with the header length first). The file is derived and
/// written after each sync without a sync of its own, so any suffix of it may be missing
/// or stale.
pub(crate) fn load_offsets(log: &File, idx_path: &Path, limit: u64) -> Result<Vec<u64>> {
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
pub(crate) enum Mode {
    /// The writer's open: may cut an unacknowledged torn tail (to the quarantine).
    Write,
    /// A reader's open: sees the acknowledged prefix and nothing past it.
    Read,
}

/// What recovery found: the records that read back whole (by their end offsets), the
/// acknowledged head, and damage past it (for the writer to cut).
pub(crate) struct Recovered {
    pub(crate) offsets: Vec<u64>,
    pub(crate) acknowledged: Option<Marker>,
    pub(crate) damage: Option<Damage>,
}

/// Finds the log's whole batches and tells a torn tail (past the acknowledged head, see
/// `crate::marker`) from damage to acknowledged records, which is refused with
/// [`Error::Corrupt`] naming the first position that does not read back. Writes nothing.
pub(crate) fn recover(
    dir: &Path,
    file: &File,
    path: &Path,
    file_len: u64,
    marker: marker::Read,
    mode: Mode,
) -> Result<Recovered> {
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
    let reached = offsets.len() as u64 - 1;
    let head_end = offsets.get(m.head as usize).copied();
    check_reaches(file, path, &m, (reached, head_end), &scanned.damage, start, file_len)?;
    if mode == Mode::Read {
        offsets.truncate(m.head as usize + 1);
        return Ok(Recovered { offsets, acknowledged: acked, damage: None });
    }
    Ok(Recovered { offsets, acknowledged: acked, damage: scanned.damage })
}

/// Refuses, naming the first position that does not read back, unless the records read
/// reach the acknowledged head `m`: `reached` is the last position that reads back whole,
/// `head_end` where position `m.head` ends (when reached), which must be where the marker
/// says, with the chain hash it names. `damage` is what stopped the scan that began at
/// byte `start`, if anything did.
pub(crate) fn check_reaches(
    file: &File,
    path: &Path,
    m: &Marker,
    (reached, head_end): (u64, Option<u64>),
    damage: &Option<Damage>,
    start: u64,
    file_len: u64,
) -> Result<()> {
    if reached < m.head {
        let d = damage.clone().unwrap_or(Damage {
            cut_at: start,
            position: reached + 1,
            reason: "acknowledged record missing".into(),
        });
        return Err(Error::Corrupt { position: d.position, reason: acknowledged_damage(&d, m, file_len) });
    }
    if head_end != Some(m.end) || chain_at_end(file, path, m.head, m.end)? != m.chain {
        return Err(Error::Corrupt {
            position: m.head,
            reason: "the record does not match the acknowledged head (events.head)".into(),
        });
    }
    Ok(())
}

/// The message for damage at or before the acknowledged head.
pub(crate) fn acknowledged_damage(d: &Damage, m: &Marker, file_len: u64) -> String {
    format!(
        "{}; positions up to {} were acknowledged (synced, ending at byte {}) and the log has {file_len} bytes: \
         acknowledged evidence is damaged and nothing was cut (`tenure repair` shows what it would move to the \
         quarantine)",
        d.reason, m.head, m.end
    )
}

/// The chain hash at position `head`, whose record ends at `end` (the genesis hash for
/// an empty log).
pub(crate) fn chain_at_end(file: &File, path: &Path, head: u64, end: u64) -> Result<Hash> {
    match head {
        0 if end == HEADER_LEN => Ok(GENESIS),
        _ => chain_ending_at(file, path, end),
    }
}

/// The chain hash of the record that ends at `end`: its last 32 bytes.
pub(crate) fn chain_ending_at(file: &File, path: &Path, end: u64) -> Result<Hash> {
    let mut chain = [0u8; 32];
    let at = end
        .checked_sub(32)
        .filter(|&at| at >= HEADER_LEN)
        .ok_or_else(|| Error::Corrupt { position: 0, reason: format!("no record can end at byte {end}") })?;
    file.read_exact_at(&mut chain, at).map_err(|e| Error::io(path, e))?;
    Ok(chain)
}
