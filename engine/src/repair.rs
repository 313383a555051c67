//! The quarantine, and `repair`: the only ways bytes ever leave `events.log`.
//!
//! Two things may remove bytes from the end of the log, and both first copy them to a
//! file of `quarantine/` (synced) and append a line to `quarantine/repairs.log` saying
//! what was moved, from where, why, and its SHA-256:
//! - the writer's open, for a torn tail past the acknowledged head (`crate::marker`):
//!   records that were written and never acknowledged;
//! - [`repair`], an operator's explicit action, for damage to acknowledged records:
//!   it cuts the log at the start of the batch holding the first record that does not
//!   verify (checksum or chain), and everything after it goes to the quarantine.
//!
//! Nothing else writes anything but new records to the log.

use crate::error::{Error, Result};
use crate::format;
use crate::marker::{self, Marker};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub const QUARANTINE_DIR: &str = "quarantine";
/// One JSON line per bytes moved: what, from where, why.
pub const REPAIRS_LOG: &str = "repairs.log";

/// Copies `log`'s bytes `from..to` into a new file of the quarantine, syncs it, and
/// records the move in `repairs.log`. Returns the new file's path.
pub(crate) fn quarantine(
    dir: &Path,
    log: &File,
    from: u64,
    to: u64,
    first_position: u64,
    reason: &str,
) -> Result<PathBuf> {
    let qdir = dir.join(QUARANTINE_DIR);
    std::fs::create_dir_all(&qdir).map_err(|e| Error::io(&qdir, e))?;
    let now = crate::Timestamp::now();
    let name = format!("events.log.{from}-{to}.{}.cut", now.as_micros());
    let path = qdir.join(&name);
    let mut out = OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| Error::io(&path, e))?;
    let mut sha = Sha256::new();
    let mut at = from;
    let mut buf = vec![0u8; 1 << 20];
    while at < to {
        let n = (to - at).min(buf.len() as u64) as usize;
        log.read_exact_at(&mut buf[..n], at).map_err(|e| Error::io(dir.join(crate::files::LOG_FILE), e))?;
        sha.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| Error::io(&path, e))?;
        at += n as u64;
    }
    out.sync_all().map_err(|e| Error::io(&path, e))?;
    let line = serde_json::json!({
        "at": now.to_string(),
        "file": name,
        "log_bytes": [from, to],
        "first_position": first_position,
        "sha256": format::hex(&sha.finalize().into()),
        "reason": reason,
    });
    append_line(&qdir.join(REPAIRS_LOG), &line.to_string())?;
    File::open(&qdir).and_then(|d| d.sync_all()).map_err(|e| Error::io(&qdir, e))?;
    Ok(path)
}

fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
    writeln!(f, "{line}").and_then(|()| f.sync_all()).map_err(|e| Error::io(path, e))
}

/// What [`repair`] found, and did when asked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// The acknowledged head the marker named (`None`: no readable marker).
    pub acknowledged: Option<u64>,
    /// The first position that does not verify, and why (`None`: the log is whole).
    pub first_bad: Option<(u64, String)>,
    /// The head the log keeps after the cut, and its chain hash (hex).
    pub keep_head: u64,
    pub keep_hash: String,
    /// The bytes to cut (`cut_from..log_len`); empty when there is nothing to cut.
    pub cut_from: u64,
    pub log_len: u64,
    /// Whether the repair was carried out, and where the cut bytes went.
    pub applied: bool,
    pub quarantined: Option<PathBuf>,
}

/// Checks the whole log (framing, checksums, chain, whole batches) and, with `apply`,
/// cuts it at the start of the batch holding the first record that does not verify:
/// the cut bytes go to the quarantine, the head marker names the new head, and the
/// derived files are removed (the next process rebuilds them). Takes the writer's lock,
/// so it fails while a writer runs. Without `apply` it changes nothing.
pub fn repair(dir: impl AsRef<Path>, apply: bool) -> Result<RepairReport> {
    let dir = dir.as_ref();
    let path = dir.join(crate::files::LOG_FILE);
    let file = OpenOptions::new().read(true).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
    let _lock = crate::files::take_writer_lock(dir)?;
    let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
    crate::files::check_log_header(&file, &path, len)?;
    let acked = match marker::read(dir).map_err(|e| Error::io(dir.join(marker::MARKER_FILE), e))? {
        marker::Read::Found(m) => Some(m),
        _ => None,
    };
    let walk = crate::record::walk_chain(&file, len, |_, _| {}).map_err(|e| Error::io(&path, e))?;
    let (keep_end, keep_head, keep_chain, mut first_bad) = (walk.whole_end, walk.whole, walk.whole_chain, walk.bad);
    if first_bad.is_none() && keep_end < len {
        first_bad = Some((keep_head + 1, "the last batch has lost its last record".to_string()));
    }
    let mut report = RepairReport {
        acknowledged: acked.map(|m| m.head),
        first_bad,
        keep_head,
        keep_hash: format::hex(&keep_chain),
        cut_from: keep_end,
        log_len: len,
        applied: false,
        quarantined: None,
    };
    let marker_right = acked.is_some_and(|m| m.head == keep_head && m.end == keep_end && m.chain == keep_chain);
    if !apply || (report.first_bad.is_none() && marker_right) {
        return Ok(report);
    }
    if keep_end < len {
        let (first, why) = report.first_bad.clone().unwrap_or((keep_head + 1, "unknown".into()));
        let reason = format!(
            "operator repair (`tenure repair --apply`): position {first}: {why}; acknowledged head was {}; \
             the log keeps positions 1..={keep_head}",
            acked.map_or("unknown (no readable marker)".to_string(), |m| m.head.to_string())
        );
        report.quarantined = Some(quarantine(dir, &file, keep_end, len, keep_head + 1, &reason)?);
        file.set_len(keep_end).map_err(|e| Error::io(&path, e))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
    }
    // The derived files may describe the cut records: removed, to be rebuilt.
    for derived in [crate::files::INDEX_FILE, crate::subjects::SUBJECTS_FILE, crate::files::STATE_FILE, "access.index"]
    {
        let p = dir.join(derived);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    let seq = acked.map_or(0, |m| m.seq + 1);
    Marker { seq, head: keep_head, end: keep_end, chain: keep_chain }.write_synced(&marker::open_file(dir)?, dir)?;
    let line = serde_json::json!({
        "at": crate::Timestamp::now().to_string(),
        "action": "head marker rewritten, derived files removed",
        "head": keep_head,
        "head_hash": report.keep_hash,
    });
    let qdir = dir.join(QUARANTINE_DIR);
    std::fs::create_dir_all(&qdir).map_err(|e| Error::io(&qdir, e))?;
    append_line(&qdir.join(REPAIRS_LOG), &line.to_string())?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
    report.applied = true;
    Ok(report)
}
