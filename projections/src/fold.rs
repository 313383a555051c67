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

/// Folds identity `id` as known at position `r`.
pub fn fold_identity(index: &(impl IndexView + ?Sized), id: u32, r: u64) -> Result<IdentityFold, CorruptIndex> {
    fold_identity_with(index, id, r, FoldScope::ALL)
}

/// As [`fold_identity`], limited to `scope`.
pub fn fold_identity_with(
    index: &(impl IndexView + ?Sized),
    id: u32,
    r: u64,
    scope: FoldScope,
) -> Result<IdentityFold, CorruptIndex> {
    let with_profile = scope.profile;
    let own = index.id_events(id, !with_profile)?;
    let mut items: Vec<(i64, u64, Item<'_>)> = Vec::with_capacity(own.len());
    for e in own.iter() {
        if e.eff > scope.until {
            break;
        }
        if index.visible(e.pos, r) {
            items.push((e.eff, e.pos, Item::Id(&e.op)));
        }
    }
    let groups = index.groups_of(id)?;
    let groups = &groups[..];
    for &g in groups {
        for e in index.group_events(g) {
            let created = match e.op {
                GroupOp::Created => true,
                GroupOp::Deleted => false,
                _ => continue,
            };
            if e.eff <= scope.until && index.visible(e.pos, r) {
                items.push((e.eff, e.pos, Item::GroupLife(g, created)));
            }
        }
    }
    if !groups.is_empty() {
        items.sort_unstable_by_key(|(eff, pos, _)| (*eff, *pos));
    }

    let mut fold = IdentityFold::default();
    let mut state: Option<(State, i64, u64)> = None; // (state, since, opened_by)
    let mut grants = Open { items: Vec::new() };
    let mut members = Open { items: Vec::new() };
    let mut exists: Vec<(u32, bool)> = groups.iter().map(|&g| (g, false)).collect();
    let mut profile: Option<ProfileVersion> = None;

    let set_state = |fold: &mut IdentityFold, state: &mut Option<(State, i64, u64)>, to: State, t: i64, pos: u64| {
        if let Some((s, from, by)) = *state {
            if from < t {
                fold.status.push(StatusSpan { state: s, from, to: t, opened_by: by, closed_by: Some(pos) });
            }
        }
        *state = Some((to, t, pos));
    };

    for (t, pos, item) in items {
        grants.expire(&mut fold.grants, t);
        let anomaly = |fold: &mut IdentityFold, kind| fold.anomalies.push(Anomaly { position: pos, kind });
        let current = state.map(|s| s.0);
        let joined = matches!(current, Some(State::Active | State::Suspended));
        match item {
            Item::GroupLife(g, created) => {
                let Some(slot) = exists.iter_mut().find(|(k, _)| *k == g) else { continue };
                if created {
                    slot.1 = true;
                } else if slot.1 {
                    slot.1 = false;
                    members.end_where(&mut fold.memberships, t, pos, |k| k == g);
                }
            }
            Item::Id(op) => match op {
                IdOp::Joined(j) => {
                    if current.is_none() {
                        set_state(&mut fold, &mut state, State::Active, t, pos);
                        let v = ProfileVersion {
                            from: t,
                            position: pos,
                            kind: j.kind,
                            attributes: if with_profile { j.attributes.unpack() } else { Attributes::new() },
                            owner: j.owner,
                        };
                        if with_profile {
                            fold.profile.push(v.clone());
                        }
                        profile = Some(v);
                    } else {
                        anomaly(&mut fold, AnomalyKind::Transition);
                    }
                }
                IdOp::Suspended => {
                    if current == Some(State::Active) {
                        set_state(&mut fold, &mut state, State::Suspended, t, pos);
                    } else {
                        anomaly(&mut fold, AnomalyKind::Transition);
                    }
                }
                IdOp::Reactivated => {
                    if current == Some(State::Suspended) {
                        set_state(&mut fold, &mut state, State::Active, t, pos);
                    } else {
                        anomaly(&mut fold, AnomalyKind::Transition);
                    }
                }
                IdOp::Left => {
                    if joined {
                        set_state(&mut fold, &mut state, State::Left, t, pos);
                        grants.end_where(&mut fold.grants, t, pos, |_| true);
                        members.end_where(&mut fold.memberships, t, pos, |_| true);
                    } else {
                        anomaly(&mut fold, AnomalyKind::Transition);
                    }
                }
                IdOp::Rejoined(attrs) => {
                    if current == Some(State::Left) {
                        set_state(&mut fold, &mut state, State::Active, t, pos);
                        if let (Some(attrs), Some(p), true) = (attrs, profile.as_mut(), with_profile) {
                            attrs.unpack_into(&mut p.attributes);
                            p.from = t;
                            p.position = pos;
                            if with_profile {
                                fold.profile.push(p.clone());
                            }
                        }
                    } else {
                        anomaly(&mut fold, AnomalyKind::Transition);
                    }
                }
                IdOp::Moved(attrs) => match profile.as_mut() {
                    Some(p) if !with_profile => p.position = pos,
                    Some(p) => {
                        attrs.unpack_into(&mut p.attributes);
                        p.from = t;
                        p.position = pos;
                        fold.profile.push(p.clone());
                    }
                    None => anomaly(&mut fold, AnomalyKind::Transition),
                },
                IdOp::OwnerChanged(owner) => match profile.as_mut() {
                    Some(p) if !with_profile => p.position = pos,
                    Some(p) => {
                        p.owner = Some(*owner);
                        p.from = t;
                        p.position = pos;
                        fold.profile.push(p.clone());
                    }
                    None => anomaly(&mut fold, AnomalyKind::Transition),
                },
                IdOp::Granted { ent, expires } => {
                    if joined {
                        if *expires <= t {
                            anomaly(&mut fold, AnomalyKind::ExpiredAtStart);
                        }
                        grants.start(&mut fold.grants, *ent, t, pos, *expires);
                    } else {
                        anomaly(&mut fold, AnomalyKind::NotJoined);
                    }
                }
                IdOp::Revoked(ent) => {
                    if !grants.end(&mut fold.grants, *ent, t, pos) {
                        anomaly(&mut fold, AnomalyKind::NotHeld);
                    }
                }
                IdOp::MemberAdded(g) => {
                    let group_exists = exists.iter().any(|&(k, e)| k == *g && e);
                    if !joined {
                        anomaly(&mut fold, AnomalyKind::NotJoined);
                    } else if !group_exists {
                        anomaly(&mut fold, AnomalyKind::NoGroup);
                    } else {
                        members.start(&mut fold.memberships, *g, t, pos, NEVER);
                    }
                }
                IdOp::MemberRemoved(g) => {
                    if !members.end(&mut fold.memberships, *g, t, pos) {
                        anomaly(&mut fold, AnomalyKind::NotHeld);
                    }
                }
                IdOp::Credential(_) if !with_profile => {}
                IdOp::Credential(c) => {
                    let live = fold
                        .credentials
                        .iter_mut()
                        .rev()
                        .find(|s| s.credential == c.credential && s.revoked_at.is_none());
                    match (c.action, live) {
                        (CredentialAction::Issued, _) if !joined => anomaly(&mut fold, AnomalyKind::NotJoined),
                        (CredentialAction::Issued, Some(s)) => {
                            // Re-issuing a live credential renews it.
                            s.issued_at = t;
                            s.issued_by = pos;
                            s.expires = c.expires;
                        }
                        (CredentialAction::Issued, None) => fold.credentials.push(CredentialState {
                            credential: c.credential.clone(),
                            issued_at: t,
                            issued_by: pos,
                            last_rotated_at: None,
                            expires: c.expires,
                            revoked_at: None,
                        }),
                        (CredentialAction::Rotated, Some(s)) => {
                            s.last_rotated_at = Some(t);
                            if c.expires != NEVER {
                                s.expires = c.expires;
                            }
                        }
                        (CredentialAction::Revoked, Some(s)) => s.revoked_at = Some(t),
                        (_, None) => anomaly(&mut fold, AnomalyKind::NotHeld),
                    }
                }
            },
        }
    }
    if let Some((s, from, by)) = state {
        fold.status.push(StatusSpan { state: s, from, to: NEVER, opened_by: by, closed_by: None });
    }
    grants.finish(&mut fold.grants);
    members.finish(&mut fold.memberships);
    fold.grants.sort_unstable_by_key(|s| (s.from, s.opened_by));
    fold.memberships.sort_unstable_by_key(|s| (s.from, s.opened_by));
    Ok(fold)
}

/// Folds group `g` as known at position `r`.
pub fn fold_group(index: &(impl IndexView + ?Sized), g: u32, r: u64) -> GroupFold {
    let mut fold = GroupFold::default();
    let mut exists: Option<(i64, u64)> = None;
    let mut grants = Open { items: Vec::new() };
    for e in index.group_events(g) {
        if !index.visible(e.pos, r) {
            continue;
        }
        let (t, pos) = (e.eff, e.pos);
        let anomaly = |fold: &mut GroupFold, kind| fold.anomalies.push(Anomaly { position: pos, kind });
        match e.op {
            GroupOp::Created => match exists {
                Some(_) => anomaly(&mut fold, AnomalyKind::GroupExists),
                None => exists = Some((t, pos)),
            },
            GroupOp::Deleted => match exists.take() {
                Some((from, by)) => {
                    close(&mut fold.exists, 0, from, by, t, Some(pos));
                    grants.end_where(&mut fold.grants, t, pos, |_| true);
                }
                None => anomaly(&mut fold, AnomalyKind::NoGroup),
            },
            GroupOp::Granted(ent) => {
                if exists.is_some() {
                    grants.start(&mut fold.grants, ent, t, pos, NEVER);
                } else {
                    anomaly(&mut fold, AnomalyKind::NoGroup);
                }
            }
            GroupOp::Revoked(ent) => {
                if !grants.end(&mut fold.grants, ent, t, pos) {
                    anomaly(&mut fold, AnomalyKind::NotHeld);
                }
            }
        }
    }
    if let Some((from, by)) = exists {
        close(&mut fold.exists, 0, from, by, NEVER, None);
    }
    grants.finish(&mut fold.grants);
    fold.grants.sort_unstable_by_key(|s| (s.from, s.opened_by));
    fold
}
