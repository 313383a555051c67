//! Leaver compliance: one row per leave that makes its transition, with its lag, what the
//! leaver held just before, and what the records still showed held after it.

use super::{group_by, par_map, seconds, ts, LagSummary};
use crate::error::QueryError;
use crate::fold::{fold_identity_events, FoldScope};
use crate::index::AccessIndex;
use crate::model::IdOp;
use crate::query::{AsOf, Groups, Held, Via};
use serde::Serialize;
use std::collections::BTreeMap;
use tenure_engine::{EventLog, Timestamp};

/// An entitlement the records, as known just before the leave was recorded, showed held
/// at some time after the effective leave: during `[from, to)` within `[L, recorded)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Believed {
    pub resource: String,
    pub permission: String,
    /// Every reason it was believed held in that window.
    pub via: Vec<Via>,
    pub from: Timestamp,
    pub to: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeaverRow {
    pub identity: String,
    /// The `identity.left` event.
    pub position: u64,
    pub source: Option<String>,
    pub effective_at: Timestamp,
    pub recorded_at: Timestamp,
    /// `recorded_at - effective_at` (negative for a leave recorded ahead of its date).
    pub lag_seconds: f64,
    /// Held at the last instant before the leave, with how.
    pub held_before: Vec<Held>,
    /// As known at `position - 1`: held at some time in `[effective_at, recorded_at)`.
    pub believed_after: Vec<Believed>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Leavers {
    /// The position the report is as known at.
    pub as_of: u64,
    pub rows: Vec<LeaverRow>,
    /// Per source (`-` for none): count, median, p90 and worst lag.
    pub by_source: BTreeMap<String, LagSummary>,
    pub overall: Option<LagSummary>,
}

/// What [`AccessIndex::leavers_each`] returns once every row is out: the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeaversSummary {
    pub as_of: u64,
    pub count: usize,
    pub by_source: BTreeMap<String, LagSummary>,
    pub overall: Option<LagSummary>,
}

/// How many leaves are computed at a time (on every core) before they are handed out:
/// what bounds the memory of [`AccessIndex::leavers_each`].
const CHUNK: usize = 4096;

impl AccessIndex {
    /// Every leave effective in `[from, to)` (all of them without a window) as known at
    /// `as_of`, oldest first. `log` gives each leave's source.
    pub fn leavers(
        &self,
        window: Option<(Timestamp, Timestamp)>,
        as_of: AsOf,
        log: &dyn EventLog,
    ) -> Result<Leavers, QueryError> {
        let mut rows = Vec::new();
        let summary = self.leavers_each(
            window,
            as_of,
            log,
            |row| row,
            |row| {
                rows.push(row);
                Ok::<_, QueryError>(())
            },
        )?;
        Ok(Leavers { as_of: summary.as_of, rows, by_source: summary.by_source, overall: summary.overall })
    }

