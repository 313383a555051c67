//! The log file's framing: its header, each record's length, flags, CRC and chain hash,
//! and the [`Scanner`] that reads records back in large sequential chunks.
//!
//! ```text
//! file   := header record*
//! header := "TENURLOG" (8) | format_version u32 LE (4) | reserved u32 LE = 0 (4)
//! record := len_flags u32 LE | crc32 u32 LE | payload | chain [32]
//! len_flags := payload length (bits 0..31) | CONTINUES (bit 31: more records of the
//!              same atomic batch follow)
//! crc32  := CRC-32 (IEEE) of len_flags bytes ++ payload ++ chain
//! ```

use crate::chain::{chain_hash, leaf_hash, Hash, GENESIS};
use std::fs::File;
use std::os::unix::fs::FileExt;

pub const MAGIC: &[u8; 8] = b"TENURLOG";
/// Version of the file framing. Readers refuse versions they do not know.
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: u64 = 16;
/// Bytes of framing around each payload: length, CRC and chain hash.
pub const RECORD_OVERHEAD: usize = 4 + 4 + 32;
/// The largest payload a record may hold; a larger one is refused at append and taken as
/// corruption at read.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

pub fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

fn record_crc(len_bytes: &[u8; 4], payload: &[u8], chain: &Hash) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(len_bytes);
    c.update(payload);
    c.update(chain);
    c.finalize()
}

/// Bit 31 of `len_flags`: the batch this record belongs to goes on in the next record.
/// Recovery cuts a batch whose last record never reached the disk, so that a batch is
/// stored whole or not at all.
pub const CONTINUES: u32 = 1 << 31;

/// Appends one framed record to `out` and returns its chain hash. `continues` is set on
/// every record of a batch but its last.
pub fn frame_record(out: &mut Vec<u8>, payload: &[u8], previous: &Hash, continues: bool) -> Hash {
    debug_assert!(payload.len() <= MAX_PAYLOAD_BYTES);
    let chain = chain_hash(previous, &leaf_hash(payload));
    // The payload length is bounded by MAX_PAYLOAD_BYTES, far below bit 31.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX) & !CONTINUES;
    let len_bytes = (len | if continues { CONTINUES } else { 0 }).to_le_bytes();
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&record_crc(&len_bytes, payload, &chain).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&chain);
    chain
}

/// One framed record as read back.
pub struct RawRecord<'a> {
    pub offset: u64,
    pub payload: &'a [u8],
    pub chain: Hash,
    pub crc_ok: bool,
    /// More records of the same batch follow.
    pub continues: bool,
}

impl RawRecord<'_> {
    pub fn end_offset(&self) -> u64 {
        self.offset + (RECORD_OVERHEAD + self.payload.len()) as u64
    }
}

/// What stopped a scan before the end.
#[derive(Debug)]
pub enum ScanStop {
    /// The record at `offset` claims to reach past the end of the file: a torn write.
    Truncated {
        offset: u64,
    },
    /// The length field at `offset` is larger than any record may be.
    BadLength {
        offset: u64,
        len: u64,
    },
    Io(std::io::Error),
}

/// Reads records sequentially from `file` between two offsets, in large chunks.
pub struct Scanner<'f> {
    file: &'f File,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    at: usize,
}

const SCAN_CHUNK: usize = 4 << 20;

impl<'f> Scanner<'f> {
    pub fn new(file: &'f File, start: u64, end: u64) -> Self {
        Scanner { file, end, buf: Vec::new(), buf_start: start, at: 0 }
    }

    /// Makes `need` bytes available at `self.at`, reading more of the file if needed.
    /// Returns false when the file ends first.
    fn fill(&mut self, need: usize) -> Result<bool, std::io::Error> {
        if self.buf.len() - self.at >= need {
            return Ok(true);
        }
        // Drop consumed bytes, then read on.
        self.buf.drain(..self.at);
        self.buf_start += self.at as u64;
        self.at = 0;
        let have_end = self.buf_start + self.buf.len() as u64;
        let want = need.max(SCAN_CHUNK) - self.buf.len();
        let want = want.min((self.end.saturating_sub(have_end)) as usize);
        if want > 0 {
            let old = self.buf.len();
            self.buf.resize(old + want, 0);
            self.file.read_exact_at(&mut self.buf[old..], have_end)?;
        }
        Ok(self.buf.len() >= need)
    }

