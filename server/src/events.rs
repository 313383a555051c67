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

/// The media type of the records form: a follower that sends it in `Accept` gets the
/// page as the log stores it, `u32 LE length | payload` per event (the MessagePack
/// payload the chain hashes), with the chain hash after the page's last event in the
/// `Tenure-Chain` header. Nothing is decoded or written as JSON on either side, and the
/// follower can check after each page that its chain equals the source's.
pub const RECORDS_MEDIA_TYPE: &str = "application/vnd.tenure.records";
/// The header that carries the chain hash (hex) after a records page's last event.
pub const CHAIN_HEADER: &str = "tenure-chain";

/// A page in the records form: the events after `after`, whole records, up to `limit`
/// or MAX_PAGE_BYTES (at least one event).
fn records_page(app: &App, after: u64, head: Position, limit: usize) -> Result<Response, ScimError> {
    let mut body = vec![0u8; 4];
    let (mut count, mut chain) = (0usize, None);
    app.store.scan_records(Position(after + 1), head, |_, payload, hash| {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(payload);
        count += 1;
        chain = Some(*hash);
        Ok(if count >= limit || body.len() >= MAX_PAGE_BYTES {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        })
    })?;
    // At most MAX_LIMIT events.
    body[..4].copy_from_slice(&u32::try_from(count).unwrap_or(u32::MAX).to_le_bytes());
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(RECORDS_MEDIA_TYPE));
    if let Some(chain) = chain.and_then(|c| HeaderValue::from_str(&tenure_engine::chain::hex(&c)).ok()) {
        headers.insert(CHAIN_HEADER, chain);
    }
    Ok(response)
}

/// Reads a records page back: its events, in order. An error says why the bytes are not
/// a whole page (cut short, even at a record's end, or a record that does not decode).
pub fn decode_records(body: &[u8]) -> Result<Vec<tenure_engine::Event>, String> {
    let Some((count, mut body)) = body.split_first_chunk::<4>() else {
        return Err(format!("cut short: {} bytes, not even the count", body.len()));
    };
    let count = u32::from_le_bytes(*count) as usize;
    if count > MAX_LIMIT {
        return Err(format!("a page of {count} events, more than any holds"));
    }
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let (len, rest) = match body.split_first_chunk::<4>() {
            Some((len, rest)) => (u32::from_le_bytes(*len) as usize, rest),
            None => return Err(format!("cut short after {} events (a length of {} bytes)", events.len(), body.len())),
        };
        if len > tenure_engine::record::MAX_PAYLOAD_BYTES {
            return Err(format!("event {}: a record of {len} bytes, more than any may hold", events.len() + 1));
        }
        let Some((payload, rest)) = rest.split_at_checked(len) else {
            return Err(format!("cut short in event {} ({} of {len} bytes)", events.len() + 1, rest.len()));
        };
        let event = tenure_engine::format::decode_event(payload)
            .map_err(|e| format!("event {}: not a record: {e}", events.len() + 1))?;
        events.push(event);
        body = rest;
    }
    if !body.is_empty() {
        return Err(format!("{} bytes after the page's {count} events", body.len()));
    }
    Ok(events)
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
    params(("after" = Option<u64>, Query, description = "A position: the events after it"), ("limit" = Option<u64>, Query, description = "1 to 10,000 (default 10)"), ("events" = Option<String>, Query, description = "Event types, comma-separated"), ("identity" = Option<String>, Query, description = "Only events naming this identity"), ("group" = Option<String>, Query, description = "Only events naming this group"), ("Accept" = Option<String>, Header, description = "application/vnd.tenure.records for the records form (followers; no filters)")),
    responses((status = 200, description = "A page of events: JSON, or in the records form (u32 LE count, then u32 LE length and MessagePack payload per event; the chain hash after the last in Tenure-Chain)"), (status = 400, description = "A bad parameter"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn list(
    State(app): State<Arc<App>>,
    _caller: Caller,
    headers: axum::http::HeaderMap,
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
    let records = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.split(';').next().is_some_and(|t| t.trim() == RECORDS_MEDIA_TYPE)));
    // The records form serves followers, which replicate the whole log: with a filter the
    // page is JSON.
    if records && types.is_none() && !q.contains_key("identity") && !q.contains_key("group") {
        return records_page(&app, after, head, limit);
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
