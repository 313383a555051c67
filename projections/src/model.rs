//! The vocabulary of the index, shared by every layer above it: what an event does to an
//! identity ([`IdOp`]) or a group ([`GroupOp`]), filed under its subject ([`Filed`]),
//! attributes kept packed, and the reasons of a run of access ([`RunVia`]). A leaf: it
//! names no other module of the crate.

use serde::{Deserialize, Serialize};
use tenure_engine::event::Attributes;
use tenure_engine::varint;
use tenure_engine::IdentityKind;

/// No expiry.
pub const NEVER: i64 = i64::MAX;

/// What an event does to an identity (stored in the index file by `crate::codec`).
#[derive(Clone, Debug)]
pub enum IdOp {
    Joined(Box<JoinedOp>),
    Moved(PackedAttrs),
    Suspended,
    Reactivated,
    Left,
    Rejoined(Option<PackedAttrs>),
    OwnerChanged(u32),
    Granted {
        ent: u32,
        expires: i64,
    },
    Revoked(u32),
    MemberAdded(u32),
    MemberRemoved(u32),
    Credential(Box<CredentialOp>),
    /// An `access.reviewed` decision on entitlement `ent`: no access changes; filed so
    /// that the access review finds an identity's decisions without reading the log.
    Reviewed(u32),
}

impl IdOp {
    /// Whether the event can change what the identity holds: its lifecycle, grants and
    /// memberships do; a profile change, an owner change, a credential or a review
    /// decision do not (the fold's access never reads them).
    pub fn bears_on_access(&self) -> bool {
        !matches!(self, IdOp::Moved(_) | IdOp::OwnerChanged(_) | IdOp::Credential(_) | IdOp::Reviewed(_))
    }
}

#[derive(Clone, Debug)]
pub struct JoinedOp {
    pub kind: IdentityKind,
    pub attributes: PackedAttrs,
    pub owner: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialAction {
    Issued,
    Rotated,
    Revoked,
}

#[derive(Clone, Debug)]
pub struct CredentialOp {
    pub action: CredentialAction,
    pub credential: String,
    pub expires: i64,
}

/// What an event does to a group.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum GroupOp {
    Created,
    Deleted,
    Granted(u32),
    Revoked(u32),
}

/// An event filed under a subject: position, effective time (µs) and what it does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Filed<Op> {
    pub pos: u64,
    pub eff: i64,
    pub op: Op,
}

/// Attributes kept packed in the `attrs` form of `crate::codec` (count, then key and value strings):
/// only profile questions read them, and packed they take a tenth of the memory of a map
/// and one allocation instead of one per string. Made only by [`PackedAttrs::pack`] or
/// by `crate::codec`'s decoder, which checks the bytes, so they always unpack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackedAttrs(Box<[u8]>);

impl PackedAttrs {
    pub fn pack(attrs: &Attributes) -> Self {
        if attrs.is_empty() {
            return PackedAttrs::default();
        }
        let mut out = Vec::new();
        varint::put(&mut out, attrs.len() as u64);
        for (k, v) in attrs {
            for s in [k, v] {
                varint::put(&mut out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
        }
        PackedAttrs(out.into_boxed_slice())
    }

    /// Bytes already checked to be in the `attrs` form (by `crate::codec`'s decoder).
    pub(crate) fn from_checked(bytes: &[u8]) -> Self {
        PackedAttrs(bytes.into())
    }

    /// Adds the attributes to `into`, replacing the values of keys it has.
    pub fn unpack_into(&self, into: &mut Attributes) {
        fn string<'a>(b: &mut &'a [u8]) -> Option<&'a str> {
            let len = usize::try_from(varint::take(b)?).ok()?;
            let (s, rest) = (b.get(..len)?, b.get(len..)?);
            *b = rest;
            std::str::from_utf8(s).ok()
        }
        let mut b: &[u8] = &self.0;
        let Some(n) = varint::take(&mut b) else { return };
        for _ in 0..n {
            match (string(&mut b), string(&mut b)) {
                (Some(k), Some(v)) => {
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

    /// Appends the `attrs` form (a count of 0 when empty).
    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        if self.0.is_empty() {
            varint::put(out, 0);
        } else {
            out.extend_from_slice(&self.0);
        }
    }
}

/// A reason in a run of the index file: a direct grant, or (group, membership, grant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunVia {
    Direct { grant: u64 },
    Group { group: u32, membership: u64, grant: u64 },
}
