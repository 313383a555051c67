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

/// A run of effective access: `ent` held during `[from, to)` for the same reasons (named,
/// or as the index numbers them: [`RunVia`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Run<V = Via> {
    pub ent: u32,
    pub from: i64,
    pub to: i64,
    pub via: Vec<V>,
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

/// An entitlement and one reason it is held, as the index numbers them.
type Reason = (u32, RunVia);

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
        let mut flat = Vec::new();
        self.access_flat(fold, t, groups, only, &mut flat);
        let mut out = AccessSet::new();
        for (ent, via) in flat {
            out.entry(ent).or_default().push(self.named(via));
        }
        out
    }

    /// [`Self::access_of`] with each reason as the index numbers it (a group by its id),
    /// into `out` as `(entitlement, reason)` sorted by entitlement, then in the order of
    /// the named reasons: what runs are computed from, instant after instant, in one
    /// buffer and without a group's name made at each.
    fn access_flat(
        &self,
        fold: &IdentityFold,
        t: i64,
        groups: &mut Groups<'_>,
        only: Option<&[u32]>,
        out: &mut Vec<Reason>,
    ) {
        out.clear();
        if !fold.active_at(t) {
            return;
        }
        let wanted = |ent: u32| only.is_none_or(|o| o.contains(&ent));
        for g in fold.grants.iter().filter(|s| s.contains(t) && wanted(s.key)) {
            out.push((g.key, RunVia::Direct { grant: g.opened_by }));
        }
        for m in fold.memberships.iter().filter(|s| s.contains(t)) {
            let group_fold = groups.get(m.key);
            for gg in group_fold.grants.iter().filter(|s| s.contains(t) && wanted(s.key)) {
                out.push((gg.key, RunVia::Group { group: m.key, membership: m.opened_by, grant: gg.opened_by }));
            }
        }
        out.sort_by(|(e1, v1), (e2, v2)| e1.cmp(e2).then_with(|| self.via_order(v1, v2)));
    }

    /// Reasons in [`Via`]'s order once named: direct grants first (by position), then by
    /// group name, membership and grant.
    fn via_order(&self, a: &RunVia, b: &RunVia) -> std::cmp::Ordering {
        let key = |v: &RunVia| match *v {
            RunVia::Direct { grant } => (false, "", 0, grant),
            RunVia::Group { group, membership, grant } => (true, self.group_name_or_unknown(group), membership, grant),
        };
        key(a).cmp(&key(b))
    }

    /// A reason named.
    pub(crate) fn named(&self, v: RunVia) -> Via {
        match v {
            RunVia::Direct { grant } => Via::Direct { grant },
            RunVia::Group { group, membership, grant } => {
                Via::Group { group: self.group_name_or_unknown(group).to_string(), membership, grant }
            }
        }
    }

    /// A group's name, `?` for an id past the groups (a damaged run's).
    fn group_name_or_unknown(&self, g: u32) -> &str {
        if g < self.group_count() {
            self.group_name(g)
        } else {
            "?"
        }
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
        // A group's grants change the identity's access only while it is a member: a
        // grant's start or end outside every membership of the identity in that group
        // leaves the access on both sides equal (the memberships' own ends are points
        // already), so it is no point. A long-lived group's history costs only what
        // falls within its members' stays.
        let mut seen = BTreeSet::new();
        for m in &fold.memberships {
            if seen.insert(m.key) {
                let stays: Vec<(i64, i64)> =
                    fold.memberships.iter().filter(|s| s.key == m.key).map(|s| (s.from, s.to)).collect();
                let within = |p: i64| stays.iter().any(|&(from, to)| from < p && p < to);
                for s in &groups.get(m.key).grants {
                    points.extend([s.from, s.to].into_iter().filter(|&p| within(p)));
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

    /// [`Self::access_run_ids`], the reasons named.
    pub(crate) fn access_runs_within(
        &self,
        fold: &IdentityFold,
        groups: &mut Groups<'_>,
        lo: i64,
        hi: i64,
    ) -> Vec<Run> {
        let runs = self.access_run_ids(fold, groups, lo, hi);
        runs.into_iter()
            .map(|r| Run {
                ent: r.ent,
                from: r.from,
                to: r.to,
                via: r.via.into_iter().map(|v| self.named(v)).collect(),
            })
            .collect()
    }

    /// [`Self::access_runs`] within `[lo, hi)`, the reasons as the index numbers them:
    /// the runs cut at both ends, computed from the breakpoints inside the window only (a
    /// window late in a long history costs what the window holds, not the history).
    pub(crate) fn access_run_ids(
        &self,
        fold: &IdentityFold,
        groups: &mut Groups<'_>,
        lo: i64,
        hi: i64,
    ) -> Vec<Run<RunVia>> {
        let mut points = self.breakpoints(fold, groups);
        points.retain(|&p| lo < p && p < hi);
        points.insert(0, lo);
        // The access at the previous point and at this one, each `(entitlement, reason)`
        // sorted; a run of an entitlement ends where its reasons differ.
        let (mut before, mut now): (Vec<Reason>, Vec<Reason>) = (Vec::new(), Vec::new());
        let mut since: BTreeMap<u32, i64> = BTreeMap::new();
        let mut runs = Vec::new();
        let group_end =
            |list: &[Reason], at: usize, ent: u32| at + list[at..].iter().take_while(|(e, _)| *e == ent).count();
        for &t in &points {
            self.access_flat(fold, t, groups, None, &mut now);
            let (mut i, mut j) = (0, 0);
            while i < before.len() || j < now.len() {
                let ent = match (before.get(i), now.get(j)) {
                    (Some(&(a, _)), Some(&(b, _))) => a.min(b),
                    (Some(&(a, _)), None) => a,
                    (None, Some(&(b, _))) => b,
                    (None, None) => break,
                };
                let (i_end, j_end) = (group_end(&before, i, ent), group_end(&now, j, ent));
                if !before[i..i_end].iter().map(|x| x.1).eq(now[j..j_end].iter().map(|x| x.1)) {
                    if i_end > i {
                        // Every entitlement held at the previous point has its start.
                        let from = since.remove(&ent).unwrap_or(lo);
                        runs.push(Run { ent, from, to: t, via: before[i..i_end].iter().map(|x| x.1).collect() });
                    }
                    if j_end > j {
                        since.insert(ent, t);
                    }
                }
                (i, j) = (i_end, j_end);
            }
            std::mem::swap(&mut before, &mut now);
        }
        let mut i = 0;
        while i < before.len() {
            let ent = before[i].0;
            let end = group_end(&before, i, ent);
            let from = since.get(&ent).copied().unwrap_or(lo);
            runs.push(Run { ent, from, to: hi, via: before[i..end].iter().map(|x| x.1).collect() });
            i = end;
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
