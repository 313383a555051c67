//! The audit queries, each "as known at R". Every answer carries its provenance.

use crate::error::CorruptIndex;
use crate::error::QueryError;
use crate::fold::{fold_group, fold_identity, fold_identity_with, Anomaly, FoldScope, GroupFold, IdentityFold, State};
use crate::index::AccessIndex;
use crate::model::{RunVia, NEVER};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use tenure_engine::event::Attributes;
use tenure_engine::maps::Map;
use tenure_engine::{Entitlement, IdentityKind, Timestamp};

/// The knowledge point of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// Everything recorded.
    Head,
    /// Positions up to and including this one.
    Position(u64),
    /// Everything recorded at or before this time.
    Recorded(Timestamp),
}

/// Why an entitlement is held: a direct grant, or a membership and a group grant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Via {
    Direct { grant: u64 },
    Group { group: String, membership: u64, grant: u64 },
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Direct { grant } => write!(f, "direct grant @{grant}"),
            Via::Group { group, membership, grant } => {
                write!(f, "group {group} (member @{membership}, grant @{grant})")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Held {
    pub resource: String,
    pub permission: String,
    pub via: Vec<Via>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub identity: String,
    pub resource: String,
    pub permission: String,
    pub via: Vec<Via>,
}

/// What a `who` query asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Entitlement(Entitlement),
    /// Any permission on this resource.
    Resource(String),
}

impl Target {
    /// `payroll-db#read` or `payroll-db`.
    pub fn parse(text: &str) -> Option<Target> {
        if text.contains('#') {
            Entitlement::parse_short(text).map(Target::Entitlement)
        } else if text.is_empty() {
            None
        } else {
            Some(Target::Resource(text.to_string()))
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Entitlement(e) => write!(f, "{e}"),
            Target::Resource(r) => f.write_str(r),
        }
    }
}

/// An interval of a timeline, `[from, to)`; `to` is `None` while open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineSpan {
    pub what: String,
    pub from: Timestamp,
    pub to: Option<Timestamp>,
    pub opened_by: u64,
    pub closed_by: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<Via>,
}

/// An identity's history, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Timeline {
    pub identity: String,
    pub status: Vec<TimelineSpan>,
    /// Direct grants and memberships, as facts.
    pub grants: Vec<TimelineSpan>,
    pub memberships: Vec<TimelineSpan>,
    /// Effective access: when the identity had each entitlement, and why.
    pub access: Vec<TimelineSpan>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnedService {
    pub identity: String,
    pub state: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub identity: String,
    /// `absent`, `active`, `suspended` or `left`.
    pub state: String,
    pub kind: Option<IdentityKind>,
    pub attributes: Attributes,
    pub owner: Option<String>,
    /// Services whose owner this identity was at that time.
    pub owns: Vec<OwnedService>,
    /// The positions of the events that made the state and the attributes what they are.
    pub state_since: Option<u64>,
    pub profile_since: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub identity: String,
    pub resource: String,
    pub permission: String,
    pub via: Vec<Via>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Default)]
pub struct Diff {
    pub gained: Vec<Change>,
    pub lost: Vec<Change>,
}

/// A run of effective access: `ent` held during `[from, to)` for the same reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub ent: u32,
    pub from: i64,
    pub to: i64,
    pub via: Vec<Via>,
}

/// Folds of the groups an identity's access depends on, made once per query.
pub(crate) struct Groups<'a> {
    index: &'a AccessIndex,
    r: u64,
    folds: Map<u32, GroupFold>,
}

impl<'a> Groups<'a> {
    pub(crate) fn new(index: &'a AccessIndex, r: u64) -> Self {
        Groups { index, r, folds: Map::default() }
    }

    fn get(&mut self, g: u32) -> &GroupFold {
        let (index, r) = (self.index, self.r);
        self.folds.entry(g).or_insert_with(|| fold_group(index, g, r))
    }
}

/// Per entitlement id, the sorted reasons it is held.
type AccessSet = BTreeMap<u32, Vec<Via>>;

fn to_ts(t: i64) -> Timestamp {
    Timestamp::from_micros(t)
}

fn end_ts(t: i64) -> Option<Timestamp> {
    (t != NEVER).then(|| to_ts(t))
}

