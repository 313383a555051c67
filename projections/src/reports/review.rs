//! Access review of a resource at `T` as known at `R`: every holder with how, since when,
//! granted by whom, and the latest review decision; and every `revoke` decision, with
//! whether and when it was carried out.

use super::{par_map, seconds, ts};
use crate::error::QueryError;
use crate::fold::{fold_identity_with, FoldScope};
use crate::index::AccessIndex;
use crate::model::{IdOp, NEVER};
use crate::query::{AsOf, Groups, Run, StoredRuns, Target, Via};
use serde::Serialize;
use std::collections::BTreeMap;
use tenure_engine::event::Decision;
use tenure_engine::{Entitlement, EventData, EventLog, Timestamp};

/// One event that gives a holder the access: a direct grant, or a membership and the
/// group's grant, with who asked for it and who approved it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GrantedBy {
    pub position: u64,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub effective_at: Timestamp,
    pub source: Option<String>,
    pub actor: Option<String>,
    pub approver: Option<String>,
    pub justification: Option<String>,
}

/// A recorded review decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReviewDecision {
    pub position: u64,
    pub reviewer: String,
    pub decision: Decision,
    pub decided_at: Timestamp,
    pub recorded_at: Timestamp,
    pub comment: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReviewRow {
    pub identity: String,
    pub resource: String,
    pub permission: String,
    pub via: Vec<Via>,
    /// The start of the current uninterrupted holding (the reasons may have changed).
    pub since: Timestamp,
    /// The events behind each reason.
    pub granted_by: Vec<GrantedBy>,
    pub last_review: Option<ReviewDecision>,
    /// `never_reviewed`, `revoke_not_carried_out`, `owner_not_active` (a service whose
    /// owner at `T` is not active), `held_past_expiry` (a direct grant of the entitlement
    /// ran out at its `expires_at` during the current holding, at or before `T`, and the
    /// access went on through another reason: time-bound access made lasting).
    pub flags: Vec<&'static str>,
}

/// A `revoke` decision on the resource recorded by `R` and effective by `T`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Revocation {
    pub identity: String,
    pub resource: String,
    pub permission: String,
    pub decision: ReviewDecision,
    /// Whether the access was held when the decision was taken.
    pub held_at_decision: bool,
    /// When the access ended after the decision, if it did by `T`.
    pub carried_out_at: Option<Timestamp>,
    /// How long the access stayed after the decision: until it ended, or until `T`.
    pub stayed_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccessReview {
    pub resource: String,
    pub at: Timestamp,
    pub as_of: u64,
    pub rows: Vec<ReviewRow>,
    pub revocations: Vec<Revocation>,
}

/// The run of `ent` containing `t`, extended back and forth over runs that touch (the
/// reasons changed, the access did not stop): its start and end.
fn holding(runs: &[Run], ent: u32, t: i64) -> Option<(i64, i64)> {
    let mut mine: Vec<&Run> = runs.iter().filter(|r| r.ent == ent).collect();
    mine.sort_by_key(|r| r.from);
    let i = mine.iter().position(|r| r.from <= t && t < r.to)?;
    let (mut lo, mut hi) = (i, i);
    while lo > 0 && mine[lo - 1].to == mine[lo].from {
        lo -= 1;
    }
    while hi + 1 < mine.len() && mine[hi].to == mine[hi + 1].from {
        hi += 1;
    }
    Some((mine[lo].from, mine[hi].to))
}

/// The positions of the events behind a reason: the grant, or the membership and the
/// group's grant.
fn positions_of(via: &Via) -> impl Iterator<Item = u64> {
    let (first, second) = match via {
        Via::Direct { grant } => (*grant, None),
        Via::Group { membership, grant, .. } => (*membership, Some(*grant)),
    };
    std::iter::once(first).chain(second)
}

fn granted_by(log: &dyn EventLog, p: u64) -> Result<Option<GrantedBy>, QueryError> {
    Ok(super::read_event(log, p)?.map(|e| {
        let (approver, justification) = match &e.data {
            EventData::AccessGranted(g) => (g.approver.clone(), g.justification.clone()),
            _ => (None, None),
        };
        GrantedBy {
            position: p,
            event_type: e.data.type_name(),
            effective_at: e.effective_at,
            source: e.source,
            actor: e.actor,
            approver,
            justification,
        }
    }))
}

