//! Leaver compliance: one row per leave that makes its transition, with its lag, what the
//! leaver held just before, and what the records still showed held after it.

use super::{group_by, seconds, ts, LagSummary};
use crate::error::QueryError;
use crate::fold::{fold_identity_with, FoldScope};
use crate::index::AccessIndex;
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

impl AccessIndex {
    /// Every leave effective in `[from, to)` (all of them without a window) as known at
    /// `as_of`, oldest first. `log` gives each leave's source.
    pub fn leavers(
        &self,
        window: Option<(Timestamp, Timestamp)>,
        as_of: AsOf,
        log: &dyn EventLog,
    ) -> Result<Leavers, QueryError> {
        self.check()?;
        let r = self.resolve(as_of);
        let (lo, hi) = window.map_or((i64::MIN, i64::MAX), |(a, b)| (a.as_micros(), b.as_micros()));
        let mut rows = Vec::new();
        let mut groups = Groups::new(self, r);
        for id in self.ids() {
            let fold = fold_identity_with(self, id, r, FoldScope::ACCESS)?;
            for &(l, p) in fold.leaves.iter().filter(|(l, _)| lo <= *l && *l < hi) {
                let recorded = self.recorded_micros(p);
                let held_before = self.held(self.access_of(&fold, l - 1, &mut groups, None));
                // What the records showed before the leave was recorded.
                let mut believed_after = Vec::new();
                if recorded > l {
                    let before = fold_identity_with(self, id, p - 1, FoldScope::ACCESS)?;
                    let mut then = Groups::new(self, p - 1);
                    let mut seen: BTreeMap<u32, (i64, i64, Vec<Via>)> = BTreeMap::new();
                    for run in self.access_runs(&before, &mut then) {
                        let (from, to) = (run.from.max(l), run.to.min(recorded));
                        if from >= to {
                            continue;
                        }
                        let slot = seen.entry(run.ent).or_insert((from, to, Vec::new()));
                        slot.0 = slot.0.min(from);
                        slot.1 = slot.1.max(to);
                        slot.2.extend(run.via);
                    }
                    for (ent, (from, to, mut via)) in seen {
                        via.sort();
                        via.dedup();
                        let e = &self.ents[ent as usize];
                        believed_after.push(Believed {
                            resource: e.resource.clone(),
                            permission: e.permission.clone(),
                            via,
                            from: ts(from),
                            to: ts(to),
                        });
                    }
                }
                rows.push(LeaverRow {
                    identity: self.identity_name(id)?.to_string(),
                    position: p,
                    source: super::read_event(log, p)?.and_then(|e| e.source),
                    effective_at: ts(l),
                    recorded_at: ts(recorded),
                    lag_seconds: seconds(recorded - l),
                    held_before,
                    believed_after,
                });
            }
        }
        rows.sort_by_key(|row| (row.effective_at, row.position));
        let lag = |row: &LeaverRow| row.recorded_at.as_micros() - row.effective_at.as_micros();
        let overall = LagSummary::of(rows.iter().map(lag).collect());
        let by_source = group_by(rows.iter().map(|row| (row.source.clone().unwrap_or_else(|| "-".into()), lag(row))))
            .into_iter()
            .filter_map(|(source, lags)| Some((source, LagSummary::of(lags)?)))
            .collect();
        Ok(Leavers { as_of: r, rows, by_source, overall })
    }
}
