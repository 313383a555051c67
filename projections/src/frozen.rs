//! The frozen part of the access index: an immutable file, memory-mapped, read lazily.
//!
//! A store of 10M events has about 1M identities; a query reads one of them (or the few
//! hundred thousand holders of one entitlement). Loading the whole index to answer it
//! would cost seconds and gigabytes, so the index persists itself as a file whose parts
//! are found by offset tables: opening it reads a header and the small tables (groups,
//! entitlements, retractions); an identity's events are read and decoded only when a
//! query asks for them. The file is written once, to a temporary name, synced and
//! renamed; it is never changed in place. Its head position is in its header, so the
//! state and its checkpoint are one atomic unit.
//!
//! Layout (all integers little-endian; `docs/format.md` has the table):
//!
//! ```text
//! header   magic "TENUIDX\0", version u32, reserved u32, head u64, identities u64,
//!          groups u64, entitlements u64, SECTIONS x (offset u64, length u64),
//!          SECTIONS x CRC-32 of the section (u32), CRC-32 of all of the above (u32),
//!          zero padding to HEADER_LEN. A section's CRC is checked the first time a
//!          process reads from it (the per-item CRCs of the events and runs lists, and
//!          the recorded_at blocks' own, checked at open, cover those sections), so that
//!          no byte a query reads is believed unchecked.
//! sections recorded_at per position (blocks of 64: first time + varint deltas, with a
//!          CRC); identity names (offsets + UTF-8);
//!          identity ids sorted by name (u32); per identity its filed events
//!          (offsets + [CRC-32 u32, `crate::codec` list]); per identity its groups, the
//!          services it owned (offsets + u32 lists); per entitlement its direct
//!          holders; per group its members (offsets + u32 lists); the small part
//!          (CRC-32 + MessagePack: group names and events, entitlements, group
//!          holders, retractions); per entitlement the runs of effective access as of
//!          the head (offsets + [CRC-32, runs]), which answer holders at the head
//!          without folding anyone)
//! offsets  count + 1 entries, u32 (u64 when the list section passes 4 GiB: the
//!          section's length tells)
//! ```

use crate::codec::{RecordedTimes, RecordedWriter};
use crate::error::{CorruptIndex, WriteError};
use crate::model::{Filed, GroupOp, IdOp};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tenure_engine::Entitlement;

const MAGIC: &[u8; 8] = b"TENUIDX\0";
const VERSION: u32 = 3;
const SECTIONS: usize = 17;
const TABLE_AT: usize = 48;
const HEADER_LEN: usize = 4096;

/// The sections, in file order.
#[derive(Clone, Copy)]
#[repr(usize)]
enum S {
    Recorded,
    IdNamesOff,
    IdNames,
    IdSorted,
    IdEventsOff,
    IdEvents,
    GroupsOfOff,
    GroupsOf,
    OwnedOff,
    Owned,
    DirectOff,
    Direct,
    MembersOff,
    Members,
    Small,
    RunsOff,
    Runs,
}

const SECTION_NAMES: [&str; SECTIONS] = [
    "recorded-at",
    "identity-name offsets",
    "identity-names",
    "sorted-ids",
    "identity-events offsets",
    "identity-events",
    "groups-of-identity offsets",
    "groups-of-identity",
    "services-owned offsets",
    "services-owned",
    "direct-holders offsets",
    "direct-holders",
    "members offsets",
    "members",
    "group and entitlement tables",
    "access-runs offsets",
    "access-runs",
];

