//! Reconciliation against a directory snapshot taken at `T`: what Tenure says at `T` (as
//! known at `R`) beside what the directory says, row by row, and the events that would
//! make Tenure agree.

use super::ts;
use crate::error::QueryError;
use crate::fold::{fold_identity_with, FoldScope, State};
use crate::index::AccessIndex;
use crate::query::AsOf;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tenure_engine::event::{Attributes, GroupLifecycle, Joined, Membership, Moved, Rejoined, StatusChange};
use tenure_engine::{EventData, IdentityKind, NewEvent, Timestamp};

/// A user of the directory snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirUser {
    /// The names it may have in Tenure, most telling first (`userName`, `externalId`,
    /// the directory's `id`).
    pub keys: Vec<String>,
    /// Its `userName`, matched without regard to case against the identities' `userName`
    /// attribute (what `tenure serve` records).
    pub user_name: Option<String>,
    pub active: bool,
    /// The attributes the snapshot gives, in Tenure's flat names; those Tenure has are
    /// compared.
    pub attributes: BTreeMap<String, String>,
    /// The names of its groups, when the snapshot says (otherwise memberships are not
    /// compared).
    pub groups: Option<BTreeSet<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DriftRow {
    /// `orphaned` (active here, absent there), `disabled_there` (active here, inactive
    /// there), `missing` (active there, absent here), `inactive_here` (active there,
    /// suspended or left here), `attribute`, `membership_missing` (a member there, not
    /// here), `membership_extra` (a member here, not there).
    pub kind: &'static str,
    /// The identity in Tenure, when there is one.
    pub identity: Option<String>,
    /// The user's first key in the directory, when it has one there.
    pub directory: Option<String>,
    /// The attribute or group concerned.
    pub field: Option<String>,
    pub here: Option<String>,
    pub there: Option<String>,
    /// The events behind what Tenure says (the state's, the attribute's, the membership's).
    pub positions: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DormantRow {
    pub identity: String,
    /// The last lifecycle event effective by `T`, and when.
    pub last_event: u64,
    pub last_event_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reconciliation {
    pub at: Timestamp,
    pub as_of: u64,
    /// The number of drift rows.
    pub drift: usize,
    pub rows: Vec<DriftRow>,
    /// Active identities with no lifecycle event within the dormancy period (not drift).
    pub dormant: Vec<DormantRow>,
    /// The events that would make Tenure agree with the snapshot, effective at `T`.
    #[serde(skip)]
    pub corrections: Vec<NewEvent>,
}

/// What Tenure says of one identity at `T`.
struct Here {
    /// A service, and services are not compared.
    skipped: bool,
    name: String,
    state: Option<(State, u64)>,
    attributes: Attributes,
    profile_position: Option<u64>,
    groups: BTreeMap<String, u64>,
}

/// What [`AccessIndex::brief`] says of an identity.
struct Brief {
    user_name: Option<String>,
    active: u64,
    last: Option<(i64, u64)>,
}

/// Services left out of the comparison (unless `services`) are still matched, so that a
/// directory that lists them does not report them missing.
fn skipped(profile: Option<&crate::fold::ProfileVersion>, services: bool) -> bool {
    profile.is_some_and(|p| p.kind == IdentityKind::Service) && !services
}

/// What a reconciliation hands out as it goes: a drift row, or a correction.
#[derive(Clone, Debug)]
pub enum Reconciled {
    Row(DriftRow),
    Fix(NewEvent),
}

/// What is left when every user was handed in: the totals and the dormant accounts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReconcileEnd {
    pub at: Timestamp,
    pub as_of: u64,
    pub drift: usize,
    pub dormant: Vec<DormantRow>,
}

/// A reconciliation under way: the directory's users are handed in one at a time
/// ([`Reconciler::user`]), compared in batches on every core, their rows and corrections
/// handed out in the users' order; [`Reconciler::finish`] adds the identities no user
/// matched. Memory holds a few bits and a position per identity, the `userName`s Tenure
/// knows, and one batch of users: not the snapshot, not the rows.
pub struct Reconciler<'a> {
    index: &'a AccessIndex,
    at: Timestamp,
    r: u64,
    services: bool,
    by_user_name: BTreeMap<String, u32>,
    /// Per identity: the position of the state that makes it active at `T` when it is
    /// active and compared (not a service left out); 0 otherwise.
    active: Vec<u64>,
    seen: Vec<bool>,
    known_groups: BTreeSet<String>,
    fixes: Fixes,
    batch: Vec<DirUser>,
    drift: usize,
    dormant: Vec<DormantRow>,
}

