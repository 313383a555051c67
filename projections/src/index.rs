//! The access index: every event of the log, compacted and filed under the identity or
//! group it concerns, each list kept in effective order `(effective_at, position)`.
//!
//! Why this shape: a query about one identity needs only that identity's events and the
//! events of the groups it was ever a member of. Filing them per subject means that
//! - a backdated event is inserted in place into one short list (no replay);
//! - a retraction is one entry in `retracted` (no replay);
//! - "as known at R" is a filter on positions while folding the short list;
//! - the cost of a query does not depend on the history of unrelated identities, and
//!   grows linearly (not worse) with corrections to the same facts.
//!
//! [`crate::fold`] turns a subject's list into half-open intervals `[from, to)` with the
//! positions that opened and closed them.

use serde::{Deserialize, Serialize};
use tenure_engine::event::Attributes;
use tenure_engine::{Entitlement, Event, EventData, IdentityKind};

/// Dense ids for names, so the index stores `u32`s instead of strings.
#[derive(Default, Serialize, Deserialize)]
pub struct Interner {
    names: Vec<String>,
    #[serde(skip)]
    ids: tenure_engine::hash::Map<String, u32>,
}

impl Interner {
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 names");
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Rebuilds the reverse map after deserialization.
    fn rebuild(&mut self) {
        self.ids = self.names.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect();
    }
}

/// No expiry.
pub const NEVER: i64 = i64::MAX;

