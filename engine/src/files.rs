//! The data directory's layout and its small file operations: the names of its files,
//! the writer's lock, the log file's header check, and derived files written as new files
//! renamed into place. A leaf: the log, the subject index and `repair` all use it.

use crate::error::{Error, Result};
use crate::format::{self, HEADER_LEN};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub const LOG_FILE: &str = "events.log";

pub const LOCK_FILE: &str = "LOCK";

/// End offset of every record, 8 bytes each: lets `open` skip scanning the log.
pub const INDEX_FILE: &str = "events.idx";

/// The writer's validation state as of a position (`log::saved`): lets a writer's first
/// append read only the log's tail.
pub const STATE_FILE: &str = "writer.state";

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// Opens (creating if absent) the log file of `dir` and checks its header.
pub(crate) fn open_log_file(dir: &Path) -> Result<(File, PathBuf)> {
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

/// A name of this process's own, beside `path`, to write a new version of it under before
/// renaming it into place: `.NAME.PID.N.tmp`. Several processes may rebuild the same
/// derived file at once; [`remove_stale_temporaries`] knows the form.
pub fn temporary_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("derived");
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` as a new file renamed into place (under a name of this
/// process's own first), so that a concurrent reader sees the old file or the new one,
/// whole. Not synced: for derived files, which are checked before they are believed.
pub(crate) fn write_renamed(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary_path(path);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::io(path, e))
}

/// Removes the temporary files (`.NAME.PID.N.tmp`, see [`write_renamed`]) that processes
/// killed while writing a derived file left behind. Only those of processes that no
/// longer run: a live one may be about to rename its file.
pub(crate) fn remove_stale_temporaries(dir: &Path) {
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
