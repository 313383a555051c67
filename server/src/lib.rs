//! `tenure serve`: a SCIM 2.0 provisioning target (RFC 7643 / 7644) whose every write is
//! an event of the Tenure log, durable before the response. The only crate that knows
//! HTTP or SCIM; the engine knows neither.
//!
//! Map: [`auth`] (bearer tokens), [`error`] (SCIM error bodies), [`filter`] (the filter
//! grammar), [`model`] (SCIM users as identity attributes), [`directory`] (the projection
//! GETs read), `users` (the `/Users` handlers), `discovery` (the three discovery
//! endpoints), and here the router, the middleware and [`serve`].

mod audit;
pub mod auth;
pub mod directory;
mod discovery;
pub mod error;
mod events;
pub mod filter;
mod groups;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod outbound;
mod patch;
pub mod snapshot;
mod users;
pub mod webhooks;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use error::ScimError;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tenure_engine::Store;

pub use auth::{parse_tokens, Deactivate, Scope, Token};
pub use events::{decode_records, CHAIN_HEADER, MAX_LIMIT as MAX_EVENTS_LIMIT, RECORDS_MEDIA_TYPE};
pub use users::MAX_COUNT;

/// Bodies larger than this are refused with 413. A request is kept whole as its first
/// event's `raw`, and an event of the interchange form is at most 64 KiB
/// (`tenure_engine::json::MAX_EVENT_JSON_BYTES`), so that `tenure log` re-ingests; the
/// bodies Okta and Entra ID send are a few KiB.
pub const MAX_BODY: usize = 48 * 1024;
/// A request that takes longer than this is answered 503 (nothing half-done is acknowledged:
/// an append either completed before the answer or is not acknowledged).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests handled at once; more wait.
pub const MAX_CONCURRENT: usize = 256;

/// What the handlers share.
pub struct App {
    pub store: Store,
    pub directory: RwLock<directory::Directory>,
    /// The access index the audit API asks, kept at the log's head: opened from its file
    /// and the log at start, then each committed event applied (after the directory's).
    pub index: RwLock<tenure_projections::AccessIndex>,
    /// The index file is rewritten (off the request path, see [`App::compact_index`]) when
    /// this many events were applied since it; [`tenure_projections::REWRITE_AFTER`]
    /// unless a test sets less.
    pub index_rewrite_after: std::sync::atomic::AtomicU64,
    /// The writes of one resource are serialised (a write holds its resource's lock from
    /// its read of the directory to the fold of its events, after they are durable);
    /// writes of different resources run at once and share the store's syncs. Striped:
    /// a resource's key picks one of these.
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Names (userNames, group display names) that writes in flight are taking: the
    /// uniqueness check across resources.
    reserved: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Set when the server starts stopping: the event streams end then, so that a graceful
    /// stop does not wait for a follower that never disconnects.
    closing: tokio::sync::watch::Sender<bool>,
    pub tokens: Vec<Token>,
    /// `http://HOST:PORT/scim/v2`, for `meta.location`.
    pub base: String,
    /// The directory-sync webhook endpoint's secrets and settings; `None`: not served.
    pub webhooks: Option<webhooks::Config>,
    /// What `GET /metrics` answers.
    pub metrics: metrics::Metrics,
    /// What the webhook endpoint remembers (the deliveries recorded).
    pub memory: std::sync::Mutex<webhooks::Memory>,
}

impl App {
    /// Opens the store as its writer and folds the directory from the whole log.
    pub fn open(store: Store, tokens: Vec<Token>, base: String) -> Result<App, tenure_projections::ProjectionError> {
        App::open_with(store, tokens, base, None)
    }