impl AccessIndex {
    /// The position a query as of `as_of` sees.
    pub fn resolve(&self, as_of: AsOf) -> u64 {
        match as_of {
            AsOf::Head => self.head,
            AsOf::Position(p) => p.min(self.head),
            AsOf::Recorded(t) => self.position_at_recorded(t.as_micros()),
        }
    }

    fn id_of(&self, name: &str) -> Result<u32, QueryError> {
        self.check()?;
        self.identity_id(name)?.ok_or_else(|| QueryError::UnknownIdentity(name.to_string()))
    }

    /// Folds one identity as known at `as_of` (for reports and custom queries).
    pub fn fold_identity(&self, name: &str, as_of: AsOf) -> Result<IdentityFold, QueryError> {
        Ok(fold_identity(self, self.id_of(name)?, self.resolve(as_of))?)
    }

    /// The access of a folded identity at `t`, restricted to `only` when given.
    fn access_of(&self, fold: &IdentityFold, t: i64, groups: &mut Groups<'_>, only: Option<&[u32]>) -> AccessSet {
        let mut out = AccessSet::new();
        if !fold.active_at(t) {
            return out;
        }
        let wanted = |ent: u32| only.is_none_or(|o| o.contains(&ent));
        for g in fold.grants.iter().filter(|s| s.contains(t) && wanted(s.key)) {
            out.entry(g.key).or_default().push(Via::Direct { grant: g.opened_by });
        }
        for m in fold.memberships.iter().filter(|s| s.contains(t)) {
            let group_fold = groups.get(m.key);
            for gg in group_fold.grants.iter().filter(|s| s.contains(t) && wanted(s.key)) {
                out.entry(gg.key).or_default().push(Via::Group {
                    group: self.group_name(m.key).to_string(),
                    membership: m.opened_by,
                    grant: gg.opened_by,
                });
            }
        }
        for vias in out.values_mut() {
            vias.sort();
        }
        out
    }

    fn held(&self, set: AccessSet) -> Vec<Held> {
        let mut out: Vec<Held> = set
            .into_iter()
            .map(|(ent, via)| {
                let e = &self.ents[ent as usize];
                Held { resource: e.resource.clone(), permission: e.permission.clone(), via }
            })
            .collect();
        out.sort_by(|a, b| (&a.resource, &a.permission).cmp(&(&b.resource, &b.permission)));
        out
    }

    /// What `identity` could access at `at`, as known at `as_of`, and why.
    pub fn access(&self, identity: &str, at: Timestamp, as_of: AsOf) -> Result<Vec<Held>, QueryError> {
        let id = self.id_of(identity)?;
        let r = self.resolve(as_of);
        let fold = fold_identity_with(self, id, r, FoldScope::access_at(at.as_micros()))?;
        let mut groups = Groups::new(self, r);
        Ok(self.held(self.access_of(&fold, at.as_micros(), &mut groups, None)))
    }

    fn target_ents(&self, target: &Target) -> Vec<u32> {
        match target {
            Target::Entitlement(e) => self.ent_id(e).into_iter().collect(),
            Target::Resource(r) => self.by_resource.get(r).cloned().unwrap_or_default(),
        }
    }