impl AccessIndex {
    /// The runs of identity `id`'s access (the times only: what [`holding`] needs): from
    /// `stored` where it answers for the identity, folded as known at `r` otherwise.
    fn runs_of(
        &self,
        stored: Option<&StoredRuns>,
        id: u32,
        r: u64,
        groups: &mut Groups<'_>,
    ) -> Result<Vec<Run>, QueryError> {
        Ok(match stored.and_then(|s| s.of(id)) {
            Some(runs) => runs.map(|(ent, from, to)| Run { ent, from, to, via: Vec::new() }).collect(),
            None => {
                let fold = fold_identity_with(self, id, r, FoldScope::ACCESS)?;
                self.access_runs(&fold, groups)
            }
        })
    }

    /// Whether identity `id`, whose filed events are `events`, is a service whose owner at
    /// `t` (as known at `r`) is not active, or that has none.
    fn service_without_active_owner(
        &self,
        id: u32,
        events: &[crate::model::Filed<IdOp>],
        r: u64,
        t: i64,
    ) -> Result<bool, QueryError> {
        // Most holders are people: their filed events (without attributes) say so at once.
        let service = |e: &crate::model::Filed<IdOp>| matches!(&e.op, IdOp::Joined(j) if j.kind == tenure_engine::IdentityKind::Service);
        if !events.iter().any(service) {
            return Ok(false);
        }
        let fold = fold_identity_with(self, id, r, FoldScope { profile: true, until: t })?;
        let Some(p) = fold.profile_at(t).filter(|p| p.kind == tenure_engine::IdentityKind::Service) else {
            return Ok(false);
        };
        let Some(owner) = p.owner else { return Ok(true) };
        let owner = fold_identity_with(self, owner, r, FoldScope::access_at(t))?;
        Ok(!owner.active_at(t))
    }

    /// The instants within `(since, t]` at which a direct grant of `ent` to `id` (whose
    /// filed events are `events`) ran out at its `expires_at`, as known at `r` (an
    /// identity without a time-bound grant of it that ended by `t` is not folded).
    fn expiries_within(
        &self,
        (id, events): (u32, &[crate::model::Filed<IdOp>]),
        ent: u32,
        since: i64,
        t: i64,
        r: u64,
    ) -> Result<Vec<i64>, QueryError> {
        let ran_out = |e: &crate::model::Filed<IdOp>| {
            matches!(e.op, IdOp::Granted { ent: g, expires } if g == ent && expires != NEVER && expires <= t)
                && self.visible(e.pos, r)
        };
        if !events.iter().any(ran_out) {
            return Ok(Vec::new());
        }
        let fold = fold_identity_with(self, id, r, FoldScope { profile: false, until: t })?;
        Ok(fold
            .grants
            .iter()
            .filter(|s| s.key == ent && s.closed_by.is_none() && s.to != NEVER && since < s.to && s.to <= t)
            .map(|s| s.to)
            .collect())
    }

