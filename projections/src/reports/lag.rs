//! Event lag: `recorded_at - effective_at` of every event recorded by `R`, per source and
//! type: the figure directory-sync practice tells teams to watch.

use super::LagSummary;
use crate::error::QueryError;
use serde::Serialize;
use std::collections::HashMap;
use tenure_engine::{EventLog, Position};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LagRow {
    /// `-` for events recorded without a source.
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    #[serde(flatten)]
    pub summary: LagSummary,
}

/// The lag of every event at positions `1..=r`, per source and type, in source then type
/// order. One pass over the log; memory is one number per event.
pub fn event_lag(log: &dyn EventLog, r: u64) -> Result<Vec<LagRow>, QueryError> {
    // One list of lags per (source, type): eight bytes an event, no string per event.
    let mut lags: HashMap<(Option<String>, u8), Vec<i64>> = HashMap::new();
    log.scan_heads(Position(1), Position(r), &mut |h| {
        let lag = h.recorded_at.as_micros() - h.effective_at.as_micros();
        let key = (h.source, h.type_code);
        match lags.get_mut(&key) {
            Some(list) => list.push(lag),
            None => {
                lags.insert(key, vec![lag]);
            }
        }
        std::ops::ControlFlow::Continue(())
    })
    .map_err(|e| QueryError::Log(e.to_string()))?;
    let mut rows: Vec<LagRow> = lags
        .into_iter()
        .filter_map(|((source, code), list)| {
            let event_type = tenure_engine::event::EVENT_TYPES.get(usize::from(code)).copied().unwrap_or("?");
            Some(LagRow { source: source.unwrap_or_else(|| "-".into()), event_type, summary: LagSummary::of(list)? })
        })
        .collect();
    rows.sort_by(|a, b| (&a.source, a.event_type).cmp(&(&b.source, b.event_type)));
    Ok(rows)
}