    /// Identities that ever had an event that could give them one of `ents`.
    fn candidates(&self, ents: &[u32]) -> Result<Vec<u32>, QueryError> {
        self.check()?;
        let mut all = Vec::new();
        for &e in ents {
            all.extend_from_slice(&self.direct_holders(e)?);
            for &g in &self.group_holders[e as usize] {
                all.extend_from_slice(&self.members(g)?);
            }
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    fn holders_from(&self, id: u32, set: AccessSet, out: &mut Vec<Holder>) -> Result<(), QueryError> {
        if set.is_empty() {
            return Ok(());
        }
        let name = self.identity_name(id)?;
        for h in self.held(set) {
            out.push(Holder { identity: name.to_string(), resource: h.resource, permission: h.permission, via: h.via });
        }
        Ok(())
    }

    /// Who held `target` at `at`, as known at `as_of`.
    ///
    /// As known at the head, the index file's runs of effective access answer for every
    /// identity that the tail (the events after the file) does not touch; the others, and
    /// every query as known earlier, fold each candidate up to `at`.
    pub fn holders(&self, target: &Target, at: Timestamp, as_of: AsOf) -> Result<Vec<Holder>, QueryError> {
        let ents = self.target_ents(target);
        let r = self.resolve(as_of);
        let t = at.as_micros();
        let mut groups = Groups::new(self, r);
        let mut out = Vec::new();
        let (fold_these, from_runs) = match self.untouched_by_tail(r) {
            Some(touched) => {
                let frozen = self.frozen.as_ref().map_or(0, |f| f.identities);
                let fold: Vec<u32> = if touched.is_empty() && self.identities.end() == frozen {
                    Vec::new() // the tail changed no one's access
                } else {
                    self.candidates(&ents)?.into_iter().filter(|id| *id >= frozen || touched.contains(id)).collect()
                };
                (fold, Some(touched))
            }
            None => (self.candidates(&ents)?, None),
        };
        if let (Some(touched), Some(f)) = (&from_runs, &self.frozen) {
            let mut failed = None;
            for &ent in ents.iter().filter(|&&e| e < f.ents) {
                let e = &self.ents[ent as usize];
                f.runs_at(ent, t, |id, via| {
                    if touched.contains(&id) || failed.is_some() {
                        return;
                    }
                    match self.holder_from_run(id, e, via) {
                        Ok(h) => out.push(h),
                        Err(err) => failed = Some(err),
                    }
                })?;
            }
            if let Some(err) = failed {
                return Err(err.into());
            }
        }
        for id in fold_these {
            let fold = fold_identity_with(self, id, r, FoldScope::access_at(t))?;
            let set = self.access_of(&fold, t, &mut groups, Some(&ents));
            self.holders_from(id, set, &mut out)?;
        }
        sort_holders(&mut out);
        Ok(out)
    }

    /// As known at the head, with an index file and no retraction after it: the frozen
    /// identities whose access the tail may have changed (their own events, or events of
    /// groups they had memberships in). `None` when the runs cannot be used.
    fn untouched_by_tail(&self, r: u64) -> Option<tenure_engine::maps::Set<u32>> {
        let f = self.frozen.as_ref()?;
        if r != self.head || self.retracted.values().any(|&by| by > f.head) {
            return None;
        }
        let mut touched: tenure_engine::maps::Set<u32> = self.id_events.touched_frozen_ids().collect();
        for (g, events) in self.group_events.iter().enumerate() {
            if events.iter().any(|e| e.pos > f.head) {
                touched.extend(self.members(g as u32).ok()?.iter().copied().filter(|&id| id < f.identities));
            }
        }
        Some(touched)
    }

    fn holder_from_run(&self, id: u32, e: &Entitlement, via: &[RunVia]) -> Result<Holder, CorruptIndex> {
        let mut via: Vec<Via> = via
            .iter()
            .map(|v| match *v {
                RunVia::Direct { grant } => Via::Direct { grant },
                RunVia::Group { group, membership, grant } => {
                    let group = if group < self.group_count() { self.group_name(group) } else { "?" };
                    Via::Group { group: group.to_string(), membership, grant }
                }
            })
            .collect();
        via.sort();
        Ok(Holder {
            identity: self.identity_name(id)?.to_string(),
            resource: e.resource.clone(),
            permission: e.permission.clone(),
            via,
        })
    }

    /// The instants at which an identity's access can change: every span boundary of its
    /// own fold and of the folds of its groups. Access is constant between two of them.
    fn breakpoints(&self, fold: &IdentityFold, groups: &mut Groups<'_>) -> Vec<i64> {
        let mut points = Vec::new();
        for s in &fold.status {
            points.extend([s.from, s.to]);
        }
        for s in fold.grants.iter().chain(&fold.memberships) {
            points.extend([s.from, s.to]);
        }
        let mut seen = BTreeSet::new();
        for m in &fold.memberships {
            if seen.insert(m.key) {
                for s in &groups.get(m.key).grants {
                    points.extend([s.from, s.to]);
                }
            }
        }
        points.retain(|&p| p != NEVER);
        points.sort_unstable();
        points.dedup();
        points
    }

    /// Effective access over all time: at each breakpoint the access is evaluated, and
    /// consecutive breakpoints with the same entitlement and the same reasons make one run.
    pub(crate) fn access_runs(&self, fold: &IdentityFold, groups: &mut Groups<'_>) -> Vec<Run> {
        let points = self.breakpoints(fold, groups);
        let mut open: BTreeMap<u32, (i64, Vec<Via>)> = BTreeMap::new();
        let mut runs = Vec::new();
        for &t in &points {
            let now = self.access_of(fold, t, groups, None);
            let ended: Vec<u32> = open.keys().copied().filter(|e| now.get(e) != open.get(e).map(|o| &o.1)).collect();
            for ent in ended {
                if let Some((from, via)) = open.remove(&ent) {
                    runs.push(Run { ent, from, to: t, via });
                }
            }
            for (ent, via) in now {
                open.entry(ent).or_insert((t, via));
            }
        }
        for (ent, (from, via)) in open {
            runs.push(Run { ent, from, to: NEVER, via });
        }
        runs
    }

    /// Access at some instant of `[from, to)`: the union over the window, with every
    /// reason that held at some instant of it.
    fn access_during(
        &self,
        fold: &IdentityFold,
        from: i64,
        to: i64,
        groups: &mut Groups<'_>,
        only: Option<&[u32]>,
    ) -> AccessSet {
        let points = self.breakpoints(fold, groups);
        let mut out = AccessSet::new();
        let starts = std::iter::once(from).chain(points.into_iter().filter(|&p| from < p && p < to));
        for t in starts {
            for (ent, vias) in self.access_of(fold, t, groups, only) {
                let slot = out.entry(ent).or_default();
                slot.extend(vias);
            }
        }
        for vias in out.values_mut() {
            vias.sort();
            vias.dedup();
        }
        out
    }

    /// Who held `target` at any instant of `[from, to)`, as known at `as_of`.
    pub fn holders_during(
        &self,
        target: &Target,
        from: Timestamp,
        to: Timestamp,
        as_of: AsOf,
    ) -> Result<Vec<Holder>, QueryError> {
        if from >= to {
            return Err(QueryError::EmptyWindow { from, to });
        }
        let ents = self.target_ents(target);
        let r = self.resolve(as_of);
        let mut groups = Groups::new(self, r);
        let mut out = Vec::new();
        for id in self.candidates(&ents)? {
            let fold = fold_identity_with(self, id, r, FoldScope::ACCESS)?;
            let set = self.access_during(&fold, from.as_micros(), to.as_micros(), &mut groups, Some(&ents));
            self.holders_from(id, set, &mut out)?;
        }
        sort_holders(&mut out);
        Ok(out)
    }

    /// An identity's status, grants, memberships and effective access, oldest first.
    pub fn timeline(&self, identity: &str, as_of: AsOf) -> Result<Timeline, QueryError> {
        let id = self.id_of(identity)?;
        let r = self.resolve(as_of);
        let fold = fold_identity_with(self, id, r, FoldScope::ACCESS)?;
        let mut groups = Groups::new(self, r);
        let span = |what: String, from: i64, to: i64, opened_by: u64, closed_by: Option<u64>| TimelineSpan {
            what,
            from: to_ts(from),
            to: end_ts(to),
            opened_by,
            closed_by,
            via: Vec::new(),
        };
        let status = fold
            .status
            .iter()
            .map(|s| span(s.state.as_str().to_string(), s.from, s.to, s.opened_by, s.closed_by))
            .collect();
        let grants = fold
            .grants
            .iter()
            .map(|s| span(self.ents[s.key as usize].to_string(), s.from, s.to, s.opened_by, s.closed_by))
            .collect();
        let memberships = fold
            .memberships
            .iter()
            .map(|s| span(format!("member of {}", self.group_name(s.key)), s.from, s.to, s.opened_by, s.closed_by))
            .collect();
        let mut access: Vec<TimelineSpan> = self
            .access_runs(&fold, &mut groups)
            .into_iter()
            .map(|run| TimelineSpan {
                what: self.ents[run.ent as usize].to_string(),
                from: to_ts(run.from),
                to: end_ts(run.to),
                opened_by: run.via.iter().map(via_position).max().unwrap_or(0),
                closed_by: None,
                via: run.via,
            })
            .collect();
        access.sort_by(|a, b| (a.from, &a.what).cmp(&(b.from, &b.what)));
        Ok(Timeline { identity: identity.to_string(), status, grants, memberships, access })
    }

    /// What an identity's records said at `at`: state, kind, attributes, owner, and the
    /// services it owned then.
    pub fn profile(&self, identity: &str, at: Timestamp, as_of: AsOf) -> Result<Profile, QueryError> {
        let id = self.id_of(identity)?;
        let r = self.resolve(as_of);
        let t = at.as_micros();
        let fold = fold_identity(self, id, r)?;
        let state = fold.state_at(t);
        let version = fold.profile_at(t);
        let mut owns = Vec::new();
        for &s in self.owned(id)?.iter() {
            let sf = fold_identity(self, s, r)?;
            if sf.profile_at(t).and_then(|p| p.owner) == Some(id) {
                let st = sf.state_at(t).map(|s| s.state.as_str()).unwrap_or("absent");
                owns.push(OwnedService { identity: self.identity_name(s)?.to_string(), state: st.to_string() });
            }
        }
        owns.sort_by(|a, b| a.identity.cmp(&b.identity));
        Ok(Profile {
            identity: identity.to_string(),
            state: state.map(|s| s.state.as_str()).unwrap_or("absent").to_string(),
            kind: version.map(|v| v.kind),
            attributes: version.map(|v| v.attributes.clone()).unwrap_or_default(),
            owner: match version.and_then(|v| v.owner) {
                Some(o) => Some(self.identity_name(o)?.to_string()),
                None => None,
            },
            owns,
            state_since: state.map(|s| s.opened_by),
            profile_since: version.map(|v| v.position),
        })
    }

    /// Access gained and lost between `from` and `to`, for one identity or everyone.
    pub fn diff(
        &self,
        identity: Option<&str>,
        from: Timestamp,
        to: Timestamp,
        as_of: AsOf,
    ) -> Result<Diff, QueryError> {
        let ids: Vec<u32> = match identity {
            Some(name) => vec![self.id_of(name)?],
            None => {
                self.check()?;
                (0..self.identity_count() as u32).collect()
            }
        };
        let r = self.resolve(as_of);
        let mut groups = Groups::new(self, r);
        let mut diff = Diff::default();
        for id in ids {
            let fold = fold_identity_with(self, id, r, FoldScope::ACCESS)?;
            let before = self.access_of(&fold, from.as_micros(), &mut groups, None);
            let after = self.access_of(&fold, to.as_micros(), &mut groups, None);
            let name = self.identity_name(id)?;
            let change = |ent: u32, via: &Vec<Via>| {
                let e = &self.ents[ent as usize];
                Change {
                    identity: name.to_string(),
                    resource: e.resource.clone(),
                    permission: e.permission.clone(),
                    via: via.clone(),
                }
            };
            for (ent, via) in &after {
                if !before.contains_key(ent) {
                    diff.gained.push(change(*ent, via));
                }
            }
            for (ent, via) in &before {
                if !after.contains_key(ent) {
                    diff.lost.push(change(*ent, via));
                }
            }
        }
        Ok(diff)
    }

    /// Every event the fold found meaningless, as known at `as_of`, by position.
    pub fn anomalies(&self, as_of: AsOf) -> Result<Vec<Anomaly>, QueryError> {
        self.check()?;
        let r = self.resolve(as_of);
        let mut out = Vec::new();
        for id in 0..self.identity_count() as u32 {
            out.extend(fold_identity(self, id, r)?.anomalies);
        }
        for g in 0..self.group_count() {
            out.extend(fold_group(self, g, r).anomalies);
        }
        out.sort();
        Ok(out)
    }

    /// The state of every identity at `at` (for reports): name, state, kind.
    pub fn states_at(&self, at: Timestamp, as_of: AsOf) -> Result<Vec<(String, Option<State>)>, QueryError> {
        self.check()?;
        let r = self.resolve(as_of);
        (0..self.identity_count() as u32)
            .map(|id| {
                let fold = fold_identity(self, id, r)?;
                Ok((self.identity_name(id)?.to_string(), fold.state_at(at.as_micros()).map(|s| s.state)))
            })
            .collect()
    }
}

fn via_position(v: &Via) -> u64 {
    match v {
        Via::Direct { grant } => *grant,
        Via::Group { membership, grant, .. } => (*membership).max(*grant),
    }
}

fn sort_holders(out: &mut [Holder]) {
    out.sort_by(|a, b| (&a.identity, &a.resource, &a.permission).cmp(&(&b.identity, &b.resource, &b.permission)));
}
