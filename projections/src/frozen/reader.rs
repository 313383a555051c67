//! Reading an index file: map it, check its header, and read sections and items, each
//! checked (section CRC once per process, item CRCs, id ranges) before it is believed.

#[allow(unused_imports)]
use super::*;

pub(crate) enum Bytes {
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
    /// Per section, the index in `Blocks` of its first block's CRC-32; and per block,
    /// whether it was checked (and held) in this process.
    first_block: [usize; SECTIONS],
    block_checked: Vec<std::sync::OnceLock<bool>>,
    pub head: u64,
    pub identities: u32,
    pub groups: u32,
    pub ents: u32,
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

    pub(crate) fn parse(bytes: Bytes, origin: String) -> Result<Frozen, CorruptIndex> {
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
            first_block: [0; SECTIONS],
            block_checked: Vec::new(),
            origin: origin.clone(),
        };
        if frozen.sections[S::IdSorted as usize].1 != frozen.identities as usize * 4
            || frozen.sections[S::IdLast as usize].1 != frozen.identities as usize * 8
        {
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
        // The block checksums: the sections' blocks in file order, checked whole at open.
        let mut order: Vec<usize> = (0..SECTIONS).filter(|&s| s != S::Blocks as usize).collect();
        order.sort_by_key(|&s| frozen.sections[s].0);
        let mut blocks = 0usize;
        for s in order {
            frozen.first_block[s] = blocks;
            blocks += frozen.sections[s].1.div_ceil(BLOCK);
        }
        if frozen.sections[S::Blocks as usize].1 != blocks * 4 {
            return Err(bad("the block checksums do not cover the sections"));
        }
        frozen.checked(S::Blocks)?;
        frozen.block_checked = (0..blocks).map(|_| std::sync::OnceLock::new()).collect();
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

    pub(crate) fn section(&self, s: S) -> &[u8] {
        let (off, len) = self.sections[s as usize];
        &self.bytes[off..off + len]
    }

    /// Section `s`, once its CRC-32 was found right (checked once per process).
    pub(crate) fn checked(&self, s: S) -> Result<&[u8], CorruptIndex> {
        let bytes = self.section(s);
        if *self.checked[s as usize].get_or_init(|| crc32fast::hash(bytes) == self.crcs[s as usize]) {
            Ok(bytes)
        } else {
            Err(self.corrupt(&format!("the {} section fails its checksum", SECTION_NAMES[s as usize])))
        }
    }

    /// Bytes `range` of section `s`, once the CRC-32 of every block they lie in was
    /// found right (each block checked once per process): what a query reads of a large
    /// section, without checking all of it.
    pub(crate) fn checked_range(&self, s: S, range: std::ops::Range<usize>) -> Result<&[u8], CorruptIndex> {
        let bytes = self.section(s);
        let slice = bytes.get(range.clone()).ok_or_else(|| self.corrupt("a read past the end of a section"))?;
        if range.is_empty() || self.checked[s as usize].get() == Some(&true) {
            return Ok(slice);
        }
        let crcs = self.section(S::Blocks);
        for b in range.start / BLOCK..=(range.end - 1) / BLOCK {
            let i = self.first_block[s as usize] + b;
            let block = &bytes[b * BLOCK..((b + 1) * BLOCK).min(bytes.len())];
            let ok = self.block_checked.get(i).is_some_and(|c| {
                *c.get_or_init(|| crcs.len() >= i * 4 + 4 && crc32fast::hash(block) == le_u32(crcs, i * 4))
            });
            if !ok {
                return Err(self.corrupt(&format!("the {} section fails its checksum", SECTION_NAMES[s as usize])));
            }
        }
        Ok(slice)
    }

    /// Checks every byte of the file: each section's CRC and its blocks', and each
    /// item's of the sections whose items carry their own. For `tenure verify`.
    pub fn check_all(&self) -> Result<(), CorruptIndex> {
        // Every section's blocks, then the section whole (blocks first: a section found
        // sound whole is not checked block by block).
        for s in [
            S::Recorded,
            S::IdNamesOff,
            S::IdNames,
            S::IdSorted,
            S::IdEventsOff,
            S::IdEvents,
            S::GroupsOfOff,
            S::GroupsOf,
            S::OwnedOff,
            S::Owned,
            S::DirectOff,
            S::Direct,
            S::MembersOff,
            S::Members,
            S::Small,
            S::RunsOff,
            S::Runs,
            S::IdLast,
        ] {
            self.checked_range(s, 0..self.section(s).len())?;
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
    pub(crate) fn item(&self, off: S, blob: S, i: u32) -> Result<&[u8], CorruptIndex> {
        let width = usize::from(self.widths[off as usize]);
        let at = i as usize * width;
        if at + 2 * width > self.section(off).len() {
            return Err(self.corrupt("list index out of range"));
        }
        let table = self.checked_range(off, at..at + 2 * width)?;
        let entry = |at: usize| if width == 4 { le_u32(table, at) as usize } else { le_u64(table, at) as usize };
        let (from, to) = (entry(0), entry(width));
        if from > to || to > self.section(blob).len() {
            return Err(self.corrupt("list offsets out of order"));
        }
        // The events and runs lists carry a CRC per item, checked by their readers.
        match blob {
            S::IdEvents | S::Runs => Ok(&self.section(blob)[from..to]),
            _ => self.checked_range(blob, from..to),
        }
    }

    pub(crate) fn ids(&self, off: S, blob: S, i: u32, limit: u32, out: &mut Vec<u32>) -> Result<(), CorruptIndex> {
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
    pub(crate) fn recorded_times(&self) -> Option<RecordedTimes<'_>> {
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

    /// The id of `name`, by binary search over the names in sorted order (compared as
    /// bytes: UTF-8 sorts as its bytes, and a name equal to `name` is UTF-8).
    pub fn identity_id(&self, name: &str) -> Result<Option<u32>, CorruptIndex> {
        let (mut lo, mut hi) = (0usize, self.identities as usize);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let id = le_u32(self.checked_range(S::IdSorted, mid * 4..mid * 4 + 4)?, 0);
            match self.item(S::IdNamesOff, S::IdNames, id)?.cmp(name.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(id)),
            }
        }
        Ok(None)
    }

    /// Per identity, the position of its last event that bears on its access
    /// ([`IdOp::bears_on_access`]; 0 for none), in id order: the section checked whole
    /// (8 bytes an identity) the first time a process asks.
    pub fn last_access_positions(&self) -> Result<impl Iterator<Item = u64> + '_, CorruptIndex> {
        Ok(self.checked(S::IdLast)?.chunks_exact(8).map(|b| le_u64(b, 0)))
    }

    /// An identity's events as filed: empty, or their CRC-32 (checked) and their encoding.
    pub(crate) fn id_events_filed(&self, id: u32) -> Result<&[u8], CorruptIndex> {
        let b = self.item(S::IdEventsOff, S::IdEvents, id)?;
        if !b.is_empty() && (b.len() < 4 || crc32fast::hash(&b[4..]) != le_u32(b, 0)) {
            return Err(self.corrupt(&format!("the events of identity #{id} fail their checksum")));
        }
        Ok(b)
    }

    /// The position of identity `id`'s last event that bears on access (0 for none).
    pub(crate) fn last_access_position(&self, id: u32) -> Result<u64, CorruptIndex> {
        let at = id as usize * 8;
        Ok(le_u64(self.checked_range(S::IdLast, at..at + 8)?, 0))
    }

    /// An identity's events; `lite` as in [`crate::codec::decode`].
    pub fn id_events(&self, id: u32, lite: bool) -> Result<Vec<Filed<IdOp>>, CorruptIndex> {
        let b = self.id_events_filed(id)?;
        if b.is_empty() {
            return Ok(Vec::new());
        }
        let list = crate::codec::decode(&b[4..], lite)
            .map_err(|_| self.corrupt(&format!("the events of identity #{id} do not decode")))?;
        // Every id a list names is within the header's counts: a crafted file whose
        // checksums hold is an error here, never an index out of range above.
        let (ids, groups, ents) = (self.identities, self.groups, self.ents);
        let in_range = |op: &IdOp| match op {
            IdOp::Granted { ent, .. } | IdOp::Revoked(ent) | IdOp::Reviewed(ent) => *ent < ents,
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
    /// head, holds at `t`, with the reasons (see [`crate::codec::runs_each`]).
    pub fn runs_at(
        &self,
        ent: u32,
        t: i64,
        mut found: impl FnMut(u32, &[crate::model::RunVia]),
    ) -> Result<(), CorruptIndex> {
        self.runs_each(ent, |id, from, to, via| {
            if from <= t && t < to {
                found(id, via);
            }
        })
    }

    /// The runs of `ent` as encoded (see `crate::codec::encode_run`), their CRC-32 checked.
    pub(crate) fn runs_filed(&self, ent: u32) -> Result<&[u8], CorruptIndex> {
        let b = self.item(S::RunsOff, S::Runs, ent)?;
        if b.is_empty() {
            return Ok(b);
        }
        if b.len() < 4 || crc32fast::hash(&b[4..]) != le_u32(b, 0) {
            return Err(self.corrupt(&format!("the access runs of entitlement #{ent} fail their checksum")));
        }
        Ok(&b[4..])
    }

    /// Calls `found` for each run of effective access to `ent` as of the file's head:
    /// identity, `[from, to)` and reasons, identities ascending.
    pub fn runs_each(
        &self,
        ent: u32,
        found: impl FnMut(u32, i64, i64, &[crate::model::RunVia]),
    ) -> Result<(), CorruptIndex> {
        let b = self.runs_filed(ent)?;
        if b.is_empty() {
            return Ok(());
        }
        // Ids past the header's counts are refused before `found` sees them.
        let (ids, groups) = (self.identities, self.groups);
        let mut found = found;
        let mut past_end = false;
        crate::codec::runs_each(b, |id, from, to, via| {
            let groups_ok = via.iter().all(|v| match v {
                crate::model::RunVia::Group { group, .. } => *group < groups,
                crate::model::RunVia::Direct { .. } => true,
            });
            if id < ids && groups_ok && !past_end {
                found(id, from, to, via);
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
        super::small::decode_small(&b[4..]).map_err(|_| self.corrupt("the group and entitlement tables do not decode"))
    }
}
