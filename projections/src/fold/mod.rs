//! The fold of docs/semantics.md, subject by subject: one identity's (or one group's) filed events, as
//! known at a position `r`, folded in `(effective_at, position)` order into half-open
//! intervals `[from, to)` that carry the positions that opened and closed them.
//!
//! An identity's fold also reads the lifecycle events (`created` / `deleted`) of the
//! groups it had membership events in, since a membership cannot start in a group that
//! does not exist and ends when the group is deleted. The anomalies of group events
//! themselves are found by the group's fold, so that each is reported once.

use crate::error::CorruptIndex;
use crate::model::{CredentialAction, GroupOp, IdOp, NEVER};
use crate::view::IndexView;
use serde::Serialize;
use std::fmt;
use tenure_engine::event::Attributes;
use tenure_engine::IdentityKind;

/// The states of rule 3 of docs/semantics.md (absent is the lack of a span).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Active,
    Suspended,
    Left,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Suspended => "suspended",
            State::Left => "left",
        }
    }
}

/// A fact that held during `[from, to)` (µs; `to == i64::MAX` when still open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// What held: an entitlement id for grants, a group id for memberships.
    pub key: u32,
    pub from: i64,
    pub to: i64,
    /// The event whose effect this span is (a renewal opens a new span).
    pub opened_by: u64,
    /// The event that ended it; `None` when it is open or ended by its expiry.
    pub closed_by: Option<u64>,
}

impl Span {
    #[inline]
    pub fn contains(&self, t: i64) -> bool {
        self.from <= t && t < self.to
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusSpan {
    pub state: State,
    pub from: i64,
    pub to: i64,
    pub opened_by: u64,
    pub closed_by: Option<u64>,
}

/// What the records said about an identity from `from` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileVersion {
    pub from: i64,
    pub position: u64,
    pub kind: IdentityKind,
    pub attributes: Attributes,
    pub owner: Option<u32>,
}

/// A credential of an identity, as the fold left it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CredentialState {
    pub credential: String,
    pub issued_at: i64,
    pub issued_by: u64,
    pub last_rotated_at: Option<i64>,
    pub expires: i64,
    /// When it was revoked, or ended by the identity's leave.
    pub revoked_at: Option<i64>,
}

/// Why the fold found an event meaningless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A lifecycle event that is not a transition from the identity's state (rule 3), or a
    /// `moved` / `owner_changed` for an identity that has not joined.
    Transition,
    /// A start event for an identity that is not joined (not yet, or left), rule 6.
    NotJoined,
    /// A start event in a group that does not exist, or a `deleted` for one that does not.
    NoGroup,
    /// An end event for a fact that does not hold (rule 7).
    NotHeld,
    /// A `group.created` for a group that exists.
    GroupExists,
    /// An `access.granted` whose `expires_at` is not after its `effective_at`: it starts
    /// (or renews) a grant that is over at once, so it gives no access.
    ExpiredAtStart,
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnomalyKind::Transition => "not a valid transition from the identity's state",
            AnomalyKind::NotJoined => "the identity is not joined at that time",
            AnomalyKind::NoGroup => "the group does not exist at that time",
            AnomalyKind::NotHeld => "ends something that does not hold",
            AnomalyKind::GroupExists => "the group already exists",
            AnomalyKind::ExpiredAtStart => "expires before it takes effect",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Anomaly {
    pub position: u64,
    pub kind: AnomalyKind,
}

/// Everything one identity's events say, as known at some position.
#[derive(Clone, Debug, Default)]
pub struct IdentityFold {
    pub status: Vec<StatusSpan>,
    /// Direct grants; `key` is the entitlement.
    pub grants: Vec<Span>,
    /// Memberships; `key` is the group.
    pub memberships: Vec<Span>,
    pub profile: Vec<ProfileVersion>,
    pub credentials: Vec<CredentialState>,
    pub anomalies: Vec<Anomaly>,
    /// Every leave that made its transition: (effective µs, position), in fold order.
    /// A leave undone at the same instant (a rehire) has no status span but is here.
    pub leaves: Vec<(i64, u64)>,
}

impl IdentityFold {
    pub fn state_at(&self, t: i64) -> Option<&StatusSpan> {
        // Status spans are ordered and disjoint.
        let i = self.status.partition_point(|s| s.from <= t);
        self.status[..i].last().filter(|s| t < s.to)
    }

