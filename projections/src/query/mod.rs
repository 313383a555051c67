//! The audit queries, each "as known at R". Every answer carries its provenance. The
//! answer types and what the queries share are here; each query has its file.

use crate::error::CorruptIndex;
use crate::error::QueryError;
use crate::fold::{
    fold_group, fold_identity, fold_identity_with, Anomaly, FoldScope, GroupFold, IdentityFold, Span, State,
};
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

    /// The folds of `later` (made as known at a later position) that hold as known at
    /// this one too: those of the groups in `gs` whose every event comes before it. Only
    /// when no retraction was recorded after this position (then both positions see the
    /// same events of those groups): `last_retraction` is the position of the last one.
    pub(crate) fn borrow_from(&mut self, later: &mut Groups<'_>, gs: &[u32], last_retraction: u64) {
        let r = self.r;
        if last_retraction > r {
            return;
        }
        for &g in gs {
            if self.index.group_events.get(g as usize).is_some_and(|es| es.iter().all(|e| e.pos <= r)) {
                let fold = later.get(g).clone();
                self.folds.insert(g, fold);
            }
        }
    }
}

/// Per entitlement id, the sorted reasons it is held.
pub(crate) type AccessSet = BTreeMap<u32, Vec<Via>>;

fn to_ts(t: i64) -> Timestamp {
    Timestamp::from_micros(t)
}

fn end_ts(t: i64) -> Option<Timestamp> {
    (t != NEVER).then(|| to_ts(t))
}

mod access;
mod anomalies;
mod diff;
mod holders;
pub(crate) use holders::{StoredRuns, Touched};
mod profile;
mod timeline;

impl AccessIndex {
    /// The position a query as of `as_of` sees.
    pub fn resolve(&self, as_of: AsOf) -> u64 {
        match as_of {
            AsOf::Head => self.head,
            AsOf::Position(p) => p.min(self.head),
            AsOf::Recorded(t) => self.position_at_recorded_micros(t.as_micros()),
        }
    }

    pub(super) fn id_of(&self, name: &str) -> Result<u32, QueryError> {
        self.check()?;
        self.identity_id(name)?.ok_or_else(|| QueryError::UnknownIdentity(name.to_string()))
    }

    /// Folds one identity as known at `as_of` (for reports and custom queries).
    pub fn fold_identity(&self, name: &str, as_of: AsOf) -> Result<IdentityFold, QueryError> {
        Ok(fold_identity(self, self.id_of(name)?, self.resolve(as_of))?)
    }

    /// The access of a folded identity at `t`, restricted to `only` when given.
    pub(crate) fn access_of(
        &self,
        fold: &IdentityFold,
        t: i64,
        groups: &mut Groups<'_>,
        only: Option<&[u32]>,
    ) -> AccessSet {
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

    pub(crate) fn held(&self, set: AccessSet) -> Vec<Held> {
        let mut out: Vec<Held> = set
            .into_iter()
            .map(|(ent, via)| {
                let e = self.ents.get(ent);
                Held { resource: e.resource.to_string(), permission: e.permission.to_string(), via }
            })
            .collect();
        out.sort_by(|a, b| (&a.resource, &a.permission).cmp(&(&b.resource, &b.permission)));
        out
    }

    pub(crate) fn target_ents(&self, target: &Target) -> Vec<u32> {
        match target {
            Target::Entitlement(e) => self.ent_id(e).into_iter().collect(),
            Target::Resource(r) => self.ent_names().by_resource.get(r).cloned().unwrap_or_default(),
        }
    }

    /// Identities that ever had an event that could give them one of `ents`.
    pub(crate) fn candidates(&self, ents: &[u32]) -> Result<Vec<u32>, QueryError> {
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

    /// The instants at which an identity's access can change: every span boundary of its
    /// own fold and of the folds of its groups. Access is constant between two of them.
    pub(super) fn breakpoints(&self, fold: &IdentityFold, groups: &mut Groups<'_>) -> Vec<i64> {
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
        self.access_runs_within(fold, groups, i64::MIN, NEVER)
    }

    /// [`Self::access_runs`] within `[lo, hi)`: the runs cut at both ends, computed from
    /// the breakpoints inside the window only (a window late in a long history costs
    /// what the window holds, not the history).
    pub(crate) fn access_runs_within(
        &self,
        fold: &IdentityFold,
        groups: &mut Groups<'_>,
        lo: i64,
        hi: i64,
    ) -> Vec<Run> {
        let mut points = self.breakpoints(fold, groups);
        points.retain(|&p| lo < p && p < hi);
        points.insert(0, lo);
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
            runs.push(Run { ent, from, to: hi, via });
        }
        runs
    }
}

fn via_position(v: &Via) -> u64 {
    match v {
        Via::Direct { grant } => *grant,
        Via::Group { membership, grant, .. } => (*membership).max(*grant),
    }
}

/// A holder with its identity's and its entitlement's numbers in the index.
pub(crate) type Keyed = (u32, u32, Holder);

fn sort_holders(out: &mut [Keyed]) {
    out.sort_by(|(_, _, a), (_, _, b)| {
        (&a.identity, &a.resource, &a.permission).cmp(&(&b.identity, &b.resource, &b.permission))
    });
}
