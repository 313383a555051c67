//! The binary form of a subject's filed events in the index file.
//!
//! Compact (varints, effective times as deltas in their sorted order) and, above all,
//! cheap to read for access questions: [`decode`] with `lite` skips the attributes and the
//! events that only profiles need (`moved`, credentials) without allocating for them.
//! A holders query reads hundreds of thousands of identities this way.
//!
//! ```text
//! list   count varint, then per event: position varint, effective_at time (delta from
//!        the previous event's), tag u8, payload
//! tag    0 joined (kind u8, owner+1 varint, attrs) | 1 moved (attrs) | 2 suspended
//!        | 3 reactivated | 4 left | 5 rejoined (present u8, attrs?) | 6 owner changed
//!        (owner varint) | 7 granted (entitlement varint, expiry) | 8 revoked (entitlement
//!        varint) | 9 member added (group varint) | 10 member removed (group varint)
//!        | 11 credential (action u8, id string, expiry)
//! attrs  count varint, then (key string, value string) pairs; string = length varint + UTF-8
//! expiry time (NEVER for none)
//! time   varint: 0 NEVER | 2 + 2 zigzag(seconds) when whole seconds | 1, zigzag(µs) varint
//! ```

use crate::model::{CredentialAction, CredentialOp, Filed, IdOp, JoinedOp, PackedAttrs, RunVia, NEVER};
use tenure_engine::varint::put as put_varint;
use tenure_engine::IdentityKind;

pub(crate) fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

pub(crate) fn unzigzag(x: u64) -> i64 {
    ((x >> 1) as i64) ^ -((x & 1) as i64)
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends a time, or a difference of times, in µs (`docs/format.md`, "times"): 0 for
/// [`NEVER`]; `2 + 2 zigzag(seconds)` when it is a whole number of seconds (5 bytes for a
/// date of this century, 1 to 4 for a difference under a few years); else 1 followed by
/// `zigzag(µs)`. Every `i64` reads back as itself.
pub(crate) fn put_time(out: &mut Vec<u8>, t: i64) {
    if t == NEVER {
        put_varint(out, 0);
    } else {
        put_time_value(out, t);
    }
}

/// [`put_time`] without the `NEVER` shorthand: never writes 0.
fn put_time_value(out: &mut Vec<u8>, t: i64) {
    if t % 1_000_000 == 0 {
        put_varint(out, 2 + 2 * zigzag(t / 1_000_000));
    } else {
        put_varint(out, 1);
        put_varint(out, zigzag(t));
    }
}

/// Appends the encoding of `list` (in `(eff, pos)` order) to `out`.
pub(crate) fn encode(list: &[Filed<IdOp>], out: &mut Vec<u8>) {
    put_varint(out, list.len() as u64);
    let mut prev = 0i64;
    for e in list {
        put_varint(out, e.pos);
        put_time(out, e.eff.wrapping_sub(prev));
        prev = e.eff;
        match &e.op {
            IdOp::Joined(j) => {
                out.push(0);
                out.push(matches!(j.kind, IdentityKind::Service) as u8);
                put_varint(out, j.owner.map_or(0, |o| o as u64 + 1));
                j.attributes.put(out);
            }
            IdOp::Moved(a) => {
                out.push(1);
                a.put(out);
            }
            IdOp::Suspended => out.push(2),
            IdOp::Reactivated => out.push(3),
            IdOp::Left => out.push(4),
            IdOp::Rejoined(a) => {
                out.push(5);
                out.push(a.is_some() as u8);
                if let Some(a) = a {
                    a.put(out);
                }
            }
            IdOp::OwnerChanged(o) => {
                out.push(6);
                put_varint(out, *o as u64);
            }
            IdOp::Granted { ent, expires } => {
                out.push(7);
                put_varint(out, *ent as u64);
                put_time(out, *expires);
            }
            IdOp::Revoked(ent) => {
                out.push(8);
                put_varint(out, *ent as u64);
            }
            IdOp::MemberAdded(g) => {
                out.push(9);
                put_varint(out, *g as u64);
            }
            IdOp::MemberRemoved(g) => {
                out.push(10);
                put_varint(out, *g as u64);
            }
            IdOp::Credential(c) => {
                out.push(11);
                out.push(match c.action {
                    CredentialAction::Issued => 0,
                    CredentialAction::Rotated => 1,
                    CredentialAction::Revoked => 2,
                });
                put_str(out, &c.credential);
                put_time(out, c.expires);
            }
            IdOp::Reviewed(ent) => {
                out.push(12);
                put_varint(out, *ent as u64);
            }
        }
    }
}

/// The bytes do not decode: the caller names the file and the subject.
#[derive(Debug)]
pub(crate) struct Malformed;

/// Reads the varints, strings and times of the index file's encodings.
pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, Malformed> {
        let x = *self.b.get(self.at).ok_or(Malformed)?;
        self.at += 1;
        Ok(x)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, Malformed> {
        let mut rest = self.b.get(self.at..).ok_or(Malformed)?;
        let x = tenure_engine::varint::take(&mut rest).ok_or(Malformed)?;
        self.at = self.b.len() - rest.len();
        Ok(x)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Malformed> {
        u32::try_from(self.varint()?).map_err(|_| Malformed)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, Malformed> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Malformed)
    }

    /// The bytes of a string written by [`put_str`], not checked as UTF-8: for a string
    /// stepped over, which no one reads as text.
    fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let len = usize::try_from(self.varint()?).map_err(|_| Malformed)?;
        let end = self.at.checked_add(len).ok_or(Malformed)?;
        let s = self.b.get(self.at..end).ok_or(Malformed)?;
        self.at = end;
        Ok(s)
    }

    /// A time written by [`put_time`].
    pub(crate) fn time(&mut self) -> Result<i64, Malformed> {
        Ok(self.time_or_none()?.unwrap_or(NEVER))
    }

    /// A time written by [`put_time`], `None` for the `NEVER` shorthand.
    fn time_or_none(&mut self) -> Result<Option<i64>, Malformed> {
        match self.varint()? {
            0 => Ok(None),
            1 => Ok(Some(unzigzag(self.varint()?))),
            x if x % 2 == 0 => unzigzag((x - 2) / 2).checked_mul(1_000_000).map(Some).ok_or(Malformed),
            _ => Err(Malformed),
        }
    }

    /// Steps over attributes; unless `lite`, checks them (UTF-8) and keeps their bytes.
    fn attrs(&mut self, lite: bool) -> Result<PackedAttrs, Malformed> {
        let start = self.at;
        let n = self.varint()?;
        for _ in 0..n {
            if lite {
                self.bytes()?;
                self.bytes()?;
            } else {
                self.str()?;
                self.str()?;
            }
        }
        if lite || n == 0 {
            return Ok(PackedAttrs::default());
        }
        Ok(PackedAttrs::from_checked(&self.b[start..self.at]))
    }
}

