//! The writer's validation state on disk, `writer.state`: the idempotency fingerprints
//! with the first position of each, the names of the identities joined and the groups
//! created, and the positions of the retractions, as of a head named by its chain hash,
//! with the keys of the fingerprints (so that the next process computes the same ones).
//!
//! It lets a writer's first append read only the log's tail: the file is mapped, checked
//! (its CRC, its tables, and the chain hash of the log at its head), and the events after
//! its head are replayed into memory. It is derived like `subjects.idx`: a missing,
//! damaged, foreign or stale file costs a scan of the log, never an error or an answer.
//! The writer writes a new one, merged from the old file and what it took in since, when
//! it closes having taken in at least [`SAVE_AFTER`] events past the file.
//!
//! Layout (integers little-endian; `docs/format.md` has the table):
//!
//! ```text
//! magic "TENUVALS" | version u32 = 1 | CRC-32 of every byte after this field (u32)
//! head u64 | chain hash of the log at head [32] | last recorded_at i64 (µs)
//! fingerprint keys 4 x u64
//! keys u64 | retractions u64 | identities u64 | groups u64
//! identity names' bytes u64 | group names' bytes u64
//! keys x (fingerprint u128, first position u64), by fingerprint
//! retractions x u64, ascending
//! identity name offsets (identities + 1) x u64 | group name offsets (groups + 1) x u64
//! identity names, in byte order | group names, in byte order
//! ```

#[allow(unused_imports)]
use super::*;

const MAGIC: &[u8; 8] = b"TENUVALS";
const VERSION: u32 = 1;
const HEADER: usize = 144;
const KEY_LEN: usize = 24;
/// A writer that closes with at least this many events taken in past the file writes a
/// new one (fewer cost the next open less to replay than a rewrite costs).
pub const SAVE_AFTER: u64 = 10_000;

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// A mapped, checked `writer.state`.
pub(crate) struct Saved {
    map: memmap2::Mmap,
    pub(crate) head: u64,
    pub(crate) chain: Hash,
    pub(crate) last_recorded: Timestamp,
    pub(crate) seeds: [u64; 4],
    keys: usize,
    retractions: usize,
    identities: usize,
    groups: usize,
    identity_bytes: usize,
}

/// One table of names: offsets (`count + 1`) and the bytes they index.
struct Names<'a> {
    offsets: &'a [u8],
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Names<'a> {
    fn get(&self, i: usize) -> &'a [u8] {
        let (a, b) = (u64_at(self.offsets, i * 8) as usize, u64_at(self.offsets, (i + 1) * 8) as usize);
        &self.bytes[a..b]
    }

    fn contains(&self, name: &str) -> bool {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).cmp(name.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    /// Offsets must rise and stay inside the bytes, so that every `get` is in bounds.
    fn sound(&self) -> bool {
        let mut prev = 0;
        for i in 0..=self.count {
            let o = u64_at(self.offsets, i * 8);
            if o < prev || o > self.bytes.len() as u64 {
                return false;
            }
            prev = o;
        }
        u64_at(self.offsets, 0) == 0 && prev == self.bytes.len() as u64
    }
}

impl Saved {
    /// Maps and checks the file of `dir`; `None` when there is none or it is not sound.
    pub(crate) fn open(dir: &Path) -> Option<Saved> {
        let file = File::open(dir.join(STATE_FILE)).ok()?;
        // SAFETY: the file is only ever replaced by a rename (a writer writes a new file
        // under another name), never written in place, so the mapped bytes do not change
        // under us; a truncation by hand would fault, as for any mapped file.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        Saved::parse(map)
    }

