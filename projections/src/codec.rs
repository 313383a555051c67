//! The binary form of a subject's filed events in the index file.
//!
//! Compact (varints, effective times as deltas in their sorted order) and, above all,
//! cheap to read for access questions: [`decode`] with `lite` skips the attributes and the
//! events that only profiles need (`moved`, credentials) without allocating for them.
//! A holders query reads hundreds of thousands of identities this way.
//!
//! ```text
//! list   count varint, then per event: position varint, effective_at zigzag varint
//!        (delta from the previous event's), tag u8, payload
//! tag    0 joined (kind u8, owner+1 varint, attrs) | 1 moved (attrs) | 2 suspended
//!        | 3 reactivated | 4 left | 5 rejoined (present u8, attrs?) | 6 owner changed
//!        (owner varint) | 7 granted (entitlement varint, expiry) | 8 revoked (entitlement
//!        varint) | 9 member added (group varint) | 10 member removed (group varint)
//!        | 11 credential (action u8, id string, expiry)
//! attrs  count varint, then (key string, value string) pairs; string = length varint + UTF-8
//! expiry 0 for none, else zigzag(expires_at µs) + 1
//! ```

use crate::index::{CredentialAction, CredentialOp, Filed, IdOp, JoinedOp, NEVER};
use tenure_engine::event::Attributes;
use tenure_engine::IdentityKind;

fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(x: u64) -> i64 {
    ((x >> 1) as i64) ^ -((x & 1) as i64)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_attrs(out: &mut Vec<u8>, attrs: &Attributes) {
    put_varint(out, attrs.len() as u64);
    for (k, v) in attrs {
        put_str(out, k);
        put_str(out, v);
    }
}

/// Attributes kept packed in the `attrs` form above (count, then key and value strings):
/// only profile questions read them, and packed they take a tenth of the memory of a map
/// and one allocation instead of one per string. Made only by [`PackedAttrs::pack`] or
/// by [`decode`], which checks the bytes, so they always unpack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackedAttrs(Box<[u8]>);

impl PackedAttrs {
    pub fn pack(attrs: &Attributes) -> Self {
        if attrs.is_empty() {
            return PackedAttrs::default();
        }
        let mut out = Vec::new();
        put_attrs(&mut out, attrs);
        PackedAttrs(out.into_boxed_slice())
    }

    /// Adds the attributes to `into`, replacing the values of keys it has.
    pub fn unpack_into(&self, into: &mut Attributes) {
        let mut r = Reader { b: &self.0, at: 0 };
        let Ok(n) = r.varint() else { return };
        for _ in 0..n {
            match (r.str(), r.str()) {
                (Ok(k), Ok(v)) => {
                    into.insert(k.to_string(), v.to_string());
                }
                _ => return,
            }
        }
    }

    pub fn unpack(&self) -> Attributes {
        let mut out = Attributes::new();
        self.unpack_into(&mut out);
        out
    }

    fn put(&self, out: &mut Vec<u8>) {
        if self.0.is_empty() {
            put_varint(out, 0);
        } else {
            out.extend_from_slice(&self.0);
        }
    }
}

fn put_expiry(out: &mut Vec<u8>, t: i64) {
    put_varint(out, if t == NEVER { 0 } else { zigzag(t).wrapping_add(1) });
}

/// Appends the encoding of `list` (in `(eff, pos)` order) to `out`.
pub(crate) fn encode(list: &[Filed<IdOp>], out: &mut Vec<u8>) {
    put_varint(out, list.len() as u64);
    let mut prev = 0i64;
    for e in list {
        put_varint(out, e.pos);
        put_varint(out, zigzag(e.eff.wrapping_sub(prev)));
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
                put_expiry(out, *expires);
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
                put_expiry(out, c.expires);
            }
        }
    }
}

/// The bytes do not decode: the caller names the file and the subject.
#[derive(Debug)]
pub(crate) struct Malformed;

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, Malformed> {
        let x = *self.b.get(self.at).ok_or(Malformed)?;
        self.at += 1;
        Ok(x)
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            x |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(x);
            }
        }
        Err(Malformed)
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        u32::try_from(self.varint()?).map_err(|_| Malformed)
    }

    fn str(&mut self) -> Result<&'a str, Malformed> {
        let len = usize::try_from(self.varint()?).map_err(|_| Malformed)?;
        let end = self.at.checked_add(len).ok_or(Malformed)?;
        let s = self.b.get(self.at..end).ok_or(Malformed)?;
        self.at = end;
        std::str::from_utf8(s).map_err(|_| Malformed)
    }

    fn expiry(&mut self) -> Result<i64, Malformed> {
        Ok(match self.varint()? {
            0 => NEVER,
            x => unzigzag(x - 1),
        })
    }

    /// Steps over attributes, checking them; keeps their bytes unless `lite`.
    fn attrs(&mut self, lite: bool) -> Result<PackedAttrs, Malformed> {
        let start = self.at;
        let n = self.varint()?;
        for _ in 0..n {
            self.str()?;
            self.str()?;
        }
        if lite || n == 0 {
            return Ok(PackedAttrs::default());
        }
        Ok(PackedAttrs(self.b[start..self.at].into()))
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
        eff = eff.wrapping_add(unzigzag(r.varint()?));
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
            7 => IdOp::Granted { ent: r.u32()?, expires: r.expiry()? },
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
                let credential = r.str()?;
                let expires = r.expiry()?;
                if lite {
                    continue;
                }
                IdOp::Credential(Box::new(CredentialOp { action, credential: credential.to_string(), expires }))
            }
            _ => return Err(Malformed),
        };
        out.push(Filed { pos, eff, op });
    }
    if r.at != b.len() {
        return Err(Malformed);
    }
    Ok(out)
}

/// A reason in a run of the index file: a direct grant, or (group, membership, grant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunVia {
    Direct { grant: u64 },
    Group { group: u32, membership: u64, grant: u64 },
}

/// Appends one run of effective access of identity `id` to an entitlement's list, whose
/// identities come in increasing order (`prev_id` is the previous run's, 0 first):
/// `id - prev_id` varint, `from` zigzag varint, `to - from + 1` varint (0: still open),
/// reason count varint, then per reason tag u8 (0 direct: grant varint; 1 group: group,
/// membership, grant varints).
pub(crate) fn encode_run(prev_id: u32, id: u32, from: i64, to: i64, via: &[RunVia], out: &mut Vec<u8>) {
    put_varint(out, (id - prev_id) as u64);
    put_varint(out, zigzag(from));
    put_varint(out, if to == NEVER { 0 } else { (to.wrapping_sub(from) as u64).wrapping_add(1) });
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
pub(crate) fn runs_at(b: &[u8], t: i64, mut found: impl FnMut(u32, &[RunVia])) -> Result<(), Malformed> {
    let mut r = Reader { b, at: 0 };
    let mut via = Vec::new();
    let mut id = 0u32;
    while r.at < b.len() {
        id = id.checked_add(r.u32()?).ok_or(Malformed)?;
        let from = unzigzag(r.varint()?);
        let to = match r.varint()? {
            0 => NEVER,
            d => from.wrapping_add((d - 1) as i64),
        };
        let n = r.varint()?;
        let hit = from <= t && t < to;
        via.clear();
        for _ in 0..n {
            let v = match r.byte()? {
                0 => RunVia::Direct { grant: r.varint()? },
                1 => RunVia::Group { group: r.u32()?, membership: r.varint()?, grant: r.varint()? },
                _ => return Err(Malformed),
            };
            if hit {
                via.push(v);
            }
        }
        if hit {
            found(id, &via);
        }
    }
    Ok(())
}