    /// [`App::open`], serving the directory-sync webhook endpoint with `webhooks`.
    pub fn open_with(
        store: Store,
        tokens: Vec<Token>,
        base: String,
        webhooks: Option<webhooks::Config>,
    ) -> Result<App, tenure_projections::ProjectionError> {
        let mut dir = directory::Directory::default();
        let mut memory = webhooks::Memory::default();
        store.scan(tenure_engine::Position(1), store.head(), |e| {
            dir.apply(&e);
            if let Some(w) = &webhooks {
                memory.apply(&w.source, &e);
            }
            std::ops::ControlFlow::Continue(())
        })?;
        settle(&store, &mut dir)?;
        let path = store.dir().join(tenure_projections::ACCESS_INDEX_FILE);
        let index = tenure_projections::open_access_index(&store, &path)?;
        let stripes = (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect();
        let closing = tokio::sync::watch::Sender::new(false);
        Ok(App {
            store,
            directory: RwLock::new(dir),
            index: RwLock::new(index),
            index_rewrite_after: std::sync::atomic::AtomicU64::new(tenure_projections::REWRITE_AFTER),
            stripes,
            reserved: Default::default(),
            closing,
            tokens,
            base,
            webhooks,
            metrics: Default::default(),
            memory: std::sync::Mutex::new(memory),
        })
    }

    /// Rewrites the access index file when [`App::index_rewrite_after`] events or more
    /// were applied since it, without holding up requests: a second index is opened
    /// from the file and the log, written and mapped ([`tenure_projections::rewrite_access_index`],
    /// which takes no lock of this server; a file another process wrote since is only
    /// mapped), brought up to the head of the one the API
    /// asks (outside its lock, then the last few events under it: the writes wait only
    /// for those), and put in its place. Until then the API answers from the old one.
    /// So the server's memory holds a short tail of events, and every other process
    /// (`tenure who` beside the server) maps a recent file instead of rewriting it
    /// itself. Returns the head of the file, none when nothing was due or swapped.
    pub fn compact_index(&self) -> Result<Option<u64>, tenure_projections::ProjectionError> {
        use std::sync::atomic::Ordering;
        let due = self.index_rewrite_after.load(Ordering::Relaxed).max(1);
        let poisoned = || tenure_projections::ProjectionError::Engine(tenure_engine::Error::Closed);
        if self.index.read().map_err(|_| poisoned())?.tail_len() < due {
            return Ok(None);
        }
        let path = self.store.dir().join(tenure_projections::ACCESS_INDEX_FILE);
        let mut notes = Vec::new();
        let mut fresh = tenure_projections::rewrite_access_index(&self.store, &path, due, &mut |n| notes.push(n))?;
        for note in notes {
            tracing::warn!("{note}");
        }
        if fresh.tail_len() >= due {
            // Rebuilt from the log (the file did not read back) and not written: swapping
            // it in would gain nothing, and doing it again at once would cost as much.
            let reason = format!("{}: not written", path.display());
            return Err(tenure_projections::WriteError::Io(std::io::Error::other(reason)).into());
        }
        let file_head = fresh.head().get() - fresh.tail_len();
        // Catch up outside the lock to the head the API's index reached, then swap under
        // it once no event the new one holds is still to be applied to the old one (a
        // commit applies its events to the old one after they are durable). Should that
        // not happen within seconds (a commit that failed after its events were durable
        // leaves them to the next one), the swap waits for the next round: the file is
        // written either way.
        let give_up = Instant::now() + Duration::from_secs(5);
        loop {
            let target = self.index.read().map_err(|_| poisoned())?.head();
            if fresh.head() < target {
                tenure_projections::replay(&self.store, fresh.head().next(), target, |e| fresh.apply(e))?;
            }
            let mut index = self.index.write().map_err(|_| poisoned())?;
            if fresh.head() <= index.head() {
                let target = index.head();
                tenure_projections::replay(&self.store, fresh.head().next(), target, |e| fresh.apply(e))?;
                *index = fresh;
                return Ok(Some(file_head));
            }
            drop(index);
            if Instant::now() > give_up {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The directory, for reading.
    pub(crate) fn dir(&self) -> Result<std::sync::RwLockReadGuard<'_, directory::Directory>, ScimError> {
        self.directory.read().map_err(|_| ScimError::internal("directory lock poisoned"))
    }

    /// Resolves when the server starts stopping.
    pub(crate) fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    fn stripe(&self, key: &str) -> usize {
        use std::hash::Hasher;
        let mut h = std::hash::DefaultHasher::new();
        h.write(key.as_bytes());
        (h.finish() % self.stripes.len() as u64) as usize
    }

    /// The lock of the resource `key` (`u:ID`, `g:ID`; a create locks the id it will take).
    pub(crate) async fn lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        self.stripes[self.stripe(key)].lock().await
    }

    /// The locks of several resources, taken in one order (no two writers wait on each
    /// other), each stripe once.
    pub(crate) async fn lock_all(&self, keys: &[String]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = keys.iter().map(|k| self.stripe(k)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for i in stripes {
            guards.push(self.stripes[i].lock().await);
        }
        guards
    }

    /// Reserves `name` (lower-cased by the caller) for a write in flight, until the
    /// reservation is dropped; a name another write is taking is a 409 `uniqueness`.
    pub(crate) fn reserve(&self, name: String) -> Result<Reservation<'_>, ScimError> {
        let mut reserved = self.reserved.lock().map_err(|_| ScimError::internal("reservation lock poisoned"))?;
        if !reserved.insert(name.clone()) {
            return Err(ScimError::uniqueness(format!("'{name}' is being taken by another request")));
        }
        Ok(Reservation { app: self, name })
    }
}

const STRIPES: usize = 4096;

/// Folds again, in effective order, the entries of the subjects that events reached late
/// (see [`directory::Directory::refold`]).
pub(crate) fn settle(store: &Store, dir: &mut directory::Directory) -> Result<(), tenure_engine::Error> {
    for subject in std::mem::take(&mut dir.late) {
        let events = store.read_subject(&subject, tenure_engine::Position(1))?;
        dir.refold(&subject, events);
    }
    Ok(())
}

/// A name held by a write in flight (see [`App::reserve`]).
pub(crate) struct Reservation<'a> {
    app: &'a App,
    name: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Ok(mut reserved) = self.app.reserved.lock() {
            reserved.remove(&self.name);
        }
    }
}

