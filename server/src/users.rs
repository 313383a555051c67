//! `/Users`: each write computes the events that take the directory from what it holds to
//! what the request says, appends them (durable before the answer), and folds them in. A
//! request that changes nothing appends nothing. The writes of one user are serialised by
//! its lock (`App::lock`, a create by the id it will take) and a new userName is reserved
//! while it is being taken (`App::reserve`), so two creates of one userName give one 201
//! and one 409, and no update is lost; writes of different users share the store's syncs.

use crate::error::ScimError;
use crate::model::{self, Draft, User, LIST_SCHEMA};

const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
use crate::{App, Caller, Deactivate};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tenure_engine::event::{Granted, Joined, Moved, Rejoined, Revoked, StatusChange};
use tenure_engine::{EventData, IdentityId, IdentityKind, NewEvent, Timestamp};

/// The most resources one list answers (`count` above it is lowered to it).
pub const MAX_COUNT: usize = 1000;

pub fn parse_body(body: &Bytes) -> Result<Value, ScimError> {
    serde_json::from_slice(body).map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

pub fn respond(status: StatusCode, body: Value, version: Option<u64>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(crate::error::SCIM_JSON));
    if let Some(v) = version {
        if let Ok(value) = header::HeaderValue::from_str(&model::etag(v)) {
            headers.insert(header::ETAG, value);
        }
    }
    response
}

/// `If-Match`: a stale version is refused with 412 before anything is written.
pub(crate) fn check_if_match(headers: &HeaderMap, version: u64) -> Result<(), ScimError> {
    let Some(wanted) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let current = model::etag(version);
    let matches = wanted
        .split(',')
        .map(str::trim)
        .any(|w| w == "*" || w == current || w.trim_start_matches("W/") == current.trim_start_matches("W/"));
    if matches {
        Ok(())
    } else {
        Err(ScimError::precondition(format!("the resource is at version {current}, not {wanted}")))
    }
}

/// The events from `old` (None: no such user) to `new`, with their envelope.
/// The reason of the events a deactivation writes (a leave with it keeps the resource).
pub(crate) const DEACTIVATED: &str = "active: false";
/// The origin the grants of SCIM's `entitlements` and `roles` are justified by.
const SCIM: &str = "SCIM";

