//! Filing an event: [`AccessIndex::apply`] takes the next event of the log into the lists
//! of the subjects it concerns, in effective order.

#[allow(unused_imports)]
use super::*;

impl AccessIndex {
    /// Takes the next event of the log into the index. Events must come in position
    /// order, each exactly once (the runner's checkpoint sees to it).
    pub fn apply(&mut self, event: &Event) {
        let pos = event.position.get();
        if pos != self.head + 1 {
            // Not the log this index was built from (or a runner's bug): every query says so.
            self.poisoned.get_or_insert(CorruptIndex {
                path: self.frozen.as_ref().map_or("(in memory)", Frozen::origin).to_string(),
                reason: format!("position {pos} applied after position {}: the index is not of this log", self.head),
            });
            return;
        }
        let eff = event.effective_at.as_micros();
        let last = match (self.recorded.last(), &self.frozen) {
            (Some(&r), _) => r,
            (None, Some(f)) if f.head > 0 => f.recorded(f.head),
            _ => i64::MIN,
        };
        self.recorded.push(event.recorded_at.as_micros().max(last));
        self.head = pos;
        let file_id = |index: &mut Self, name: &str, op: IdOp| {
            let id = index.identity(name);
            insert_sorted(index.id_events.get_mut(id), Filed { pos, eff, op });
            id
        };
        match &event.data {
            EventData::IdentityJoined(j) => {
                let owner = j.owner.as_ref().map(|o| self.identity(o.as_str()));
                let op = JoinedOp { kind: j.kind, attributes: PackedAttrs::pack(&j.attributes), owner };
                let id = file_id(self, j.identity.as_str(), IdOp::Joined(Box::new(op)));
                if let Some(owner) = owner {
                    push_unique(self.owned.get_mut(owner), id);
                }
            }
            EventData::IdentityMoved(m) => {
                file_id(self, m.identity.as_str(), IdOp::Moved(PackedAttrs::pack(&m.attributes)));
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
                let attrs = r.attributes.as_ref().map(PackedAttrs::pack);
                file_id(self, r.identity.as_str(), IdOp::Rejoined(attrs));
            }
            EventData::IdentityOwnerChanged(o) => {
                let owner = self.identity(o.owner.as_str());
                let id = file_id(self, o.identity.as_str(), IdOp::OwnerChanged(owner));
                push_unique(self.owned.get_mut(owner), id);
            }
            EventData::AccessGranted(g) => {
                let ent = self.ent(&g.entitlement);
                let expires = g.expires_at.map(|t| t.as_micros()).unwrap_or(NEVER);
                let id = file_id(self, g.identity.as_str(), IdOp::Granted { ent, expires });
                push_cheap(self.direct_holders.get_mut(ent), id);
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
                push_cheap(self.members.get_mut(group), id);
                push_unique(self.groups_of.get_mut(id), group);
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
            // A new display name: nothing of access changes (the group keeps its name).
            EventData::GroupUpdated(_) => {}
            // A review decision changes no access. Filed under the identity, and the
            // identity listed under the entitlement, so that the access review finds every
            // decision on a resource from the index.
            EventData::AccessReviewed(v) => {
                let ent = self.ent(&v.entitlement);
                let id = file_id(self, v.identity.as_str(), IdOp::Reviewed(ent));
                push_cheap(&mut self.reviewed[ent as usize], id);
            }
            EventData::EventRetracted(r) => {
                self.retracted.entry(r.position.get()).or_insert(pos);
            }
        }
    }
}

/// Inserts keeping `(eff, pos)` order. Events usually arrive in order, so this is a push;
/// a backdated one moves only the later events of the same subject.
pub(super) fn insert_sorted<Op>(list: &mut Vec<Filed<Op>>, item: Filed<Op>) {
    let key = (item.eff, item.pos);
    let at = list.partition_point(|e| (e.eff, e.pos) <= key);
    list.insert(at, item);
}

pub(super) fn push_unique(list: &mut Vec<u32>, id: u32) {
    if !list.contains(&id) {
        list.push(id);
    }
}

/// For the long lists (an entitlement's direct holders, a group's members: up to every
/// identity), a membership test per event would make the build quadratic. They take
/// repeats instead (at most one per event, none in a row) and their readers sort and
/// deduplicate.
pub(super) fn push_cheap(list: &mut Vec<u32>, id: u32) {
    if list.last() != Some(&id) {
        list.push(id);
    }
}
