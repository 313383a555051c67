//! The SCIM directory: a projection of the log (every identity that has a `userName`
//! attribute), folded from the events in position order. GETs are answered from it; a
//! write appends its events, then applies them as the log recorded them, so the
//! directory is always the fold of the log up to its head.

use crate::model::{Attrs, Grants, Group, User};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tenure_engine::{Event, EventData};

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

    /// Folds one event in (events must come in position order).
    pub fn apply(&mut self, event: &Event) {
        self.head = event.position.get();
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
                let kind = match g.justification.as_deref() {
                    Some(j) if j == Grants::justification("roles") => "roles",
                    Some(j) if j == Grants::justification("entitlements") => "entitlements",
                    _ => return,
                };
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
