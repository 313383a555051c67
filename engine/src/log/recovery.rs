//! Recovery: the one owner of the `events.idx` layout; finds the log's whole batches and
//! tells a torn tail (past the acknowledged head) from damage to acknowledged records.
//! Also the data directory's small file operations (the lock, renamed derived files).

#[allow(unused_imports)]
use super::*;

/// Where every position ends: `get(p)` is the end offset of position `p`, `get(0)` the
/// end of the log's header, and `len() == head + 1`. The entries of a sound prefix of the
/// offsets file (`events.idx`) are read from its map, page by page as they are asked for,
/// not copied: a one-shot query at 10M events touches a few pages of a 73 MB file. The
/// entries after that prefix (found by scanning the log, appended, or rebuilt) are kept
/// in memory.
pub(crate) struct Offsets {
    mapped: Option<memmap2::Mmap>,
    /// How many entries of the map are in use (positions `1..=mapped_len`).
    mapped_len: usize,
    tail: Vec<u64>,
}

impl Offsets {
    /// No positions: the end of the header only.
    pub(crate) fn empty() -> Self {
        Offsets { mapped: None, mapped_len: 0, tail: Vec::new() }
    }

    /// From the end offsets of positions `1..`, in memory.
    pub(crate) fn from_ends(ends: Vec<u64>) -> Self {
        Offsets { mapped: None, mapped_len: 0, tail: ends }
    }

    pub(crate) fn len(&self) -> usize {
        1 + self.mapped_len + self.tail.len()
    }

    /// The last position.
    pub(crate) fn head(&self) -> u64 {
        (self.len() - 1) as u64
    }

    pub(crate) fn get(&self, position: usize) -> Option<u64> {
        match position {
            0 => Some(HEADER_LEN),
            p if p <= self.mapped_len => {
                let map = self.mapped.as_ref()?;
                let at = (p - 1) * 8;
                map.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
            }
            p => self.tail.get(p - 1 - self.mapped_len).copied(),
        }
    }

    /// Where the last position ends (the header's end for an empty log).
    pub(crate) fn last(&self) -> u64 {
        self.get(self.len() - 1).unwrap_or(HEADER_LEN)
    }

    pub(crate) fn extend_from_slice(&mut self, ends: &[u64]) {
        self.tail.extend_from_slice(ends);
    }

    /// Keeps positions `0..len`.
    pub(crate) fn truncate(&mut self, len: usize) {
        let keep = len.saturating_sub(1);
        if keep <= self.mapped_len {
            self.mapped_len = keep;
            self.tail.clear();
        } else {
            self.tail.truncate(keep - self.mapped_len);
        }
    }

    /// How many leading entries (position 0 first) end at or before `offset`.
    pub(crate) fn count_at_or_before(&self, offset: u64) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid).is_some_and(|o| o <= offset) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The end offsets of positions `1..`, as the offsets file holds them.
    pub(crate) fn file_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity((self.len() - 1) * 8);
        if let Some(map) = &self.mapped {
            bytes.extend_from_slice(&map[..self.mapped_len * 8]);
        }
        for o in &self.tail {
            bytes.extend_from_slice(&o.to_le_bytes());
        }
        bytes
    }

    /// The end offsets of positions `1..`, in memory.
    pub(crate) fn to_ends(&self) -> Vec<u64> {
        (1..self.len()).filter_map(|p| self.get(p)).collect()
    }
}

/// Maps the offsets file: entry `i` is the end offset of position `i + 1`. Returns the
/// longest prefix that ends at or before `limit` and at a batch boundary, checked at its
/// end (the framing and CRC of its last record) and nowhere else: a damaged entry before
/// it sends a read astray, which the read path catches by the record's own checks and
/// mends by rebuilding the offsets from the log (`read::rebuild_offsets`). The file is
/// derived and written after each sync without a sync of its own, so any suffix of it
/// may be missing or stale; it is only ever extended in place or replaced by a rename,
/// never rewritten in place, so the mapped entries do not change under a reader.
pub(crate) fn load_offsets(log: &File, idx_path: &Path, limit: u64) -> Result<Offsets> {
    let file = match File::open(idx_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Offsets::empty()),
        Err(e) => return Err(Error::io(idx_path, e)),
    };
    let len = file.metadata().map_err(|e| Error::io(idx_path, e))?.len();
    if len < 8 {
        return Ok(Offsets::empty());
    }
    // SAFETY: the offsets file is only ever extended in place (by the one writer, past the
    // entries in use here) or replaced by a rename; its mapped bytes do not change, and it
    // is never truncated in place.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(idx_path, e))?;
    let entries = map.len() / 8;
    let mut offsets = Offsets { mapped: Some(map), mapped_len: entries, tail: Vec::new() };
    // The entries at or before `limit` (they rise in a sound file).
    offsets.truncate(offsets.count_at_or_before(limit));
    // Back off to the last whole record whose batch ends with it, checking its framing.
    while offsets.len() > 1 {
        let n = offsets.len();
        let (start, end) = (offsets.get(n - 2).unwrap_or(HEADER_LEN), offsets.last());
        if end < start + format::RECORD_OVERHEAD as u64 {
            return Ok(Offsets::empty());
        }
        let mut scanner = Scanner::new(log, start, end);
        match scanner.next_record() {
            Ok(Some(rec)) if rec.crc_ok && rec.end_offset() == end && !rec.continues => break,
            Ok(Some(rec)) if rec.crc_ok && rec.end_offset() == end => offsets.truncate(n - 1),
            // The file disagrees with the log: trust neither, scan the log from the start.
            _ => return Ok(Offsets::empty()),
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
    pub(crate) offsets: Offsets,
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
    let start = offsets.last();
    let mut scanned = scan_log(file, start, limit, offsets.len() as u64);
    if let Some(e) = scanned.io_error.take() {
        return Err(Error::io(path, e));
    }
    offsets.extend_from_slice(&scanned.ends);
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
    let reached = offsets.head();
    let head_end = offsets.get(m.head as usize);
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