/// What an event does to an identity.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum IdOp {
    Joined(Box<JoinedOp>),
    Moved(Box<Attributes>),
    Suspended,
    Reactivated,
    Left,
    Rejoined(Option<Box<Attributes>>),
    OwnerChanged(u32),
    Granted { ent: u32, expires: i64 },
    Revoked(u32),
    MemberAdded(u32),
    MemberRemoved(u32),
    Credential(Box<CredentialOp>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinedOp {
    pub kind: IdentityKind,
    pub attributes: Attributes,
    pub owner: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialAction {
    Issued,
    Rotated,
    Revoked,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
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

/// Inserts keeping `(eff, pos)` order. Events usually arrive in order, so this is a push;
/// a backdated one moves only the later events of the same subject.
fn insert_sorted<Op>(list: &mut Vec<Filed<Op>>, item: Filed<Op>) {
    let key = (item.eff, item.pos);
    let at = list.partition_point(|e| (e.eff, e.pos) <= key);
    list.insert(at, item);
}

fn push_unique(list: &mut Vec<u32>, id: u32) {
    if !list.contains(&id) {
        list.push(id);
    }
}

/// The index itself. Built by [`AccessIndex::apply`], one event at a time, in position
/// order; queried through [`crate::query`].
#[derive(Default, Serialize, Deserialize)]
pub struct AccessIndex {
    /// The last position applied.
    pub(crate) head: u64,
    /// `recorded[p - 1]`: the `recorded_at` of position `p`, µs; never decreasing.
    pub(crate) recorded: Vec<i64>,
    pub(crate) identities: Interner,
    pub(crate) groups: Interner,
    pub(crate) ents: Vec<Entitlement>,
    #[serde(skip)]
    pub(crate) ent_ids: tenure_engine::hash::Map<Entitlement, u32>,
    pub(crate) id_events: Vec<Vec<Filed<IdOp>>>,
    /// Per group: created / deleted / access granted / access revoked.
    pub(crate) group_events: Vec<Vec<Filed<GroupOp>>>,
    /// Retracted position → the position of its (first) retraction.
    pub(crate) retracted: tenure_engine::hash::Map<u64, u64>,
    /// Entitlement → identities with a direct grant event of it.
    pub(crate) direct_holders: Vec<Vec<u32>>,
    /// Entitlement → groups with a group grant event of it.
    pub(crate) group_holders: Vec<Vec<u32>>,
    /// Group → identities with a membership event in it.
    pub(crate) members: Vec<Vec<u32>>,
    /// Identity → groups it has membership events in.
    pub(crate) groups_of: Vec<Vec<u32>>,
    /// Owner → services that named it as owner at some point.
    pub(crate) owned: Vec<Vec<u32>>,
    /// Resource → its entitlements.
    pub(crate) by_resource: tenure_engine::hash::Map<String, Vec<u32>>,
}

impl AccessIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last position applied.
    pub fn head(&self) -> u64 {
        self.head
    }

    pub fn identity_count(&self) -> usize {
        self.identities.len()
    }

    fn identity(&mut self, name: &str) -> u32 {
        let id = self.identities.intern(name);
        if id as usize == self.id_events.len() {
            self.id_events.push(Vec::new());
            self.groups_of.push(Vec::new());
            self.owned.push(Vec::new());
        }
        id
    }

    fn group(&mut self, name: &str) -> u32 {
        let id = self.groups.intern(name);
        if id as usize == self.group_events.len() {
            self.group_events.push(Vec::new());
            self.members.push(Vec::new());
        }
        id
    }

    fn ent(&mut self, e: &Entitlement) -> u32 {
        if let Some(&id) = self.ent_ids.get(e) {
            return id;
        }
        let id = u32::try_from(self.ents.len()).expect("fewer than 2^32 entitlements");
        self.ents.push(e.clone());
        self.ent_ids.insert(e.clone(), id);
        self.direct_holders.push(Vec::new());
        self.group_holders.push(Vec::new());
        self.by_resource.entry(e.resource.clone()).or_default().push(id);
        id
    }

    pub(crate) fn ent_id(&self, e: &Entitlement) -> Option<u32> {
        self.ent_ids.get(e).copied()
    }

    /// Takes the next event of the log into the index. Events must come in position
    /// order, each exactly once (the runner's checkpoint sees to it).
    pub fn apply(&mut self, event: &Event) {
        let pos = event.position.get();
        assert_eq!(pos, self.head + 1, "the index takes positions in order, without gaps");
        let eff = event.effective_at.as_micros();
        let last = self.recorded.last().copied().unwrap_or(i64::MIN);
        self.recorded.push(event.recorded_at.as_micros().max(last));
        self.head = pos;
        let file_id = |index: &mut Self, name: &str, op: IdOp| {
            let id = index.identity(name);
            insert_sorted(&mut index.id_events[id as usize], Filed { pos, eff, op });
            id
        };
        match &event.data {
            EventData::IdentityJoined(j) => {
                let owner = j.owner.as_ref().map(|o| self.identity(o.as_str()));
                let op = JoinedOp { kind: j.kind, attributes: j.attributes.clone(), owner };
                let id = file_id(self, j.identity.as_str(), IdOp::Joined(Box::new(op)));
                if let Some(owner) = owner {
                    push_unique(&mut self.owned[owner as usize], id);
                }
            }
            EventData::IdentityMoved(m) => {
                file_id(self, m.identity.as_str(), IdOp::Moved(Box::new(m.attributes.clone())));
            }
            EventData::IdentitySuspended(s) => {
                file_id(self, s.identity.as_str(), IdOp::Suspended);
            }
            EventData::IdentityReactivated(s) => {
                file_id(self, s.identity.as_str(), IdOp::Reactivated);
            }
            EventData::IdentityLeft(s) => {
                file_id(self, s.identity.as_str(), IdOp::Left);
            }
            EventData::IdentityRejoined(r) => {
                let attrs = r.attributes.clone().map(Box::new);
                file_id(self, r.identity.as_str(), IdOp::Rejoined(attrs));
            }
            EventData::IdentityOwnerChanged(o) => {
                let owner = self.identity(o.owner.as_str());
                let id = file_id(self, o.identity.as_str(), IdOp::OwnerChanged(owner));
                push_unique(&mut self.owned[owner as usize], id);
            }
            EventData::AccessGranted(g) => {
                let ent = self.ent(&g.entitlement);
                let expires = g.expires_at.map(|t| t.as_micros()).unwrap_or(NEVER);
                let id = file_id(self, g.identity.as_str(), IdOp::Granted { ent, expires });
                push_unique(&mut self.direct_holders[ent as usize], id);
            }
            EventData::AccessRevoked(r) => {
                let ent = self.ent(&r.entitlement);
                file_id(self, r.identity.as_str(), IdOp::Revoked(ent));
            }
            EventData::GroupMemberAdded(m) | EventData::GroupMemberRemoved(m) => {
                let group = self.group(m.group.as_str());
                let op = match &event.data {
                    EventData::GroupMemberAdded(_) => IdOp::MemberAdded(group),
                    _ => IdOp::MemberRemoved(group),
                };
                let id = file_id(self, m.identity.as_str(), op);
                push_unique(&mut self.members[group as usize], id);
                push_unique(&mut self.groups_of[id as usize], group);
            }
            EventData::CredentialIssued(c) | EventData::CredentialRotated(c) | EventData::CredentialRevoked(c) => {
                let action = match &event.data {
                    EventData::CredentialIssued(_) => CredentialAction::Issued,
                    EventData::CredentialRotated(_) => CredentialAction::Rotated,
                    _ => CredentialAction::Revoked,
                };
                let expires = c.expires_at.map(|t| t.as_micros()).unwrap_or(NEVER);
                let op = CredentialOp { action, credential: c.credential.0.clone(), expires };
                file_id(self, c.identity.as_str(), IdOp::Credential(Box::new(op)));
            }
            EventData::GroupCreated(g) | EventData::GroupDeleted(g) => {
                let group = self.group(g.group.as_str());
                let op =
                    if matches!(event.data, EventData::GroupCreated(_)) { GroupOp::Created } else { GroupOp::Deleted };
                insert_sorted(&mut self.group_events[group as usize], Filed { pos, eff, op });
            }
            EventData::GroupAccessGranted(g) | EventData::GroupAccessRevoked(g) => {
                let group = self.group(g.group.as_str());
                let ent = self.ent(&g.entitlement);
                let op = match &event.data {
                    EventData::GroupAccessGranted(_) => GroupOp::Granted(ent),
                    _ => GroupOp::Revoked(ent),
                };
                insert_sorted(&mut self.group_events[group as usize], Filed { pos, eff, op });
                push_unique(&mut self.group_holders[ent as usize], group);
            }
            EventData::EventRetracted(r) => {
                self.retracted.entry(r.position.get()).or_insert(pos);
            }
        }
    }

    /// Whether position `pos` is part of the log as known at `r`: recorded by then and not
    /// retracted by then.
    #[inline]
    pub(crate) fn visible(&self, pos: u64, r: u64) -> bool {
        pos <= r && self.retracted.get(&pos).is_none_or(|&by| by > r)
    }

    /// The position known at recorded time `t` (µs): the last one recorded at or before it.
    pub fn position_at_recorded(&self, t: i64) -> u64 {
        self.recorded.partition_point(|&r| r <= t) as u64
    }

    /// Encodes the index for a snapshot.
    pub fn to_bytes(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("the index is plain data")
    }

    /// Decodes a snapshot made by [`AccessIndex::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let mut index: AccessIndex = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
        index.identities.rebuild();
        index.groups.rebuild();
        index.ent_ids = index.ents.iter().enumerate().map(|(i, e)| (e.clone(), i as u32)).collect();
        Ok(index)
    }
}