/// What a frozen index file holds besides the per-subject lists: small enough to load
/// whole at open.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct Small {
    pub groups: Vec<String>,
    pub group_events: Vec<Vec<Filed<GroupOp>>>,
    pub ents: Vec<Entitlement>,
    pub group_holders: Vec<Vec<u32>>,
    pub retracted: Vec<(u64, u64)>,
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// An open frozen index: the bytes and where each section is.
pub(crate) struct Frozen {
    bytes: Bytes,
    origin: String,
    sections: [(usize, usize); SECTIONS],
    /// Bytes per entry of each offset table (4 or 8; 0 for other sections).
    widths: [u8; SECTIONS],
    /// Each section's CRC-32, from the header, and whether it was checked (and held)
    /// in this process.
    crcs: [u32; SECTIONS],
    checked: [std::sync::OnceLock<bool>; SECTIONS],
    pub head: u64,
    pub identities: u32,
    pub groups: u32,
    pub ents: u32,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

impl Frozen {
    /// Maps the file at `path`.
    pub fn open(path: &Path) -> Result<Frozen, CorruptIndex> {
        let origin = path.display().to_string();
        let bad = |reason: String| CorruptIndex { path: origin.clone(), reason };
        let file = File::open(path).map_err(|e| bad(e.to_string()))?;
        // SAFETY: the file is written once under a temporary name and renamed into place;
        // Tenure never writes to it again. Another process may replace it while it is
        // mapped here (readers rebuild it), but only by a rename, which leaves this
        // mapping on the old inode, unchanged. Changing it behind Tenure's back is outside the contract, as for
        // any file of the data directory.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| bad(e.to_string()))?;
        Frozen::parse(Bytes::Mapped(map), origin)
    }

    /// Reads an index from bytes made by [`write`] into a `Vec`.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Frozen, CorruptIndex> {
        Frozen::parse(Bytes::Owned(bytes), "(in memory)".to_string())
    }