/// How many users are compared at once.
const BATCH: usize = 4096;

impl AccessIndex {
    /// What Tenure says of identity `id` at `t` as known at `r`.
    fn here(&self, id: u32, r: u64, t: i64, services: bool) -> Result<(Here, Option<(i64, u64)>), QueryError> {
        let fold = fold_identity_with(self, id, r, FoldScope { profile: true, until: t })?;
        let profile = fold.profile_at(t);
        let skipped = skipped(profile, services);
        let state = fold.state_at(t).map(|s| (s.state, s.opened_by));
        let groups = fold
            .memberships
            .iter()
            .filter(|m| m.contains(t))
            .map(|m| (self.group_name(m.key).to_string(), m.opened_by))
            .collect();
        let here = Here {
            skipped,
            name: self.identity_name(id)?.to_string(),
            state,
            attributes: profile.map(|p| p.attributes.clone()).unwrap_or_default(),
            profile_position: profile.map(|p| p.position),
            groups,
        };
        Ok((here, super::last_lifecycle(&fold, t)))
    }

    /// The little the start of a reconciliation needs of identity `id` (at `t` as known
    /// at `r`): its `userName` (lowercased), the position of the state that makes it
    /// active and compared (0 when it is not), and its last lifecycle event. No name,
    /// attributes or groups are copied: this runs for every identity.
    fn brief(&self, id: u32, r: u64, t: i64, services: bool) -> Result<Brief, QueryError> {
        let fold = fold_identity_with(self, id, r, FoldScope { profile: true, until: t })?;
        let profile = fold.profile_at(t);
        let active = match fold.state_at(t) {
            Some(s) if s.state == State::Active && !skipped(profile, services) => s.opened_by,
            _ => 0,
        };
        let user_name = profile.and_then(|p| p.attributes.get("userName")).map(|u| u.to_lowercase());
        Ok(Brief { user_name, active, last: super::last_lifecycle(&fold, t) })
    }

