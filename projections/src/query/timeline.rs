//! `timeline`: an identity's status, grants, memberships and access as intervals.

#[allow(unused_imports)]
use super::*;

impl AccessIndex {
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
            .map(|s| span(self.ents.get(s.key).to_string(), s.from, s.to, s.opened_by, s.closed_by))
            .collect();
        let memberships = fold
            .memberships
            .iter()
            .map(|s| span(format!("member of {}", self.group_name(s.key)), s.from, s.to, s.opened_by, s.closed_by))
            .collect();
        let runs = self.access_runs(&fold, &mut groups);
        let mut access: Vec<TimelineSpan> = runs
            .into_iter()
            .map(|run| TimelineSpan {
                what: self.ents.get(run.ent).to_string(),
                from: to_ts(run.from),
                to: end_ts(run.to),
                opened_by: run.via.iter().map(via_position).max().unwrap_or(0),
                closed_by: ended_by(&fold, &mut groups, run.ent, run.to),
                via: run.via,
            })
            .collect();
        access.sort_by(|a, b| (a.from, &a.what).cmp(&(b.from, &b.what)));
        Ok(Timeline { identity: identity.to_string(), status, grants, memberships, access })
    }
}

/// The event that ended (or changed the reasons of) an access run of `ent` at `t`: of the
/// facts access rests on (the identity's status, its direct grants of `ent`, its
/// memberships, those groups' existence and grants of `ent`), the one ending or starting at
/// `t`, the latest recorded when several do. `None` for an open run and for one ended by
/// an expiry alone (no event happened at `t`).
fn ended_by(fold: &IdentityFold, groups: &mut Groups<'_>, ent: u32, t: i64) -> Option<u64> {
    if t == NEVER {
        return None;
    }
    let at = |s: &Span| {
        let ended = (s.to == t).then_some(s.closed_by).flatten();
        let started = (s.from == t).then_some(s.opened_by);
        ended.max(started)
    };
    let mut best = fold.status.iter().filter_map(|s| (s.to == t).then_some(s.closed_by).flatten()).max();
    best = best.max(fold.status.iter().filter(|s| s.from == t).map(|s| s.opened_by).max());
    best = best.max(fold.grants.iter().filter(|s| s.key == ent).filter_map(at).max());
    for m in &fold.memberships {
        let group = groups.get(m.key);
        if !group.grants.iter().any(|s| s.key == ent) {
            continue;
        }
        best = best.max(at(m));
        best = best.max(group.exists.iter().filter_map(at).max());
        best = best.max(group.grants.iter().filter(|s| s.key == ent).filter_map(at).max());
    }
    best
}
