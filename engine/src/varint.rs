//! Unsigned LEB128 varints (7 bits a byte, low bits first, the high bit set on every byte
//! but the last): how the derived index files (`subjects.idx` here, `access.index` in the
//! projections crate) store counts, positions and deltas.

/// Appends `x` to `out`.
#[inline]
pub fn put(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Reads the varint at the start of `b` and moves `b` past it; `None` when `b` ends
/// inside it or it runs past 10 bytes. Inlined into the decoders of other crates (most
/// of the index files' varints are one byte, read without a loop).
#[inline]
pub fn take(b: &mut &[u8]) -> Option<u64> {
    if let Some((&first, rest)) = b.split_first() {
        if first < 0x80 {
            *b = rest;
            return Some(u64::from(first));
        }
    }
    let mut x = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        x |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            *b = &b[i + 1..];
            return Some(x);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_stops_at_the_end() {
        let values = [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let mut buf = vec![];
        values.iter().for_each(|&v| super::put(&mut buf, v));
        let mut b = buf.as_slice();
        for v in values {
            assert_eq!(super::take(&mut b), Some(v));
        }
        assert_eq!(super::take(&mut b), None);
        assert_eq!(super::take(&mut &[0x80u8][..]), None);
    }
}
