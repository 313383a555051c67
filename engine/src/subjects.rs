//! The subject index: the positions of the events that name each identity (as the
//! identity, member or owner) and each group, for reads by subject without a scan of the
//! log.
//!
//! It lives in three parts. A snapshot file, `subjects.idx`, covers the log up to its own
//! head; the positions after it, up to the head the store opened at, are read from the
//! log when the index is first asked for (and a new snapshot is written when they are
//! many); the positions appended by this process are filed by the writer as it writes.
//! Readers see only positions up to the published head. Everything here is derived: a
//! missing, damaged or stale snapshot costs a scan, never an answer. A snapshot names the
//! chain hash of the log at its head, so one left beside another log (a store rebuilt
//! in the same directory) is not believed even when that log is longer.
//!
//! Snapshot layout (integers little-endian; `docs/format.md` has the table):
//!
//! ```text
//! magic "TENUSUBJ" | version u32 = 1 | CRC-32 of every byte after this field (u32)
//! head u64 | subjects u64 | chain hash of the log at head [32]
//! key offsets (subjects + 1) x u64 | list offsets (subjects + 1) x u64
//! keys: per subject, kind byte ('g' group, 'i' identity) + UTF-8 name; in byte order
//! lists: per subject, its positions as varint deltas (the first from 0)
//! ```

use crate::event::EventData;
use crate::format::Hash;
use crate::maps::Map;
use crate::varint;
use std::path::Path;

pub const SUBJECTS_FILE: &str = "subjects.idx";
const MAGIC: &[u8; 8] = b"TENUSUBJ";
const VERSION: u32 = 1;
const HEADER: usize = 64;
/// A snapshot is rewritten when the log has grown by this many events past it.
pub const REWRITE_AFTER: u64 = 50_000;

/// What the log knows an event by, for reads by identity or group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    Identity(String),
    Group(String),
}

impl Subject {
    fn key(&self) -> Vec<u8> {
        let (kind, name) = match self {
            Subject::Identity(n) => (b'i', n),
            Subject::Group(n) => (b'g', n),
        };
        let mut k = Vec::with_capacity(1 + name.len());
        k.push(kind);
        k.extend_from_slice(name.as_bytes());
        k
    }
}

/// Positions by name, in memory, for one kind of subject each.
#[derive(Default)]
struct Names {
    identities: Map<Box<str>, Vec<u64>>,
    groups: Map<Box<str>, Vec<u64>>,
}

impl Names {
    fn add(&mut self, data: &EventData, position: u64) {
        let file = |map: &mut Map<Box<str>, Vec<u64>>, name: &str| match map.get_mut(name) {
            Some(list) => list.push(position),
            None => {
                map.insert(name.into(), vec![position]);
            }
        };
        if let Some(i) = data.identity() {
            file(&mut self.identities, i.as_str());
        }
        if let Some(o) = data.referenced_owner() {
            file(&mut self.identities, o.as_str());
        }
        if let Some(g) = data.group() {
            file(&mut self.groups, g.as_str());
        }
    }

    fn get(&self, subject: &Subject) -> &[u64] {
        let list = match subject {
            Subject::Identity(name) => self.identities.get(name.as_str()),
            Subject::Group(name) => self.groups.get(name.as_str()),
        };
        list.map_or(&[], Vec::as_slice)
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.groups.is_empty()
    }

    /// Every (key, positions), keys as in the snapshot, in key order.
    fn sorted(&self) -> Vec<(Vec<u8>, &[u64])> {
        let mut out: Vec<(Vec<u8>, &[u64])> = Vec::with_capacity(self.identities.len() + self.groups.len());
        for (kind, map) in [(b'g', &self.groups), (b'i', &self.identities)] {
            for (name, list) in map {
                let mut k = vec![kind];
                k.extend_from_slice(name.as_bytes());
                out.push((k, list));
            }
        }
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// A snapshot file, read whole and checked.
/// Reads the snapshot file of `dir`: `Ok(None)` when there is none, `Err` when it does not
/// read back, else its head and the chain hash of the log it was made beside (`verify`).
pub fn check_snapshot_file(dir: &Path) -> Result<Option<(u64, Hash)>, SnapshotError> {
    match std::fs::read(dir.join(SUBJECTS_FILE)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SnapshotError::Unreadable(e.kind())),
        Ok(bytes) => match Snapshot::parse(bytes) {
            Some(s) => Ok(Some((s.head, s.chain))),
            None => Err(SnapshotError::Damaged),
        },
    }
}

/// Why a subject index snapshot is not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot be read ({0})")]
    Unreadable(std::io::ErrorKind),
    #[error("does not read back (checksum, version or tables)")]
    Damaged,
}

