//! The head marker (`events.head`): the last acknowledged position of the log, where its
//! record ends, and its chain hash.
//!
//! It is what tells a torn tail (records written but never acknowledged, which recovery
//! may cut) from damage to acknowledged records (which no command may remove without an
//! operator's `tenure repair`), and it is the head that reader processes see.
//!
//! The syncer writes it after every sync and before it answers the appenders, so that
//! every acknowledged position is at or below it. It is not synced itself: after a crash
//! of the process the page cache still holds it; after a power loss it may be older than
//! the last acknowledgement, never newer (it is written after the sync of the records it
//! names), and the records between it and the true head were synced, so they read back
//! whole and recovery keeps them (docs/reliability.md).
//!
//! Two slots of [`SLOT_LEN`] bytes, written in turn (sequence number even: slot 0, odd:
//! slot 1), each with a CRC-32: a reader that meets a slot being written, or a write torn
//! by a power loss, still finds the other one whole. The valid slot with the higher
//! sequence number wins.
//!
//! ```text
//! slot  magic "TENHEAD1" | seq u64 | head u64 | end u64 | chain [32] | CRC-32 u32 (of all before)
//! ```

use crate::format::Hash;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub const MARKER_FILE: &str = "events.head";
const MAGIC: &[u8; 8] = b"TENHEAD1";
/// Each slot sits in its own 512-byte sector.
pub const SLOT_LEN: u64 = 512;
const BODY: usize = 8 + 8 + 8 + 8 + 32;

/// The acknowledged head of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub seq: u64,
    /// The last acknowledged position (0: none).
    pub head: u64,
    /// The offset just past its record (the header's length for an empty log).
    pub end: u64,
    /// The chain hash at `head`.
    pub chain: Hash,
}

/// What the marker file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// No marker file: a store written before markers existed.
    Absent,
    /// A file whose slots are both unreadable: altered, or torn by a power loss during
    /// its very first write.
    Damaged,
    Found(Marker),
}

impl Marker {
    fn encode(&self) -> [u8; BODY + 4] {
        let mut b = [0u8; BODY + 4];
        b[..8].copy_from_slice(MAGIC);
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.head.to_le_bytes());
        b[24..32].copy_from_slice(&self.end.to_le_bytes());
        b[32..64].copy_from_slice(&self.chain);
        let crc = crc32fast::hash(&b[..BODY]);
        b[BODY..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Marker> {
        let b = b.get(..BODY + 4)?;
        if &b[..8] != MAGIC || crc32fast::hash(&b[..BODY]).to_le_bytes() != b[BODY..] {
            return None;
        }
        let u = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(x)
        };
        let mut chain = [0u8; 32];
        chain.copy_from_slice(&b[32..64]);
        Some(Marker { seq: u(8), head: u(16), end: u(24), chain })
    }

    /// Writes this marker into its slot of `file` (not synced).
    pub fn write(&self, file: &File) -> std::io::Result<()> {
        file.write_all_at(&self.encode(), (self.seq % 2) * SLOT_LEN)
    }
}

/// Opens (creating) the marker file of the store in `dir`, for writing.
pub(crate) fn open_file(dir: &Path) -> crate::Result<File> {
    let path = dir.join(MARKER_FILE);
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| crate::Error::io(&path, e))
}

impl Marker {
    /// Writes this marker into its slot of `file` and syncs the file.
    pub(crate) fn write_synced(&self, file: &File, dir: &Path) -> crate::Result<()> {
        self.write(file).and_then(|()| file.sync_all()).map_err(|e| crate::Error::io(dir.join(MARKER_FILE), e))
    }
}

/// Reads the marker of the store in `dir`. A reader may meet a slot while the writer
/// rewrites it; the other slot is then whole, and a second try settles the rest.
pub fn read(dir: &Path) -> std::io::Result<Read> {
    let path = dir.join(MARKER_FILE);
    let mut last = Read::Damaged;
    for _ in 0..3 {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::Absent),
            Err(e) => return Err(e),
        };
        let slot = |i: u64| bytes.get((i * SLOT_LEN) as usize..).and_then(Marker::decode);
        last = match (slot(0), slot(1)) {
            (Some(a), Some(b)) => Read::Found(if a.seq >= b.seq { a } else { b }),
            (Some(m), None) | (None, Some(m)) => Read::Found(m),
            (None, None) => Read::Damaged,
        };
        if last != Read::Damaged {
            break;
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_whole_slot_wins_and_a_torn_slot_is_passed_over() {
        let dir = std::env::temp_dir().join(format!("tenure-marker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(MARKER_FILE);
        let _ = std::fs::remove_file(&path);
        assert_eq!(read(&dir).unwrap(), Read::Absent);
        let file = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).unwrap();
        let a = Marker { seq: 4, head: 10, end: 1000, chain: [7; 32] };
        let b = Marker { seq: 5, head: 12, end: 1200, chain: [8; 32] };
        a.write(&file).unwrap();
        assert_eq!(read(&dir).unwrap(), Read::Found(a));
        b.write(&file).unwrap();
        assert_eq!(read(&dir).unwrap(), Read::Found(b));
        // Tear the newer slot: the older one answers.
        file.write_all_at(&[0xFF; 3], SLOT_LEN + 20).unwrap();
        assert_eq!(read(&dir).unwrap(), Read::Found(a));
        file.write_all_at(&[0xFF; 3], 20).unwrap();
        assert_eq!(read(&dir).unwrap(), Read::Damaged);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