    /// Starts a reconciliation with the directory as it was at `at`, against Tenure at
    /// `at` as known at `as_of`. Humans only unless `services`; `dormant_after` (µs) is
    /// the dormancy period.
    pub fn reconciler(
        &self,
        at: Timestamp,
        as_of: AsOf,
        services: bool,
        dormant_after: i64,
    ) -> Result<Reconciler<'_>, QueryError> {
        self.check()?;
        let r = self.resolve(as_of);
        let t = at.as_micros();
        let ids: Vec<u32> = self.ids().collect();
        let mut rec = Reconciler {
            index: self,
            at,
            r,
            services,
            by_user_name: BTreeMap::new(),
            active: vec![0; ids.len()],
            seen: vec![false; ids.len()],
            known_groups: (0..self.group_count()).map(|g| self.group_name(g).to_string()).collect(),
            fixes: Fixes::new(at, true),
            batch: Vec::new(),
            drift: 0,
            dormant: Vec::new(),
        };
        for chunk in ids.chunks(1 << 16) {
            let found = super::par_map(
                chunk,
                || (),
                |_, &id| {
                    let Brief { user_name, active, last } = self.brief(id, r, t, services)?;
                    let dormant = match last {
                        Some((when, pos)) if active != 0 && when < t.saturating_sub(dormant_after) => {
                            let identity = self.identity_name(id)?.to_string();
                            Some(DormantRow { identity, last_event: pos, last_event_at: ts(when) })
                        }
                        _ => None,
                    };
                    Ok::<_, QueryError>((id, user_name, active, dormant))
                },
            );
            for item in found {
                let (id, user_name, active, dormant) = item?;
                if let Some(u) = user_name {
                    rec.by_user_name.insert(u, id);
                }
                rec.active[id as usize] = active;
                rec.dormant.extend(dormant);
            }
        }
        Ok(rec)
    }

    /// Compares `users` (the directory at `at`) with Tenure at `at` as known at `as_of`,
    /// the whole answer at once (see [`AccessIndex::reconciler`] for it row by row).
    pub fn reconcile(
        &self,
        users: &[DirUser],
        at: Timestamp,
        as_of: AsOf,
        services: bool,
        dormant_after: i64,
    ) -> Result<Reconciliation, QueryError> {
        let mut rec = self.reconciler(at, as_of, services, dormant_after)?;
        let (mut rows, mut corrections) = (Vec::new(), Vec::new());
        let mut take = |out: Reconciled| {
            match out {
                Reconciled::Row(row) => rows.push(row),
                Reconciled::Fix(e) => corrections.push(e),
            }
            Ok::<_, QueryError>(())
        };
        for u in users {
            rec.user(u.clone(), &mut take)?;
        }
        let end = rec.finish(&mut take)?;
        Ok(Reconciliation { at, as_of: end.as_of, drift: end.drift, rows, dormant: end.dormant, corrections })
    }
}

impl Reconciler<'_> {
    /// Makes no corrections ([`Reconciled::Fix`]): the rows and totals only, for a caller
    /// that would throw the corrections away.
    pub fn without_corrections(mut self) -> Self {
        self.fixes = Fixes::new(self.at, false);
        self
    }

    /// Hands in the next user of the directory.
    pub fn user<E: From<QueryError>>(
        &mut self,
        user: DirUser,
        out: &mut dyn FnMut(Reconciled) -> Result<(), E>,
    ) -> Result<(), E> {
        self.batch.push(user);
        if self.batch.len() >= BATCH {
            self.flush(out)?;
        }
        Ok(())
    }

    fn flush<E: From<QueryError>>(&mut self, out: &mut dyn FnMut(Reconciled) -> Result<(), E>) -> Result<(), E> {
        let batch = std::mem::take(&mut self.batch);
        let index = self.index;
        let (r, t, services, at) = (self.r, self.at.as_micros(), self.services, self.at);
        let (known_groups, by_user_name, wanted) = (&self.known_groups, &self.by_user_name, self.fixes.wanted);
        // Each user matched and compared on any core with corrections of its own; the
        // group creations they ask for are made once, by the first user that needs the
        // group, below.
        let compared = super::par_map(
            &batch,
            || (),
            |_, u| -> Result<_, QueryError> {
                let mut id = u.user_name.as_ref().and_then(|n| by_user_name.get(&n.to_lowercase())).copied();
                for k in &u.keys {
                    if id.is_some() {
                        break;
                    }
                    id = index.identity_id(k)?;
                }
                let here = match id {
                    Some(id) => Some((id, index.here(id, r, t, services)?.0)),
                    None => None,
                };
                let mut fixes = Fixes::new(at, wanted);
                let rows = compare(u, here.as_ref().map(|(_, h)| h), &mut fixes, known_groups);
                Ok((id, rows, fixes.events))
            },
        );
        for item in compared {
            let (id, rows, events) = item?;
            if let Some(id) = id {
                self.seen[id as usize] = true;
            }
            self.drift += rows.len();
            for row in rows {
                out(Reconciled::Row(row))?;
            }
            for e in events {
                if let EventData::GroupCreated(g) = &e.data {
                    if !self.fixes.created.insert(g.group.to_string()) {
                        continue;
                    }
                }
                out(Reconciled::Fix(e))?;
            }
        }
        Ok(())
    }

    /// Compares the last users, then reports the identities active here that no user
    /// matched; returns the totals.
    pub fn finish<E: From<QueryError>>(
        mut self,
        out: &mut dyn FnMut(Reconciled) -> Result<(), E>,
    ) -> Result<ReconcileEnd, E> {
        self.flush(out)?;
        for (id, &pos) in self.active.iter().enumerate() {
            if pos == 0 || self.seen[id] {
                continue;
            }
            let name = self.index.identity_name(id as u32).map_err(QueryError::from)?.to_string();
            out(Reconciled::Row(DriftRow {
                kind: "orphaned",
                identity: Some(name.clone()),
                directory: None,
                field: None,
                here: Some("active".into()),
                there: Some("absent".into()),
                positions: vec![pos],
            }))?;
            self.drift += 1;
            self.fixes.status(&name, "left");
            for e in self.fixes.events.drain(..) {
                out(Reconciled::Fix(e))?;
            }
        }
        Ok(ReconcileEnd { at: self.at, as_of: self.r, drift: self.drift, dormant: self.dormant })
    }
}

