//! Writing an index file: sections one after the other, each's CRC, the header last;
//! to a temporary file of this process's own, synced and renamed into place.

#[allow(unused_imports)]
use super::*;
use std::borrow::Cow;

/// A writer that knows where it is, and where each section it wrote lies.
pub(crate) struct Counting<W> {
    inner: W,
    at: u64,
    sections: [(u64, u64); SECTIONS],
    /// The CRC-32 of each section, and of what was written since the last section.
    crcs: [u32; SECTIONS],
    crc: crc32fast::Hasher,
    /// The CRC-32 of every whole or last block of the sections written, in file order,
    /// and of what was written of the current block.
    blocks: Vec<u32>,
    block: crc32fast::Hasher,
    in_block: usize,
    /// Write every offset table as `u64`, whatever the size of its list section.
    wide: bool,
}

impl<W: Write> Counting<W> {
    pub(crate) fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(b)?;
        self.crc.update(b);
        self.at += b.len() as u64;
        let mut rest = b;
        while !rest.is_empty() {
            let n = rest.len().min(BLOCK - self.in_block);
            self.block.update(&rest[..n]);
            self.in_block += n;
            rest = &rest[n..];
            if self.in_block == BLOCK {
                self.blocks.push(std::mem::take(&mut self.block).finalize());
                self.in_block = 0;
            }
        }
        Ok(())
    }

    /// Ends the current block where a section ends (blocks never span two sections).
    fn end_block(&mut self) {
        if self.in_block > 0 {
            self.blocks.push(std::mem::take(&mut self.block).finalize());
            self.in_block = 0;
        }
    }

    /// Records that section `s` is what was written since `start`.
    /// Sections are written one after the other, so the CRC of what was written since
    /// the last section is this one's.
    pub(crate) fn section(&mut self, s: S, start: u64) {
        self.sections[s as usize] = (start, self.at - start);
        self.crcs[s as usize] = std::mem::take(&mut self.crc).finalize();
        self.end_block();
    }

    /// Writes a list table: `count` items into section `blob` (each written by `item`),
    /// then their `count + 1` offsets into section `off`.
    pub(crate) fn table(
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
    pub(crate) fn checked(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.put(&crc32fast::hash(bytes).to_le_bytes())?;
        self.put(bytes)
    }
}

/// Writes the index of `src` to `out` (a file or a `Cursor<Vec<u8>>`).
pub(crate) fn write<W: Write + Seek>(src: &impl Source, runs: &[Cow<'_, [u8]>], out: W) -> Result<W, WriteError> {
    write_with(src, runs, out, false)
}

/// [`write`], with `wide` forcing `u64` offset tables (the form of lists past 4 GiB).
pub(crate) fn write_with<W: Write + Seek>(
    src: &impl Source,
    runs: &[Cow<'_, [u8]>],
    out: W,
    wide: bool,
) -> Result<W, WriteError> {
    let mut w = Counting {
        inner: out,
        at: 0,
        sections: [(0, 0); SECTIONS],
        crcs: [0; SECTIONS],
        crc: crc32fast::Hasher::new(),
        blocks: Vec::new(),
        block: crc32fast::Hasher::new(),
        in_block: 0,
        wide,
    };
    w.put(&[0u8; HEADER_LEN])?;
    w.crc = crc32fast::Hasher::new();
    w.blocks.clear();
    w.block = crc32fast::Hasher::new();
    w.in_block = 0;

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

    // Each identity's events, and the position of the last that bears on access.
    let mut buf = Vec::new();
    let mut last = Vec::with_capacity(ids as usize);
    w.table(S::IdEventsOff, S::IdEvents, ids, |w, id| {
        if let Some((filed, last_pos)) = src.id_events_filed(id)? {
            last.push(last_pos);
            return Ok(w.put(filed)?);
        }
        buf.clear();
        let list = src.id_events(id)?;
        if !list.is_empty() {
            crate::codec::encode(&list, &mut buf);
        }
        last.push(list.iter().filter(|e| e.op.bears_on_access()).map(|e| e.pos).max().unwrap_or(0));
        Ok(w.checked(&buf)?)
    })?;
    let start = w.at;
    for pos in last {
        w.put(&pos.to_le_bytes())?;
    }
    w.section(S::IdLast, start);

    // The u32 lists, each written sorted and without repeats (the tail's lists come in
    // the order of their events, with repeats; a list read from a file and merged with a
    // tail is sorted): so a file is the same bytes whether it was built from the log at
    // once or rewritten from an older file and the events since.
    type GetList<'a> = &'a dyn Fn(u32) -> Result<Vec<u32>, CorruptIndex>;
    let lists: [(S, S, u32, GetList<'_>); 4] = [
        (S::GroupsOfOff, S::GroupsOf, ids, &|i| src.groups_of(i)),
        (S::OwnedOff, S::Owned, ids, &|i| src.owned(i)),
        (S::DirectOff, S::Direct, src.ents(), &|i| src.direct_holders(i)),
        (S::MembersOff, S::Members, src.groups(), &|i| src.members(i)),
    ];
    for (off, blob, count, get) in lists {
        w.table(off, blob, count, |w, i| {
            let mut list = get(i)?;
            list.sort_unstable();
            list.dedup();
            for id in list {
                w.put(&id.to_le_bytes())?;
            }
            Ok(())
        })?;
    }

    w.table(S::RunsOff, S::Runs, runs.len() as u32, |w, ent| Ok(w.checked(&runs[ent as usize])?))?;

    let start = w.at;
    let mut small = Vec::new();
    super::small::encode_small(&src.small(), &mut small)?;
    w.checked(&small)?;
    w.section(S::Small, start);

    // Last: the block checksums of every section before, in file order.
    let blocks: Vec<u8> = w.blocks.iter().flat_map(|c| c.to_le_bytes()).collect();
    let start = w.at;
    w.put(&blocks)?;
    w.section(S::Blocks, start);

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
pub(crate) fn write_file(src: &impl Source, runs: &[Cow<'_, [u8]>], path: &Path) -> Result<(), WriteError> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir)?;
    // A name of this process's own: several reader processes may rebuild at once, and
    // each rename replaces the file whole.
    let tmp = tenure_engine::files::temporary_path(path);
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