/// Decodes a list made by [`encode`]. With `lite`, attributes are left empty and `moved`
/// and credential events are left out: what an access fold ([`crate::FoldScope`] without
/// profile) reads, at the cost of no allocation per event.
pub(crate) fn decode(b: &[u8], lite: bool) -> Result<Vec<Filed<IdOp>>, Malformed> {
    let mut r = Reader { b, at: 0 };
    let n = usize::try_from(r.varint()?).map_err(|_| Malformed)?;
    let mut out = Vec::with_capacity(n.min(b.len()));
    let mut eff = 0i64;
    for _ in 0..n {
        let pos = r.varint()?;
        eff = eff.wrapping_add(r.time()?);
        let op = match r.byte()? {
            0 => {
                let kind = if r.byte()? == 1 { IdentityKind::Service } else { IdentityKind::Human };
                let owner = match r.varint()? {
                    0 => None,
                    o => Some(u32::try_from(o - 1).map_err(|_| Malformed)?),
                };
                IdOp::Joined(Box::new(JoinedOp { kind, owner, attributes: r.attrs(lite)? }))
            }
            1 => {
                let attributes = r.attrs(lite)?;
                if lite {
                    continue;
                }
                IdOp::Moved(attributes)
            }
            2 => IdOp::Suspended,
            3 => IdOp::Reactivated,
            4 => IdOp::Left,
            5 => {
                let present = r.byte()? == 1;
                let attributes = if present { Some(r.attrs(lite)?) } else { None };
                IdOp::Rejoined(attributes.filter(|_| !lite))
            }
            6 => IdOp::OwnerChanged(r.u32()?),
            7 => IdOp::Granted { ent: r.u32()?, expires: r.time()? },
            8 => IdOp::Revoked(r.u32()?),
            9 => IdOp::MemberAdded(r.u32()?),
            10 => IdOp::MemberRemoved(r.u32()?),
            11 => {
                let action = match r.byte()? {
                    0 => CredentialAction::Issued,
                    1 => CredentialAction::Rotated,
                    2 => CredentialAction::Revoked,
                    _ => return Err(Malformed),
                };
                if lite {
                    r.bytes()?;
                    r.time()?;
                    continue;
                }
                let credential = r.str()?;
                let expires = r.time()?;
                IdOp::Credential(Box::new(CredentialOp { action, credential: credential.to_string(), expires }))
            }
            12 => IdOp::Reviewed(r.u32()?),
            _ => return Err(Malformed),
        };
        out.push(Filed { pos, eff, op });
    }
    if r.at != b.len() {
        return Err(Malformed);
    }
    Ok(out)
}