    fn parse(map: memmap2::Mmap) -> Option<Saved> {
        let b = &map[..];
        if b.len() < HEADER || &b[..8] != MAGIC || u32::from_le_bytes(b[8..12].try_into().ok()?) != VERSION {
            return None;
        }
        if u32::from_le_bytes(b[12..16].try_into().ok()?) != crc32fast::hash(&b[16..]) {
            return None;
        }
        let head = u64_at(b, 16);
        let chain: Hash = b[24..56].try_into().ok()?;
        let last_recorded = Timestamp::from_micros(u64_at(b, 56) as i64);
        let seeds = [u64_at(b, 64), u64_at(b, 72), u64_at(b, 80), u64_at(b, 88)];
        let n = |at: usize| usize::try_from(u64_at(b, at)).ok();
        let (keys, retractions, identities, groups) = (n(96)?, n(104)?, n(112)?, n(120)?);
        let (identity_bytes, group_bytes) = (n(128)?, n(136)?);
        let len = HEADER
            .checked_add(keys.checked_mul(KEY_LEN)?)?
            .checked_add(retractions.checked_mul(8)?)?
            .checked_add(identities.checked_add(1)?.checked_mul(8)?)?
            .checked_add(groups.checked_add(1)?.checked_mul(8)?)?
            .checked_add(identity_bytes)?
            .checked_add(group_bytes)?;
        if len != b.len() {
            return None;
        }
        let saved =
            Saved { map, head, chain, last_recorded, seeds, keys, retractions, identities, groups, identity_bytes };
        (saved.names(false).sound() && saved.names(true).sound()).then_some(saved)
    }

    fn retractions_at(&self) -> usize {
        HEADER + self.keys * KEY_LEN
    }

    fn names(&self, groups: bool) -> Names<'_> {
        let offsets_at = self.retractions_at() + self.retractions * 8;
        let group_offsets_at = offsets_at + (self.identities + 1) * 8;
        let bytes_at = group_offsets_at + (self.groups + 1) * 8;
        let b = &self.map[..];
        match groups {
            false => Names {
                offsets: &b[offsets_at..group_offsets_at],
                bytes: &b[bytes_at..bytes_at + self.identity_bytes],
                count: self.identities,
            },
            true => Names {
                offsets: &b[group_offsets_at..bytes_at],
                bytes: &b[bytes_at + self.identity_bytes..],
                count: self.groups,
            },
        }
    }

    fn key_at(&self, i: usize) -> (u128, u64) {
        let at = HEADER + i * KEY_LEN;
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&self.map[at..at + 16]);
        (u128::from_le_bytes(fp), u64_at(&self.map, at + 16))
    }

    /// The first position of the idempotency key with this fingerprint.
    pub(crate) fn key(&self, fingerprint: u128) -> Option<u64> {
        let (mut lo, mut hi) = (0, self.keys);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (fp, position) = self.key_at(mid);
            match fp.cmp(&fingerprint) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(position),
            }
        }
        None
    }

    pub(crate) fn has_identity(&self, name: &str) -> bool {
        self.names(false).contains(name)
    }

    pub(crate) fn has_group(&self, name: &str) -> bool {
        self.names(true).contains(name)
    }

    pub(crate) fn is_retraction(&self, position: u64) -> bool {
        let at = self.retractions_at();
        let (mut lo, mut hi) = (0, self.retractions);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match u64_at(&self.map, at + mid * 8).cmp(&position) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }
}

/// The head and chain hash of the `writer.state` of `dir` when it is there and sound
/// (`None` otherwise); whether it names this log is for the writer to check.
pub fn saved_state_head(dir: &Path) -> Option<(u64, Hash)> {
    Saved::open(dir).map(|s| (s.head, s.chain))
}

