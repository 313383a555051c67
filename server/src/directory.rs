//! The SCIM directory: a projection of the log (every identity that has a `userName`
//! attribute), folded from the events in position order. GETs are answered from it; a
//! write appends its events, then applies them as the log recorded them, so the
//! directory is always the fold of the log up to its head.
//!
//! Position order is effective order for what SCIM writes (each request is stamped with
//! its own time). A directory-sync delivery can arrive late, its events effective before
//! ones already recorded about the same identity or group; the semantics fold in
//! effective order, so such a subject is noted as `late` and its entry is folded again
//! from its own events in effective order ([`Directory::refold`]).

use crate::model::{Attrs, Grants, Group, User};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use tenure_engine::{Event, EventData, Subject, Timestamp};

#[derive(Default)]
pub struct Directory {
    /// Current users by id (the identity's name); left identities are not here.
    pub users: BTreeMap<String, User>,
    /// Identities that left, by id, with their last attributes (a re-create rejoins them).
    pub departed: HashMap<String, User>,
    /// Lower-cased userName → id, for the users present.
    by_user_name: HashMap<String, String>,
    /// Current groups by id (the group's name in the log).
    pub groups: BTreeMap<String, Group>,
    /// Every group name the log has created, present or deleted (a new group takes a
    /// fresh one).
    pub group_names: BTreeSet<String>,
    /// The last position applied.
    pub head: u64,
    /// The latest effective time applied per identity, and per group (two maps keyed by
    /// name, so that a lookup on the path of every event allocates nothing).
    latest_identity: HashMap<String, Timestamp>,
    latest_group: HashMap<String, Timestamp>,
    /// The subjects an event reached late (effective before one applied earlier): their
    /// entries wait for [`Directory::refold`].
    pub late: HashSet<Subject>,
}

impl Directory {
    /// The present group with this display name (compared without regard to case).
    pub fn group_by_name(&self, display_name: &str) -> Option<&Group> {
        self.groups.values().find(|g| g.display_name.eq_ignore_ascii_case(display_name))
    }

    pub fn by_user_name(&self, user_name: &str) -> Option<&User> {
        self.by_user_name.get(&user_name.to_lowercase()).and_then(|id| self.users.get(id))
    }

    fn index(&mut self, id: &str) {
        if let Some(u) = self.users.get(id) {
            if let Some(name) = u.attrs.get("userName") {
                self.by_user_name.insert(name.to_lowercase(), id.to_string());
            }
        }
    }

    fn unindex(&mut self, id: &str) {
        if let Some(name) = self.users.get(id).and_then(|u| u.attrs.get("userName")) {
            let key = name.to_lowercase();
            if self.by_user_name.get(&key).is_some_and(|i| i == id) {
                self.by_user_name.remove(&key);
            }
        }
    }

    fn merge(attrs: &mut Attrs, changes: &Attrs) {
        for (k, v) in changes {
            if v.is_empty() {
                attrs.remove(k);
            } else {
                attrs.insert(k.clone(), v.clone());
            }
        }
    }

    /// Notes the effective time of an event about `name` (an identity, or a group); late
    /// when before the latest.
    fn note(&mut self, name: &str, group: bool, t: Timestamp) {
        let latest = if group { &mut self.latest_group } else { &mut self.latest_identity };
        match latest.get_mut(name) {
            Some(latest) if *latest > t => {
                let name = name.to_string();
                self.late.insert(if group { Subject::Group(name) } else { Subject::Identity(name) });
            }
            Some(latest) => *latest = t,
            None => {
                latest.insert(name.to_string(), t);
            }
        }
    }

    /// The latest effective time of the events applied about `subject`.
    pub fn latest(&self, subject: &Subject) -> Option<Timestamp> {
        match subject {
            Subject::Identity(name) => self.latest_identity.get(name).copied(),
            Subject::Group(name) => self.latest_group.get(name).copied(),
        }
    }

    /// Folds again the entry of `subject` from `events`, every event about it, in
    /// effective order (the semantics' order), replacing what the position-order fold
    /// made of it. Its `meta.version` is the last position among them.
    pub fn refold(&mut self, subject: &Subject, mut events: Vec<Event>) {
        events.sort_by_key(|e| (e.effective_at, e.position));
        let version = events.iter().map(|e| e.position.get()).max().unwrap_or(0);
        let mut fresh = Directory::default();
        match subject {
            Subject::Identity(id) => {
                for e in &events {
                    fresh.apply(e);
                }
                self.unindex(id);
                self.users.remove(id);
                self.departed.remove(id);
                if let Some(mut u) = fresh.users.remove(id) {
                    u.version = version;
                    self.users.insert(id.clone(), u);
                    self.index(id);
                } else {
                    for g in self.groups.values_mut() {
                        g.members.remove(id);
                    }
                }
                if let Some(u) = fresh.departed.remove(id) {
                    self.departed.insert(id.clone(), u);
                }
            }
            Subject::Group(id) => {
                // Membership needs its members joined: those present now are.
                for e in &events {
                    if let Some(u) = e.data.identity().and_then(|i| self.users.get(i.as_str())) {
                        fresh.users.entry(u.id.clone()).or_insert_with(|| u.clone());
                    }
                }
                for e in &events {
                    fresh.apply(e);
                }
                self.groups.remove(id);
                if let Some(mut g) = fresh.groups.remove(id) {
                    g.version = version;
                    self.groups.insert(id.clone(), g);
                }
                self.group_names.extend(fresh.group_names);
            }
        }
    }

