//! `GET /events`: Tenure's own log as an events API in the shape directory-sync consumers
//! follow (WorkOS's: `data`, `list_metadata.after`), ordered by position, the whole history
//! replayable from any cursor. The cursor is a position: `after=P` answers the events
//! after P.

use crate::error::ScimError;
use crate::{App, Caller};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;
use tenure_engine::{Position, Subject};

/// The most events one page holds: far above what WorkOS's own API allows (100), so that
/// a follower catching up asks for thousands at once.
pub const MAX_LIMIT: usize = 10_000;
const DEFAULT_LIMIT: usize = 10;
/// A page stops growing past this many bytes of JSON.
pub const MAX_PAGE_BYTES: usize = 8 << 20;

/// A page being made: its events as JSON, comma-separated.
#[derive(Default)]
struct Page {
    data: String,
    count: usize,
    last: Option<u64>,
    failed: Option<String>,
}

impl Page {
    /// Adds an event; true when the page is full. An event that cannot be written as
    /// JSON (none can) ends the page with an error rather than a gap.
    fn push(&mut self, e: &tenure_engine::Event, limit: usize) -> bool {
        let text = match serde_json::to_string(e) {
            Ok(text) => text,
            Err(err) => {
                self.failed = Some(format!("position {}: {err}", e.position));
                return true;
            }
        };
        if self.count > 0 {
            self.data.push(',');
        }
        self.data.push_str(&text);
        self.count += 1;
        self.last = Some(e.position.get());
        self.count >= limit || self.data.len() >= MAX_PAGE_BYTES
    }
}

fn param<T: std::str::FromStr>(q: &HashMap<String, String>, name: &str) -> Result<Option<T>, ScimError> {
    q.get(name)
        .map(|v| v.parse().map_err(|_| ScimError::invalid_value(format!("{name}: '{v}' is not a number"))))
        .transpose()
}

#[utoipa::path(
    operation_id = "events_list",
    get,
    path = "/events",
    tag = "Events API",
    description = "The log as an events API: data and list_metadata.after (a position).",
    params(("after" = Option<u64>, Query, description = "A position: the events after it"), ("limit" = Option<u64>, Query, description = "1 to 10,000 (default 10)"), ("events" = Option<String>, Query, description = "Event types, comma-separated"), ("identity" = Option<String>, Query, description = "Only events naming this identity"), ("group" = Option<String>, Query, description = "Only events naming this group")),
    responses((status = 200, description = "A page of events"), (status = 400, description = "A bad parameter"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn list(
    State(app): State<Arc<App>>,
    _caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let after: u64 = param(&q, "after")?.unwrap_or(0);
    let limit: usize = param(&q, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ScimError::invalid_value(format!("limit must be from 1 to {MAX_LIMIT}")));
    }
    let types: Option<Vec<&str>> =
        q.get("events").map(|t| t.split(',').map(str::trim).filter(|t| !t.is_empty()).collect());
    if let Some(unknown) = types.iter().flatten().find(|t| !tenure_engine::event::EVENT_TYPES.contains(t)) {
        return Err(ScimError::invalid_value(format!("events: unknown event type '{unknown}'")));
    }
    let head = app.store.head();
    if after > head.get() {
        return Err(ScimError::invalid_value(format!("after: position {after} is past the head ({head})")));
    }
    let wanted = |e: &tenure_engine::Event| types.as_ref().is_none_or(|t| t.contains(&e.data.type_name()));
    // The page as JSON text, event by event: up to `limit` events or MAX_PAGE_BYTES (at
    // least one event), so that no page costs more memory than that.
    let mut page = Page::default();
    let subject = match (q.get("identity"), q.get("group")) {
        (Some(i), _) => Some(Subject::Identity(i.clone())),
        (None, Some(g)) => Some(Subject::Group(g.clone())),
        (None, None) => None,
    };
    match subject {
        // By subject: through the log's subject index.
        Some(s) => {
            for p in app.store.positions_of(&s)?.into_iter().filter(|p| p.get() > after) {
                let e = app.store.read(p)?;
                if wanted(&e) && page.push(&e, limit) {
                    break;
                }
            }
        }
        None => {
            app.store.scan(Position(after + 1), head, |e| {
                if wanted(&e) && page.push(&e, limit) {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            })?;
        }
    }
    if let Some(failed) = page.failed {
        return Err(ScimError::internal(failed));
    }
    let next = page.last.map_or_else(|| "null".to_string(), |p| format!("\"{p}\""));
    let body = format!(r#"{{"object":"list","data":[{}],"list_metadata":{{"after":{next}}}}}"#, page.data);
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// `GET /events/stream`: server-sent events, one per recorded event (its position as the
/// SSE `id`, its type as the SSE `event`, the event as `data`), starting after `after` or
/// the `Last-Event-ID` a reconnecting client sends, then following live appends: no gap
/// and no duplicate across the switch, since both come from the log by position.
#[utoipa::path(
    operation_id = "events_stream",
    get,
    path = "/events/stream",
    tag = "Events API",
    description = "The log as server-sent events after a cursor or Last-Event-ID, then live.",
    params(("after" = Option<u64>, Query, description = "A position"), ("Last-Event-ID" = Option<String>, Header, description = "A reconnection's last position")),
    responses((status = 200, description = "text/event-stream"), (status = 400, description = "A bad cursor"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn stream(
    State(app): State<Arc<App>>,
    _caller: Caller,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<
    axum::response::Sse<impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>>,
    ScimError,
> {
    use futures_util::StreamExt;
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let after: u64 = match resume.or_else(|| q.get("after").cloned()) {
        Some(v) => v.parse().map_err(|_| ScimError::invalid_value(format!("after: '{v}' is not a position")))?,
        None => 0,
    };
    let head = app.store.head();
    if after > head.get() {
        return Err(ScimError::invalid_value(format!("after: position {after} is past the head ({head})")));
    }
    // A read error ends the stream (the client reconnects with its Last-Event-ID).
    let events =
        app.store.subscribe(Position(after)).take_while(|item| std::future::ready(item.is_ok())).filter_map(|item| {
            let event = item.ok().and_then(|e| {
                let data = serde_json::to_string(&e).ok()?;
                Some(Ok(axum::response::sse::Event::default()
                    .id(e.position.get().to_string())
                    .event(e.data.type_name())
                    .data(data)))
            });
            std::future::ready(event)
        });
    let events = events.take_until(app.closing());
    Ok(axum::response::Sse::new(events).keep_alive(axum::response::sse::KeepAlive::default()))
}