/// One user of the directory against the identity it matched (if any): its drift rows,
/// and its corrections added to `fixes`.
fn compare(u: &DirUser, matched: Option<&Here>, fixes: &mut Fixes, known_groups: &BTreeSet<String>) -> Vec<DriftRow> {
    let mut rows = Vec::new();
    let directory = u.keys.first().cloned();
    let row =
        |kind, identity: Option<&str>, field: Option<&str>, h: Option<&str>, th: Option<&str>, positions| DriftRow {
            kind,
            identity: identity.map(str::to_string),
            directory: directory.clone(),
            field: field.map(str::to_string),
            here: h.map(str::to_string),
            there: th.map(str::to_string),
            positions,
        };
    let Some(h) = matched else {
        if let (true, Some(name)) = (u.active, u.keys.first()) {
            rows.push(row("missing", None, None, Some("absent"), Some("active"), vec![]));
            fixes.join(name, &u.attributes);
            for g in u.groups.iter().flatten() {
                fixes.add(name, g, known_groups.contains(g.as_str()));
            }
        }
        return rows;
    };
    compare_matched(u, h, &row, &mut rows, fixes, known_groups);
    rows
}

/// Makes a drift row of the user at hand: kind, identity, field, here, there, positions.
type MakeRow<'a> =
    dyn Fn(&'static str, Option<&str>, Option<&str>, Option<&str>, Option<&str>, Vec<u64>) -> DriftRow + 'a;

/// A matched user against its identity: state, then (both active) attributes and
/// memberships.
fn compare_matched(
    u: &DirUser,
    h: &Here,
    row: &MakeRow<'_>,
    rows: &mut Vec<DriftRow>,
    fixes: &mut Fixes,
    known_groups: &BTreeSet<String>,
) {
    if h.skipped {
        return;
    }
    let state = h.state.map(|s| s.0);
    let state_pos: Vec<u64> = h.state.map(|s| s.1).into_iter().collect();
    let state_name = state.map_or("absent", State::as_str);
    match (state, u.active) {
        (Some(State::Active), false) => {
            rows.push(row("disabled_there", Some(&h.name), None, Some("active"), Some("inactive"), state_pos));
            fixes.status(&h.name, "suspended");
            return;
        }
        (Some(State::Active), true) => {}
        (_, true) => {
            rows.push(row("inactive_here", Some(&h.name), None, Some(state_name), Some("active"), state_pos));
            match state {
                Some(State::Suspended) => fixes.status(&h.name, "reactivated"),
                Some(State::Left) => fixes.status(&h.name, "rejoined"),
                _ => fixes.join(&h.name, &u.attributes),
            }
        }
        (_, false) => return,
    }
    // Both active (or about to be): attributes and memberships.
    let mut changed = Attributes::new();
    for (k, there) in u.attributes.iter().filter(|(k, v)| k.as_str() != "userName" && !v.is_empty()) {
        let mine = h.attributes.get(k);
        if mine != Some(there) && state.is_some() {
            let pos = h.profile_position.into_iter().collect();
            rows.push(row("attribute", Some(&h.name), Some(k), mine.map(String::as_str), Some(there), pos));
            changed.insert(k.clone(), there.clone());
        }
    }
    if !changed.is_empty() {
        fixes.moved(&h.name, changed);
    }
    if let Some(theirs) = &u.groups {
        for g in theirs.iter().filter(|g| !h.groups.contains_key(g.as_str())) {
            rows.push(row("membership_missing", Some(&h.name), Some(g), None, Some("member"), vec![]));
            fixes.add(&h.name, g, known_groups.contains(g.as_str()));
        }
        for (g, pos) in h.groups.iter().filter(|(g, _)| !theirs.contains(g.as_str())) {
            rows.push(row("membership_extra", Some(&h.name), Some(g), Some("member"), None, vec![*pos]));
            fixes.remove(&h.name, g);
        }
    }
}

/// The corrections, in an order that ingests: joins and group creations before the
/// memberships that need them.
struct Fixes {
    /// Corrections are made (a comparison whose caller does not want them skips the work).
    wanted: bool,
    at: Timestamp,
    /// `at` as the idempotency keys write it.
    at_text: String,
    events: Vec<NewEvent>,
    created: BTreeSet<String>,
}

impl Fixes {
    fn new(at: Timestamp, wanted: bool) -> Self {
        let at_text = if wanted { at.to_string() } else { String::new() };
        Fixes { wanted, at, at_text, events: Vec::new(), created: BTreeSet::new() }
    }

    fn push(&mut self, key: String, data: EventData) {
        if !self.wanted {
            return;
        }
        let key = format!("{}:{}:{key}", self.at_text, data.type_name());
        self.events.push(NewEvent::new(self.at, data).with_source("reconcile", &key));
    }

    fn join(&mut self, name: &str, attributes: &BTreeMap<String, String>) {
        // [`Self::push`] would drop it; the attributes are not copied for nothing.
        if !self.wanted {
            return;
        }
        let attributes =
            attributes.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.clone(), v.clone())).collect();
        let data = EventData::IdentityJoined(Joined {
            identity: name.into(),
            kind: IdentityKind::Human,
            attributes,
            owner: None,
        });
        self.push(name.to_string(), data);
    }

    fn status(&mut self, name: &str, to: &str) {
        let change = StatusChange { identity: name.into(), reason: Some("reconciled with the directory".into()) };
        let data = match to {
            "left" => EventData::IdentityLeft(change),
            "suspended" => EventData::IdentitySuspended(change),
            "reactivated" => EventData::IdentityReactivated(change),
            _ => EventData::IdentityRejoined(Rejoined { identity: name.into(), attributes: None }),
        };
        self.push(name.to_string(), data);
    }

    fn moved(&mut self, name: &str, attributes: Attributes) {
        self.push(name.to_string(), EventData::IdentityMoved(Moved { identity: name.into(), attributes }));
    }

    fn add(&mut self, name: &str, group: &str, exists: bool) {
        if !exists && self.created.insert(group.to_string()) {
            let data =
                EventData::GroupCreated(GroupLifecycle { group: group.into(), display_name: None, external_id: None });
            self.push(group.to_string(), data);
        }
        let data = EventData::GroupMemberAdded(Membership { group: group.into(), identity: name.into() });
        self.push(format!("{group}:{name}"), data);
    }

    fn remove(&mut self, name: &str, group: &str) {
        let data = EventData::GroupMemberRemoved(Membership { group: group.into(), identity: name.into() });
        self.push(format!("{group}:{name}"), data);
    }
}