    fn parse(bytes: Bytes, origin: String) -> Result<Frozen, CorruptIndex> {
        let bad = |reason: &str| CorruptIndex { path: origin.clone(), reason: reason.to_string() };
        let table_end = TABLE_AT + SECTIONS * 16 + SECTIONS * 4;
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Err(bad("not a Tenure index file"));
        }
        if le_u32(&bytes, 8) != VERSION {
            return Err(bad("made by another version of Tenure"));
        }
        if crc32fast::hash(&bytes[..table_end]) != le_u32(&bytes, table_end) {
            return Err(bad("header checksum mismatch"));
        }
        let mut sections = [(0usize, 0usize); SECTIONS];
        for (i, s) in sections.iter_mut().enumerate() {
            let off = le_u64(&bytes, TABLE_AT + i * 16) as usize;
            let len = le_u64(&bytes, TABLE_AT + i * 16 + 8) as usize;
            if off < HEADER_LEN || off.checked_add(len).is_none_or(|end| end > bytes.len()) {
                return Err(bad("a section lies outside the file"));
            }
            *s = (off, len);
        }
        let count = |at: usize| u32::try_from(le_u64(&bytes, at)).map_err(|_| bad("impossible count"));
        let crcs: [u32; SECTIONS] = std::array::from_fn(|i| le_u32(&bytes, TABLE_AT + SECTIONS * 16 + i * 4));
        let frozen = Frozen {
            head: le_u64(&bytes, 16),
            identities: count(24)?,
            groups: count(32)?,
            ents: count(40)?,
            bytes,
            sections,
            widths: [0; SECTIONS],
            crcs,
            checked: std::array::from_fn(|_| std::sync::OnceLock::new()),
            origin: origin.clone(),
        };
        if frozen.sections[S::IdSorted as usize].1 != frozen.identities as usize * 4 {
            return Err(bad("a section has the wrong length"));
        }
        // Offset tables hold `count + 1` entries of 4 bytes, or of 8 when their list
        // section is larger than 4 GiB: the length says which.
        let n = |x: u32| x as usize + 1;
        let mut frozen = frozen;
        for (s, count) in [
            (S::IdNamesOff, n(frozen.identities)),
            (S::IdEventsOff, n(frozen.identities)),
            (S::GroupsOfOff, n(frozen.identities)),
            (S::OwnedOff, n(frozen.identities)),
            (S::DirectOff, n(frozen.ents)),
            (S::MembersOff, n(frozen.groups)),
            (S::RunsOff, n(frozen.ents)),
        ] {
            frozen.widths[s as usize] = match frozen.sections[s as usize].1 {
                len if len == count * 4 => 4,
                len if len == count * 8 => 8,
                _ => return Err(bad("a section has the wrong length")),
            };
        }
        RecordedTimes::parse(frozen.section(S::Recorded), frozen.head, true)
            .map_err(|_| bad("the recorded_at table is damaged"))?;
        Ok(frozen)
    }

    /// Where the file came from (its path, or "(in memory)").
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    pub(crate) fn corrupt(&self, reason: &str) -> CorruptIndex {
        CorruptIndex { path: self.origin.clone(), reason: reason.to_string() }
    }

    fn section(&self, s: S) -> &[u8] {
        let (off, len) = self.sections[s as usize];
        &self.bytes[off..off + len]
    }

    /// Section `s`, once its CRC-32 was found right (checked once per process).
    fn checked(&self, s: S) -> Result<&[u8], CorruptIndex> {
        let bytes = self.section(s);
        if *self.checked[s as usize].get_or_init(|| crc32fast::hash(bytes) == self.crcs[s as usize]) {
            Ok(bytes)
        } else {
            Err(self.corrupt(&format!("the {} section fails its checksum", SECTION_NAMES[s as usize])))
        }
    }

    /// Checks every byte of the file: each section's CRC, and each item's of the
    /// sections whose items carry their own. For `tenure verify`.
    pub fn check_all(&self) -> Result<(), CorruptIndex> {
        for s in [
            S::IdNamesOff,
            S::IdNames,
            S::IdSorted,
            S::IdEventsOff,
            S::GroupsOfOff,
            S::GroupsOf,
            S::OwnedOff,
            S::Owned,
            S::DirectOff,
            S::Direct,
            S::MembersOff,
            S::Members,
            S::RunsOff,
        ] {
            self.checked(s)?;
        }
        for id in 0..self.identities {
            self.id_events(id, true)?;
        }
        for ent in 0..self.ents {
            self.runs_at(ent, i64::MIN, |_, _| {})?;
        }
        self.small().map(|_| ())
    }

    /// Item `i` of a list table: the bytes between two offsets of `off` in `blob`.
    fn item(&self, off: S, blob: S, i: u32) -> Result<&[u8], CorruptIndex> {
        let table = self.checked(off)?;
        let width = usize::from(self.widths[off as usize]);
        let at = i as usize * width;
        if at + 2 * width > table.len() {
            return Err(self.corrupt("list index out of range"));
        }
        let entry = |at: usize| if width == 4 { le_u32(table, at) as usize } else { le_u64(table, at) as usize };
        let (from, to) = (entry(at), entry(at + width));
        // The events and runs lists carry a CRC per item, checked by their readers.
        let blob = match blob {
            S::IdEvents | S::Runs => self.section(blob),
            _ => self.checked(blob)?,
        };
        blob.get(from..to).ok_or_else(|| self.corrupt("list offsets out of order"))
    }

    fn ids(&self, off: S, blob: S, i: u32, limit: u32, out: &mut Vec<u32>) -> Result<(), CorruptIndex> {
        let bytes = self.item(off, blob, i)?;
        for chunk in bytes.chunks_exact(4) {
            let id = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if id >= limit {
                return Err(self.corrupt("a list names an id past the end"));
            }
            out.push(id);
        }
        Ok(())
    }

    /// The `recorded_at` table, checked at open.
    fn recorded_times(&self) -> Option<RecordedTimes<'_>> {
        RecordedTimes::parse(self.section(S::Recorded), self.head, false).ok()
    }

    /// The `recorded_at` (µs) of frozen position `pos`.
    pub fn recorded(&self, pos: u64) -> i64 {
        self.recorded_times().map_or(i64::MIN, |r| r.get(pos))
    }

    /// How many of the frozen positions were recorded at or before `t`.
    pub fn recorded_count(&self, t: i64) -> u64 {
        self.recorded_times().map_or(0, |r| r.count_at_or_before(t))
    }

    /// Calls `visit` with the `recorded_at` of every frozen position, in order.
    pub fn for_each_recorded(&self, visit: impl FnMut(i64)) {
        if let Some(r) = self.recorded_times() {
            r.for_each(visit);
        }
    }

    pub fn identity_name(&self, id: u32) -> Result<&str, CorruptIndex> {
        let b = self.item(S::IdNamesOff, S::IdNames, id)?;
        std::str::from_utf8(b).map_err(|_| self.corrupt("a name is not UTF-8"))
    }

    /// The id of `name`, by binary search over the names in sorted order.
    pub fn identity_id(&self, name: &str) -> Result<Option<u32>, CorruptIndex> {
        let sorted = self.checked(S::IdSorted)?;
        let (mut lo, mut hi) = (0usize, self.identities as usize);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let id = le_u32(sorted, mid * 4);
            match self.identity_name(id)?.cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(id)),
            }
        }
        Ok(None)
    }

    /// An identity's events; `lite` as in [`crate::codec::decode`].
    pub fn id_events(&self, id: u32, lite: bool) -> Result<Vec<Filed<IdOp>>, CorruptIndex> {
        let b = self.item(S::IdEventsOff, S::IdEvents, id)?;
        if b.is_empty() {
            return Ok(Vec::new());
        }
        if b.len() < 4 || crc32fast::hash(&b[4..]) != le_u32(b, 0) {
            return Err(self.corrupt(&format!("the events of identity #{id} fail their checksum")));
        }
        let list = crate::codec::decode(&b[4..], lite)
            .map_err(|_| self.corrupt(&format!("the events of identity #{id} do not decode")))?;
        // Every id a list names is within the header's counts: a crafted file whose
        // checksums hold is an error here, never an index out of range above.
        let (ids, groups, ents) = (self.identities, self.groups, self.ents);
        let in_range = |op: &IdOp| match op {
            IdOp::Granted { ent, .. } | IdOp::Revoked(ent) => *ent < ents,
            IdOp::MemberAdded(g) | IdOp::MemberRemoved(g) => *g < groups,
            IdOp::OwnerChanged(o) => *o < ids,
            IdOp::Joined(j) => j.owner.is_none_or(|o| o < ids),
            _ => true,
        };
        match list.iter().all(|e| in_range(&e.op)) {
            true => Ok(list),
            false => Err(self.corrupt(&format!("the events of identity #{id} name an id past the end"))),
        }
    }

    pub fn groups_of(&self, id: u32, out: &mut Vec<u32>) -> Result<(), CorruptIndex> {
        self.ids(S::GroupsOfOff, S::GroupsOf, id, self.groups, out)
    }

    pub fn owned(&self, id: u32, out: &mut Vec<u32>) -> Result<(), CorruptIndex> {
        self.ids(S::OwnedOff, S::Owned, id, self.identities, out)
    }

    pub fn direct_holders(&self, ent: u32, out: &mut Vec<u32>) -> Result<(), CorruptIndex> {
        self.ids(S::DirectOff, S::Direct, ent, self.identities, out)
    }

    pub fn members(&self, g: u32, out: &mut Vec<u32>) -> Result<(), CorruptIndex> {
        self.ids(S::MembersOff, S::Members, g, self.identities, out)
    }

    /// Calls `found` for each identity whose effective access to `ent`, as of the file's
    /// head, holds at `t`, with the reasons (see [`crate::codec::runs_at`]).
    pub fn runs_at(
        &self,
        ent: u32,
        t: i64,
        found: impl FnMut(u32, &[crate::model::RunVia]),
    ) -> Result<(), CorruptIndex> {
        let b = self.item(S::RunsOff, S::Runs, ent)?;
        if b.is_empty() {
            return Ok(());
        }
        if b.len() < 4 || crc32fast::hash(&b[4..]) != le_u32(b, 0) {
            return Err(self.corrupt(&format!("the access runs of entitlement #{ent} fail their checksum")));
        }
        // Ids past the header's counts are refused before `found` sees them.
        let (ids, groups) = (self.identities, self.groups);
        let mut found = found;
        let mut past_end = false;
        crate::codec::runs_at(&b[4..], t, |id, via| {
            let groups_ok = via.iter().all(|v| match v {
                crate::model::RunVia::Group { group, .. } => *group < groups,
                crate::model::RunVia::Direct { .. } => true,
            });
            if id < ids && groups_ok && !past_end {
                found(id, via);
            } else {
                past_end = true;
            }
        })
        .map_err(|_| self.corrupt(&format!("the access runs of entitlement #{ent} do not decode")))?;
        match past_end {
            false => Ok(()),
            true => Err(self.corrupt(&format!("the access runs of entitlement #{ent} name an id past the end"))),
        }
    }

    pub fn small(&self) -> Result<Small, CorruptIndex> {
        let b = self.section(S::Small);
        if b.len() < 4 || crc32fast::hash(&b[4..]) != le_u32(b, 0) {
            return Err(self.corrupt("the group and entitlement tables fail their checksum"));
        }
        rmp_serde::from_slice(&b[4..]).map_err(|e| self.corrupt(&e.to_string()))
    }
}

