//! The audit API: `GET /v1/...`, the CLI's queries over HTTP, each answering exactly the
//! JSON of `tenure ... --json` (both are made by `tenure_projections::answers`, or for
//! the large answers written a row at a time in the same shapes: see [`spilled`]), for
//! tokens of the read-only audit scope only.
//!
//! - `/v1/access/{identity}?at=T&as_of=R`
//! - `/v1/holders?resource=R[#P]&at=T | &during=T1..T2, &as_of=R`
//! - `/v1/timeline/{identity}?as_of=R`
//! - `/v1/profile/{identity}?at=T&as_of=R`
//! - `/v1/diff?from=T1&to=T2[&identity=I]&as_of=R`
//! - `/v1/anomalies?as_of=R`
//! - `/v1/verify`
//!
//! `at` defaults to now, `as_of` to everything recorded. An identity may be named as the
//! log names it or by a userName it has (as the CLI accepts). Errors are JSON
//! `{"error": ...}`: 400 for a bad parameter, 404 for an unknown identity, 401 without a
//! token, 403 for a provisioning token.

use crate::App;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, Write};
use std::sync::Arc;
use tenure_engine::Timestamp;
use tenure_projections::answers::{self, parse_as_of, parse_time, parse_window};
use tenure_projections::{AccessIndex, AsOf, QueryError, Target};

/// An audit API error.
pub struct Problem(StatusCode, String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({"error": self.1, "status": self.0.as_u16()}).to_string();
        (self.0, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

fn bad(detail: impl Into<String>) -> Problem {
    Problem(StatusCode::BAD_REQUEST, detail.into())
}

impl From<QueryError> for Problem {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::UnknownIdentity(_) => Problem(StatusCode::NOT_FOUND, e.to_string()),
            other => Problem(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

/// A token of the audit scope.
pub struct Auditor;

impl FromRequestParts<Arc<App>> for Auditor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).map(|v| v.as_bytes());
        match crate::auth::check(&app.tokens, header) {
            Some(t) if t.scope == crate::auth::Scope::Audit => Ok(Auditor),
            Some(_) => {
                Err(Problem(StatusCode::FORBIDDEN, "the audit API takes a token of the audit scope".into())
                    .into_response())
            }
            None => {
                let mut r = Problem(StatusCode::UNAUTHORIZED, "a bearer token of the audit scope is required".into())
                    .into_response();
                r.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer realm=\"tenure\""),
                );
                Err(r)
            }
        }
    }
}

type Params = Query<HashMap<String, String>>;

fn time(q: &HashMap<String, String>, name: &str) -> Result<Option<Timestamp>, Problem> {
    q.get(name).map(|v| parse_time(v).map_err(|e| bad(format!("{name}: {e}")))).transpose()
}

/// `from` and `to`, either open.
fn window(q: &HashMap<String, String>) -> Result<Option<(Timestamp, Timestamp)>, Problem> {
    answers::open_window(time(q, "from")?, time(q, "to")?).map_err(|e| bad(format!("from/to: {e}")))
}

/// A duration parameter (`90d`), µs; `default_days` when absent.
fn duration(q: &HashMap<String, String>, name: &str, default_days: i64) -> Result<i64, Problem> {
    match q.get(name) {
        Some(v) => answers::parse_duration(v).map_err(|e| bad(format!("{name}: {e}"))),
        None => Ok(default_days * 86_400_000_000),
    }
}

/// `as_of`, checked against the index's head as the CLI checks `--as-of`.
fn as_of(q: &HashMap<String, String>, index: &AccessIndex) -> Result<AsOf, Problem> {
    let Some(v) = q.get("as_of") else { return Ok(AsOf::Head) };
    let r = parse_as_of(v).map_err(|e| bad(format!("as_of: {e}")))?;
    match r {
        AsOf::Position(p) if p > index.head().get() => {
            Err(bad(format!("as_of: the log has {} positions (a position must be one of them)", index.head())))
        }
        r => Ok(r),
    }
}

fn index(app: &App) -> Result<std::sync::RwLockReadGuard<'_, AccessIndex>, Problem> {
    app.index.read().map_err(|_| Problem(StatusCode::INTERNAL_SERVER_ERROR, "the index lock is poisoned".into()))
}