pub(crate) fn changes(
    origin: &str,
    old: Option<&User>,
    departed: Option<&User>,
    id: &str,
    new: &Draft,
    deactivate: Deactivate,
) -> Vec<EventData> {
    let identity = IdentityId::from(id);
    let mut data = Vec::new();
    match (old, departed) {
        (None, None) => {
            let service = new
                .attrs
                .get("userType")
                .is_some_and(|t| t.eq_ignore_ascii_case("service") || t.eq_ignore_ascii_case("serviceaccount"));
            let owner = service.then(|| new.attrs.get("manager").map(|m| IdentityId::from(m.as_str()))).flatten();
            let kind = if service { IdentityKind::Service } else { IdentityKind::Human };
            data.push(EventData::IdentityJoined(Joined {
                identity: identity.clone(),
                kind,
                attributes: new.attrs.clone(),
                owner,
            }));
            data.extend(grant_changes(origin, &identity, &model::Grants::default(), &new.grants));
            if !new.active {
                data.push(EventData::IdentitySuspended(StatusChange {
                    identity,
                    reason: Some("created inactive".into()),
                }));
            }
        }
        (None, Some(gone)) => {
            let mut changes = new.attrs.clone();
            for k in gone.attrs.keys() {
                changes.entry(k.clone()).or_default();
            }
            data.push(EventData::IdentityRejoined(Rejoined { identity: identity.clone(), attributes: Some(changes) }));
            data.extend(grant_changes(origin, &identity, &model::Grants::default(), &new.grants));
            if !new.active {
                data.push(EventData::IdentitySuspended(StatusChange {
                    identity,
                    reason: Some("created inactive".into()),
                }));
            }
        }
        (Some(old), _) => {
            let mut changes = model::Attrs::new();
            for (k, v) in &new.attrs {
                if old.attrs.get(k) != Some(v) {
                    changes.insert(k.clone(), v.clone());
                }
            }
            for k in old.attrs.keys() {
                if !new.attrs.contains_key(k) {
                    changes.insert(k.clone(), String::new());
                }
            }
            if !changes.is_empty() {
                data.push(EventData::IdentityMoved(Moved { identity: identity.clone(), attributes: changes }));
            }
            // Grants change while the identity is joined: before a deactivation, after a
            // reactivation.
            let grants = grant_changes(origin, &identity, &old.grants, &new.grants);
            if old.active || !new.active {
                data.extend(grants.iter().cloned());
            }
            match (old.active, new.active) {
                (true, false) => {
                    let change = StatusChange { identity, reason: Some(DEACTIVATED.into()) };
                    data.push(match deactivate {
                        Deactivate::Suspend => EventData::IdentitySuspended(change),
                        Deactivate::Leave => EventData::IdentityLeft(change),
                    });
                }
                (false, true) if old.left => {
                    data.push(EventData::IdentityRejoined(Rejoined { identity, attributes: None }));
                    // A rehire starts with nothing: every grant the request names is new.
                    data.extend(grant_changes(origin, &IdentityId::from(id), &model::Grants::default(), &new.grants));
                }
                (false, true) => {
                    data.push(EventData::IdentityReactivated(StatusChange {
                        identity,
                        reason: Some("active: true".into()),
                    }));
                    data.extend(grants);
                }
                _ => {}
            }
        }
    }
    data
}

/// `access.revoked` for each entitlement or role the user no longer has, `access.granted`
/// (justified by the list it came from) for each new one.
fn grant_changes(origin: &str, identity: &IdentityId, old: &model::Grants, new: &model::Grants) -> Vec<EventData> {
    let mut data = Vec::new();
    for (kind, before, after) in
        [("entitlements", &old.entitlements, &new.entitlements), ("roles", &old.roles, &new.roles)]
    {
        for gone in before.difference(after) {
            data.push(EventData::AccessRevoked(Revoked {
                identity: identity.clone(),
                entitlement: gone.clone(),
                reason: Some(model::Grants::justification(origin, kind)),
            }));
        }
        for added in after.difference(before) {
            data.push(EventData::AccessGranted(Granted {
                identity: identity.clone(),
                entitlement: added.clone(),
                expires_at: None,
                justification: Some(model::Grants::justification(origin, kind)),
                approver: None,
            }));
        }
    }
    data
}

/// The events of one request (a change of the resource `id` from its `version`): its
/// time, the caller's source and name, and keys derived from the request (see
/// [`request_key`]).
///
/// The request as received (method, path and query, the body as JSON, a password
/// redacted) is the first event's `raw`: kept once per request, and the other events of
/// the request share its key's prefix (`KEY:0`, `KEY:1`...), so each can be traced to it.
pub(crate) fn envelope(
    caller: &Caller,
    data: Vec<EventData>,
    id: &str,
    version: u64,
    body: Option<&Value>,
) -> Vec<NewEvent> {
    let kept = body.map(redacted);
    let key = request_key(&caller.method, id, version, kept.as_ref());
    let mut raw = Some(json!({"method": caller.method, "path": caller.target, "body": kept}));
    let now = Timestamp::now();
    data.into_iter()
        .enumerate()
        .map(|(i, d)| {
            let mut e = NewEvent::new(now, d);
            e.source = Some(caller.source.clone());
            e.actor = Some(caller.name.clone());
            e.source_event_id = Some(format!("{key}:{i}"));
            e.raw = raw.take();
            e
        })
        .collect()
}