/// What [`write`] needs of an index: every list, merged (frozen part and tail).
pub(crate) trait Source {
    fn head(&self) -> u64;
    fn identities(&self) -> u32;
    fn groups(&self) -> u32;
    fn ents(&self) -> u32;
    /// Calls `visit` with the `recorded_at` of positions 1 ..= head, in order.
    fn for_each_recorded(&self, visit: &mut dyn FnMut(i64));
    fn identity_name(&self, id: u32) -> Result<&str, CorruptIndex>;
    fn id_events(&self, id: u32) -> Result<Vec<Filed<IdOp>>, CorruptIndex>;
    fn groups_of(&self, id: u32) -> Result<Vec<u32>, CorruptIndex>;
    fn owned(&self, id: u32) -> Result<Vec<u32>, CorruptIndex>;
    fn direct_holders(&self, ent: u32) -> Result<Vec<u32>, CorruptIndex>;
    fn members(&self, g: u32) -> Result<Vec<u32>, CorruptIndex>;
    fn small(&self) -> Small;
}

/// A writer that knows where it is, and where each section it wrote lies.
struct Counting<W> {
    inner: W,
    at: u64,
    sections: [(u64, u64); SECTIONS],
    /// The CRC-32 of each section, and of what was written since the last section.
    crcs: [u32; SECTIONS],
    crc: crc32fast::Hasher,
    /// Write every offset table as `u64`, whatever the size of its list section.
    wide: bool,
}

