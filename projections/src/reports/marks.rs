//! What a picture of an identity marks apart from its timeline: the windows in which the
//! records said something later corrected. A span recorded after it began was, until its
//! recording, not what the records said (a late joiner's access, a leave entered late);
//! a span that an `event.retracted` withdrew was what the records said until the
//! retraction.

use super::ts;
use crate::error::QueryError;
use crate::index::AccessIndex;
use crate::model::NEVER;
use crate::query::{AsOf, Timeline, TimelineSpan};
use serde::Serialize;
use std::collections::BTreeSet;
use tenure_engine::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mark {
    /// `late` (the span, as known now, before the event behind it was recorded) or
    /// `retracted` (a span the records showed until a retraction withdrew it).
    pub kind: &'static str,
    /// The timeline section (`status`, `grant`, `access`) and the span's `what`.
    pub section: &'static str,
    pub what: String,
    pub from: Timestamp,
    pub to: Option<Timestamp>,
    /// The event recorded late, or the retraction.
    pub position: u64,
    /// When that event was recorded.
    pub recorded_at: Timestamp,
}

fn sections(t: &Timeline) -> [(&'static str, &Vec<TimelineSpan>); 3] {
    [("status", &t.status), ("grant", &t.grants), ("access", &t.access)]
}

impl AccessIndex {
    /// The late and retracted windows of an identity's status and access, as known at
    /// `as_of`.
    pub fn marks(&self, identity: &str, as_of: AsOf) -> Result<Vec<Mark>, QueryError> {
        let id = self.id_of(identity)?;
        let r = self.resolve(as_of);
        let now = self.timeline(identity, AsOf::Position(r))?;
        let mut out = Vec::new();
        for (section, spans) in sections(&now) {
            for s in spans {
                let recorded = self.recorded_micros(s.opened_by);
                let end = s.to.map_or(NEVER, |t| t.as_micros());
                if recorded > s.from.as_micros() {
                    out.push(Mark {
                        kind: "late",
                        section,
                        what: s.what.clone(),
                        from: s.from,
                        to: Some(ts(recorded.min(end))),
                        position: s.opened_by,
                        recorded_at: ts(recorded),
                    });
                }
            }
        }
        // The retractions, known at R, of this identity's own events.
        let retractions: BTreeSet<u64> = self
            .id_events(id, true)?
            .iter()
            .filter_map(|e| self.retracted.get(&e.pos).copied())
            .filter(|&by| by <= r)
            .collect();
        let current: BTreeSet<(&'static str, String, i64)> = sections(&now)
            .iter()
            .flat_map(|(section, spans)| spans.iter().map(move |s| (*section, s.what.clone(), s.from.as_micros())))
            .collect();
        for by in retractions {
            let before = self.timeline(identity, AsOf::Position(by - 1))?;
            for (section, spans) in sections(&before) {
                for s in spans.iter().filter(|s| !current.contains(&(section, s.what.clone(), s.from.as_micros()))) {
                    out.push(Mark {
                        kind: "retracted",
                        section,
                        what: s.what.clone(),
                        from: s.from,
                        to: s.to,
                        position: by,
                        recorded_at: ts(self.recorded_micros(by)),
                    });
                }
            }
        }
        Ok(out)
    }
}
