//! Event lag: `recorded_at - effective_at` of every event recorded by `R`, per source and
//! type: the figure directory-sync practice tells teams to watch.

use super::{group_by, LagSummary};
use crate::error::QueryError;
use serde::Serialize;
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
    let mut lags = Vec::new();
    log.scan_events(Position(1), Position(r), &mut |e| {
        let lag = e.recorded_at.as_micros() - e.effective_at.as_micros();
        lags.push(((e.source.unwrap_or_else(|| "-".into()), e.data.type_name()), lag));
        std::ops::ControlFlow::Continue(())
    })
    .map_err(|e| QueryError::Log(e.to_string()))?;
    Ok(group_by(lags)
        .into_iter()
        .filter_map(|((source, event_type), lags)| Some(LagRow { source, event_type, summary: LagSummary::of(lags)? }))
        .collect())
}