    /// The next record, `Ok(None)` at a clean end.
    pub fn next_record(&mut self) -> Result<Option<RawRecord<'_>>, ScanStop> {
        let offset = self.buf_start + self.at as u64;
        if offset >= self.end {
            return Ok(None);
        }
        if !self.fill(8).map_err(ScanStop::Io)? {
            return Err(ScanStop::Truncated { offset });
        }
        let len_bytes: [u8; 4] = self.buf[self.at..self.at + 4].try_into().unwrap_or([0; 4]);
        let len_flags = u32::from_le_bytes(len_bytes);
        let continues = len_flags & CONTINUES != 0;
        let len = (len_flags & !CONTINUES) as usize;
        if len > MAX_PAYLOAD_BYTES {
            return Err(ScanStop::BadLength { offset, len: len as u64 });
        }
        if !self.fill(RECORD_OVERHEAD + len).map_err(ScanStop::Io)? {
            return Err(ScanStop::Truncated { offset });
        }
        let b = &self.buf[self.at..self.at + RECORD_OVERHEAD + len];
        let crc = u32::from_le_bytes(b[4..8].try_into().unwrap_or([0; 4]));
        let payload = &b[8..8 + len];
        let mut chain = [0u8; 32];
        chain.copy_from_slice(&b[8 + len..]);
        let crc_ok = crc == record_crc(&len_bytes, payload, &chain);
        self.at += RECORD_OVERHEAD + len;
        Ok(Some(RawRecord { offset, payload, chain, crc_ok, continues }))
    }
}

/// What [`walk_chain`] found.
pub struct ChainWalk {
    /// Records whose framing, chain hash and checksum hold, from position 1.
    pub verified: u64,
    /// The chain hash of the last of them.
    pub chain: Hash,
    /// The last batch boundary among them: its offset, its position, its chain hash.
    pub whole_end: u64,
    pub whole: u64,
    pub whole_chain: Hash,
    /// The first record that does not hold, and why (a last batch without its last
    /// record is not reported here: `whole_end` short of the file's end says it).
    pub bad: Option<(u64, String)>,
}

/// Walks the records of a log file of `len` bytes from the start, recomputing the chain:
/// stops at the first record whose framing, chain hash or checksum does not hold. `visit`
/// sees each record that holds, with its position. The one chain walk of `verify` and
/// `repair`.
pub fn walk_chain(file: &File, len: u64, mut visit: impl FnMut(u64, &RawRecord<'_>)) -> std::io::Result<ChainWalk> {
    let mut scanner = Scanner::new(file, crate::record::HEADER_LEN, len);
    let mut walk =
        ChainWalk { verified: 0, chain: GENESIS, whole_end: HEADER_LEN, whole: 0, whole_chain: GENESIS, bad: None };
    loop {
        let position = walk.verified + 1;
        let rec = match scanner.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(ScanStop::Io(e)) => return Err(e),
            Err(_) => {
                walk.bad = Some((position, "record framing broken".into()));
                break;
            }
        };
        // The payload is not decoded: the chain covers every byte of it, and a record
        // moved to another place breaks the chain there.
        if chain_hash(&walk.chain, &leaf_hash(rec.payload)) != rec.chain {
            walk.bad = Some((position, "chain hash mismatch".into()));
            break;
        }
        if !rec.crc_ok {
            walk.bad = Some((position, "record checksum mismatch".into()));
            break;
        }
        walk.chain = rec.chain;
        walk.verified = position;
        if !rec.continues {
            (walk.whole_end, walk.whole, walk.whole_chain) = (rec.end_offset(), position, rec.chain);
        }
        visit(position, &rec);
    }
    Ok(walk)
}