struct Snapshot {
    bytes: Vec<u8>,
    head: u64,
    count: usize,
    /// The chain hash of the log at `head`, when the snapshot was written.
    chain: Hash,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

impl Snapshot {
    fn parse(bytes: Vec<u8>) -> Option<Snapshot> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return None;
        }
        if u32::from_le_bytes(bytes[8..12].try_into().ok()?) != VERSION {
            return None;
        }
        if u32::from_le_bytes(bytes[12..16].try_into().ok()?) != crc32fast::hash(&bytes[16..]) {
            return None;
        }
        let head = u64_at(&bytes, 16);
        let count = usize::try_from(u64_at(&bytes, 24)).ok()?;
        let chain: Hash = bytes[32..64].try_into().ok()?;
        let tables = count.checked_add(1)?.checked_mul(16)?;
        let blobs = HEADER.checked_add(tables)?;
        if blobs > bytes.len() {
            return None;
        }
        let snap = Snapshot { bytes, head, count, chain };
        // Offsets must rise and stay inside the file, so that every read below is in bounds.
        let (keys_len, lists_len) = (snap.off(0, snap.count), snap.off(1, snap.count));
        let lists_at = blobs.checked_add(usize::try_from(keys_len).ok()?)?;
        if lists_at.checked_add(usize::try_from(lists_len).ok()?)? != snap.bytes.len() {
            return None;
        }
        for table in 0..2 {
            for i in 0..snap.count {
                if snap.off(table, i) > snap.off(table, i + 1) {
                    return None;
                }
            }
        }
        Some(snap)
    }

    /// Entry `i` of offset table `table` (0 keys, 1 lists).
    fn off(&self, table: usize, i: usize) -> u64 {
        u64_at(&self.bytes, HEADER + (table * (self.count + 1) + i) * 8)
    }

    fn blob(&self, table: usize, i: usize) -> &[u8] {
        let keys_at = HEADER + (self.count + 1) * 16;
        let start = if table == 0 { keys_at } else { keys_at + self.off(0, self.count) as usize };
        &self.bytes[start + self.off(table, i) as usize..start + self.off(table, i + 1) as usize]
    }

    fn find(&self, key: &[u8]) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.blob(0, mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    fn positions(&self, i: usize, out: &mut Vec<u64>) {
        let mut b = self.blob(1, i);
        let mut at = 0u64;
        while let Some(delta) = varint::take(&mut b) {
            at = at.saturating_add(delta);
            out.push(at);
        }
    }
}

/// What [`SubjectIndex::load`] hands the scan of the log: called with each position and
/// its event's body, in order.
pub(crate) type Visit<'v> = &'v mut dyn FnMut(u64, &EventData);

/// The subject index of a store (see the module documentation).
#[derive(Default)]
pub(crate) struct SubjectIndex {
    snapshot: Option<Snapshot>,
    /// Positions after the snapshot up to the head the store opened at, read from the log.
    scanned: Names,
    /// Positions appended by this process, filed by the writer.
    live: Names,
    loaded: bool,
}

