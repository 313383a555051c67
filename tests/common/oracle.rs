//! The naive reference fold of docs/semantics.md: the oracle the index is compared against.
//!
//! It shares no code with the index. For every question it takes the whole log as known
//! at `R`, sorts it by `(effective_at, position)`, and folds everything effective at or
//! before `T` into a plain model of the world, then reads the answer off that model.
//! Slow on purpose; obviously right on purpose.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use tenure::engine::event::Attributes;
use tenure::engine::{Entitlement, Event, EventData, IdentityKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum St {
    Active,
    Suspended,
    Left,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OVia {
    Direct(u64),
    Group(String, u64, u64),
}

#[derive(Default, Clone)]
pub struct Ident {
    pub state: Option<St>,
    pub state_since: u64,
    pub kind: Option<IdentityKind>,
    pub attributes: Attributes,
    pub owner: Option<String>,
    /// entitlement → (grant position, expires µs)
    pub grants: HashMap<Entitlement, (u64, Option<i64>)>,
    /// group → membership position
    pub memberships: HashMap<String, u64>,
    /// The credentials held: name → (issued at, issued by, last rotated at, expires at).
    pub credentials: HashMap<String, Cred>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cred {
    pub issued_at: i64,
    pub issued_by: u64,
    pub rotated_at: Option<i64>,
    pub expires: Option<i64>,
}

#[derive(Default, Clone)]
pub struct Grp {
    pub exists: bool,
    pub grants: HashMap<Entitlement, u64>,
}

#[derive(Default)]
pub struct World {
    pub idents: BTreeMap<String, Ident>,
    pub groups: BTreeMap<String, Grp>,
    /// (position, anomaly kind as the index names it)
    pub anomalies: BTreeSet<(u64, &'static str)>,
}

/// The log as known at `r`: recorded by `r`, minus what a retraction recorded by `r`
/// withdrew, minus the retractions themselves; in `(effective_at, position)` order.
pub fn known_at(log: &[Event], r: u64) -> Vec<&Event> {
    let retracted: BTreeSet<u64> = log
        .iter()
        .filter(|e| e.position.get() <= r)
        .filter_map(|e| match &e.data {
            EventData::EventRetracted(x) => Some(x.position.get()),
            _ => None,
        })
        .collect();
    let mut out: Vec<&Event> = log
        .iter()
        .filter(|e| e.position.get() <= r && !retracted.contains(&e.position.get()))
        .filter(|e| !matches!(e.data, EventData::EventRetracted(_)))
        .collect();
    out.sort_by_key(|e| (e.effective_at, e.position));
    out
}

/// Folds every event of the log as known at `r` that is effective at or before `t`.
pub fn world(log: &[Event], r: u64, t: i64) -> World {
    let mut w = World::default();
    for e in known_at(log, r) {
        let now = e.effective_at.as_micros();
        if now > t {
            break;
        }
        apply(&mut w, e, now);
    }
    w
}

fn apply(w: &mut World, e: &Event, now: i64) {
    let pos = e.position.get();
    let anomaly = |w: &mut World, k: &'static str| {
        w.anomalies.insert((pos, k));
    };
    let joined =
        |w: &World, id: &str| matches!(w.idents.get(id).and_then(|i| i.state), Some(St::Active | St::Suspended));
    match &e.data {
        EventData::IdentityJoined(j) => {
            let i = w.idents.entry(j.identity.0.clone()).or_default();
            if i.state.is_none() {
                i.state = Some(St::Active);
                i.state_since = pos;
                i.kind = Some(j.kind);
                i.attributes = j.attributes.clone();
                i.owner = j.owner.as_ref().map(|o| o.0.clone());
            } else {
                anomaly(w, "transition");
            }
        }
        EventData::IdentitySuspended(s) | EventData::IdentityReactivated(s) | EventData::IdentityLeft(s) => {
            let i = w.idents.entry(s.identity.0.clone()).or_default();
            let next = match (&e.data, i.state) {
                (EventData::IdentitySuspended(_), Some(St::Active)) => Some(St::Suspended),
                (EventData::IdentityReactivated(_), Some(St::Suspended)) => Some(St::Active),
                (EventData::IdentityLeft(_), Some(St::Active | St::Suspended)) => Some(St::Left),
                _ => None,
            };
            match next {
                Some(st) => {
                    i.state = Some(st);
                    i.state_since = pos;
                    if st == St::Left {
                        i.grants.clear();
                        i.memberships.clear();
                        i.credentials.clear();
                    }
                }
                None => anomaly(w, "transition"),
            }
        }
        EventData::IdentityRejoined(r) => {
            let i = w.idents.entry(r.identity.0.clone()).or_default();
            if i.state == Some(St::Left) {
                i.state = Some(St::Active);
                i.state_since = pos;
                if let Some(a) = &r.attributes {
                    i.attributes.extend(a.clone());
                }
            } else {
                anomaly(w, "transition");
            }
        }
        EventData::IdentityMoved(m) => {
            let i = w.idents.entry(m.identity.0.clone()).or_default();
            if i.state.is_some() {
                i.attributes.extend(m.attributes.clone());
            } else {
                anomaly(w, "transition");
            }
        }
        EventData::IdentityOwnerChanged(o) => {
            let i = w.idents.entry(o.identity.0.clone()).or_default();
            if i.state.is_some() {
                i.owner = Some(o.owner.0.clone());
            } else {
                anomaly(w, "transition");
            }
        }
        EventData::AccessGranted(g) => {
            if joined(w, g.identity.as_str()) {
                if g.expires_at.is_some_and(|x| x.as_micros() <= now) {
                    anomaly(w, "expired_at_start");
                }
                let i = w.idents.entry(g.identity.0.clone()).or_default();
                i.grants.insert(g.entitlement.clone(), (pos, g.expires_at.map(|x| x.as_micros())));
            } else {
                anomaly(w, "not_joined");
            }
        }
        EventData::AccessRevoked(r) => {
            let i = w.idents.entry(r.identity.0.clone()).or_default();
            let holds = matches!(i.grants.get(&r.entitlement), Some((_, exp)) if exp.is_none_or(|x| x > now));
            if holds {
                i.grants.remove(&r.entitlement);
            } else {
                anomaly(w, "not_held");
            }
        }
        EventData::GroupCreated(g) => {
            let gr = w.groups.entry(g.group.0.clone()).or_default();
            if gr.exists {
                anomaly(w, "group_exists");
            } else {
                gr.exists = true;
                gr.grants.clear();
            }
        }
        EventData::GroupDeleted(g) => {
            let gr = w.groups.entry(g.group.0.clone()).or_default();
            if gr.exists {
                gr.exists = false;
                gr.grants.clear();
                for i in w.idents.values_mut() {
                    i.memberships.remove(g.group.as_str());
                }
            } else {
                anomaly(w, "no_group");
            }
        }
        EventData::GroupMemberAdded(m) => {
            let exists = w.groups.get(m.group.as_str()).is_some_and(|g| g.exists);
            if !joined(w, m.identity.as_str()) {
                anomaly(w, "not_joined");
            } else if !exists {
                anomaly(w, "no_group");
            } else {
                let i = w.idents.entry(m.identity.0.clone()).or_default();
                i.memberships.insert(m.group.0.clone(), pos);
            }
        }
        EventData::GroupMemberRemoved(m) => {
            let i = w.idents.entry(m.identity.0.clone()).or_default();
            if i.memberships.remove(m.group.as_str()).is_none() {
                anomaly(w, "not_held");
            }
        }
        EventData::GroupAccessGranted(g) => {
            let gr = w.groups.entry(g.group.0.clone()).or_default();
            if gr.exists {
                gr.grants.insert(g.entitlement.clone(), pos);
            } else {
                anomaly(w, "no_group");
            }
        }
        EventData::GroupAccessRevoked(g) => {
            let gr = w.groups.entry(g.group.0.clone()).or_default();
            if gr.grants.remove(&g.entitlement).is_none() {
                anomaly(w, "not_held");
            }
        }
        EventData::CredentialIssued(c) => {
            if joined(w, c.identity.as_str()) {
                let i = w.idents.entry(c.identity.0.clone()).or_default();
                let expires = c.expires_at.map(|x| x.as_micros());
                // Issued again while held: renewed (its last rotation kept).
                let rotated_at = i.credentials.get(c.credential.as_str()).and_then(|k| k.rotated_at);
                i.credentials
                    .insert(c.credential.0.clone(), Cred { issued_at: now, issued_by: pos, rotated_at, expires });
            } else {
                anomaly(w, "not_joined");
            }
        }
        EventData::CredentialRotated(c) | EventData::CredentialRevoked(c) => {
            let i = w.idents.entry(c.identity.0.clone()).or_default();
            match i.credentials.get_mut(c.credential.as_str()) {
                None => anomaly(w, "not_held"),
                Some(_) if matches!(e.data, EventData::CredentialRevoked(_)) => {
                    i.credentials.remove(c.credential.as_str());
                }
                Some(k) => {
                    k.rotated_at = Some(now);
                    if let Some(x) = c.expires_at {
                        k.expires = Some(x.as_micros());
                    }
                }
            }
        }
        EventData::EventRetracted(_) => {}
        // A display name only: access is untouched.
        EventData::GroupUpdated(_) => {}
        // A review decision changes no access.
        EventData::AccessReviewed(_) => {}
    }
}

/// Identity `id`'s access at `t`: entitlement → sorted reasons.
pub fn access_in(w: &World, id: &str, t: i64) -> BTreeMap<Entitlement, Vec<OVia>> {
    let mut out: BTreeMap<Entitlement, Vec<OVia>> = BTreeMap::new();
    let Some(i) = w.idents.get(id) else { return out };
    if i.state != Some(St::Active) {
        return out;
    }
    for (ent, (pos, exp)) in &i.grants {
        if exp.is_none_or(|x| x > t) {
            out.entry(ent.clone()).or_default().push(OVia::Direct(*pos));
        }
    }
    for (g, mpos) in &i.memberships {
        if let Some(gr) = w.groups.get(g) {
            for (ent, gpos) in &gr.grants {
                out.entry(ent.clone()).or_default().push(OVia::Group(g.clone(), *mpos, *gpos));
            }
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

pub fn access(log: &[Event], id: &str, t: i64, r: u64) -> BTreeMap<Entitlement, Vec<OVia>> {
    access_in(&world(log, r, t), id, t)
}

/// Holders of entitlements matching `pred` at `t`: (identity, entitlement) → reasons.
pub fn holders(
    log: &[Event],
    pred: impl Fn(&Entitlement) -> bool,
    t: i64,
    r: u64,
) -> BTreeMap<(String, Entitlement), Vec<OVia>> {
    let w = world(log, r, t);
    let mut out = BTreeMap::new();
    for id in w.idents.keys() {
        for (ent, via) in access_in(&w, id, t) {
            if pred(&ent) {
                out.insert((id.clone(), ent), via);
            }
        }
    }
    out
}

/// Holders at any instant of `[t1, t2)`: the union of the answers at `t1` and at every
/// instant inside the window where something could change (an effective time or an
/// expiry), with every reason seen.
pub fn holders_during(
    log: &[Event],
    pred: impl Fn(&Entitlement) -> bool + Copy,
    t1: i64,
    t2: i64,
    r: u64,
) -> BTreeMap<(String, Entitlement), Vec<OVia>> {
    let mut out: BTreeMap<(String, Entitlement), Vec<OVia>> = BTreeMap::new();
    for t in instants_in(log, t1, t2) {
        for (k, v) in holders(log, pred, t, r) {
            let slot = out.entry(k).or_default();
            slot.extend(v);
            slot.sort();
            slot.dedup();
        }
    }
    out
}

/// `t1` and every instant inside `(t1, t2)` where something could change (an effective
/// time or a grant's expiry), in order.
pub fn instants_in(log: &[Event], t1: i64, t2: i64) -> BTreeSet<i64> {
    let mut instants = BTreeSet::from([t1]);
    for e in log {
        let mut add = |x: i64| {
            if t1 < x && x < t2 {
                instants.insert(x);
            }
        };
        add(e.effective_at.as_micros());
        if let EventData::AccessGranted(g) = &e.data {
            if let Some(x) = g.expires_at {
                add(x.as_micros());
            }
        }
    }
    instants
}

/// Every anomaly of the log as known at `r`.
pub fn anomalies(log: &[Event], r: u64) -> BTreeSet<(u64, &'static str)> {
    world(log, r, i64::MAX).anomalies
}

/// The lifecycle state machine of rule 3 alone: the next state, or `None` when the event
/// is not a transition (or not a lifecycle event).
fn transition(data: &EventData, from: Option<St>) -> Option<Option<St>> {
    match (data, from) {
        (EventData::IdentityJoined(_), None) => Some(Some(St::Active)),
        (EventData::IdentitySuspended(_), Some(St::Active)) => Some(Some(St::Suspended)),
        (EventData::IdentityReactivated(_), Some(St::Suspended)) => Some(Some(St::Active)),
        (EventData::IdentityLeft(_), Some(St::Active | St::Suspended)) => Some(Some(St::Left)),
        (EventData::IdentityRejoined(_), Some(St::Left)) => Some(Some(St::Active)),
        _ => None,
    }
}

fn lifecycle_identity(data: &EventData) -> Option<&str> {
    match data {
        EventData::IdentityJoined(j) => Some(j.identity.as_str()),
        EventData::IdentitySuspended(s) | EventData::IdentityReactivated(s) | EventData::IdentityLeft(s) => {
            Some(s.identity.as_str())
        }
        EventData::IdentityRejoined(r) => Some(r.identity.as_str()),
        _ => None,
    }
}

/// Access of `id` at some instant of `[t1, t2)` as known at `r`: entitlement → every reason.
pub fn access_during(log: &[Event], id: &str, t1: i64, t2: i64, r: u64) -> BTreeMap<Entitlement, Vec<OVia>> {
    let mut out: BTreeMap<Entitlement, Vec<OVia>> = BTreeMap::new();
    for t in instants_in(log, t1, t2) {
        for (ent, via) in access(log, id, t, r) {
            let slot = out.entry(ent).or_default();
            slot.extend(via);
            slot.sort();
            slot.dedup();
        }
    }
    out
}

/// One leave of the leavers report: identity, position, effective time (µs), recorded
/// time (µs), held just before, believed held after (as known at position − 1, during
/// `[effective, recorded)`).
pub type Leave = (String, u64, i64, i64, BTreeMap<Entitlement, Vec<OVia>>, BTreeMap<Entitlement, Vec<OVia>>);

/// Every `identity.left` that makes its transition in the fold as known at `r`.
pub fn leavers(log: &[Event], r: u64) -> Vec<Leave> {
    let mut states: HashMap<String, Option<St>> = HashMap::new();
    let mut out = Vec::new();
    for e in known_at(log, r) {
        let Some(id) = lifecycle_identity(&e.data) else { continue };
        let state = states.entry(id.to_string()).or_default();
        let Some(next) = transition(&e.data, *state) else { continue };
        *state = next;
        if matches!(e.data, EventData::IdentityLeft(_)) {
            let (p, l, rec) = (e.position.get(), e.effective_at.as_micros(), e.recorded_at.as_micros());
            let before = access(log, id, l - 1, r);
            let after = if rec > l { access_during(log, id, l, rec, p - 1) } else { BTreeMap::new() };
            out.push((id.to_string(), p, l, rec, before, after));
        }
    }
    out.sort_by_key(|x| (x.2, x.1));
    out
}

/// A service row of the non-human identities report: (service, owner, owner's state,
/// orphaned since (µs), the event that ended the owner's activity then).
pub type Orphan = (String, Option<String>, Option<&'static str>, Option<i64>, Option<u64>);

/// Services active or suspended at `t` (as known at `r`) whose owner at `t` is not active.
pub fn orphaned_services(log: &[Event], t: i64, r: u64) -> Vec<Orphan> {
    let w = world(log, r, t);
    let mut out = Vec::new();
    for (name, i) in &w.idents {
        if i.kind != Some(IdentityKind::Service) || !matches!(i.state, Some(St::Active | St::Suspended)) {
            continue;
        }
        let Some(owner) = &i.owner else {
            out.push((name.clone(), None, None, None, None));
            continue;
        };
        let owner_state = w.idents.get(owner).and_then(|o| o.state);
        if owner_state == Some(St::Active) {
            continue;
        }
        // Instant by instant: the owner's state after all the events of each instant; the
        // activity that ended last, and the first event of its instant that ended it.
        let known = known_at(log, r);
        let mut state: Option<St> = None;
        let mut ended: Option<(i64, u64)> = None;
        let mut k = 0;
        while k < known.len() && known[k].effective_at.as_micros() <= t {
            let s = known[k].effective_at.as_micros();
            let before = state == Some(St::Active);
            let mut first_end = None;
            while k < known.len() && known[k].effective_at.as_micros() == s {
                let e = known[k];
                if lifecycle_identity(&e.data) == Some(owner.as_str()) {
                    if let Some(next) = transition(&e.data, state) {
                        if state == Some(St::Active) && next != Some(St::Active) && first_end.is_none() {
                            first_end = Some(e.position.get());
                        }
                        state = next;
                    }
                }
                k += 1;
            }
            if before && state != Some(St::Active) {
                ended = first_end.map(|p| (s, p));
            }
        }
        let label = match owner_state {
            None => "absent",
            Some(St::Suspended) => "suspended",
            Some(St::Left) => "left",
            Some(St::Active) => unreachable!(),
        };
        out.push((name.clone(), Some(owner.clone()), Some(label), ended.map(|x| x.0), ended.map(|x| x.1)));
    }
    out
}

/// Credentials held at `t` (as known at `r`) that are expired, or not issued or rotated
/// since `t - max_age`: (identity, credential, finding, issued by).
pub fn credential_findings(
    log: &[Event],
    t: i64,
    r: u64,
    max_age: i64,
) -> BTreeSet<(String, String, &'static str, u64)> {
    let w = world(log, r, t);
    let mut out = BTreeSet::new();
    for (name, i) in &w.idents {
        for (c, k) in &i.credentials {
            if k.expires.is_some_and(|x| x <= t) {
                out.insert((name.clone(), c.clone(), "expired", k.issued_by));
            }
            if k.rotated_at.map_or(k.issued_at, |x| x.max(k.issued_at)) < t - max_age {
                out.insert((name.clone(), c.clone(), "not_rotated", k.issued_by));
            }
        }
    }
    out
}

/// A violation of a separation-of-duties set: identity, from, to (µs; `None` open), every
/// reason each entitlement was held during it, and whether the records as they stood at
/// `from` (the last position recorded by then) showed all of the set held at `from`.
pub type Overlap = (String, i64, Option<i64>, BTreeMap<Entitlement, Vec<OVia>>, bool);

/// Every maximal interval in which an identity held all of `set`, as known at `r`,
/// evaluated instant by instant (access changes only at effective times and expiries).
pub fn sod(log: &[Event], set: &[Entitlement], r: u64) -> Vec<Overlap> {
    let mut instants = BTreeSet::new();
    for e in log {
        instants.insert(e.effective_at.as_micros());
        if let EventData::AccessGranted(g) = &e.data {
            if let Some(x) = g.expires_at {
                instants.insert(x.as_micros());
            }
        }
    }
    let instants: Vec<i64> = instants.into_iter().collect();
    let names: BTreeSet<String> = log.iter().filter_map(|e| e.data.identity().map(|i| i.0.clone())).collect();
    let mut out = Vec::new();
    for id in names {
        let at: Vec<BTreeMap<Entitlement, Vec<OVia>>> = instants.iter().map(|&t| access(log, &id, t, r)).collect();
        let all = |a: &BTreeMap<Entitlement, Vec<OVia>>| set.iter().all(|e| a.contains_key(e));
        let mut k = 0;
        while k < instants.len() {
            if !all(&at[k]) {
                k += 1;
                continue;
            }
            let start = k;
            let mut via: BTreeMap<Entitlement, Vec<OVia>> = BTreeMap::new();
            while k < instants.len() && all(&at[k]) {
                for e in set {
                    let slot = via.entry(e.clone()).or_default();
                    slot.extend(at[k][e].iter().cloned());
                    slot.sort();
                    slot.dedup();
                }
                k += 1;
            }
            let from = instants[start];
            let then = log.iter().filter(|e| e.recorded_at.as_micros() <= from).map(|e| e.position.get()).max();
            let then = then.unwrap_or(0).min(r);
            let known = all(&access(log, &id, from, then));
            out.push((id.clone(), from, instants.get(k).copied(), via, known));
        }
    }
    out
}

/// A row of the access review: (identity, entitlement, reasons, since (µs), the position
/// of the latest decision, flags).
pub type ReviewLine = (String, Entitlement, Vec<OVia>, i64, Option<u64>, Vec<&'static str>);

/// The access review of `resource` at `t` as known at `r`, by brute force: the holders at
/// `t`; for each, the start of its uninterrupted holding (walking back over every instant
/// where access could change, asking the fold at each); the latest decision on it effective
/// by `t`; and the flags.
pub fn review(log: &[Event], resource: &str, t: i64, r: u64) -> Vec<ReviewLine> {
    let instants: Vec<i64> = instants_in(log, i64::MIN, t).into_iter().chain([t]).rev().collect();
    let known = known_at(log, r);
    let orphaned: BTreeSet<String> = orphaned_services(log, t, r).into_iter().map(|o| o.0).collect();
    let mut out = Vec::new();
    for ((id, ent), via) in holders(log, |e| e.resource == resource, t, r) {
        let mut since = t;
        for &x in &instants[1..] {
            if !access(log, &id, x, r).contains_key(&ent) {
                break;
            }
            since = x;
        }
        let last = known
            .iter()
            .filter(|e| e.effective_at.as_micros() <= t)
            .filter_map(|e| match &e.data {
                EventData::AccessReviewed(v) if v.identity.as_str() == id && v.entitlement == ent => {
                    Some((e.effective_at, e.position.get(), v.decision))
                }
                _ => None,
            })
            .max();
        let mut flags = Vec::new();
        match last {
            None => flags.push("never_reviewed"),
            Some((_, _, tenure::engine::event::Decision::Revoke)) => flags.push("revoke_not_carried_out"),
            Some(_) => {}
        }
        if orphaned.contains(&id) {
            flags.push("owner_not_active");
        }
        // A direct grant that ran out at its expiry x within the holding: just before x,
        // the grant in force was one expiring at x.
        let expiries: BTreeSet<i64> = known
            .iter()
            .filter_map(|e| match &e.data {
                EventData::AccessGranted(g) if g.identity.as_str() == id && g.entitlement == ent => {
                    g.expires_at.map(|x| x.as_micros())
                }
                _ => None,
            })
            .filter(|&x| since < x && x <= t)
            .collect();
        let ran_out = expiries.into_iter().any(|x| {
            world(log, r, x - 1).idents.get(&id).and_then(|i| i.grants.get(&ent)).is_some_and(|g| g.1 == Some(x))
        });
        if ran_out {
            flags.push("held_past_expiry");
        }
        out.push((id, ent, via, since, last.map(|l| l.1), flags));
    }
    out
}