impl<W: Write> Counting<W> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(b)?;
        self.crc.update(b);
        self.at += b.len() as u64;
        Ok(())
    }

    /// Records that section `s` is what was written since `start`.
    /// Sections are written one after the other, so the CRC of what was written since
    /// the last section is this one's.
    fn section(&mut self, s: S, start: u64) {
        self.sections[s as usize] = (start, self.at - start);
        self.crcs[s as usize] = std::mem::take(&mut self.crc).finalize();
    }

    /// Writes a list table: `count` items into section `blob` (each written by `item`),
    /// then their `count + 1` offsets into section `off`.
    fn table(
        &mut self,
        off: S,
        blob: S,
        count: u32,
        mut item: impl FnMut(&mut Self, u32) -> Result<(), WriteError>,
    ) -> Result<(), WriteError> {
        let mut offsets = Vec::with_capacity(count as usize + 1);
        let start = self.at;
        for i in 0..count {
            offsets.push(self.at - start);
            item(self, i)?;
        }
        offsets.push(self.at - start);
        self.section(blob, start);
        let start = self.at;
        let narrow = !self.wide && offsets.last().is_none_or(|&end| u32::try_from(end).is_ok());
        for o in offsets {
            if narrow {
                self.put(&(o as u32).to_le_bytes())?;
            } else {
                self.put(&o.to_le_bytes())?;
            }
        }
        self.section(off, start);
        Ok(())
    }

    /// Writes `bytes` behind their CRC-32 (nothing when empty).
    fn checked(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.put(&crc32fast::hash(bytes).to_le_bytes())?;
        self.put(bytes)
    }
}

/// Writes the index of `src` to `out` (a file or a `Cursor<Vec<u8>>`).
pub(crate) fn write<W: Write + Seek>(src: &impl Source, runs: &[Vec<u8>], out: W) -> Result<W, WriteError> {
    write_with(src, runs, out, false)
}