    /// The access review of `resource` at `at` as known at `as_of`. The decisions are
    /// found in the index (the identities with a decision on the resource, then their
    /// filed decisions); `log` gives their details and the grants'.
    pub fn access_review(
        &self,
        resource: &str,
        at: Timestamp,
        as_of: AsOf,
        log: &dyn EventLog,
    ) -> Result<AccessReview, QueryError> {
        self.check()?;
        let r = self.resolve(as_of);
        let t = at.as_micros();
        let target = Target::Resource(resource.to_string());
        let ents = self.target_ents(&target);
        // The review decisions on this resource, as known at R and effective by T.
        let mut decisions: BTreeMap<(String, String), Vec<ReviewDecision>> = BTreeMap::new();
        let mut reviewed: Vec<u32> = ents.iter().flat_map(|&e| self.reviewed[e as usize].iter().copied()).collect();
        reviewed.sort_unstable();
        reviewed.dedup();
        let mut positions = Vec::new();
        for id in reviewed {
            for e in self.id_events(id, true)?.iter() {
                if matches!(e.op, IdOp::Reviewed(ent) if ents.contains(&ent)) && e.eff <= t && self.visible(e.pos, r) {
                    positions.push(e.pos);
                }
            }
        }
        positions.sort_unstable();
        for p in positions {
            let Some(e) = super::read_event(log, p)? else { continue };
            if let EventData::AccessReviewed(v) = &e.data {
                decisions.entry((v.identity.0.clone(), v.entitlement.permission.clone())).or_default().push(
                    ReviewDecision {
                        position: p,
                        reviewer: v.reviewer.clone(),
                        decision: v.decision,
                        decided_at: e.effective_at,
                        recorded_at: e.recorded_at,
                        comment: v.comment.clone(),
                    },
                );
            }
        }
        for list in decisions.values_mut() {
            list.sort_by_key(|d| (d.decided_at, d.position));
        }
        let holders = self.holders_keyed(&target, at, as_of)?;
        // The runs of access to the resource's entitlements, per identity: read from the
        // index file where it answers for R (at its head, for identities the tail did not
        // touch), folded otherwise.
        let stored = self.stored_runs(&ents, r)?;
        // The events behind the reasons, each read once, on every core.
        let mut positions: Vec<u64> = holders.iter().flat_map(|(_, _, h)| &h.via).flat_map(positions_of).collect();
        positions.sort_unstable();
        positions.dedup();
        let details =
            par_map(&positions, || (), |_, &p| granted_by(log, p)).into_iter().collect::<Result<Vec<_>, _>>()?;
        let detail = |p: u64| positions.binary_search(&p).ok().and_then(|i| details[i].clone());
        // Each holder's `since` and flags, on every core.
        let rows = par_map(
            &holders,
            || Groups::new(self, r),
            |groups, &(id, ent, ref h)| -> Result<ReviewRow, QueryError> {
                let since = holding(&self.runs_of(stored.as_ref(), id, r, groups)?, ent, t).map_or(t, |(from, _)| from);
                let granted_by = h.via.iter().flat_map(positions_of).filter_map(detail).collect();
                let last_review =
                    decisions.get(&(h.identity.clone(), h.permission.clone())).and_then(|d| d.last()).cloned();
                let mut flags = Vec::new();
                match &last_review {
                    None => flags.push("never_reviewed"),
                    Some(d) if d.decision == Decision::Revoke => flags.push("revoke_not_carried_out"),
                    Some(_) => {}
                }
                // One read of the holder's filed events serves both checks.
                let events = self.id_events(id, true)?;
                if self.service_without_active_owner(id, &events, r, t)? {
                    flags.push("owner_not_active");
                }
                if !self.expiries_within((id, &events), ent, since, t, r)?.is_empty() {
                    flags.push("held_past_expiry");
                }
                Ok(ReviewRow {
                    identity: h.identity.clone(),
                    resource: h.resource.clone(),
                    permission: h.permission.clone(),
                    via: h.via.clone(),
                    since: ts(since),
                    granted_by,
                    last_review,
                    flags,
                })
            },
        )
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        let mut groups = Groups::new(self, r);
        let mut revocations = Vec::new();
        for ((identity, permission), list) in &decisions {
            for d in list.iter().filter(|d| d.decision == Decision::Revoke) {
                let at_decision = d.decided_at.as_micros();
                let ent = self.ent_id(&Entitlement::new(resource, permission));
                let span = match (ent, self.identity_id(identity)?) {
                    (Some(ent), Some(id)) => {
                        holding(&self.runs_of(stored.as_ref(), id, r, &mut groups)?, ent, at_decision)
                    }
                    _ => None,
                };
                let (carried_out_at, stayed) = match span {
                    None => (Some(d.decided_at), 0),
                    Some((_, end)) if end != NEVER && end <= t => (Some(ts(end)), end - at_decision),
                    Some(_) => (None, t - at_decision),
                };
                revocations.push(Revocation {
                    identity: identity.clone(),
                    resource: resource.to_string(),
                    permission: permission.clone(),
                    decision: d.clone(),
                    held_at_decision: span.is_some(),
                    carried_out_at,
                    stayed_seconds: seconds(stayed),
                });
            }
        }
        Ok(AccessReview { resource: resource.to_string(), at, as_of: r, rows, revocations })
    }
}