/// The token a request came with: its name is the events' `actor`, its source their `source`.
pub struct Caller {
    pub name: String,
    pub source: String,
    /// The request's method and path with its query, for the events' `raw`.
    pub method: String,
    pub target: String,
    pub deactivate: auth::Deactivate,
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).map(|v| v.as_bytes());
        match auth::check(&app.tokens, header) {
            Some(t) if t.scope == auth::Scope::Audit => {
                let mut e = ScimError::internal("an audit token is read-only: it may not use the SCIM endpoints");
                e.status = axum::http::StatusCode::FORBIDDEN;
                Err(e)
            }
            Some(t) => Ok(Caller {
                name: t.name.clone(),
                source: t.source.clone(),
                deactivate: t.deactivate,
                method: parts.method.to_string(),
                // The URI as the client sent it (a nested router sees it without its prefix).
                target: {
                    let uri = parts.extensions.get::<axum::extract::OriginalUri>().map_or(&parts.uri, |o| &o.0);
                    uri.path_and_query().map_or_else(|| uri.path().to_string(), |p| p.to_string())
                },
            }),
            None => Err(ScimError::unauthorized()),
        }
    }
}

/// Any token of the server's, provisioning or audit (the events API, the metrics).
pub struct Reader;

impl FromRequestParts<Arc<App>> for Reader {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).map(|v| v.as_bytes());
        auth::check(&app.tokens, header).map(|_| Reader).ok_or_else(ScimError::unauthorized)
    }
}

tokio::task_local! {
    /// The positions a request appended (first, last), for its log line.
    static APPENDED: std::cell::Cell<Option<(u64, u64)>>;
}

/// Notes the positions a request appended, for its log line.
pub(crate) fn note_appended(first: u64, last: u64) {
    let _ = APPENDED.try_with(|cell| {
        let (from, _) = cell.get().unwrap_or((first, last));
        cell.set(Some((from.min(first), last)));
    });
}

/// One log line per request: method, path, status, latency, the positions it appended.
/// Never a header, a query or a body (a filter may name a person).
async fn log_request(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_string());
    let started = Instant::now();
    APPENDED
        .scope(std::cell::Cell::new(None), async move {
            let response = next.run(request).await;
            let labels = metrics::RequestLabels {
                method: method.to_string(),
                route: route.unwrap_or_else(|| "unmatched".into()),
                status: response.status().as_u16(),
            };
            app.metrics.requests.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
            let appended = APPENDED.with(|c| c.get()).map(|(a, b)| format!("{a}..{b}"));
            tracing::info!(
                %method,
                path,
                status = response.status().as_u16(),
                micros = started.elapsed().as_micros() as u64,
                appended = appended.as_deref().unwrap_or("-"),
                "request"
            );
            response
        })
        .await
}

/// `GET /metrics` (any bearer token of the server's).
#[utoipa::path(
    operation_id = "metrics_endpoint",
    get,
    path = "/metrics",
    tag = "Metrics",
    description = "Sync health in the Prometheus text format.",
    responses((status = 200, description = "The metrics"), (status = 401, description = "No or a wrong bearer token")),
    security(("bearer" = []))
)]
async fn metrics_endpoint(axum::extract::State(app): axum::extract::State<Arc<App>>, _reader: Reader) -> Response {
    app.metrics.head.set(i64::try_from(app.store.head().get()).unwrap_or(i64::MAX));
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        app.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ScimError {
    ScimError::not_found("no such endpoint")
}

/// Errors of the layers (body too large, timeout, overload) as SCIM error bodies.
async fn scim_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let detail = match status.as_u16() {
            413 => format!("the body is larger than {MAX_BODY} bytes"),
            408 | 503 => "the request took too long or the server is overloaded; nothing was acknowledged".into(),
            405 => "this method is not supported here".into(),
            415 => "the body must be application/scim+json or application/json".into(),
            _ => status.canonical_reason().unwrap_or("error").to_string(),
        };
        let mut e = ScimError::internal(detail);
        e.status = status;
        return e.into_response();
    }
    response
}