/// Appends one run of effective access of identity `id` to an entitlement's list, whose
/// identities come in increasing order (`prev_id` is the previous run's, 0 first):
/// `id - prev_id` varint, `from` time, `to - from` time (0: still open; times as
/// [`put_time`] writes them),
/// reason count varint, then per reason tag u8 (0 direct: grant varint; 1 group: group,
/// membership, grant varints).
pub(crate) fn encode_run(prev_id: u32, id: u32, from: i64, to: i64, via: &[RunVia], out: &mut Vec<u8>) {
    put_varint(out, (id - prev_id) as u64);
    put_time_value(out, from);
    if to == NEVER {
        put_varint(out, 0);
    } else {
        put_time_value(out, to.wrapping_sub(from));
    }
    put_varint(out, via.len() as u64);
    for v in via {
        match *v {
            RunVia::Direct { grant } => {
                out.push(0);
                put_varint(out, grant);
            }
            RunVia::Group { group, membership, grant } => {
                out.push(1);
                put_varint(out, group as u64);
                put_varint(out, membership);
                put_varint(out, grant);
            }
        }
    }
}

/// Calls `found` with the identity and reasons of every run in `b` that holds at `t`.
#[cfg(test)]
pub(crate) fn runs_at(b: &[u8], t: i64, mut found: impl FnMut(u32, &[RunVia])) -> Result<(), Malformed> {
    runs_each(b, |id, from, to, via| {
        if from <= t && t < to {
            found(id, via);
        }
    })
}

/// Calls `found` with the identity, `[from, to)` and reasons of every run in `b`.
pub(crate) fn runs_each(b: &[u8], mut found: impl FnMut(u32, i64, i64, &[RunVia])) -> Result<(), Malformed> {
    let mut r = Reader { b, at: 0 };
    let mut via = Vec::new();
    let mut id = 0u32;
    while r.at < b.len() {
        id = id.checked_add(r.u32()?).ok_or(Malformed)?;
        let from = r.time_or_none()?.ok_or(Malformed)?;
        let to = r.time_or_none()?.map_or(NEVER, |d| from.wrapping_add(d));
        let n = r.varint()?;
        via.clear();
        for _ in 0..n {
            via.push(match r.byte()? {
                0 => RunVia::Direct { grant: r.varint()? },
                1 => RunVia::Group { group: r.u32()?, membership: r.varint()?, grant: r.varint()? },
                _ => return Err(Malformed),
            });
        }
        found(id, from, to, &via);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorded::{RecordedTimes, RecordedWriter};

    const EDGES: [i64; 12] = [
        0,
        1,
        -1,
        1_000_000,
        -1_000_000,
        1_700_000_000_000_000,
        1_700_000_000_000_001,
        -62_135_596_800_000_000,
        i64::MIN,
        i64::MIN + 1,
        NEVER - 1,
        NEVER,
    ];

    #[test]
    fn recorded_times_read_back_by_position_and_by_time() {
        for head in [0u64, 1, 63, 64, 65, 200] {
            let times: Vec<i64> = (0..head as i64).map(|i| 1_000 + (i / 3) * 7).collect();
            let mut w = RecordedWriter::default();
            times.iter().for_each(|&t| w.push(t));
            let bytes = w.finish();
            let r = RecordedTimes::parse(&bytes, head, true).unwrap();
            for (i, &t) in times.iter().enumerate() {
                assert_eq!(r.get(i as u64 + 1), t, "head {head} pos {}", i + 1);
            }
            for t in [i64::MIN, 999, 1_000, 1_006, 1_007, 1_050, i64::MAX] {
                let expected = times.iter().filter(|&&x| x <= t).count() as u64;
                assert_eq!(r.count_at_or_before(t), expected, "head {head} t {t}");
            }
            let mut all = vec![];
            r.for_each(|t| all.push(t));
            assert_eq!(all, times);
            assert!(RecordedTimes::parse(&bytes, head + 64, true).is_err());
            let mut damaged = bytes.clone();
            if let Some(last) = damaged.last_mut().filter(|_| head > 1) {
                *last ^= 1;
                assert!(RecordedTimes::parse(&damaged, head, true).is_err());
            }
        }
    }

    #[test]
    fn every_time_reads_back_as_itself() {
        for t in EDGES {
            let mut b = vec![];
            put_time(&mut b, t);
            let mut r = Reader { b: &b, at: 0 };
            assert_eq!(r.time().unwrap(), t, "{t}");
            assert_eq!(r.at, b.len());
        }
        let mut b = vec![];
        put_time(&mut b, 1_700_000_000_000_000);
        assert_eq!(b.len(), 5, "a date in whole seconds takes 5 bytes");
    }

    #[test]
    fn runs_keep_every_span_even_one_that_looks_open() {
        for from in EDGES.into_iter().filter(|&t| t != NEVER) {
            for to in EDGES {
                let mut b = vec![];
                encode_run(0, 3, from, to, &[RunVia::Direct { grant: 9 }], &mut b);
                let mut got = vec![];
                runs_at(&b, from, |id, via| got.push((id, via.to_vec()))).unwrap();
                let held = from < to;
                assert_eq!(got.len(), held as usize, "from {from} to {to}");
                if to != NEVER && to > from && to != i64::MIN {
                    let mut after = vec![];
                    runs_at(&b, to, |id, _| after.push(id)).unwrap();
                    assert!(after.is_empty(), "from {from} to {to}: held at its end");
                }
            }
        }
    }
}
