//! Reconciliation against a directory snapshot taken at `T`: what Tenure says at `T` (as
//! known at `R`) beside what the directory says, row by row, and the events that would
//! make Tenure agree.

use super::ts;
use crate::error::QueryError;
use crate::fold::{fold_identity_with, FoldScope, State};
use crate::index::AccessIndex;
use crate::query::AsOf;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tenure_engine::event::{Attributes, GroupLifecycle, Joined, Membership, Moved, Rejoined, StatusChange};
use tenure_engine::{EventData, IdentityKind, NewEvent, Timestamp};

/// A user of the directory snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

impl AccessIndex {
    /// Compares `users` (the directory at `at`) with Tenure at `at` as known at `as_of`.
    /// Humans only unless `services`; `dormant_after` (µs) is the dormancy period.
    pub fn reconcile(
        &self,
        users: &[DirUser],
        at: Timestamp,
        as_of: AsOf,
        services: bool,
        dormant_after: i64,
    ) -> Result<Reconciliation, QueryError> {
        self.check()?;
        let r = self.resolve(as_of);
        let t = at.as_micros();
        let mut here: Vec<Here> = Vec::new();
        let mut dormant = Vec::new();
        for id in self.ids() {
            let fold = fold_identity_with(self, id, r, FoldScope { profile: true, until: t })?;
            let profile = fold.profile_at(t);
            // Services left out of the comparison are still matched, so that a directory
            // that lists them does not report them missing.
            let skipped = profile.is_some_and(|p| p.kind == IdentityKind::Service) && !services;
            let state = fold.state_at(t).map(|s| (s.state, s.opened_by));
            let groups = fold
                .memberships
                .iter()
                .filter(|m| m.contains(t))
                .map(|m| (self.group_name(m.key).to_string(), m.opened_by))
                .collect();
            let name = self.identity_name(id)?.to_string();
            if matches!(state, Some((State::Active, _))) && !skipped {
                if let Some((when, pos)) =
                    super::last_lifecycle(&fold, t).filter(|(when, _)| *when < t.saturating_sub(dormant_after))
                {
                    dormant.push(DormantRow { identity: name.clone(), last_event: pos, last_event_at: ts(when) });
                }
            }
            here.push(Here {
                skipped,
                name,
                state,
                attributes: profile.map(|p| p.attributes.clone()).unwrap_or_default(),
                profile_position: profile.map(|p| p.position),
                groups,
            });
        }
        let by_name: BTreeMap<&str, usize> = here.iter().enumerate().map(|(i, h)| (h.name.as_str(), i)).collect();
        let by_user_name: BTreeMap<String, usize> = here
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.attributes.get("userName").map(|u| (u.to_lowercase(), i)))
            .collect();
        let known_groups: BTreeSet<&str> = (0..self.group_count()).map(|g| self.group_name(g)).collect();

        let mut rows = Vec::new();
        let mut fixes = Fixes::new(at);
        let mut seen = vec![false; here.len()];
        for u in users {
            let matched = u
                .user_name
                .as_ref()
                .and_then(|n| by_user_name.get(&n.to_lowercase()).copied())
                .or_else(|| u.keys.iter().find_map(|k| by_name.get(k.as_str()).copied()));
            let directory = u.keys.first().cloned();
            let row =
                |kind, identity: Option<&str>, field: Option<&str>, h: Option<&str>, th: Option<&str>, positions| {
                    DriftRow {
                        kind,
                        identity: identity.map(str::to_string),
                        directory: directory.clone(),
                        field: field.map(str::to_string),
                        here: h.map(str::to_string),
                        there: th.map(str::to_string),
                        positions,
                    }
                };
            let Some(i) = matched else {
                if u.active {
                    let Some(name) = u.keys.first() else { continue };
                    rows.push(row("missing", None, None, Some("absent"), Some("active"), vec![]));
                    fixes.join(name, &u.attributes);
                    for g in u.groups.iter().flatten() {
                        fixes.add(name, g, known_groups.contains(g.as_str()));
                    }
                }
                continue;
            };
            seen[i] = true;
            let h = &here[i];
            if h.skipped {
                continue;
            }
            let state = h.state.map(|s| s.0);
            let state_pos: Vec<u64> = h.state.map(|s| s.1).into_iter().collect();
            let state_name = state.map_or("absent", State::as_str);
            match (state, u.active) {
                (Some(State::Active), false) => {
                    rows.push(row("disabled_there", Some(&h.name), None, Some("active"), Some("inactive"), state_pos));
                    fixes.status(&h.name, "suspended");
                    continue;
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
                (_, false) => continue,
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
        for (h, _) in here.iter().zip(&seen).filter(|(h, seen)| !**seen && !h.skipped) {
            if let Some((State::Active, pos)) = h.state {
                rows.push(DriftRow {
                    kind: "orphaned",
                    identity: Some(h.name.clone()),
                    directory: None,
                    field: None,
                    here: Some("active".into()),
                    there: Some("absent".into()),
                    positions: vec![pos],
                });
                fixes.status(&h.name, "left");
            }
        }
        Ok(Reconciliation { at, as_of: r, drift: rows.len(), rows, dormant, corrections: fixes.events })
    }
}

/// The corrections, in an order that ingests: joins and group creations before the
/// memberships that need them.
struct Fixes {
    at: Timestamp,
    events: Vec<NewEvent>,
    created: BTreeSet<String>,
}

impl Fixes {
    fn new(at: Timestamp) -> Self {
        Fixes { at, events: Vec::new(), created: BTreeSet::new() }
    }

    fn push(&mut self, key: String, data: EventData) {
        let key = format!("{}:{}:{key}", self.at, data.type_name());
        self.events.push(NewEvent::new(self.at, data).with_source("reconcile", &key));
    }

    fn join(&mut self, name: &str, attributes: &BTreeMap<String, String>) {
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