    /// Folds one event in (events must come in position order).
    pub fn apply(&mut self, event: &Event) {
        self.head = event.position.get();
        if let Some(i) = event.data.identity() {
            self.note(i.as_str(), false, event.effective_at);
        }
        if let Some(g) = event.data.group() {
            self.note(g.as_str(), true, event.effective_at);
        }
        let (t, p) = (event.recorded_at, event.position.get());
        match &event.data {
            EventData::IdentityJoined(j) => {
                let mut attrs = Attrs::new();
                Self::merge(&mut attrs, &j.attributes);
                if attrs.contains_key("userName") && !self.users.contains_key(j.identity.as_str()) {
                    let id = j.identity.as_str().to_string();
                    self.users.insert(
                        id.clone(),
                        User {
                            id: id.clone(),
                            attrs,
                            active: true,
                            left: false,
                            grants: Default::default(),
                            created: t,
                            modified: t,
                            version: p,
                        },
                    );
                    self.index(&id);
                }
            }
            EventData::IdentityRejoined(r) => {
                if let Some(u) = self.users.get_mut(r.identity.as_str()).filter(|u| u.left) {
                    if let Some(changes) = &r.attributes {
                        Self::merge(&mut u.attrs, changes);
                    }
                    (u.active, u.left, u.modified, u.version) = (true, false, t, p);
                } else if let Some(mut u) = self.departed.remove(r.identity.as_str()) {
                    if let Some(changes) = &r.attributes {
                        Self::merge(&mut u.attrs, changes);
                    }
                    (u.active, u.left, u.created, u.modified, u.version) = (true, false, t, t, p);
                    let id = u.id.clone();
                    self.users.insert(id.clone(), u);
                    self.index(&id);
                }
            }
            EventData::IdentityMoved(m) => {
                let id = m.identity.as_str().to_string();
                self.unindex(&id);
                if let Some(u) = self.users.get_mut(&id) {
                    Self::merge(&mut u.attrs, &m.attributes);
                    (u.modified, u.version) = (t, p);
                }
                self.index(&id);
            }
            EventData::IdentitySuspended(s) | EventData::IdentityReactivated(s) => {
                let active = matches!(event.data, EventData::IdentityReactivated(_));
                if let Some(u) = self.users.get_mut(s.identity.as_str()) {
                    (u.active, u.modified, u.version) = (active, t, p);
                }
            }
            EventData::IdentityLeft(s) => {
                let id = s.identity.as_str().to_string();
                // Leaving ends every membership (the semantics' rule 4).
                for g in self.groups.values_mut() {
                    g.members.remove(&id);
                }
                // Leaving ends the grants too; a rehire starts with none.
                if let Some(u) = self.users.get_mut(&id) {
                    u.grants = Default::default();
                }
                // A deactivation recorded as a leave keeps the SCIM resource, inactive.
                if s.reason.as_deref() == Some(crate::users::DEACTIVATED) {
                    if let Some(u) = self.users.get_mut(&id) {
                        (u.active, u.left, u.modified, u.version) = (false, true, t, p);
                    }
                    return;
                }
                self.unindex(&id);
                if let Some(mut u) = self.users.remove(&id) {
                    (u.active, u.modified, u.version) = (false, t, p);
                    self.departed.insert(id, u);
                }
            }
            EventData::AccessGranted(g) => {
                let Some(kind) = g.justification.as_deref().and_then(Grants::kind_of) else { return };
                if let Some(u) = self.users.get_mut(g.identity.as_str()) {
                    let list = if kind == "roles" { &mut u.grants.roles } else { &mut u.grants.entitlements };
                    list.insert(g.entitlement.clone());
                    (u.modified, u.version) = (t, p);
                }
            }
            EventData::AccessRevoked(r) => {
                if let Some(u) = self.users.get_mut(r.identity.as_str()) {
                    let roles = u.grants.roles.remove(&r.entitlement);
                    let entitlements = u.grants.entitlements.remove(&r.entitlement);
                    if roles || entitlements {
                        (u.modified, u.version) = (t, p);
                    }
                }
            }
            EventData::GroupCreated(g) => {
                let id = g.group.as_str().to_string();
                self.group_names.insert(id.clone());
                // A group that exists is not created again (the semantics: an anomaly).
                if self.groups.contains_key(&id) {
                    return;
                }
                let display_name = g.display_name.clone().unwrap_or_else(|| id.clone());
                let group = Group {
                    id: id.clone(),
                    display_name,
                    external_id: g.external_id.clone(),
                    members: BTreeSet::new(),
                    created: t,
                    modified: t,
                    version: p,
                };
                self.groups.insert(id, group);
            }
            EventData::GroupUpdated(r) => {
                if let Some(g) = self.groups.get_mut(r.group.as_str()) {
                    if let Some(name) = &r.display_name {
                        g.display_name = name.clone();
                    }
                    if let Some(x) = &r.external_id {
                        g.external_id = (!x.is_empty()).then(|| x.clone());
                    }
                    (g.modified, g.version) = (t, p);
                }
            }
            EventData::GroupDeleted(g) => {
                self.groups.remove(g.group.as_str());
            }
            EventData::GroupMemberAdded(m) | EventData::GroupMemberRemoved(m) => {
                let added = matches!(event.data, EventData::GroupMemberAdded(_));
                // Only a joined identity becomes a member (rule 6); the log may hold others.
                let joined = self.users.contains_key(m.identity.as_str());
                if let Some(g) = self.groups.get_mut(m.group.as_str()) {
                    if added && joined {
                        g.members.insert(m.identity.as_str().to_string());
                    } else if !added {
                        g.members.remove(m.identity.as_str());
                    }
                    (g.modified, g.version) = (t, p);
                }
            }
            _ => {}
        }
    }
}
