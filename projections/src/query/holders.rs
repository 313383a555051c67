//! `holders` and `holders_during`: who held an entitlement (or any permission on a
//! resource) at T, or at some time in [T1, T2), as known at R; from the stored runs when
//! they answer, else by folding the candidates.

#[allow(unused_imports)]
use super::*;
use crate::model::GroupOp;

impl AccessIndex {
    pub(super) fn holders_from(&self, id: u32, set: AccessSet, out: &mut Vec<Keyed>) -> Result<(), QueryError> {
        if set.is_empty() {
            return Ok(());
        }
        let name = self.identity_name(id)?;
        for (ent, via) in set {
            let e = self.ents.get(ent);
            let (resource, permission) = (e.resource.to_string(), e.permission.to_string());
            out.push((id, ent, Holder { identity: name.to_string(), resource, permission, via }));
        }
        Ok(())
    }

    /// Who held `target` at `at`, as known at `as_of`.
    ///
    /// The index file's runs of effective access answer for every identity whose access
    /// as known at `as_of` is the one the file recorded (see [`Self::touched`]: as known at
    /// the head, those the tail does not touch; as known earlier, those with no event
    /// bearing on it recorded since); the others fold up to `at`.
    pub fn holders(&self, target: &Target, at: Timestamp, as_of: AsOf) -> Result<Vec<Holder>, QueryError> {
        Ok(self.holders_keyed(target, at, as_of)?.into_iter().map(|(_, _, h)| h).collect())
    }