/// What a request said, as kept in the log: all of it but a password (a secret, never
/// evidence), whose value becomes `"(redacted)"`: at the top of a resource, in a PATCH
/// operation whose path is `password`, or in a path-less operation's value.
pub(crate) fn redacted(body: &Value) -> Value {
    const REDACTED: &str = "(redacted)";
    let mut body = body.clone();
    let is_password = |k: &str| k.eq_ignore_ascii_case("password");
    if let Value::Object(map) = &mut body {
        for (k, v) in map.iter_mut() {
            if is_password(k) {
                *v = json!(REDACTED);
            }
        }
        for key in ["Operations", "operations"] {
            let Some(Value::Array(ops)) = map.get_mut(key) else { continue };
            for op in ops.iter_mut().filter_map(Value::as_object_mut) {
                let by_path = op.get("path").and_then(Value::as_str).is_some_and(is_password);
                match op.get_mut("value") {
                    Some(v) if by_path => *v = json!(REDACTED),
                    Some(Value::Object(value)) => {
                        for (k, v) in value.iter_mut() {
                            if is_password(k) {
                                *v = json!(REDACTED);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    body
}

/// An idempotency key: the same request against the same version of the same resource
/// is the same change, so a client's retry is stored once. Of the body as kept (redacted):
/// a hash of one with a password in it would let the password be guessed offline from the
/// rest of the body, which the log keeps.
fn request_key(method: &str, id: &str, version: u64, kept: Option<&Value>) -> String {
    let digest = Sha256::digest(kept.map(Value::to_string).unwrap_or_default().as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("scim:{method}:{id}:{version}:{hex}")
}

/// Why [`commit_positions`] failed.
pub(crate) enum CommitError {
    /// The log refused or could not store the events.
    Store(tenure_engine::Error),
    /// A lock of the directory was poisoned by a panic.
    Poisoned,
}

impl From<tenure_engine::Error> for CommitError {
    fn from(e: tenure_engine::Error) -> Self {
        CommitError::Store(e)
    }
}

impl From<CommitError> for ScimError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Store(e) => e.into(),
            CommitError::Poisoned => ScimError::internal("directory lock poisoned"),
        }
    }
}

/// Appends the events (durable when this returns) and folds them into the directory.
pub(crate) async fn commit(app: &App, events: Vec<NewEvent>) -> Result<(), ScimError> {
    commit_positions(app, events).await?;
    Ok(())
}

/// [`commit`], answering the first and last positions stored (none when every event was
/// already recorded, or there were none).
pub(crate) async fn commit_positions(app: &App, events: Vec<NewEvent>) -> Result<Option<(u64, u64)>, CommitError> {
    if events.is_empty() {
        return Ok(None);
    }
    let counted: Vec<(String, &'static str, Timestamp)> =
        events.iter().map(|e| (e.source.clone().unwrap_or_default(), e.data.type_name(), e.effective_at)).collect();
    let outcomes = app.store.append_async(events, None).await?;
    let now = Timestamp::now();
    for ((source, kind, effective), outcome) in counted.into_iter().zip(&outcomes) {
        if let tenure_engine::Outcome::Stored(_) = outcome {
            let lag = (now.as_micros() - effective.as_micros()).max(0) as f64 / 1e6;
            app.metrics.event_lag.get_or_create(&crate::metrics::SourceLabels { source: source.clone() }).observe(lag);
            app.metrics.appended.get_or_create(&crate::metrics::EventLabels { source, r#type: kind.to_string() }).inc();
        }
    }
    let stored = outcomes.iter().filter_map(|o| match o {
        tenure_engine::Outcome::Stored(p) => Some(p.get()),
        tenure_engine::Outcome::Duplicate(_) => None,
    });
    let appended = stored.clone().min().zip(stored.max());
    if let Some((first, last)) = appended {
        crate::note_appended(first, last);
    }
    let Some(last) = outcomes.iter().map(|o| o.position()).max() else { return Ok(appended) };
    // Fold every event up to this write's last into the directory, in position order.
    // Writes of other resources finish at once: whichever folds first folds the others'
    // durable events too, and a fold that finds the head moved reads again. A retried
    // request's duplicates point at positions already folded.
    loop {
        let head = app.directory.read().map_err(|_| CommitError::Poisoned)?.head;
        if last.get() <= head {
            return Ok(appended);
        }
        let stored = app.store.read_range(tenure_engine::Position(head + 1), last)?;
        let mut dir = app.directory.write().map_err(|_| CommitError::Poisoned)?;
        if dir.head != head {
            continue;
        }
        for e in &stored {
            dir.apply(e);
        }
        crate::settle(&app.store, &mut dir)?;
        // The audit API's index takes the same events, in the same order, under the
        // directory's lock (so each is applied once).
        let mut index = app.index.write().map_err(|_| CommitError::Poisoned)?;
        for e in &stored {
            index.apply(e);
        }
        return Ok(appended);
    }
}

pub(crate) fn base(app: &App) -> &str {
    &app.base
}

#[utoipa::path(
    operation_id = "users_create",
    post,
    path = "/scim/v2/Users",
    tag = "SCIM users",
    description = "Creates a user: identity.joined (and its grants), durable before the answer.",
    request_body(content = serde_json::Value, description = "A SCIM User", content_type = "application/scim+json"),
    responses((status = 201, description = "The user, with Location and ETag"), (status = 409, description = "uniqueness: the userName is taken"), (status = 400, description = "A SCIM error: invalidValue, invalidFilter, invalidPath, mutability..."), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn create(State(app): State<Arc<App>>, caller: Caller, body: Bytes) -> Result<Response, ScimError> {
    let value = parse_body(&body)?;
    let draft = Draft::from_resource(&value, true)?;
    draft.check()?;
    let user_name = draft.attrs.get("userName").cloned().unwrap_or_default();
    let id = user_name.to_lowercase();
    let _lock = app.lock(&format!("u:{id}")).await;
    let _name = app.reserve(format!("n:{id}"))?;
    let (events, id) = {
        let dir = app.dir()?;
        if dir.by_user_name(&user_name).is_some() {
            return Err(ScimError::uniqueness(format!("userName '{user_name}' is already taken")));
        }
        if dir.users.contains_key(&id) {
            return Err(ScimError::uniqueness(format!("the id '{id}' is taken by another user")));
        }
        let departed = dir.departed.get(&id);
        let version = departed.map_or(0, |u| u.version);
        let data = changes(SCIM, None, departed, &id, &draft, caller.deactivate);
        (envelope(&caller, data, &id, version, Some(&value)), id)
    };
    commit(&app, events).await?;
    let dir = app.dir()?;
    let user = dir.users.get(&id).ok_or_else(|| ScimError::internal("the created user is not in the directory"))?;
    let mut response = respond(StatusCode::CREATED, model::render(user, base(&app)), Some(user.version));
    if let Ok(loc) = header::HeaderValue::from_str(&format!("{}/Users/{}", base(&app), user.id)) {
        response.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(response)
}

#[utoipa::path(
    operation_id = "users_get",
    get,
    path = "/scim/v2/Users/{id}",
    tag = "SCIM users",
    description = "One user, as the log says now.",
    params(("id" = String, Path, description = "The user id"), ("attributes" = Option<String>, Query, description = "Attributes to return"), ("excludedAttributes" = Option<String>, Query, description = "Attributes to leave out")),
    responses((status = 200, description = "The user"), (status = 404, description = "No such resource"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn get(
    State(app): State<Arc<App>>,
    _caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let dir = app.dir()?;
    let user = dir.users.get(&id).ok_or_else(|| ScimError::not_found(format!("no user '{id}'")))?;
    let body = model::project(model::render(user, base(&app)), &q);
    Ok(respond(StatusCode::OK, body, Some(user.version)))
}

/// `startIndex` (from 1) and `count` (at most [`MAX_COUNT`]).
pub(crate) fn paging(q: &HashMap<String, String>) -> Result<(usize, usize), ScimError> {
    let start = match q.get("startIndex") {
        Some(s) => {
            s.parse::<usize>().map_err(|_| ScimError::invalid_value("startIndex must be a positive integer"))?.max(1)
        }
        None => 1,
    };
    let count = match q.get("count") {
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| ScimError::invalid_value("count must be a non-negative integer"))?
            .min(MAX_COUNT),
        None => MAX_COUNT,
    };
    Ok((start, count))
}

/// `sortBy` (an attribute path; strings compared without regard to case) and `sortOrder`.
pub(crate) fn sort(found: &mut [Value], q: &HashMap<String, String>) -> Result<(), ScimError> {
    let Some(sort_by) = q.get("sortBy") else { return Ok(()) };
    let path = crate::filter::parse_attr_path(sort_by).map_err(|e| ScimError::invalid_value(e.detail))?;
    let get = |v: &Value, name: &str| -> Option<Value> {
        v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    };
    let key = |r: &Value| -> String {
        let base = match &path.urn {
            Some(urn) => get(r, urn).unwrap_or(Value::Null),
            None => r.clone(),
        };
        let v = get(&base, &path.name).and_then(|top| match &path.sub {
            Some(sub) => get(&top, sub),
            None => Some(top),
        });
        v.map(|v| v.as_str().map(str::to_lowercase).unwrap_or_else(|| v.to_string())).unwrap_or_default()
    };
    found.sort_by_cached_key(key);
    if q.get("sortOrder").is_some_and(|o| o.eq_ignore_ascii_case("descending")) {
        found.reverse();
    }
    Ok(())
}

/// A `POST .../.search` body (RFC 7644 §3.4.3) as the query parameters of a list.
pub(crate) fn search_query(body: &Bytes) -> Result<HashMap<String, String>, ScimError> {
    let value = parse_body(body)?;
    let Value::Object(map) = value else { return Err(ScimError::invalid_syntax("the body must be a JSON object")) };
    model::check_schemas(&map, SEARCH_SCHEMA)?;
    let mut q = HashMap::new();
    for (k, v) in map {
        let text = match (k.as_str(), v) {
            ("schemas", _) => continue,
            ("attributes" | "excludedAttributes", Value::Array(list)) => {
                list.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
            }
            ("startIndex" | "count", Value::Number(n)) => n.to_string(),
            ("filter" | "sortBy" | "sortOrder" | "attributes" | "excludedAttributes", Value::String(s)) => s,
            (other, _) => {
                return Err(ScimError::invalid_value(format!("{other}: not a search parameter of this form")))
            }
        };
        q.insert(k, text);
    }
    Ok(q)
}

#[utoipa::path(
    operation_id = "users_search",
    post,
    path = "/scim/v2/Users/.search",
    tag = "SCIM users",
    description = "Users by a SearchRequest body.",
    request_body(content = serde_json::Value, description = "A SearchRequest", content_type = "application/scim+json"),
    responses((status = 200, description = "A ListResponse"), (status = 400, description = "A SCIM error: invalidValue, invalidFilter, invalidPath, mutability..."), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn search(State(app): State<Arc<App>>, caller: Caller, body: Bytes) -> Result<Response, ScimError> {
    let q = search_query(&body)?;
    list(State(app), caller, Query(q)).await
}

#[utoipa::path(
    operation_id = "users_list",
    get,
    path = "/scim/v2/Users",
    tag = "SCIM users",
    description = "Users, filtered, sorted and paged.",
    params(("filter" = Option<String>, Query, description = "RFC 7644 filter"), ("startIndex" = Option<u64>, Query, description = "1-based index of the first result"), ("count" = Option<u64>, Query, description = "Page size (at most 1000)"), ("sortBy" = Option<String>, Query, description = "Attribute path to sort by"), ("sortOrder" = Option<String>, Query, description = "ascending or descending"), ("attributes" = Option<String>, Query, description = "Attributes to return"), ("excludedAttributes" = Option<String>, Query, description = "Attributes to leave out")),
    responses((status = 200, description = "A ListResponse"), (status = 400, description = "A SCIM error: invalidValue, invalidFilter, invalidPath, mutability..."), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn list(
    State(app): State<Arc<App>>,
    _caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let filter = q.get("filter").map(|f| crate::filter::parse(f)).transpose()?;
    let dir = app.dir()?;
    let b = base(&app);
    let found: Vec<Value> = match filter.as_ref().and_then(crate::filter::simple_eq) {
        // The look-up every client makes, from the index.
        Some((attr, v)) if attr.eq_ignore_ascii_case("userName") => {
            dir.by_user_name(v).map(|u| model::render(u, b)).into_iter().collect()
        }
        _ => dir
            .users
            .values()
            .map(|u| model::render(u, b))
            .filter(|r| filter.as_ref().is_none_or(|f| crate::filter::matches(f, r)))
            .collect(),
    };
    answer_list(found, &q)
}

/// A list response: `found` (every match, rendered) sorted, paged and projected as `q` asks.
pub(crate) fn answer_list(mut found: Vec<Value>, q: &HashMap<String, String>) -> Result<Response, ScimError> {
    let (start, count) = paging(q)?;
    sort(&mut found, q)?;
    let total = found.len();
    let page: Vec<Value> = found.into_iter().skip(start - 1).take(count).map(|r| model::project(r, q)).collect();
    let body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": page.len(),
        "Resources": page,
    });
    Ok(respond(StatusCode::OK, body, None))
}

/// `POST /.search` at the root: users and groups together.
#[utoipa::path(
    operation_id = "users_search_all",
    post,
    path = "/scim/v2/.search",
    tag = "SCIM users",
    description = "Users and groups by a SearchRequest body.",
    request_body(content = serde_json::Value, description = "A SearchRequest", content_type = "application/scim+json"),
    responses((status = 200, description = "A ListResponse"), (status = 400, description = "A SCIM error: invalidValue, invalidFilter, invalidPath, mutability..."), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn search_all(State(app): State<Arc<App>>, _caller: Caller, body: Bytes) -> Result<Response, ScimError> {
    let q = search_query(&body)?;
    let filter = q.get("filter").map(|f| crate::filter::parse(f)).transpose()?;
    let dir = app.dir()?;
    let b = base(&app);
    let users = dir.users.values().map(|u| model::render(u, b));
    let groups = dir.groups.values().map(|g| model::render_group(g, b));
    let found = users.chain(groups).filter(|r| filter.as_ref().is_none_or(|f| crate::filter::matches(f, r))).collect();
    answer_list(found, &q)
}

#[utoipa::path(
    operation_id = "users_replace",
    put,
    path = "/scim/v2/Users/{id}",
    tag = "SCIM users",
    description = "Replaces a user: the changed attributes as identity.moved, active false as a deactivation.",
    params(("id" = String, Path, description = "The user id")),
    request_body(content = serde_json::Value, description = "A SCIM User", content_type = "application/scim+json"),
    responses((status = 200, description = "The user"), (status = 412, description = "If-Match names a stale version"), (status = 404, description = "No such resource"), (status = 400, description = "A SCIM error: invalidValue, invalidFilter, invalidPath, mutability..."), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn replace(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let value = parse_body(&body)?;
    let _lock = app.lock(&format!("u:{id}")).await;
    let mut _name = None;
    let events = {
        let dir = app.dir()?;
        let user = dir.users.get(&id).ok_or_else(|| ScimError::not_found(format!("no user '{id}'")))?;
        check_if_match(&headers, user.version)?;
        let draft = Draft::from_resource(&value, user.active)?;
        draft.check()?;
        _name = take_name(&app, &dir, user, &draft)?;
        envelope(
            &caller,
            changes(SCIM, Some(user), None, &id, &draft, caller.deactivate),
            &id,
            user.version,
            Some(&value),
        )
    };
    commit(&app, events).await?;
    get_after_write(&app, &id)
}

#[utoipa::path(
    operation_id = "users_patch",
    patch,
    path = "/scim/v2/Users/{id}",
    tag = "SCIM users",
    description = "Applies a PatchOp: every operation in order, all or none.",
    params(("id" = String, Path, description = "The user id")),
    request_body(content = serde_json::Value, description = "A PatchOp", content_type = "application/scim+json"),
    responses((status = 200, description = "The user"), (status = 412, description = "If-Match names a stale version"), (status = 404, description = "No such resource"), (status = 400, description = "A SCIM error: invalidValue, invalidFilter, invalidPath, mutability..."), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn patch(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let value = parse_body(&body)?;
    let ops = crate::patch::operations(&value)?;
    let _lock = app.lock(&format!("u:{id}")).await;
    let mut _name = None;
    let events = {
        let dir = app.dir()?;
        let user = dir.users.get(&id).ok_or_else(|| ScimError::not_found(format!("no user '{id}'")))?;
        check_if_match(&headers, user.version)?;
        let mut draft = Draft::of(user);
        // All operations, in order, on a copy: one that fails fails the request, and
        // nothing of it is stored.
        crate::patch::apply(&mut draft, &id, ops)?;
        _name = take_name(&app, &dir, user, &draft)?;
        draft.check()?;
        if draft.attrs.get("userName").is_none_or(|u| u.trim().is_empty()) {
            return Err(ScimError::mutability("userName is required"));
        }
        envelope(
            &caller,
            changes(SCIM, Some(user), None, &id, &draft, caller.deactivate),
            &id,
            user.version,
            Some(&value),
        )
    };
    commit(&app, events).await?;
    get_after_write(&app, &id)
}

/// A new userName (of a PUT or PATCH): reserved for this write, and refused when another
/// user has it.
fn take_name<'a>(
    app: &'a App,
    dir: &crate::directory::Directory,
    user: &User,
    draft: &Draft,
) -> Result<Option<crate::Reservation<'a>>, ScimError> {
    let Some(new) = draft.attrs.get("userName") else { return Ok(None) };
    if user.attrs.get("userName").is_some_and(|old| old.to_lowercase() == new.to_lowercase()) {
        return Ok(None);
    }
    let reservation = app.reserve(format!("n:{}", new.to_lowercase()))?;
    if let Some(other) = dir.by_user_name(new).filter(|u| u.id != user.id) {
        return Err(ScimError::uniqueness(format!("userName is taken by user '{}'", other.id)));
    }
    Ok(Some(reservation))
}

fn get_after_write(app: &App, id: &str) -> Result<Response, ScimError> {
    let dir = app.dir()?;
    let user =
        dir.users.get(id).ok_or_else(|| ScimError::internal("the user is not in the directory after the write"))?;
    Ok(respond(StatusCode::OK, model::render(user, base(app)), Some(user.version)))
}

#[utoipa::path(
    operation_id = "users_delete",
    delete,
    path = "/scim/v2/Users/{id}",
    tag = "SCIM users",
    description = "Deletes a user: identity.left.",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such resource"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let _lock = app.lock(&format!("u:{id}")).await;
    let event = {
        let dir = app.dir()?;
        let user = dir.users.get(&id).ok_or_else(|| ScimError::not_found(format!("no user '{id}'")))?;
        check_if_match(&headers, user.version)?;
        let left = EventData::IdentityLeft(StatusChange {
            identity: IdentityId::from(id.as_str()),
            reason: Some("deleted over SCIM".into()),
        });
        envelope(&caller, vec![left], &id, user.version, None)
    };
    commit(&app, event).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