impl SubjectIndex {
    /// Files an event appended by this process.
    pub fn add_live(&mut self, data: &EventData, position: u64) {
        self.live.add(data, position);
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Loads the part before this process's appends: the snapshot in `dir` when it is
    /// sound, not past `base` (the head the store opened at) and of this log (`chain_at`
    /// gives the log's chain hash at a position), then the events after it up to `base`,
    /// which `scan` visits in order. Writes a new snapshot when those were many; a
    /// snapshot that cannot be written is only a cost for the next process.
    pub fn load(
        &mut self,
        dir: &Path,
        base: u64,
        chain_at: &dyn Fn(u64) -> Option<Hash>,
        scan: impl FnOnce(u64, u64, Visit<'_>) -> crate::Result<()>,
    ) -> crate::Result<()> {
        let path = dir.join(SUBJECTS_FILE);
        self.snapshot = std::fs::read(&path)
            .ok()
            .and_then(Snapshot::parse)
            .filter(|s| s.head <= base && chain_at(s.head) == Some(s.chain));
        let from = self.snapshot.as_ref().map_or(0, |s| s.head);
        let mut scanned = Names::default();
        if from < base {
            scan(from + 1, base, &mut |position, data| scanned.add(data, position))?;
        }
        self.scanned = scanned;
        self.loaded = true;
        if let Some(chain) = chain_at(base).filter(|_| base - from >= REWRITE_AFTER) {
            let bytes = self.snapshot_bytes(base, &chain);
            // A new file renamed into place (readers may be mapping the old one); on
            // read-only media nothing is written, and the next process scans again.
            if crate::files::write_renamed(&path, &bytes).is_ok() {
                self.snapshot = Snapshot::parse(bytes);
                self.scanned = Names::default();
            }
        }
        Ok(())
    }

    /// The positions naming `subject`, ascending, up to `head`.
    pub fn positions(&self, subject: &Subject, head: u64) -> Vec<u64> {
        let mut out = Vec::new();
        if let Some(s) = &self.snapshot {
            if let Some(i) = s.find(&subject.key()) {
                s.positions(i, &mut out);
            }
        }
        out.extend_from_slice(self.scanned.get(subject));
        out.extend_from_slice(self.live.get(subject));
        let end = out.partition_point(|&p| p <= head);
        out.truncate(end);
        out
    }

    /// A snapshot of the snapshot and the scanned part, as of `head`, whose chain hash is
    /// `chain`.
    fn snapshot_bytes(&self, head: u64, chain: &Hash) -> Vec<u8> {
        let scanned = self.scanned.sorted();
        let old = self.snapshot.as_ref();
        let old_count = old.map_or(0, |s| s.count);
        // Merge the two sorted key sequences; a key in both keeps the snapshot's
        // positions first (they are all smaller).
        let (mut keys, mut lists) = (Vec::new(), Vec::new());
        let (mut key_offs, mut list_offs) = (vec![0u64], vec![0u64]);
        let (mut i, mut j) = (0usize, 0usize);
        let mut positions = Vec::new();
        while i < old_count || j < scanned.len() {
            positions.clear();
            let old_key = old.filter(|_| i < old_count).map(|s| s.blob(0, i));
            let new_key = scanned.get(j).map(|(k, _)| k.as_slice());
            let take_old = match (old_key, new_key) {
                (Some(a), Some(b)) => a <= b,
                (Some(_), None) => true,
                _ => false,
            };
            let take_new = match (old_key, new_key) {
                (Some(a), Some(b)) => b <= a,
                (None, Some(_)) => true,
                _ => false,
            };
            let key = if take_old { old_key } else { new_key }.unwrap_or_default();
            keys.extend_from_slice(key);
            if let (true, Some(s)) = (take_old, old) {
                s.positions(i, &mut positions);
                i += 1;
            }
            if take_new {
                positions.extend_from_slice(scanned[j].1);
                j += 1;
            }
            let mut prev = 0;
            for &p in &positions {
                varint::put(&mut lists, p - prev);
                prev = p;
            }
            key_offs.push(keys.len() as u64);
            list_offs.push(lists.len() as u64);
        }
        let count = key_offs.len() - 1;
        let mut out = Vec::with_capacity(HEADER + (count + 1) * 16 + keys.len() + lists.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&head.to_le_bytes());
        out.extend_from_slice(&(count as u64).to_le_bytes());
        out.extend_from_slice(chain);
        for o in key_offs.iter().chain(&list_offs) {
            out.extend_from_slice(&o.to_le_bytes());
        }
        out.extend_from_slice(&keys);
        out.extend_from_slice(&lists);
        let crc = crc32fast::hash(&out[16..]);
        out[12..16].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Whether nothing has been filed in memory (for tests).
    #[cfg(test)]
    fn in_memory_is_empty(&self) -> bool {
        self.scanned.is_empty() && self.live.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{GroupLifecycle, Joined, Membership};
    use crate::IdentityKind;

    fn joined(id: &str, owner: Option<&str>) -> EventData {
        EventData::IdentityJoined(Joined {
            identity: id.into(),
            kind: IdentityKind::Human,
            attributes: Default::default(),
            owner: owner.map(Into::into),
        })
    }

    fn log() -> Vec<EventData> {
        let mut out = vec![];
        for i in 0..300 {
            out.push(joined(&format!("u{i}"), None));
            out.push(joined(&format!("s{i}"), Some(&format!("u{i}"))));
            out.push(EventData::GroupCreated(GroupLifecycle {
                group: format!("g{}", i % 7).as_str().into(),
                display_name: None,
                external_id: None,
            }));
            out.push(EventData::GroupMemberAdded(Membership {
                group: format!("g{}", i % 7).as_str().into(),
                identity: format!("u{i}").as_str().into(),
            }));
        }
        out
    }

    fn scan_of(log: &[EventData]) -> impl FnOnce(u64, u64, Visit<'_>) -> crate::Result<()> + '_ {
        move |from, to, visit| {
            for p in from..=to {
                visit(p, &log[p as usize - 1]);
            }
            Ok(())
        }
    }

    /// A stand-in for the log's chain hash at a position.
    fn chain(p: u64) -> Option<Hash> {
        Some([p as u8; 32])
    }

    fn naive(log: &[EventData], s: &Subject, head: u64) -> Vec<u64> {
        let mut one = Names::default();
        for (i, d) in log.iter().enumerate().take(head as usize) {
            one.add(d, i as u64 + 1);
        }
        one.get(s).to_vec()
    }

    /// Snapshot at one head, scan after it, live appends after the base: the same
    /// positions as filing the whole log at once, and snapshots merge across rewrites.
    #[test]
    fn snapshot_scan_and_live_parts_answer_like_one_pass() {
        let log = log();
        let dir = tempfile::tempdir().unwrap();
        let subjects: Vec<Subject> = ["u3", "s3", "u299", "nobody"]
            .iter()
            .map(|n| Subject::Identity(n.to_string()))
            .chain(["g0", "g6", "none"].iter().map(|n| Subject::Group(n.to_string())))
            .collect();
        for (first, second) in [(400u64, 1000u64), (0, 1200), (1199, 1200)] {
            let _ = std::fs::remove_file(dir.path().join(SUBJECTS_FILE));
            // A first process writes a snapshot at `first` (forced by a small threshold
            // through a direct call), a second loads it and scans to `second`.
            let mut a = SubjectIndex::default();
            a.load(dir.path(), first, &chain, scan_of(&log)).unwrap();
            std::fs::write(dir.path().join(SUBJECTS_FILE), a.snapshot_bytes(first, &chain(first).unwrap())).unwrap();
            let mut b = SubjectIndex::default();
            b.load(dir.path(), second, &chain, scan_of(&log)).unwrap();
            assert_eq!(b.snapshot.as_ref().map(|s| s.head), Some(first));
            for p in second + 1..=log.len() as u64 {
                b.add_live(&log[p as usize - 1], p);
            }
            for s in &subjects {
                for head in [first, second, log.len() as u64] {
                    assert_eq!(b.positions(s, head), naive(&log, s, head), "{s:?} at {head} ({first}, {second})");
                }
            }
            // A rewrite merges the snapshot with the scanned part.
            let merged = Snapshot::parse(b.snapshot_bytes(second, &chain(second).unwrap())).unwrap();
            let c = SubjectIndex { snapshot: Some(merged), loaded: true, ..Default::default() };
            assert!(c.in_memory_is_empty());
            for s in &subjects {
                assert_eq!(c.positions(s, second), naive(&log, s, second), "{s:?} merged");
            }
        }
    }

    #[test]
    fn a_damaged_or_foreign_snapshot_is_ignored() {
        let log = log();
        let dir = tempfile::tempdir().unwrap();
        let mut a = SubjectIndex::default();
        a.load(dir.path(), 600, &chain, scan_of(&log)).unwrap();
        let mut bytes = a.snapshot_bytes(600, &chain(600).unwrap());
        assert!(Snapshot::parse(bytes.clone()).is_some());
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(Snapshot::parse(bytes.clone()).is_none());
        assert!(Snapshot::parse(b"TENUSUBJ".to_vec()).is_none());
        std::fs::write(dir.path().join(SUBJECTS_FILE), &bytes).unwrap();
        let mut b = SubjectIndex::default();
        b.load(dir.path(), 600, &chain, scan_of(&log)).unwrap();
        let s = Subject::Identity("u7".into());
        assert_eq!(b.positions(&s, 600), naive(&log, &s, 600));
        // A snapshot past the base (of a longer log, since cut) is ignored too.
        std::fs::write(dir.path().join(SUBJECTS_FILE), a.snapshot_bytes(600, &chain(600).unwrap())).unwrap();
        let mut c = SubjectIndex::default();
        c.load(dir.path(), 500, &chain, scan_of(&log)).unwrap();
        assert!(c.snapshot.is_none());
        assert_eq!(c.positions(&s, 500), naive(&log, &s, 500));
        // And one of another log (another chain hash at its head), even a longer log.
        let other_log = |p: u64| Some([p as u8 ^ 0x55; 32]);
        let mut d = SubjectIndex::default();
        d.load(dir.path(), 1200, &other_log, scan_of(&log)).unwrap();
        assert!(d.snapshot.is_none());
        assert_eq!(d.positions(&s, 1200), naive(&log, &s, 1200));
    }
}
