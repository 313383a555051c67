//! The `recorded` section of an index file: the `recorded_at` of every position, in
//! blocks of varint deltas with a CRC, about one byte a position.

use crate::codec::{unzigzag, zigzag, Malformed, Reader};
use tenure_engine::varint::put as put_varint;

/// Positions per block of the `recorded_at` table.
const RECORDED_BLOCK: u64 = 64;

/// Writes the `recorded_at` (µs) of positions 1, 2, ... as the index file's `recorded`
/// section: CRC-32 (u32) of the rest, block count (u64), per block of 64 positions the
/// time of its first position (i64) and where its deltas start (u64), then per other
/// position the zigzag varint of its time minus the previous one's. A log appended in
/// batches shares one time per batch, so this costs about one byte per position (eight
/// as a plain array); single appends cost their distance in µs, 3 to 5 bytes.
#[derive(Default)]
pub(crate) struct RecordedWriter {
    table: Vec<u8>,
    deltas: Vec<u8>,
    count: u64,
    prev: i64,
}

impl RecordedWriter {
    pub fn push(&mut self, t: i64) {
        if self.count.is_multiple_of(RECORDED_BLOCK) {
            self.table.extend_from_slice(&t.to_le_bytes());
            self.table.extend_from_slice(&(self.deltas.len() as u64).to_le_bytes());
        } else {
            put_varint(&mut self.deltas, zigzag(t.wrapping_sub(self.prev)));
        }
        self.prev = t;
        self.count += 1;
    }

    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.table.len() + self.deltas.len());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(self.count.div_ceil(RECORDED_BLOCK)).to_le_bytes());
        out.extend_from_slice(&self.table);
        out.extend_from_slice(&self.deltas);
        let crc = crc32fast::hash(&out[4..]);
        out[..4].copy_from_slice(&crc.to_le_bytes());
        out
    }
}

/// The `recorded` section of an index file, as [`RecordedWriter`] wrote it, checked.
pub(crate) struct RecordedTimes<'a> {
    table: &'a [u8],
    deltas: &'a [u8],
    head: u64,
}

impl<'a> RecordedTimes<'a> {
    /// Reads the section for `head` positions, checking its block count and, with
    /// `check_crc` (once, when the file is opened), its CRC.
    pub fn parse(b: &'a [u8], head: u64, check_crc: bool) -> Result<Self, Malformed> {
        let crc = u32::from_le_bytes(b.get(..4).ok_or(Malformed)?.try_into().map_err(|_| Malformed)?);
        let rest = &b[4..];
        if check_crc && crc32fast::hash(rest) != crc {
            return Err(Malformed);
        }
        let blocks = u64::from_le_bytes(rest.get(..8).ok_or(Malformed)?.try_into().map_err(|_| Malformed)?);
        if blocks != head.div_ceil(RECORDED_BLOCK) {
            return Err(Malformed);
        }
        let table_len = usize::try_from(blocks).ok().and_then(|b| b.checked_mul(16)).ok_or(Malformed)?;
        let table = rest.get(8..8 + table_len).ok_or(Malformed)?;
        Ok(RecordedTimes { table, deltas: &rest[8 + table_len..], head })
    }

    fn block(&self, b: usize) -> (i64, usize) {
        let at = b * 16;
        let word = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&self.table[at..at + 8]);
            x
        };
        (i64::from_le_bytes(word(at)), usize::try_from(u64::from_le_bytes(word(at + 8))).unwrap_or(usize::MAX))
    }

    /// Walks block `b` from its first position: calls `visit` with each time until it
    /// answers false or the block (or the head) ends. A malformed delta ends the walk;
    /// the CRC makes that a hand-made file, never a torn one.
    fn walk(&self, b: usize, mut visit: impl FnMut(i64) -> bool) {
        if b >= self.table.len() / 16 {
            return;
        }
        let (mut t, off) = self.block(b);
        let first = b as u64 * RECORDED_BLOCK;
        let n = (self.head - first).min(RECORDED_BLOCK);
        if !visit(t) {
            return;
        }
        let mut r = Reader { b: self.deltas, at: off };
        for _ in 1..n {
            match r.varint() {
                Ok(d) => t = t.wrapping_add(unzigzag(d)),
                Err(Malformed) => return,
            }
            if !visit(t) {
                return;
            }
        }
    }

    /// The time of position `pos` (1 ..= head; `i64::MIN` outside).
    pub fn get(&self, pos: u64) -> i64 {
        if pos == 0 || pos > self.head {
            return i64::MIN;
        }
        let i = pos - 1;
        let mut steps = i % RECORDED_BLOCK;
        let mut out = i64::MIN;
        self.walk(usize::try_from(i / RECORDED_BLOCK).unwrap_or(usize::MAX), |t| {
            out = t;
            steps = steps.wrapping_sub(1);
            steps != u64::MAX
        });
        out
    }

    /// How many positions were recorded at or before `t` (times never decrease).
    pub fn count_at_or_before(&self, t: i64) -> u64 {
        let blocks = self.table.len() / 16;
        // The last block whose first time is at or before t.
        let (mut lo, mut hi) = (0usize, blocks);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.block(mid).0 <= t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return 0;
        }
        let b = lo - 1;
        let mut count = b as u64 * RECORDED_BLOCK;
        self.walk(b, |x| {
            if x <= t {
                count += 1;
            }
            x <= t
        });
        count
    }

    /// Calls `visit` with the time of every position, in order.
    pub fn for_each(&self, mut visit: impl FnMut(i64)) {
        for b in 0..self.table.len() / 16 {
            self.walk(b, |t| {
                visit(t);
                true
            });
        }
    }
}