    /// [`Self::leavers`], each row passed through `render` (on the thread that made it, so
    /// that a caller's formatting runs on every core too) and handed to `each` as soon as
    /// it is made, in the same order, in memory bounded by a few thousand rows whatever
    /// the number of leaves. The leaves are found in the index's per-identity lists (no
    /// fold of identities that never left) and their rows computed on every core.
    pub fn leavers_each<T: Send, E: From<QueryError>>(
        &self,
        window: Option<(Timestamp, Timestamp)>,
        as_of: AsOf,
        log: &dyn EventLog,
        render: impl Fn(LeaverRow) -> T + Sync,
        mut each: impl FnMut(T) -> Result<(), E>,
    ) -> Result<LeaversSummary, E> {
        self.check().map_err(QueryError::from)?;
        let r = self.resolve(as_of);
        let (lo, hi) = window.map_or((i64::MIN, i64::MAX), |(a, b)| (a.as_micros(), b.as_micros()));
        // Every `identity.left` in the window as known at R: (effective, position, identity).
        let ids: Vec<u32> = self.ids().collect();
        let found = par_map(
            &ids,
            || (),
            |_, &id| -> Result<Vec<(i64, u64, u32)>, QueryError> {
                Ok(self
                    .id_events(id, true)?
                    .iter()
                    .filter(|e| matches!(e.op, IdOp::Left) && lo <= e.eff && e.eff < hi && self.visible(e.pos, r))
                    .map(|e| (e.eff, e.pos, id))
                    .collect())
            },
        );
        let mut leaves = Vec::new();
        for list in found {
            leaves.extend(list?);
        }
        leaves.sort_unstable();
        let mut lags: Vec<(String, i64)> = Vec::new();
        let last_retraction = self.retracted.values().copied().max().unwrap_or(0);
        for chunk in leaves.chunks(CHUNK) {
            let rows = par_map(
                chunk,
                || Groups::new(self, r),
                |groups, &(l, p, id)| -> Result<_, QueryError> {
                    let Some(row) = self.leaver_row(id, (l, p), (r, last_retraction), groups, log)? else {
                        return Ok(None);
                    };
                    let lag = (row.source.clone().unwrap_or_else(|| "-".into()), row.lag_micros());
                    Ok(Some((lag, render(row))))
                },
            );
            for row in rows {
                let Some((lag, row)) = row? else { continue };
                lags.push(lag);
                each(row)?;
            }
        }
        let overall = LagSummary::of(lags.iter().map(|(_, lag)| *lag).collect());
        let count = lags.len();
        let by_source =
            group_by(lags).into_iter().filter_map(|(source, lags)| Some((source, LagSummary::of(lags)?))).collect();
        Ok(LeaversSummary { as_of: r, count, by_source, overall })
    }

    /// The row of the leave at `(l, p)` of identity `id`, as known at `r`; none when it does
    /// not make its transition (a leave of someone not joined is an anomaly, not a leave).
    fn leaver_row(
        &self,
        id: u32,
        (l, p): (i64, u64),
        (r, last_retraction): (u64, u64),
        groups: &mut Groups<'_>,
        log: &dyn EventLog,
    ) -> Result<Option<LeaverRow>, QueryError> {
        // The identity's events are read once, for both folds.
        let (own, groups_of) = (self.id_events(id, true)?, self.groups_of(id)?);
        let fold = fold_identity_events(self, (&own, &groups_of), r, FoldScope::ACCESS)?;
        if !fold.leaves.contains(&(l, p)) {
            return Ok(None);
        }
        let recorded = self.recorded_micros(p);
        let held_before = self.held(self.access_of(&fold, l - 1, groups, None));
        // What the records showed, before the leave was recorded, held in [L, recorded).
        let mut believed_after = Vec::new();
        if recorded > l {
            let before = fold_identity_events(self, (&own, &groups_of), p - 1, FoldScope::ACCESS)?;
            let mut then = Groups::new(self, p - 1);
            then.borrow_from(groups, &groups_of, last_retraction);
            let mut seen: BTreeMap<u32, (i64, i64, Vec<Via>)> = BTreeMap::new();
            for run in self.access_runs_within(&before, &mut then, l, recorded) {
                if run.from >= run.to {
                    continue;
                }
                let slot = seen.entry(run.ent).or_insert((run.from, run.to, Vec::new()));
                slot.0 = slot.0.min(run.from);
                slot.1 = slot.1.max(run.to);
                slot.2.extend(run.via);
            }
            for (ent, (from, to, mut via)) in seen {
                via.sort();
                via.dedup();
                let e = self.ents.get(ent);
                believed_after.push(Believed {
                    resource: e.resource.to_string(),
                    permission: e.permission.to_string(),
                    via,
                    from: ts(from),
                    to: ts(to),
                });
            }
        }
        Ok(Some(LeaverRow {
            identity: self.identity_name(id)?.to_string(),
            position: p,
            source: super::read_head(log, p)?.and_then(|h| h.source),
            effective_at: ts(l),
            recorded_at: ts(recorded),
            lag_seconds: seconds(recorded - l),
            held_before,
            believed_after,
        }))
    }
}

impl LeaverRow {
    /// `recorded_at - effective_at`, µs.
    fn lag_micros(&self) -> i64 {
        self.recorded_at.as_micros() - self.effective_at.as_micros()
    }
}