/// The identity a request names: as the log names it, else by a userName a present user
/// has (without regard to case).
fn identity(app: &App, index: &AccessIndex, name: &str) -> Result<String, Problem> {
    if index.has_identity(name).map_err(|e| Problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))? {
        return Ok(name.to_string());
    }
    let dir = app.dir().map_err(|_| Problem(StatusCode::INTERNAL_SERVER_ERROR, "directory unavailable".into()))?;
    match dir.by_user_name(name) {
        Some(u) => Ok(u.id.clone()),
        None => Err(Problem(StatusCode::NOT_FOUND, format!("no identity '{name}' (by name or userName)"))),
    }
}

fn internal(e: impl std::fmt::Display) -> Problem {
    Problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// A large answer (`holders`, `diff`, `report leavers`): written by `make`, under the
/// index's read lock, on a blocking thread, into a temporary file, a row at a time, so
/// that memory holds a batch of rows whatever the answer's size and neither the runtime
/// nor the writers (who wait for the lock) wait for a slow client; then sent from the
/// file. An error before the first byte is the request's answer (400, 404, ...).
async fn spilled(
    app: Arc<App>,
    make: impl FnOnce(&App, &AccessIndex, &mut dyn std::io::Write) -> Result<(), Problem> + Send + 'static,
) -> Result<Response, Problem> {
    let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File, Problem> {
        let mut file = tempfile::tempfile().map_err(internal)?;
        {
            let index = index(&app)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut file);
            make(&app, &index, &mut out)?;
            out.flush().map_err(internal)?;
        }
        file.rewind().map_err(internal)?;
        Ok(file)
    })
    .await
    .map_err(internal)??;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        loop {
            let mut chunk = vec![0; 1 << 16];
            let sent = match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    tx.blocking_send(Ok(chunk))
                }
                Err(e) => tx.blocking_send(Err(e)),
            };
            if sent.is_err() {
                break; // the client went away
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], axum::body::Body::from_stream(body)).into_response())
}

/// A JSON object written as it is made, compact, as `Value::to_string` writes it (its
/// fields in the order given).
struct JsonOut<'a> {
    out: &'a mut dyn std::io::Write,
    fields: usize,
    items: usize,
}

impl<'a> JsonOut<'a> {
    fn new(out: &'a mut dyn std::io::Write) -> Result<Self, Problem> {
        out.write_all(b"{").map_err(internal)?;
        Ok(JsonOut { out, fields: 0, items: 0 })
    }

    fn key(&mut self, key: &str) -> Result<(), Problem> {
        let comma = if self.fields > 0 { "," } else { "" };
        self.fields += 1;
        write!(self.out, "{comma}{}:", Value::from(key)).map_err(internal)
    }

    fn field(&mut self, key: &str, value: &impl serde::Serialize) -> Result<(), Problem> {
        self.key(key)?;
        serde_json::to_writer(&mut *self.out, value).map_err(internal)
    }

    fn open(&mut self, key: &str) -> Result<(), Problem> {
        self.key(key)?;
        self.items = 0;
        self.out.write_all(b"[").map_err(internal)
    }

    /// An item of the open array, already serialized.
    fn item_text(&mut self, text: &str) -> Result<(), Problem> {
        let comma = if self.items > 0 { "," } else { "" };
        self.items += 1;
        write!(self.out, "{comma}{text}").map_err(internal)
    }

    fn close(&mut self) -> Result<(), Problem> {
        self.out.write_all(b"]").map_err(internal)
    }

    fn array<T: serde::Serialize>(&mut self, key: &str, items: impl Iterator<Item = T>) -> Result<(), Problem> {
        self.open(key)?;
        for item in items {
            self.item_text(&serde_json::to_string(&item).map_err(internal)?)?;
        }
        self.close()
    }

    fn end(self) -> Result<(), Problem> {
        self.out.write_all(b"}").map_err(internal)
    }
}

fn reply(v: Value) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