    pub fn active_at(&self, t: i64) -> bool {
        self.state_at(t).is_some_and(|s| s.state == State::Active)
    }

    pub fn profile_at(&self, t: i64) -> Option<&ProfileVersion> {
        let i = self.profile.partition_point(|p| p.from <= t);
        self.profile[..i].last()
    }
}

/// Everything one group's events say, as known at some position.
#[derive(Clone, Debug, Default)]
pub struct GroupFold {
    /// When the group existed (`key` unused).
    pub exists: Vec<Span>,
    /// Group grants; `key` is the entitlement.
    pub grants: Vec<Span>,
    pub anomalies: Vec<Anomaly>,
}

fn close(out: &mut Vec<Span>, key: u32, from: i64, opened_by: u64, to: i64, closed_by: Option<u64>) {
    if from < to {
        out.push(Span { key, from, to, opened_by, closed_by });
    }
}

/// Open facts during a fold: `(key, from, opened_by, expires)`.
struct Open {
    items: Vec<(u32, i64, u64, i64)>,
}

impl Open {
    fn find(&self, key: u32) -> Option<usize> {
        self.items.iter().position(|o| o.0 == key)
    }

    /// Starts or renews `key` at `t`: a renewal closes the current span at `t` and opens
    /// a new one with the new event's provenance and expiry (rule 7).
    fn start(&mut self, out: &mut Vec<Span>, key: u32, t: i64, pos: u64, expires: i64) {
        if let Some(i) = self.find(key) {
            let (k, from, by, _) = self.items.swap_remove(i);
            close(out, k, from, by, t, Some(pos));
        }
        self.items.push((key, t, pos, expires));
    }

    /// Ends `key` at `t`; false when it did not hold.
    fn end(&mut self, out: &mut Vec<Span>, key: u32, t: i64, pos: u64) -> bool {
        match self.find(key) {
            Some(i) => {
                let (k, from, by, _) = self.items.swap_remove(i);
                close(out, k, from, by, t, Some(pos));
                true
            }
            None => false,
        }
    }

    fn end_where(&mut self, out: &mut Vec<Span>, t: i64, pos: u64, pred: impl Fn(u32) -> bool) {
        let mut i = 0;
        while i < self.items.len() {
            if pred(self.items[i].0) {
                let (k, from, by, _) = self.items.swap_remove(i);
                close(out, k, from, by, t, Some(pos));
            } else {
                i += 1;
            }
        }
    }

    /// Closes, at their expiry, the facts whose expiry is at or before `t`.
    fn expire(&mut self, out: &mut Vec<Span>, t: i64) {
        let mut i = 0;
        while i < self.items.len() {
            if self.items[i].3 <= t {
                let (k, from, by, expires) = self.items.swap_remove(i);
                close(out, k, from, by, expires, None);
            } else {
                i += 1;
            }
        }
    }

    fn finish(self, out: &mut Vec<Span>) {
        for (k, from, by, expires) in self.items {
            close(out, k, from, by, expires, None);
        }
    }
}

enum Item<'a> {
    Id(&'a IdOp),
    GroupLife(u32, bool),
}

/// How much of an identity a fold works out.
#[derive(Clone, Copy, Debug)]
pub struct FoldScope {
    /// Attribute versions, credentials, and the anomalies of `moved` and credential
    /// events; access queries need none of them, and they cost a copy of the attributes
    /// at every change (and, from the index file, decoding them). Anomalies are complete
    /// only with it.
    pub profile: bool,
    /// Fold only the events effective at or before this instant: enough for any
    /// question about an instant up to it (every span still open then ends later).
    pub until: i64,
}

impl FoldScope {
    /// Everything.
    pub const ALL: FoldScope = FoldScope { profile: true, until: i64::MAX };
    /// Status, grants and memberships over all time.
    pub const ACCESS: FoldScope = FoldScope { profile: false, until: i64::MAX };

    /// Status, grants and memberships as they stand at `t`.
    pub fn access_at(t: i64) -> FoldScope {
        FoldScope { profile: false, until: t }
    }
}

mod group;
mod identity;

pub use self::group::fold_group;
pub use self::identity::{fold_identity, fold_identity_events, fold_identity_with};