/// The SCIM router, for [`serve`] and for in-process tests.
pub fn router(app: Arc<App>) -> Router {
    let scim = Router::new()
        .route("/ServiceProviderConfig", get(discovery::service_provider_config))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{name}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route("/Users", get(users::list).post(users::create))
        .route("/Users/{id}", get(users::get).put(users::replace).patch(users::patch).delete(users::delete))
        .route("/Groups", get(groups::list).post(groups::create))
        .route("/.search", axum::routing::post(users::search_all))
        .route("/Users/.search", axum::routing::post(users::search))
        .route("/Groups/.search", axum::routing::post(groups::search))
        .route("/Groups/{id}", get(groups::get).put(groups::replace).patch(groups::patch).delete(groups::delete));
    Router::new()
        .nest("/scim/v2", scim)
        .route("/events", get(events::list))
        .route("/events/stream", get(events::stream))
        .route("/webhooks/directory-sync", axum::routing::post(webhooks::receive))
        .route("/metrics", get(metrics_endpoint))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/access/{identity}", get(audit::access))
        .route("/v1/holders", get(audit::holders))
        .route("/v1/timeline/{identity}", get(audit::timeline))
        .route("/v1/profile/{identity}", get(audit::profile))
        .route("/v1/diff", get(audit::diff))
        .route("/v1/anomalies", get(audit::anomalies))
        .route("/v1/verify", get(audit::verify))
        .route("/v1/reports/leavers", get(audit::report_leavers))
        .route("/v1/reports/nhi", get(audit::report_nhi))
        .route("/v1/reports/lag", get(audit::report_lag))
        .route("/v1/reports/access", get(audit::report_access))
        .route("/v1/reports/sod", get(audit::report_sod))
        .route("/v1/reports/anomalies", get(audit::report_anomalies))
        .route("/v1/reports/reconcile", axum::routing::post(audit::report_reconcile))
        .fallback(not_found)
        .with_state(app.clone())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        // Refuses a declared Content-Length over the limit at once, before reading it.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(MAX_CONCURRENT))
        .layer(axum::middleware::from_fn(scim_errors))
        .layer(axum::middleware::from_fn_with_state(app, log_request))
}

/// Serves until `shutdown` resolves, then answers the requests in flight and returns
/// (the store is closed when `app` is dropped, after every acknowledged append).
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "serving SCIM 2.0 under /scim/v2");
    let stopping = app.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.closing.send_replace(true);
    };
    let compactor = std::thread::Builder::new().name("index-compactor".into()).spawn({
        let app = app.clone();
        move || compact_while_serving(&app)
    })?;
    let served = axum::serve(listener, router(app.clone())).with_graceful_shutdown(shutdown).await;
    // A rewrite under way finishes (its file is renamed into place whole) before the
    // caller closes the store.
    app.closing.send_replace(true);
    let _ = tokio::task::spawn_blocking(move || compactor.join()).await;
    served
}

/// How often the server looks whether the access index file is due for a rewrite.
const COMPACT_EVERY: Duration = Duration::from_secs(2);

/// The compactor thread of [`serve`]: [`App::compact_index`] every [`COMPACT_EVERY`]
/// until the server stops. A failure is logged and tried again later (the index in
/// memory stays right: only the file is older).
fn compact_while_serving(app: &App) {
    let mut rx = app.closing.subscribe();
    let mut failures = 0u32;
    loop {
        // After a failure (a full disk), less often: 4 s, 8 s, ... up to about 4 minutes.
        let wait = COMPACT_EVERY * 2u32.pow(failures.min(7));
        let mut waited = Duration::ZERO;
        while waited < wait {
            if *rx.borrow_and_update() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
            waited += Duration::from_millis(100);
        }
        let started = Instant::now();
        let outcome = app.compact_index();
        if let Ok(index) = app.index.read() {
            app.metrics.index_tail.set(index.tail_len() as i64);
        }
        match outcome {
            Ok(Some(head)) => {
                failures = 0;
                app.metrics.index_rewrites.get_or_create(&metrics::OutcomeLabels { outcome: "written" }).inc();
                tracing::info!(
                    head,
                    seconds = started.elapsed().as_secs_f64(),
                    "access index file rewritten; the audit API's index swapped to it"
                )
            }
            Ok(None) => {}
            Err(e) => {
                failures += 1;
                app.metrics.index_rewrites.get_or_create(&metrics::OutcomeLabels { outcome: "failed" }).inc();
                tracing::warn!(error = %e, "access index file not rewritten; tried again later")
            }
        }
    }
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: answering the requests in flight");
}
