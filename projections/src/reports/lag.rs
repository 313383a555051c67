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

/// Lags per (source, type code).
type Lags = HashMap<(Option<String>, u8), Vec<i64>>;

/// The lag of every event at positions `1..=r`, per source and type, in source then type
/// order. One pass over the log, in slices read on every core (a slice's lags merged into
/// the whole; the summaries do not depend on the order); memory is one number per event.
pub fn event_lag(log: &dyn EventLog, r: u64) -> Result<Vec<LagRow>, QueryError> {
    Ok(rows(lags_in_slices(log, r, (r / 256).max(8_192))?))
}

/// The lags of positions `1..=r`, read in slices of `slice` positions on every core.
fn lags_in_slices(log: &dyn EventLog, r: u64, slice: u64) -> Result<Lags, QueryError> {
    let slice = slice.max(1);
    let starts: Vec<u64> = (1..=r).step_by(usize::try_from(slice).unwrap_or(usize::MAX)).collect();
    let parts =
        super::par_map(&starts, || (), |_, &from| lags_within(log, from, from.saturating_add(slice - 1).min(r)));
    let parts = parts.into_iter().collect::<Result<Vec<Lags>, _>>()?;
    // Each list made at its final size, then filled (memory: the parts and the whole).
    let mut sizes: HashMap<&(Option<String>, u8), usize> = HashMap::new();
    for (key, list) in parts.iter().flatten() {
        *sizes.entry(key).or_default() += list.len();
    }
    let mut lags: Lags = sizes.into_iter().map(|(key, n)| (key.clone(), Vec::with_capacity(n))).collect();
    for part in parts {
        for (key, list) in part {
            lags.entry(key).or_default().extend(list);
        }
    }
    Ok(lags)
}

/// The rows of `lags`, in source then type order.
fn rows(lags: Lags) -> Vec<LagRow> {
    let mut rows: Vec<LagRow> = lags
        .into_iter()
        .filter_map(|((source, code), list)| {
            let event_type = tenure_engine::event::EVENT_TYPES.get(usize::from(code)).copied().unwrap_or("?");
            Some(LagRow { source: source.unwrap_or_else(|| "-".into()), event_type, summary: LagSummary::of(list)? })
        })
        .collect();
    rows.sort_by(|a, b| (&a.source, a.event_type).cmp(&(&b.source, b.event_type)));
    rows
}

/// The lags of the events at positions `from..=to`: eight bytes an event, no string per
/// event.
fn lags_within(log: &dyn EventLog, from: u64, to: u64) -> Result<Lags, QueryError> {
    let mut lags = Lags::new();
    log.scan_heads(Position(from), Position(to), &mut |h| {
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
    Ok(lags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_engine::event::{Joined, StatusChange};
    use tenure_engine::{EventData, IdentityKind, NewEvent, Timestamp};

    #[test]
    fn slices_read_on_every_core_say_what_one_pass_says() {
        let dir = tempfile::tempdir().unwrap();
        let store = tenure_engine::Store::open(dir.path()).unwrap();
        let mut events = Vec::new();
        for i in 0..300i64 {
            let identity = format!("u{i}");
            let effective = Timestamp::from_micros(1_600_000_000_000_000 + i * 7_919_000_000);
            let data = match i % 5 {
                4 => EventData::IdentityLeft(StatusChange {
                    identity: format!("u{}", i - 1).as_str().into(),
                    reason: None,
                }),
                _ => EventData::IdentityJoined(Joined {
                    identity: identity.as_str().into(),
                    kind: IdentityKind::Human,
                    attributes: Default::default(),
                    owner: None,
                }),
            };
            let e = NewEvent::new(effective, data);
            events.push(match i % 3 {
                0 => e.with_source("hr", &format!("k{i}")),
                1 => e.with_source("okta", &format!("k{i}")),
                _ => e,
            });
        }
        store.append(events).unwrap();
        let r = store.head().get();
        let whole = rows(lags_within(&store, 1, r).unwrap());
        assert_eq!(whole.len(), 6, "{whole:?}");
        assert_eq!(whole.iter().map(|row| row.summary.count).sum::<usize>(), 300);
        for slice in [1, 7, 64, 299, 300, 1_000] {
            assert_eq!(rows(lags_in_slices(&store, r, slice).unwrap()), whole, "slices of {slice}");
        }
        assert_eq!(event_lag(&store, r).unwrap(), whole);
        assert!(event_lag(&store, 0).unwrap().is_empty());
    }
}
