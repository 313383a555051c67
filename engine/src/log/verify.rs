//! `verify`: the integrity chain of the whole log, torn tails told from damage to
//! acknowledged records, and the derived files beside it checked.

#[allow(unused_imports)]
use super::*;

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
    /// The snapshot exists and is not believed (damaged, or made beside another log).
    pub subjects_stale: bool,
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

/// What happens to a subject index snapshot that is not believed.
const NOT_BELIEVED: &str =
    "ignored: reads by subject read the log instead, and the first one with 50,000 events to read writes a new one";

/// Checks the integrity chain of the log in `dir` without opening it for writing (it
/// takes no lock and writes nothing), so that it works on a store that no longer opens,
/// beside a running writer, and on read-only media. Names the first position whose
/// stored bytes were altered, and tells an unacknowledged torn tail (past the head
/// marker, see `crate::marker`) from damage to acknowledged records.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let dir = dir.as_ref();
    let path = dir.join(LOG_FILE);
    let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    // The marker before the length, as a reader's open does (`Store::open_read_only`).
    let marker = marker::read(dir).map_err(|e| Error::io(dir.join(marker::MARKER_FILE), e))?;
    let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
    check_log_header(&file, &path, len)?;
    let acked = match marker {
        marker::Read::Found(m) => Some(m),
        _ => None,
    };
    // The offsets file, read beside the log: each entry must be where its record ends.
    let mut idx = File::open(dir.join(INDEX_FILE)).ok().map(|f| std::io::BufReader::with_capacity(1 << 20, f));
    let mut idx_entries = 0u64;
    let mut idx_wrong: Option<(u64, u64, u64)> = None;
    // The subject index snapshot: whole, and made beside this log (its chain hash at its head).
    let subjects = crate::subjects::check_snapshot_file(dir);
    let mut subjects_chain_ok = matches!(subjects, Ok(Some((0, c))) if c == GENESIS);
    let walk = crate::record::walk_chain(&file, len, |position, rec| {
        if matches!(subjects, Ok(Some((head, c))) if head == position && c == rec.chain) {
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
    })
    .map_err(|e| Error::io(&path, e))?;
    let (whole_end, whole, chain, mut bad) = (walk.whole_end, walk.whole, walk.chain, walk.bad);
    let position = walk.verified + 1;
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
                "made beside another log (its chain hash at position {head} is not this log's): {NOT_BELIEVED}"
            )),
            Err(e) => Some(format!("damaged ({e}): {NOT_BELIEVED}")),
        },
        subjects_stale: subjects.is_err() || (matches!(subjects, Ok(Some(_))) && !subjects_chain_ok),
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
