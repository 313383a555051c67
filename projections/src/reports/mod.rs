//! The governance reports of docs/semantics.md ("Reports"), each a query like the others:
//! at an effective time `T` (or over `[T1, T2)`), as known at `R`, every row with the
//! positions behind it. Built on the same per-identity fold as the point queries.

use crate::index::AccessIndex;
use crate::model::NEVER;
use serde::Serialize;
use std::collections::BTreeMap;
use tenure_engine::Timestamp;

mod anomalies;
mod lag;
mod leavers;
mod marks;
mod nhi;
mod reconcile;
mod review;
mod sod;

pub use anomalies::{Anomalies, AnomalyGroup, AnomalyRow};
pub use lag::{event_lag, LagRow};
pub use leavers::{Believed, LeaverRow, Leavers, LeaversSummary};
pub use marks::Mark;
pub use nhi::{CredentialRow, Nhi, ServiceRow};
pub use reconcile::{DirUser, DormantRow, DriftRow, ReconcileEnd, Reconciled, Reconciler, Reconciliation};
pub use review::{AccessReview, GrantedBy, ReviewDecision, ReviewRow, Revocation};
pub use sod::{Rule, Sod, Violation};

/// Count, median, 90th percentile and worst of a set of durations (seconds), by nearest
/// rank: the median of n values is the ⌈n/2⌉-th smallest, the p90 the ⌈0.9 n⌉-th.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LagSummary {
    pub count: usize,
    pub median_seconds: f64,
    pub p90_seconds: f64,
    pub worst_seconds: f64,
}

impl LagSummary {
    /// The summary of `lags` (µs); `None` when there are none.
    pub fn of(mut lags: Vec<i64>) -> Option<LagSummary> {
        if lags.is_empty() {
            return None;
        }
        lags.sort_unstable();
        let n = lags.len();
        let rank = |q: f64| lags[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Some(LagSummary {
            count: n,
            median_seconds: seconds(rank(0.5)),
            p90_seconds: seconds(rank(0.9)),
            worst_seconds: seconds(lags[n - 1]),
        })
    }
}

/// What a scan of position `p` alone finds (none past the head).
fn read_one<T>(
    p: u64,
    scan: impl FnOnce(
        tenure_engine::Position,
        &mut dyn FnMut(T) -> std::ops::ControlFlow<()>,
    ) -> Result<(), tenure_engine::Error>,
) -> Result<Option<T>, crate::error::QueryError> {
    let mut found = None;
    scan(tenure_engine::Position(p), &mut |x| {
        found = Some(x);
        std::ops::ControlFlow::Break(())
    })
    .map_err(|e| crate::error::QueryError::Log(e.to_string()))?;
    Ok(found)
}

/// The event at position `p` of `log` (none past its head).
pub(crate) fn read_event(
    log: &dyn tenure_engine::EventLog,
    p: u64,
) -> Result<Option<tenure_engine::Event>, crate::error::QueryError> {
    read_one(p, |at, visit| log.scan_events(at, at, visit))
}

/// The head (times, type, source) of the event at position `p` of `log`: a read that
/// builds no body.
pub(crate) fn read_head(
    log: &dyn tenure_engine::EventLog,
    p: u64,
) -> Result<Option<tenure_engine::payload::Head>, crate::error::QueryError> {
    read_one(p, |at, visit| log.scan_heads(at, at, visit))
}

pub use crate::par::par_map;

/// µs as seconds.
pub fn seconds(us: i64) -> f64 {
    us as f64 / 1e6
}

fn ts(t: i64) -> Timestamp {
    Timestamp::from_micros(t)
}

fn end(t: i64) -> Option<Timestamp> {
    (t != NEVER).then(|| ts(t))
}

impl AccessIndex {
    /// The `recorded_at` (µs) of a position the index holds.
    pub fn recorded_micros(&self, pos: u64) -> i64 {
        let frozen = self.frozen_head().get();
        match &self.frozen {
            Some(f) if pos <= frozen => f.recorded(pos),
            _ => self.recorded.get((pos - frozen).saturating_sub(1) as usize).copied().unwrap_or(i64::MIN),
        }
    }

    fn ids(&self) -> std::ops::Range<u32> {
        0..u32::try_from(self.identity_count()).unwrap_or(u32::MAX)
    }
}

/// Per key, the values in order: a small group-by for summaries.
fn group_by<K: Ord, V>(items: impl IntoIterator<Item = (K, V)>) -> BTreeMap<K, Vec<V>> {
    let mut out: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (k, v) in items {
        out.entry(k).or_default().push(v);
    }
    out
}

/// The last lifecycle event (joined, moved, suspended, reactivated, left, rejoined, owner
/// changed) of a folded identity effective by `t`: (effective µs, position).
pub(crate) fn last_lifecycle(fold: &crate::fold::IdentityFold, t: i64) -> Option<(i64, u64)> {
    fold.status
        .iter()
        .map(|s| (s.from, s.opened_by))
        .chain(fold.profile.iter().map(|p| (p.from, p.position)))
        .filter(|(from, _)| *from <= t)
        .max()
}