/// Writes the state of `state` (the file it was loaded from, if any, and what it took in
/// since) to `dir` as a new `writer.state`, renamed into place. Streams the merge through
/// a buffer: memory beyond the state's own is the sorted copies of what it took in.
pub(crate) fn save(dir: &Path, state: &State) -> std::io::Result<()> {
    let saved = state.saved.as_deref();
    let mut keys: Vec<(u128, u64)> = state.dedup.iter().map(|(&k, &p)| (k, p)).collect();
    keys.sort_unstable();
    let mut retractions: Vec<u64> = state.retractions.iter().copied().collect();
    retractions.sort_unstable();
    fn sorted(set: &Set<Box<str>>) -> Vec<&[u8]> {
        let mut v: Vec<&[u8]> = set.iter().map(|s| s.as_bytes()).collect();
        v.sort_unstable();
        v
    }
    let (identities, groups) = (sorted(&state.identities), sorted(&state.groups));
    let old_names = |groups: bool| saved.map(|s| s.names(groups));
    // A table of names merged from the file's and the new ones: (offsets, bytes).
    let merged_names = |old: Option<Names<'_>>, new: &[&[u8]]| -> (Vec<u8>, Vec<u8>) {
        let mut offsets = 0u64.to_le_bytes().to_vec();
        let mut bytes = Vec::new();
        let old_count = old.as_ref().map_or(0, |n| n.count);
        let (mut i, mut j) = (0, 0);
        loop {
            let a = old.as_ref().filter(|_| i < old_count).map(|n| n.get(i));
            let name = match (a, new.get(j).copied()) {
                (Some(a), Some(b)) if a == b => {
                    (i, j) = (i + 1, j + 1);
                    a
                }
                (Some(a), Some(b)) if a < b => {
                    i += 1;
                    a
                }
                (Some(a), None) => {
                    i += 1;
                    a
                }
                (_, Some(b)) => {
                    j += 1;
                    b
                }
                (None, None) => break,
            };
            bytes.extend_from_slice(name);
            offsets.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        }
        (offsets, bytes)
    };
    let (id_offs, id_bytes) = merged_names(old_names(false), &identities);
    let (g_offs, g_bytes) = merged_names(old_names(true), &groups);
    let n_keys = saved.map_or(0, |s| s.keys) + keys.len();
    let n_retractions = saved.map_or(0, |s| s.retractions) + retractions.len();

    let path = dir.join(STATE_FILE);
    let tmp = crate::files::temporary_path(&path);
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut out = Checksummed { out: std::io::BufWriter::with_capacity(1 << 20, &file), crc: Default::default() };
        out.out.write_all(MAGIC)?;
        out.out.write_all(&VERSION.to_le_bytes())?;
        out.out.write_all(&[0; 4])?;
        out.put(&state.head.to_le_bytes())?;
        out.put(&state.chain)?;
        out.put(&state.last_recorded.as_micros().to_le_bytes())?;
        for s in state.fingerprints.seeds {
            out.put(&s.to_le_bytes())?;
        }
        for n in [n_keys, n_retractions, id_offs.len() / 8 - 1, g_offs.len() / 8 - 1, id_bytes.len(), g_bytes.len()] {
            out.put(&(n as u64).to_le_bytes())?;
        }
        // Keys: the file's and the new ones, merged by fingerprint.
        let old_keys = saved.map_or(0, |s| s.keys);
        let (mut i, mut j) = (0, 0);
        while i < old_keys || j < keys.len() {
            let a = saved.filter(|_| i < old_keys).map(|s| s.key_at(i));
            let (fp, position) = match (a, keys.get(j)) {
                (Some(a), Some(&b)) if b.0 < a.0 => {
                    j += 1;
                    b
                }
                (Some(a), _) => {
                    i += 1;
                    a
                }
                (None, Some(&b)) => {
                    j += 1;
                    b
                }
                (None, None) => break,
            };
            out.put(&fp.to_le_bytes())?;
            out.put(&position.to_le_bytes())?;
        }
        // Retractions: the file's are all before the new ones.
        if let Some(s) = saved {
            let at = s.retractions_at();
            out.put(&s.map[at..at + s.retractions * 8])?;
        }
        for r in &retractions {
            out.put(&r.to_le_bytes())?;
        }
        // Offsets of both tables, then the bytes of both.
        for part in [&id_offs, &g_offs, &id_bytes, &g_bytes] {
            out.put(part)?;
        }
        let Checksummed { mut out, crc } = out;
        out.flush()?;
        drop(out);
        let crc = crc.finalize();
        file.write_all_at(&crc.to_le_bytes(), 12)?;
        std::fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A buffered writer that keeps the CRC of what is put through it.
struct Checksummed<'f> {
    out: std::io::BufWriter<&'f File>,
    crc: crc32fast::Hasher,
}

impl Checksummed<'_> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.out.write_all(bytes)
    }
}
