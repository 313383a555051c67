//! The anomalies report: `anomalies`, each with its event's type, source and times, in a
//! window of effective time, grouped and counted by kind and source.

use crate::error::QueryError;
use crate::fold::AnomalyKind;
use crate::index::AccessIndex;
use crate::query::AsOf;
use serde::Serialize;
use std::collections::BTreeMap;
use tenure_engine::{EventLog, Timestamp};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnomalyRow {
    pub position: u64,
    pub kind: AnomalyKind,
    pub reason: String,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub source: Option<String>,
    pub identity: Option<String>,
    pub group: Option<String>,
    pub effective_at: Timestamp,
    pub recorded_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnomalyGroup {
    pub kind: AnomalyKind,
    /// `-` for events without a source.
    pub source: String,
    pub count: usize,
    /// The first few positions of the group.
    pub positions: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Anomalies {
    pub as_of: u64,
    pub groups: Vec<AnomalyGroup>,
    pub rows: Vec<AnomalyRow>,
}

/// Positions listed per group.
const SAMPLE: usize = 10;

impl AccessIndex {
    /// The anomalies as known at `as_of` whose events are effective in `window` (all
    /// without one), with their events' details (read from `log`), and their counts by
    /// kind and source, largest first.
    pub fn anomalies_report(
        &self,
        window: Option<(Timestamp, Timestamp)>,
        as_of: AsOf,
        log: &dyn EventLog,
    ) -> Result<Anomalies, QueryError> {
        let r = self.resolve(as_of);
        let mut rows = Vec::new();
        for a in self.anomalies(as_of)? {
            let Some(e) = super::read_event(log, a.position)? else { continue };
            if window.is_none_or(|(from, to)| from <= e.effective_at && e.effective_at < to) {
                rows.push(AnomalyRow {
                    position: a.position,
                    kind: a.kind,
                    reason: a.kind.to_string(),
                    event_type: e.data.type_name(),
                    identity: e.data.identity().map(|i| i.0.clone()),
                    group: e.data.group().map(|g| g.0.clone()),
                    source: e.source,
                    effective_at: e.effective_at,
                    recorded_at: e.recorded_at,
                });
            }
        }
        let mut groups: BTreeMap<(AnomalyKind, String), AnomalyGroup> = BTreeMap::new();
        for row in &rows {
            let source = row.source.clone().unwrap_or_else(|| "-".into());
            let g = groups.entry((row.kind, source.clone())).or_insert(AnomalyGroup {
                kind: row.kind,
                source,
                count: 0,
                positions: Vec::new(),
            });
            g.count += 1;
            if g.positions.len() < SAMPLE {
                g.positions.push(row.position);
            }
        }
        let mut groups: Vec<AnomalyGroup> = groups.into_values().collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then((a.kind, &a.source).cmp(&(b.kind, &b.source))));
        Ok(Anomalies { as_of: r, groups, rows })
    }
}