    /// [`Self::holders`], each holder with its identity's and entitlement's numbers: what
    /// a report that goes on to look at each holder in the index starts from.
    pub(crate) fn holders_keyed(&self, target: &Target, at: Timestamp, as_of: AsOf) -> Result<Vec<Keyed>, QueryError> {
        let ents = self.target_ents(target);
        let r = self.resolve(as_of);
        let t = at.as_micros();
        let mut groups = Groups::new(self, r);
        let mut out = Vec::new();
        let (fold_these, from_runs) = self.split_candidates(&ents, r)?;
        if let (Some(touched), Some(f)) = (&from_runs, &self.frozen) {
            let mut failed = None;
            for &ent in ents.iter().filter(|&&e| e < f.ents) {
                f.runs_at(ent, t, |id, via| {
                    if touched.contains(id) || failed.is_some() {
                        return;
                    }
                    match self.holder_from_run(id, ent, via) {
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

    /// The identities whose answer must be folded, and (when the index file's runs answer
    /// for `r`) the frozen identities the runs do not answer for: those [`Self::touched`]
    /// finds, and the identities new since the file; otherwise every candidate.
    fn split_candidates(&self, ents: &[u32], r: u64) -> Result<(Vec<u32>, Option<Touched>), QueryError> {
        Ok(match self.touched(ents, r)? {
            Some(touched) => {
                let frozen = self.frozen.as_ref().map_or(0, |f| f.identities);
                let fold: Vec<u32> = if touched.is_empty() && self.identities.end() == frozen {
                    Vec::new() // no one's access to `ents` as known at `r` differs from the runs
                } else {
                    self.candidates(ents)?.into_iter().filter(|id| *id >= frozen || touched.contains(*id)).collect()
                };
                (fold, Some(touched))
            }
            None => (self.candidates(ents)?, None),
        })
    }

    /// The runs the index file stores for `ents` as `(identity, entitlement, from, to)`,
    /// sorted, with the identities they do not answer for as known at `r` (see
    /// [`Self::touched`]), when the file answers for `r` at all.
    pub(crate) fn stored_runs(&self, ents: &[u32], r: u64) -> Result<Option<StoredRuns>, CorruptIndex> {
        let (Some(f), Some(touched)) = (&self.frozen, self.touched(ents, r)?) else { return Ok(None) };
        let mut runs = Vec::new();
        for &ent in ents.iter().filter(|&&e| e < f.ents) {
            f.runs_each(ent, |id, from, to, _| runs.push((id, ent, from, to)))?;
        }
        runs.sort_unstable();
        Ok(Some(StoredRuns { touched, identities: f.identities, runs }))
    }

    /// The frozen identities whose access to `ents` as known at `r` may differ from the
    /// index file's runs (which are as known at the file's head `h`). With `m` the lower of
    /// `r` and `h`, an identity's answer is the same at both when every event that can
    /// change it is visible alike at both: so it is touched when it has an event bearing
    /// on access recorded after `m` (the file's last-positions table; its events in the
    /// tail), or is a member of a group with an event after `m` that bears on `ents`
    /// (created, deleted, or a grant or revoke of one of them). `None` (fold everyone)
    /// without a file, or when a retraction recorded after `m` takes back an event
    /// recorded by then (whose subject the index does not keep).
    pub(super) fn touched(&self, ents: &[u32], r: u64) -> Result<Option<Touched>, CorruptIndex> {
        self.touched_where(r, |ent| ents.contains(&ent))
    }

    /// [`Self::touched`] as to the entitlements `asked` says yes to (every one, for the
    /// runs of a file rewritten as known at the head: `crate::runs`).
    pub(crate) fn touched_where(&self, r: u64, asked: impl Fn(u32) -> bool) -> Result<Option<Touched>, CorruptIndex> {
        let Some(f) = self.frozen.as_ref() else { return Ok(None) };
        let m = r.min(f.head);
        if self.retracted.iter().any(|(&pos, &by)| pos <= m && by > m) {
            return Ok(None);
        }
        let mut touched = Touched::new(f.identities);
        for id in self.id_events.touched_frozen_ids() {
            touched.insert(id);
        }
        if m < f.head {
            for (id, last) in f.last_access_positions()?.enumerate() {
                if last > m {
                    touched.insert(id as u32);
                }
            }
        }
        for (g, events) in self.group_events.iter().enumerate() {
            let bears = |op: &GroupOp| match op {
                GroupOp::Created | GroupOp::Deleted => true,
                GroupOp::Granted(e) | GroupOp::Revoked(e) => asked(*e),
            };
            if events.iter().any(|e| e.pos > m && bears(&e.op)) {
                for &id in self.members(g as u32)?.iter() {
                    touched.insert(id);
                }
            }
        }
        Ok(Some(touched))
    }

    pub(super) fn holder_from_run(&self, id: u32, ent: u32, via: &[RunVia]) -> Result<Keyed, CorruptIndex> {
        let e = self.ents.get(ent);
        let mut via: Vec<Via> = via.iter().map(|&v| self.named(v)).collect();
        via.sort();
        via.dedup();
        let holder = Holder {
            identity: self.identity_name(id)?.to_string(),
            resource: e.resource.to_string(),
            permission: e.permission.to_string(),
            via,
        };
        Ok((id, ent, holder))
    }

    /// Access at some instant of `[from, to)`: the union over the window, with every
    /// reason that held at some instant of it.
    pub(super) fn access_during(
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
        let (lo, hi) = (from.as_micros(), to.as_micros());
        let mut groups = Groups::new(self, r);
        let mut out = Vec::new();
        let (fold_these, from_runs) = self.split_candidates(&ents, r)?;
        // From the stored runs where they answer: every run overlapping the window, its
        // reasons gathered per identity (an identity's runs come together).
        if let (Some(touched), Some(f)) = (&from_runs, &self.frozen) {
            let mut failed = None;
            for &ent in ents.iter().filter(|&&e| e < f.ents) {
                let mut current: Option<(u32, Vec<RunVia>)> = None;
                let mut flush = |current: Option<(u32, Vec<RunVia>)>, out: &mut Vec<Keyed>| {
                    let Some((id, via)) = current else { return };
                    match self.holder_from_run(id, ent, &via) {
                        Ok(h) => out.push(h),
                        Err(err) => {
                            failed.get_or_insert(err);
                        }
                    }
                };
                f.runs_each(ent, |id, a, b, via| {
                    if touched.contains(id) || a >= hi || b <= lo {
                        return;
                    }
                    match &mut current {
                        Some((held, vias)) if *held == id => vias.extend_from_slice(via),
                        _ => flush(current.replace((id, via.to_vec())), &mut out),
                    }
                })?;
                flush(current, &mut out);
            }
            if let Some(err) = failed {
                return Err(err.into());
            }
        }
        for id in fold_these {
            let fold = fold_identity_with(self, id, r, FoldScope::ACCESS)?;
            let set = self.access_during(&fold, lo, hi, &mut groups, Some(&ents));
            self.holders_from(id, set, &mut out)?;
        }
        sort_holders(&mut out);
        Ok(out.into_iter().map(|(_, _, h)| h).collect())
    }
}

/// What [`AccessIndex::stored_runs`] finds.
pub(crate) struct StoredRuns {
    touched: Touched,
    /// Identities from this id on are new in the tail.
    identities: u32,
    runs: Vec<(u32, u32, i64, i64)>,
}

impl StoredRuns {
    /// The stored runs of `id` as `(entitlement, from, to)`, when they answer for it.
    pub(crate) fn of(&self, id: u32) -> Option<impl Iterator<Item = (u32, i64, i64)> + '_> {
        if id >= self.identities || self.touched.contains(id) {
            return None;
        }
        let lo = self.runs.partition_point(|run| run.0 < id);
        let hi = self.runs.partition_point(|run| run.0 <= id);
        Some(self.runs[lo..hi].iter().map(|&(_, ent, from, to)| (ent, from, to)))
    }
}

/// A set of the index file's identities, one bit each (ids past the file are left out:
/// they are folded whatever the set says).
pub(crate) struct Touched {
    bits: Vec<u64>,
    any: bool,
}

impl Touched {
    fn new(identities: u32) -> Touched {
        Touched { bits: vec![0; (identities as usize).div_ceil(64)], any: false }
    }

    fn insert(&mut self, id: u32) {
        if let Some(word) = self.bits.get_mut(id as usize / 64) {
            *word |= 1 << (id % 64);
            self.any = true;
        }
    }

    pub(crate) fn contains(&self, id: u32) -> bool {
        self.bits.get(id as usize / 64).is_some_and(|word| word & (1 << (id % 64)) != 0)
    }

    fn is_empty(&self) -> bool {
        !self.any
    }
}
