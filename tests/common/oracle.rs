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
    /// credential → live
    pub credentials: HashMap<String, bool>,
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
                i.credentials.insert(c.credential.0.clone(), true);
            } else {
                anomaly(w, "not_joined");
            }
        }
        EventData::CredentialRotated(c) | EventData::CredentialRevoked(c) => {
            let i = w.idents.entry(c.identity.0.clone()).or_default();
            let live = i.credentials.get(c.credential.as_str()).copied().unwrap_or(false);
            if !live {
                anomaly(w, "not_held");
            } else if matches!(e.data, EventData::CredentialRevoked(_)) {
                i.credentials.insert(c.credential.0.clone(), false);
            }
        }
        EventData::EventRetracted(_) => {}
        // A display name only: access is untouched.
        EventData::GroupUpdated(_) => {}
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
    let mut instants = BTreeSet::from([t1]);
    for e in log {
        let eff = e.effective_at.as_micros();
        if t1 < eff && eff < t2 {
            instants.insert(eff);
        }
        if let EventData::AccessGranted(g) = &e.data {
            if let Some(x) = g.expires_at.map(|x| x.as_micros()) {
                if t1 < x && x < t2 {
                    instants.insert(x);
                }
            }
        }
    }
    let mut out: BTreeMap<(String, Entitlement), Vec<OVia>> = BTreeMap::new();
    for t in instants {
        for (k, v) in holders(log, pred, t, r) {
            let slot = out.entry(k).or_default();
            slot.extend(v);
            slot.sort();
            slot.dedup();
        }
    }
    out
}

/// Every anomaly of the log as known at `r`.
pub fn anomalies(log: &[Event], r: u64) -> BTreeSet<(u64, &'static str)> {
    world(log, r, i64::MAX).anomalies
}