/// [`write`], with `wide` forcing `u64` offset tables (the form of lists past 4 GiB).
fn write_with<W: Write + Seek>(src: &impl Source, runs: &[Vec<u8>], out: W, wide: bool) -> Result<W, WriteError> {
    let mut w = Counting {
        inner: out,
        at: 0,
        sections: [(0, 0); SECTIONS],
        crcs: [0; SECTIONS],
        crc: crc32fast::Hasher::new(),
        wide,
    };
    w.put(&[0u8; HEADER_LEN])?;
    w.crc = crc32fast::Hasher::new();

    let start = w.at;
    let mut recorded = RecordedWriter::default();
    src.for_each_recorded(&mut |t| recorded.push(t));
    w.put(&recorded.finish())?;
    w.section(S::Recorded, start);

    let ids = src.identities();
    w.table(S::IdNamesOff, S::IdNames, ids, |w, id| Ok(w.put(src.identity_name(id)?.as_bytes())?))?;
    let mut sorted: Vec<u32> = (0..ids).collect();
    let mut names = Vec::with_capacity(ids as usize);
    for id in 0..ids {
        names.push(src.identity_name(id)?);
    }
    sorted.sort_unstable_by(|&a, &b| names[a as usize].cmp(names[b as usize]));
    drop(names);
    let start = w.at;
    for id in sorted {
        w.put(&id.to_le_bytes())?;
    }
    w.section(S::IdSorted, start);

    // Each identity's events.
    let mut buf = Vec::new();
    w.table(S::IdEventsOff, S::IdEvents, ids, |w, id| {
        buf.clear();
        let list = src.id_events(id)?;
        if !list.is_empty() {
            crate::codec::encode(&list, &mut buf);
        }
        Ok(w.checked(&buf)?)
    })?;

    // The u32 lists.
    type GetList<'a> = &'a dyn Fn(u32) -> Result<Vec<u32>, CorruptIndex>;
    let lists: [(S, S, u32, GetList<'_>); 4] = [
        (S::GroupsOfOff, S::GroupsOf, ids, &|i| src.groups_of(i)),
        (S::OwnedOff, S::Owned, ids, &|i| src.owned(i)),
        (S::DirectOff, S::Direct, src.ents(), &|i| src.direct_holders(i)),
        (S::MembersOff, S::Members, src.groups(), &|i| src.members(i)),
    ];
    for (off, blob, count, get) in lists {
        w.table(off, blob, count, |w, i| {
            for id in get(i)? {
                w.put(&id.to_le_bytes())?;
            }
            Ok(())
        })?;
    }

    w.table(S::RunsOff, S::Runs, runs.len() as u32, |w, ent| Ok(w.checked(&runs[ent as usize])?))?;

    let start = w.at;
    let small = rmp_serde::to_vec(&src.small()).map_err(|e| std::io::Error::other(e.to_string()))?;
    w.checked(&small)?;
    w.section(S::Small, start);

    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    for x in [src.head(), ids as u64, src.groups() as u64, src.ents() as u64] {
        header.extend_from_slice(&x.to_le_bytes());
    }
    for (off, len) in w.sections {
        header.extend_from_slice(&off.to_le_bytes());
        header.extend_from_slice(&len.to_le_bytes());
    }
    for crc in w.crcs {
        header.extend_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    let mut out = w.inner;
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&header)?;
    Ok(out)
}

/// Writes the index of `src` to `path` atomically: a temporary file, synced, renamed,
/// and the directory synced. A crash leaves either the old file or the new one.
pub(crate) fn write_file(src: &impl Source, runs: &[Vec<u8>], path: &Path) -> Result<(), WriteError> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir)?;
    // A name of this process's own: several reader processes may rebuild at once, and
    // each rename replaces the file whole.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("access.index");
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp)?;
        let out = write(src, runs, BufWriter::with_capacity(1 << 20, file))?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccessIndex;
    use tenure_engine::event::*;
    use tenure_engine::{Event, Position, Timestamp};

    fn event(p: u64, data: EventData) -> Event {
        Event {
            position: Position(p),
            id: tenure_engine::Uuid::nil(),
            recorded_at: Timestamp::from_micros(1_000 + p as i64 / 2),
            effective_at: Timestamp::from_micros(1_700_000_000_000_000 + p as i64 * 1_500_000),
            source: None,
            source_event_id: None,
            actor: None,
            data,
        }
    }

    /// The index file's bytes, pinned: the same log gives the same file, byte for byte.
    /// A change here is a change of format: bump `VERSION` (older files are then rebuilt
    /// from the log), update `docs/format.md`, then this length and CRC.
    #[test]
    fn the_file_format_is_pinned() {
        let ent = Entitlement::new("db", "read");
        let mut index = AccessIndex::new();
        let events = [
            EventData::IdentityJoined(Joined {
                identity: "alice".into(),
                kind: IdentityKind::Human,
                attributes: [("team".to_string(), "a".to_string())].into(),
                owner: None,
            }),
            EventData::IdentityJoined(Joined {
                identity: "bot".into(),
                kind: IdentityKind::Service,
                attributes: Default::default(),
                owner: Some("alice".into()),
            }),
            EventData::GroupCreated(GroupLifecycle { group: "eng".into(), display_name: Some("Engineering".into()) }),
            EventData::GroupMemberAdded(Membership { group: "eng".into(), identity: "bot".into() }),
            EventData::GroupAccessGranted(GroupAccess { group: "eng".into(), entitlement: ent.clone() }),
            EventData::AccessGranted(Granted {
                identity: "alice".into(),
                entitlement: ent.clone(),
                expires_at: Some(Timestamp::from_micros(1_800_000_000_000_000)),
                justification: Some("on call".into()),
                approver: Some("carol".into()),
            }),
            EventData::IdentitySuspended(StatusChange { identity: "alice".into(), reason: None }),
            EventData::IdentityReactivated(StatusChange { identity: "alice".into(), reason: None }),
            EventData::CredentialIssued(Credential {
                identity: "bot".into(),
                credential: "key-1".into(),
                expires_at: None,
            }),
            EventData::AccessRevoked(Revoked { identity: "alice".into(), entitlement: ent, reason: None }),
            EventData::EventRetracted(Retracted { position: Position(7), reason: "entered in error".into() }),
            EventData::IdentityLeft(StatusChange { identity: "alice".into(), reason: None }),
        ];
        for (i, data) in events.into_iter().enumerate() {
            index.apply(&event(i as u64 + 1, data));
        }
        let bytes = index.to_bytes();
        assert_eq!((bytes.len(), crc32fast::hash(&bytes)), (4432, 871888078), "the index file format changed");
    }

    /// A file whose offset tables are `u64` (the form of a list section past 4 GiB) reads
    /// exactly like one with `u32` tables: written again from what it reads, it gives the
    /// same bytes.
    #[test]
    fn wide_offset_tables_read_like_narrow_ones() {
        let ent = Entitlement::new("db", "read");
        let joined = |id: &str, kind, owner: Option<&str>| {
            EventData::IdentityJoined(Joined {
                identity: id.into(),
                kind,
                attributes: [("team".to_string(), "a".to_string())].into(),
                owner: owner.map(Into::into),
            })
        };
        let mut index = AccessIndex::new();
        let events = [
            joined("alice", IdentityKind::Human, None),
            joined("bot", IdentityKind::Service, Some("alice")),
            EventData::GroupCreated(GroupLifecycle { group: "eng".into(), display_name: None }),
            EventData::GroupMemberAdded(Membership { group: "eng".into(), identity: "bot".into() }),
            EventData::GroupAccessGranted(GroupAccess { group: "eng".into(), entitlement: ent.clone() }),
            EventData::AccessGranted(Granted {
                identity: "alice".into(),
                entitlement: ent,
                expires_at: None,
                justification: None,
                approver: None,
            }),
        ];
        for (i, data) in events.into_iter().enumerate() {
            index.apply(&event(i as u64 + 1, data));
        }
        let narrow = index.to_bytes();
        let runs = crate::runs::build_runs(&index).unwrap();
        let wide = write_with(&index, &runs, std::io::Cursor::new(Vec::new()), true).unwrap().into_inner();
        assert!(wide.len() > narrow.len());
        let from_wide = AccessIndex::from_bytes(&wide).unwrap();
        assert_eq!(from_wide.to_bytes(), narrow);
    }
}
