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
}