#[utoipa::path(
    operation_id = "audit_access",
    get,
    path = "/v1/access/{identity}",
    tag = "Audit",
    description = "What an identity had at T as known at R (tenure access --json).",
    params(("identity" = String, Path, description = "The identity or a userName"), ("at" = Option<String>, Query, description = "A time (default now)"), ("as_of" = Option<String>, Query, description = "A position or a record time")),
    responses((status = 200, description = "The answer"), (status = 400, description = "A bad parameter"), (status = 404, description = "No such identity"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn access(
    State(app): State<Arc<App>>,
    _a: Auditor,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, Problem> {
    let index = index(&app)?;
    let (at, r) = (time(&q, "at")?.unwrap_or_else(Timestamp::now), as_of(&q, &index)?);
    let id = identity(&app, &index, &name)?;
    let held = index.access(&id, at, r)?;
    Ok(reply(answers::access(&id, at, index.resolve(r), &held)))
}

#[utoipa::path(
    operation_id = "audit_holders",
    get,
    path = "/v1/holders",
    tag = "Audit",
    description = "Who held a resource at T, or during a window (tenure who --json).",
    params(("resource" = Option<String>, Query, description = "RESOURCE or RESOURCE#PERMISSION"), ("at" = Option<String>, Query, description = "A time"), ("during" = Option<String>, Query, description = "T1..T2"), ("as_of" = Option<String>, Query, description = "A position or a record time")),
    responses((status = 200, description = "The answer"), (status = 400, description = "A bad parameter"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn holders(State(app): State<Arc<App>>, _a: Auditor, Query(q): Params) -> Result<Response, Problem> {
    spilled(app, move |_, index, out| {
        let resource = q.get("resource").ok_or_else(|| bad("resource: required (RESOURCE or RESOURCE#PERMISSION)"))?;
        let target = Target::parse(resource)
            .ok_or_else(|| bad(format!("resource: '{resource}' is not RESOURCE or RESOURCE#PERMISSION")))?;
        let r = as_of(&q, index)?;
        let (when, found) = match (q.get("during"), time(&q, "at")?) {
            (Some(_), Some(_)) => return Err(bad("give at or during, not both")),
            (Some(w), None) => {
                let (from, to) = parse_window(w).map_err(|e| bad(format!("during: {e}")))?;
                (json!({"during": {"from": from, "to": to}}), index.holders_during(&target, from, to, r)?)
            }
            (None, at) => {
                let at = at.unwrap_or_else(Timestamp::now);
                (json!({"at": at}), index.holders(&target, at, r)?)
            }
        };
        // The shape of `tenure who --json` (docs/cli.md), written a holder at a time.
        let mut o = JsonOut::new(out)?;
        o.field("resource", resource)?;
        o.field("as_of", &index.resolve(r))?;
        for (k, v) in when.as_object().into_iter().flatten() {
            o.field(k, v)?;
        }
        o.array("holders", found.iter())?;
        o.end()
    })
    .await
}

#[utoipa::path(
    operation_id = "audit_timeline",
    get,
    path = "/v1/timeline/{identity}",
    tag = "Audit",
    description = "An identity's history (tenure timeline --json).",
    params(("identity" = String, Path, description = "The identity or a userName"), ("as_of" = Option<String>, Query, description = "A position or a record time")),
    responses((status = 200, description = "The answer"), (status = 404, description = "No such identity"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn timeline(
    State(app): State<Arc<App>>,
    _a: Auditor,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, Problem> {
    let index = index(&app)?;
    let r = as_of(&q, &index)?;
    let id = identity(&app, &index, &name)?;
    Ok(reply(answers::timeline(&index.timeline(&id, r)?, index.resolve(r))))
}

#[utoipa::path(
    operation_id = "audit_profile",
    get,
    path = "/v1/profile/{identity}",
    tag = "Audit",
    description = "What the records said of an identity at T (tenure show --json).",
    params(("identity" = String, Path, description = "The identity or a userName"), ("at" = Option<String>, Query, description = "A time (default now)"), ("as_of" = Option<String>, Query, description = "A position or a record time")),
    responses((status = 200, description = "The answer"), (status = 404, description = "No such identity"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn profile(
    State(app): State<Arc<App>>,
    _a: Auditor,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, Problem> {
    let index = index(&app)?;
    let (at, r) = (time(&q, "at")?.unwrap_or_else(Timestamp::now), as_of(&q, &index)?);
    let id = identity(&app, &index, &name)?;
    Ok(reply(answers::profile(&index.profile(&id, at, r)?, at, index.resolve(r))))
}

#[utoipa::path(
    operation_id = "audit_diff",
    get,
    path = "/v1/diff",
    tag = "Audit",
    description = "Access gained and lost between two times (tenure diff --json).",
    params(("from" = Option<String>, Query, description = "A time"), ("to" = Option<String>, Query, description = "A time"), ("identity" = Option<String>, Query, description = "One identity (default everyone)"), ("as_of" = Option<String>, Query, description = "A position or a record time")),
    responses((status = 200, description = "The answer"), (status = 400, description = "A bad parameter"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn diff(State(app): State<Arc<App>>, _a: Auditor, Query(q): Params) -> Result<Response, Problem> {
    spilled(app, move |app, index, out| {
        let from = time(&q, "from")?.ok_or_else(|| bad("from: required"))?;
        let to = time(&q, "to")?.ok_or_else(|| bad("to: required"))?;
        let r = as_of(&q, index)?;
        let id = q.get("identity").map(|n| identity(app, index, n)).transpose()?;
        // The shape of `tenure diff --json`: the gains written as they are found, the losses
        // kept in a second temporary file until the gains are done.
        let mut o = JsonOut::new(out)?;
        o.field("from", &from)?;
        o.field("to", &to)?;
        o.field("identity", &id)?;
        o.field("as_of", &index.resolve(r))?;
        o.open("gained")?;
        let mut lost = std::io::BufWriter::new(tempfile::tempfile().map_err(internal)?);
        let render = |c: tenure_projections::Change| serde_json::to_string(&c).map_err(internal);
        index.diff_each(id.as_deref(), (from, to), r, render, |gain, c| -> Result<(), Problem> {
            let text = c?;
            match gain {
                true => o.item_text(&text),
                false => writeln!(lost, "{text}").map_err(internal),
            }
        })?;
        o.close()?;
        o.open("lost")?;
        let mut lost = lost.into_inner().map_err(|e| internal(e.into_error()))?;
        lost.rewind().map_err(internal)?;
        for line in std::io::BufReader::new(lost).lines() {
            o.item_text(&line.map_err(internal)?)?;
        }
        o.close()?;
        o.end()
    })
    .await
}

#[utoipa::path(
    operation_id = "audit_anomalies",
    get,
    path = "/v1/anomalies",
    tag = "Audit",
    description = "Events the fold found meaningless (tenure anomalies --json).",
    params(("as_of" = Option<String>, Query, description = "A position or a record time")),
    responses((status = 200, description = "The answer"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn anomalies(State(app): State<Arc<App>>, _a: Auditor, Query(q): Params) -> Result<Response, Problem> {
    let index = index(&app)?;
    let r = as_of(&q, &index)?;
    let found = index.anomalies(r)?;
    let mut rows = Vec::with_capacity(found.len());
    for a in found {
        let e = app
            .store
            .read(tenure_engine::Position(a.position))
            .map_err(|e| Problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        rows.push((a, e.data.type_name()));
    }
    Ok(reply(answers::anomalies(index.resolve(r), &rows)))
}

/// The log's integrity, checked from the files (the derived files are not rebuilt here:
/// `tenure verify` does that).
#[utoipa::path(
    operation_id = "audit_verify",
    get,
    path = "/v1/verify",
    tag = "Audit",
    description = "The log's integrity (tenure verify --json).",
    responses((status = 200, description = "The report"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn verify(State(app): State<Arc<App>>, _a: Auditor) -> Result<Response, Problem> {
    let dir = app.store.dir().to_path_buf();
    let report = tokio::task::spawn_blocking(move || tenure_engine::verify(&dir))
        .await
        .map_err(|e| Problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| Problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut derived = Vec::new();
    if let Some(status) = &report.offsets_file {
        derived.push((tenure_engine::store::INDEX_FILE.to_string(), status.clone()));
    }
    if let Some(status) = &report.subjects_file {
        derived.push((tenure_engine::subjects::SUBJECTS_FILE.to_string(), status.clone()));
    }
    Ok(reply(answers::verify(&report, &derived)))
}

#[utoipa::path(
    operation_id = "report_leavers",
    get,
    path = "/v1/reports/leavers",
    tag = "Reports",
    description = "Leaver compliance: one row per leave, its lag, what was held before and believed held after (tenure report leavers --json).",
    params(("from" = Option<String>, Query, description = "Leaves effective at or after this time"), ("to" = Option<String>, Query, description = "Leaves effective before this time"), ("as_of" = Option<String>, Query, description = "A position or a record time")),
    responses((status = 200, description = "The report"), (status = 400, description = "A bad parameter"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn report_leavers(State(app): State<Arc<App>>, _a: Auditor, Query(q): Params) -> Result<Response, Problem> {
    spilled(app, move |app, index, out| {
        let r = as_of(&q, index)?;
        let window = window(&q)?;
        // The shape of `tenure report leavers --json`, written a row at a time.
        let mut o = JsonOut::new(out)?;
        o.field("as_of", &index.resolve(r))?;
        o.open("rows")?;
        let render = |row: tenure_projections::reports::LeaverRow| serde_json::to_string(&row).map_err(internal);
        let summary = index.leavers_each(window, r, &app.store, render, |row| o.item_text(&row?))?;
        o.close()?;
        o.field("by_source", &summary.by_source)?;
        o.field("overall", &summary.overall)?;
        o.end()
    })
    .await
}

#[utoipa::path(
    operation_id = "report_nhi",
    get,
    path = "/v1/reports/nhi",
    tag = "Reports",
    description = "Non-human identities: services whose owner is not active, services without an owner, credentials expired or not rotated (tenure report nhi --json).",
    params(("at" = Option<String>, Query, description = "A time (default now)"), ("max_age" = Option<String>, Query, description = "A duration such as 90d (default 90d)"), ("dormant_after" = Option<String>, Query, description = "A duration (default 365d)"), ("as_of" = Option<String>, Query, description = "A position or a record time")),
    responses((status = 200, description = "The report"), (status = 400, description = "A bad parameter"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn report_nhi(State(app): State<Arc<App>>, _a: Auditor, Query(q): Params) -> Result<Response, Problem> {
    let index = index(&app)?;
    let (at, r) = (time(&q, "at")?.unwrap_or_else(Timestamp::now), as_of(&q, &index)?);
    let report = index.nhi(at, r, duration(&q, "max_age", 90)?, duration(&q, "dormant_after", 365)?)?;
    Ok(reply(answers::nhi(&report)))
}

#[utoipa::path(
    operation_id = "report_lag",
    get,
    path = "/v1/reports/lag",
    tag = "Reports",
    description = "Event lag (recorded minus effective) per source and type (tenure report lag --json).",
    params(("as_of" = Option<String>, Query, description = "A position or a record time")),
    responses((status = 200, description = "The report"), (status = 400, description = "A bad parameter"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn report_lag(State(app): State<Arc<App>>, _a: Auditor, Query(q): Params) -> Result<Response, Problem> {
    let index = index(&app)?;
    let r = index.resolve(as_of(&q, &index)?);
    let rows = tenure_projections::reports::event_lag(&app.store, r)?;
    Ok(reply(answers::lag(r, &rows)))
}

#[utoipa::path(
    operation_id = "report_access",
    get,
    path = "/v1/reports/access",
    tag = "Reports",
    description = "Access review of a resource: holders, how, since when, granted by whom, the latest review; revoke decisions carried out or not (tenure report access --json).",
    params(("resource" = String, Query, description = "The resource reviewed"), ("at" = Option<String>, Query, description = "A time (default now)"), ("as_of" = Option<String>, Query, description = "A position or a record time")),
    responses((status = 200, description = "The report"), (status = 400, description = "A bad parameter"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn report_access(State(app): State<Arc<App>>, _a: Auditor, Query(q): Params) -> Result<Response, Problem> {
    let index = index(&app)?;
    let resource = q.get("resource").filter(|r| !r.is_empty()).ok_or_else(|| bad("resource: required"))?;
    let (at, r) = (time(&q, "at")?.unwrap_or_else(Timestamp::now), as_of(&q, &index)?);
    let review = index.access_review(resource, at, r, &app.store)?;
    Ok(reply(answers::access_review(&review)))
}

#[utoipa::path(
    operation_id = "report_sod",
    get,
    path = "/v1/reports/sod",
    tag = "Reports",
    description = "Separation of duties over history: every interval in which someone held all of a set of entitlements (tenure report sod --json, for one rule).",
    params(("entitlements" = String, Query, description = "Two or more RESOURCE#PERMISSION, comma-separated"), ("from" = Option<String>, Query, description = "Overlaps that reach past this time"), ("to" = Option<String>, Query, description = "Overlaps that begin before this time"), ("as_of" = Option<String>, Query, description = "A position or a record time")),
    responses((status = 200, description = "The report"), (status = 400, description = "A bad parameter"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn report_sod(State(app): State<Arc<App>>, _a: Auditor, Query(q): Params) -> Result<Response, Problem> {
    let index = index(&app)?;
    let r = as_of(&q, &index)?;
    let text = q.get("entitlements").ok_or_else(|| bad("entitlements: required (two or more RESOURCE#PERMISSION)"))?;
    let entitlements = text
        .split(',')
        .map(|e| {
            tenure_engine::Entitlement::parse_short(e.trim())
                .ok_or_else(|| bad(format!("entitlements: '{e}' is not RESOURCE#PERMISSION")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if entitlements.len() < 2 {
        return Err(bad("entitlements: give two or more"));
    }
    let window = window(&q)?;
    let rule = tenure_projections::reports::Rule { name: text.clone(), entitlements };
    let report = index.sod(&[rule], window, r)?;
    Ok(reply(answers::sod(&report)))
}

#[utoipa::path(
    operation_id = "report_anomalies",
    get,
    path = "/v1/reports/anomalies",
    tag = "Reports",
    description = "The anomalies counted by kind and source, each with its event's details (tenure report anomalies --json).",
    params(("from" = Option<String>, Query, description = "Events effective at or after this time"), ("to" = Option<String>, Query, description = "Events effective before this time"), ("as_of" = Option<String>, Query, description = "A position or a record time")),
    responses((status = 200, description = "The report"), (status = 400, description = "A bad parameter"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn report_anomalies(State(app): State<Arc<App>>, _a: Auditor, Query(q): Params) -> Result<Response, Problem> {
    let index = index(&app)?;
    let r = as_of(&q, &index)?;
    let window = window(&q)?;
    let report = index.anomalies_report(window, r, &app.store)?;
    Ok(reply(answers::anomalies_report(&report)))
}

#[utoipa::path(
    operation_id = "report_reconcile",
    post,
    path = "/v1/reports/reconcile",
    tag = "Reports",
    description = "Reconciliation against a directory snapshot posted as a SCIM ListResponse of Users and/or Groups (or an array of them): the drift rows and the corrections (tenure reconcile --json, corrections as JSON lines).",
    params(("at" = Option<String>, Query, description = "When the snapshot was taken (default now)"), ("as_of" = Option<String>, Query, description = "A position or a record time"), ("include_services" = Option<bool>, Query, description = "Compare service identities too"), ("dormant_after" = Option<String>, Query, description = "A duration such as 90d (default 90d)")),
    responses((status = 200, description = "The report"), (status = 400, description = "A bad parameter or snapshot"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)"), (status = 403, description = "Not an audit token")),
    security(("bearer" = []))
)]
pub async fn report_reconcile(
    State(app): State<Arc<App>>,
    _a: Auditor,
    Query(q): Params,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let mut reader = crate::snapshot::Snapshot::default();
    reader.read_json("the snapshot", &body[..]).map_err(bad)?;
    let users = reader.finish();
    let index = index(&app)?;
    let (at, r) = (time(&q, "at")?.unwrap_or_else(Timestamp::now), as_of(&q, &index)?);
    let services = q.get("include_services").is_some_and(|v| v == "true" || v == "1");
    let report = index.reconcile(&users, at, r, services, duration(&q, "dormant_after", 90)?)?;
    Ok(reply(answers::reconcile(&report)))
}
