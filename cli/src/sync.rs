//! `tenure sync`: directory sync from the command line.

use crate::{CliError, FollowArgs, SyncAction};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use tenure_engine::{Event, Position, Store};
use tenure_server::webhooks;

pub fn run(data: &Path, follow: FollowArgs, action: Option<SyncAction>, out: &mut dyn Write) -> Result<i32, CliError> {
    match action {
        None if follow.format == "workos" => follow_workos(data, &follow, out),
        None => follow_api(data, &follow, out),
        Some(SyncAction::Status { json }) => status(data, json, out),
        Some(SyncAction::VerifyDelivery { position, webhook_secret_file, json }) => {
            let secrets = crate::serve::load_secrets(webhook_secret_file.as_deref())?;
            if secrets.is_empty() {
                return Err(CliError::input("no secret: give --webhook-secret-file F or set TENURE_WEBHOOK_SECRET"));
            }
            let store = crate::commands::open_existing(data)?;
            verify_delivery(&store, position, &secrets, json, out)
        }
    }
}

/// The first event of the delivery the event at `position` came from: the one keeping
/// the delivery (`raw`); the others of its delivery share its key's prefix (`ID:0`,
/// `ID:1`, ...) and were appended with it, in one batch.
fn delivery_of(store: &Store, position: u64) -> Result<Event, CliError> {
    let head = store.head().get();
    if position == 0 || position > head {
        return Err(CliError::input(format!("position {position}: the log's positions are 1 to {head}")));
    }
    let event = store.read(Position(position))?;
    let not_a_delivery = || CliError::input(format!("position {position}: not an event of a webhook delivery"));
    let key = event.source_event_id.clone().ok_or_else(not_a_delivery)?;
    let (id, index) = key.rsplit_once(':').ok_or_else(not_a_delivery)?;
    let index: u64 = index.parse().map_err(|_| not_a_delivery())?;
    let first = if index == 0 { event.clone() } else { store.read(Position(position.saturating_sub(index).max(1)))? };
    let same = first.source == event.source && first.source_event_id.as_deref() == Some(&format!("{id}:0"));
    if !same || first.raw.as_ref().and_then(|r| r.get("signature")).is_none() {
        return Err(not_a_delivery());
    }
    Ok(first)
}

fn verify_delivery(
    store: &Store,
    position: u64,
    secrets: &[webhooks::Secret],
    as_json: bool,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let first = delivery_of(store, position)?;
    let raw = first.raw.as_ref().ok_or_else(|| CliError::input("the delivery keeps no raw body"))?;
    let body = raw["body"].as_str().ok_or_else(|| CliError::input("the delivery's raw body is not text"))?;
    let header = raw["signature"].as_str().unwrap_or_default();
    let key = first.source_event_id.clone().unwrap_or_default();
    let delivery = key.trim_end_matches(":0").to_string();
    let (verified, detail, signed_at) = match webhooks::parse_signature(header.as_bytes()) {
        Err(e) => (Err(()), e.to_string(), None),
        Ok(sig) => {
            let at = tenure_engine::Timestamp::from_micros(sig.millis.saturating_mul(1000)).to_rfc3339();
            match webhooks::check_signature(secrets, &sig, body.as_bytes()) {
                Ok(i) => (Ok(i), format!("signed at {at} with secret {} of {}", i + 1, secrets.len()), Some(at)),
                Err(e) => (Err(()), e.to_string(), Some(at)),
            }
        }
    };
    if as_json {
        let answer = json!({
            "position": position,
            "delivery": delivery,
            "delivery_position": first.position.get(),
            "source": first.source,
            "signed_at": signed_at,
            "verified": verified.is_ok(),
            "secret": verified.ok().map(|i| i + 1),
            "detail": detail,
        });
        writeln!(out, "{answer}")?;
    } else {
        let verdict = if verified.is_ok() { "verified" } else { "NOT VERIFIED" };
        writeln!(
            out,
            "position {position}: delivery {delivery} (kept at position {}, {} bytes): {verdict}: {detail}",
            first.position,
            body.len()
        )?;
    }
    Ok(if verified.is_ok() { 0 } else { 3 })
}

/// Why a page was not had.
enum Ask {
    /// Worth asking again (a 429 or 5xx, a refused connection, a cut or garbled body),
    /// after the wait the server named, if it did.
    Again { wait: Option<Duration>, why: String },
    /// Not worth asking again (any other 4xx, a page that is not Tenure's events): the
    /// error to report.
    Stop(String),
}

/// A page as the events API writes it in JSON, read straight into events.
#[derive(serde::Deserialize)]
struct JsonPage {
    data: Vec<Event>,
}

/// A page of another Tenure's events, in either form.
struct Page {
    events: Vec<Event>,
    /// The source's chain hash after the page's last event (the records form says it).
    chain: Option<String>,
}

/// Why a page that is JSON is not a page of Tenure events, for the error.
fn diagnose(text: &str, url: &str) -> String {
    let page: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let Some(items) = page["data"].as_array() else { return format!("{url}: a page with no data list") };
    for (i, item) in items.iter().enumerate() {
        if item.get("event").and_then(|e| e.as_str()).is_some_and(|e| e.starts_with("dsync.")) {
            return format!(
                "{url}: item {i} is a directory-sync event ({}): this is a WorkOS events API; follow it with \
                 --format workos",
                item["event"]
            );
        }
        if let Err(e) = serde_json::from_value::<Event>(item.clone()) {
            return format!("{url}: item {i} of the page is not a Tenure event: {e}");
        }
    }
    format!("{url}: not a page of Tenure events")
}

/// A body had whole, with what its headers said of it.
struct Body {
    bytes: Vec<u8>,
    /// The media type, without parameters.
    media_type: String,
    /// A records page's `Tenure-Chain`.
    chain: Option<String>,
}

/// One GET of `target` (asking for `accept` when given): the body, or why not.
fn get_body(agent: &ureq::Agent, target: &str, token: Option<&str>, accept: Option<&str>) -> Result<Body, Ask> {
    let mut request = agent.get(target);
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    if let Some(accept) = accept {
        request = request.set("Accept", accept);
    }
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let wait = r.header("retry-after").and_then(|v| v.trim().parse::<f64>().ok()).map(Duration::from_secs_f64);
            let body: String = r.into_string().unwrap_or_default().chars().take(300).collect();
            let why = format!("GET {target}: {code}: {}", body.trim());
            return Err(if code == 429 || code >= 500 { Ask::Again { wait, why } } else { Ask::Stop(why) });
        }
        Err(e) => return Err(Ask::Again { wait: None, why: format!("GET {target}: {e}") }),
    };
    let media_type = response.content_type().trim().to_ascii_lowercase();
    let chain = response.header(tenure_server::CHAIN_HEADER).map(str::to_string);
    let mut bytes = Vec::new();
    let mut reader = response.into_reader();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut reader, 64 << 20), &mut bytes)
        .map_err(|e| Ask::Again { wait: None, why: format!("GET {target}: reading: {e}") })?;
    Ok(Body { bytes, media_type, chain })
}

/// One GET of `target`: the body as text, or why not.
fn get_text(agent: &ureq::Agent, target: &str, token: Option<&str>) -> Result<String, Ask> {
    let body = get_body(agent, target, token, None)?;
    String::from_utf8(body.bytes).map_err(|_| Ask::Again { wait: None, why: format!("GET {target}: not UTF-8 text") })
}

/// A JSON error of a body read whole: cut short or garbled on the way (ask again), or
/// JSON of another shape (`None`).
fn garbled(target: &str, e: &serde_json::Error) -> Option<Ask> {
    (e.is_eof() || e.is_syntax())
        .then(|| Ask::Again { wait: None, why: format!("GET {target}: not a whole page: {e}") })
}

/// One page of a Tenure events API after `after`: in the records form when the server
/// offers it (a Tenure does), else in JSON.
fn ask(agent: &ureq::Agent, url: &str, after: u64, limit: usize, token: Option<&str>) -> Result<Page, Ask> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let target = format!("{url}{sep}after={after}&limit={limit}");
    let accept = format!("{}, application/json;q=0.5", tenure_server::RECORDS_MEDIA_TYPE);
    let body = get_body(agent, &target, token, Some(&accept))?;
    if body.media_type == tenure_server::RECORDS_MEDIA_TYPE {
        // A records page that does not decode was cut or garbled on the way: the server
        // wrote whole records.
        let events = tenure_server::decode_records(&body.bytes)
            .map_err(|why| Ask::Again { wait: None, why: format!("GET {target}: not a whole page: {why}") })?;
        return Ok(Page { events, chain: body.chain });
    }
    let text = String::from_utf8_lossy(&body.bytes);
    match serde_json::from_str::<JsonPage>(&text) {
        Ok(page) => Ok(Page { events: page.data, chain: None }),
        Err(e) => Err(garbled(&target, &e).unwrap_or_else(|| Ask::Stop(diagnose(&text, url)))),
    }
}

/// The wait before ask number `n` (from 1) after a failure: exponential from 0.2 s, at
/// most 30 s, with jitter (half to all of it), so that followers restarted together do
/// not ask together.
fn backoff(n: u32, rng: &mut u64) -> Duration {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let full = (0.2 * 2f64.powi(n.saturating_sub(1).min(16) as i32)).min(30.0);
    let share = 0.5 + (*rng % 1000) as f64 / 2000.0;
    Duration::from_secs_f64(full * share)
}

/// The events of a page that this store does not hold yet. Those it holds (a page asked
/// again, a source that repeats itself) must be the very events it holds.
fn fresh_events(store: &Store, page: Vec<Event>, url: &str) -> Result<Vec<Event>, CliError> {
    let head = store.head().get();
    let mut fresh = Vec::with_capacity(page.len());
    for e in page {
        if e.position.get() <= head {
            let mine = store.read(e.position)?;
            if mine.id != e.id {
                return Err(CliError::failure(format!(
                    "{url}: position {} holds another event here ({} there, {} here): this store does not follow that log",
                    e.position, e.id, mine.id
                )));
            }
            continue;
        }
        fresh.push(e);
    }
    Ok(fresh)
}

/// What the asking thread hands the appending one.
enum Fetched {
    Page(Page),
    /// Caught up (without --follow): the end.
    CaughtUp,
    Failed(String),
}

/// Asks for pages after `after`, one after another, retrying what is worth retrying, and
/// hands them on; stops when caught up (unless following), on an error, or when the
/// receiver is gone.
fn fetch(args: &FollowArgs, url: &str, token: Option<&str>, mut after: u64, tx: &std::sync::mpsc::SyncSender<Fetched>) {
    let agent =
        ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout_read(Duration::from_secs(60)).build();
    let mut rng = (tenure_engine::Timestamp::now().as_micros() as u64) | 1;
    let mut failures = 0u32;
    loop {
        let message = match ask(&agent, url, after, args.limit, token) {
            Err(Ask::Stop(why)) => Fetched::Failed(why),
            Err(Ask::Again { wait, why }) => {
                failures += 1;
                if failures > args.max_retries {
                    Fetched::Failed(format!("giving up after {failures} failed asks; the last: {why}"))
                } else {
                    let wait = wait.unwrap_or_else(|| backoff(failures, &mut rng)).min(Duration::from_secs(300));
                    eprintln!("{why}; asking again in {:.1} s", wait.as_secs_f64());
                    std::thread::sleep(wait);
                    continue;
                }
            }
            Ok(page) if page.events.is_empty() => {
                failures = 0;
                if args.follow {
                    std::thread::sleep(Duration::from_secs_f64(args.interval));
                    continue;
                }
                Fetched::CaughtUp
            }
            Ok(page) => {
                failures = 0;
                after = after.max(page.events.iter().map(|e| e.position.get()).max().unwrap_or(after));
                Fetched::Page(page)
            }
        };
        let last = !matches!(message, Fetched::Page(_));
        if tx.send(message).is_err() || last {
            return;
        }
    }
}

/// `tenure sync --from URL`: follows another Tenure's events API; each page is one
/// replicated batch, and the cursor is the head. One thread asks for the next page while
/// the other appends the last.
fn follow_api(data: &Path, args: &FollowArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let url = args
        .from
        .clone()
        .ok_or_else(|| CliError::input("give --from URL (the events API to follow) or a subcommand (see --help)"))?;
    if !(1..=tenure_server::MAX_EVENTS_LIMIT).contains(&args.limit) {
        return Err(CliError::input(format!("--limit: from 1 to {}", tenure_server::MAX_EVENTS_LIMIT)));
    }
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(CliError::input("--interval: a positive number of seconds"));
    }
    let token = std::env::var("TENURE_SYNC_TOKEN").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    crate::commands::refuse_a_file(data)?;
    let store = Store::open(data)?;
    let (started, from) = (Instant::now(), store.head().get());
    let (tx, rx) = std::sync::mpsc::sync_channel(2);
    let (asker, asked_url) = (args.clone(), url.clone());
    std::thread::Builder::new()
        .name("tenure-sync-ask".into())
        .spawn(move || fetch(&asker, &asked_url, token.as_deref(), from, &tx))
        .map_err(|e| CliError::failure(format!("starting the asking thread: {e}")))?;
    // One batch is in flight (written and synced by the engine's threads) while the next
    // page is asked for, read and decoded; a page that repeats positions in flight waits
    // for them first.
    let mut in_flight: Option<(tenure_engine::Replicating, Option<String>)> = None;
    let mut handed = from;
    // On an error the asking thread, left behind, ends with the process.
    loop {
        match rx.recv() {
            Ok(Fetched::CaughtUp) => break,
            Ok(Fetched::Failed(why)) => {
                settle(&store, in_flight.take(), &url)?;
                return Err(CliError::failure(why));
            }
            Err(_) => return Err(CliError::failure("the asking thread stopped")),
            Ok(Fetched::Page(Page { events, chain })) => {
                if events.first().is_some_and(|e| e.position.get() <= handed) {
                    settle(&store, in_flight.take(), &url)?;
                }
                let events = fresh_events(&store, events, &url)?;
                let Some(last) = events.last().map(|e| e.position.get()) else { continue };
                // The batch before is checked first, so that nothing is written after a
                // page whose chain is not the source's.
                settle(&store, in_flight.take(), &url)?;
                in_flight = Some((store.replicate_start(events).map_err(|e| refused(e, &url))?, chain));
                handed = last;
            }
        }
    }
    settle(&store, in_flight.take(), &url)?;
    let (head, hash) = (store.head().get(), store.head_hash());
    store.close();
    let secs = started.elapsed().as_secs_f64();
    writeln!(
        out,
        "caught up with {url} at position {head} (chain {hash}): {} events appended in {secs:.1} s",
        head - from
    )?;
    Ok(0)
}

/// A replicated batch's refusal, said for the follower.
fn refused(e: tenure_engine::Error, url: &str) -> CliError {
    match e {
        tenure_engine::Error::Conflict { expected, actual } => CliError::failure(format!(
            "{url}: the page starts after position {expected}, this store's head is {actual}: \
             the source skipped events"
        )),
        other => other.into(),
    }
}

/// Waits for a batch in flight to be on the device, and checks the replica's chain after
/// it against the source's, when the page said it (the records form does): a different
/// chain means this store does not hold the source's log.
fn settle(
    store: &Store,
    batch: Option<(tenure_engine::Replicating, Option<String>)>,
    url: &str,
) -> Result<(), CliError> {
    let Some((batch, chain)) = batch else { return Ok(()) };
    let last = batch.wait().map_err(|e| refused(e, url))?;
    if let Some(theirs) = chain {
        let mine = store.chain_hash_at(last)?;
        if !mine.eq_ignore_ascii_case(theirs.trim()) {
            return Err(CliError::failure(format!(
                "{url}: after position {last} the chain here is {mine}, the source's is {}: \
                 this store does not hold the source's log",
                theirs.trim()
            )));
        }
    }
    Ok(())
}

/// One page of a WorkOS events API after the event `after` (from the start without one).
fn ask_workos(
    agent: &ureq::Agent,
    url: &str,
    after: Option<&str>,
    limit: usize,
    token: Option<&str>,
) -> Result<Vec<serde_json::Value>, Ask> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut target = format!("{url}{sep}limit={limit}");
    if let Some(after) = after {
        target.push_str(&format!("&after={after}"));
    }
    let text = get_text(agent, &target, token)?;
    let page: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| garbled(&target, &e).unwrap_or_else(|| Ask::Stop(e.to_string())))?;
    match page.get("data").and_then(|d| d.as_array()) {
        Some(items) => Ok(items.clone()),
        None => Err(Ask::Stop(format!("GET {target}: a page with no data list"))),
    }
}

/// The file of the events a consumer could not apply, with their errors.
pub fn failed_path(data: &Path, source: &str) -> std::path::PathBuf {
    data.join("sync").join(format!("failed-{source}.jsonl"))
}

fn read_failed(path: &Path) -> Result<Vec<serde_json::Value>, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| CliError::failure(format!("{}:{}: {e}", path.display(), i + 1)))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(CliError::failure(format!("{}: {e}", path.display()))),
    }
}

/// Writes the failed events (synced, renamed into place; none: the file removed).
fn write_failed(path: &Path, kept: &[serde_json::Value]) -> Result<(), CliError> {
    let fail = |e: std::io::Error| CliError::failure(format!("{}: {e}", path.display()));
    if kept.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail(e)),
            _ => Ok(()),
        };
    }
    let mut text = String::new();
    for k in kept {
        text.push_str(&k.to_string());
        text.push('\n');
    }
    tenure_server::outbound::write_synced(path, text.as_bytes()).map_err(fail)
}

/// Counts of what a consumer's run did.
#[derive(Default, Debug)]
pub struct Consumed {
    stored: u64,
    events: u64,
    unchanged: u64,
    duplicates: u64,
    failed: u64,
    retried: u64,
}

/// `tenure sync --from URL --format workos`.
fn follow_workos(data: &Path, args: &FollowArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let url = args.from.clone().ok_or_else(|| CliError::input("give --from URL (the events API to follow)"))?;
    if !(1..=tenure_server::MAX_EVENTS_LIMIT).contains(&args.limit) {
        return Err(CliError::input(format!("--limit: from 1 to {}", tenure_server::MAX_EVENTS_LIMIT)));
    }
    let token = std::env::var("TENURE_SYNC_TOKEN").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    crate::commands::refuse_a_file(data)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("starting the runtime: {e}")))?;
    let store = Store::open(data)?;
    let config =
        webhooks::Config { secrets: Vec::new(), tolerance: webhooks::DEFAULT_TOLERANCE, source: args.source.clone() };
    let app = tenure_server::App::open_with(store, Vec::new(), String::new(), Some(config.clone()))?;
    let started = Instant::now();
    let mut done = Consumed::default();
    let path = failed_path(data, &args.source);
    let outcome = runtime.block_on(consume_workos(&app, &config, args, &url, token, &path, &mut done));
    app.store.close();
    let cursor = outcome?;
    let kept = read_failed(&path)?.len();
    writeln!(
        out,
        "caught up with {url} (cursor {}): {} events stored from {} of its events, {} unchanged, {} already recorded, {} failed \
         ({kept} kept in {}), {} earlier failures applied, in {:.1} s",
        cursor.as_deref().unwrap_or("none"),
        done.events,
        done.stored,
        done.unchanged,
        done.duplicates,
        done.failed,
        path.display(),
        done.retried,
        started.elapsed().as_secs_f64()
    )?;
    Ok(0)
}

/// The WorkOS consumer's loop over `app` (its own, or `tenure serve`'s): the kept failures
/// tried again, then pages after the cursor until caught up (or, following, forever).
/// Answers the cursor it ends at.
pub async fn consume_workos(
    app: &tenure_server::App,
    config: &webhooks::Config,
    args: &FollowArgs,
    url: &str,
    token: Option<String>,
    path: &Path,
    done: &mut Consumed,
) -> Result<Option<String>, CliError> {
    let apply = |item: serde_json::Value| {
        let (app, config, url) = (app, config, url);
        async move {
            let raw = serde_json::json!({"from": url, "body": item.to_string()});
            let result = webhooks::apply(app, config, &item, raw).await;
            (item, result)
        }
    };
    // Those kept as failed first: each tried again, kept while it fails.
    let mut kept = Vec::new();
    for entry in read_failed(path)? {
        let (item, result) = apply(entry["item"].clone()).await;
        match result {
            Ok(_) => {
                done.retried += 1;
                app.metrics.consumed(&config.source, "retried", None);
            }
            Err(webhooks::NotApplied::Malformed(why)) => {
                kept.push(serde_json::json!({"id": item["id"], "event": item["event"], "error": why, "item": item}))
            }
            Err(webhooks::NotApplied::Store(e)) => return Err(CliError::from(e)),
        }
    }
    write_failed(path, &kept)?;
    let mut cursor =
        args.replay_from.clone().or_else(|| app.memory.lock().ok().and_then(|m| m.last().map(str::to_string)));
    let agent =
        ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout_read(Duration::from_secs(60)).build();
    let mut rng = (tenure_engine::Timestamp::now().as_micros() as u64) | 1;
    let mut failures = 0u32;
    loop {
        let asked = {
            let (agent, url, after, token) = (agent.clone(), url.to_string(), cursor.clone(), token.clone());
            let limit = args.limit;
            tokio::task::spawn_blocking(move || ask_workos(&agent, &url, after.as_deref(), limit, token.as_deref()))
                .await
                .map_err(|e| CliError::failure(format!("the asking task: {e}")))?
        };
        let items = match asked {
            Err(Ask::Stop(why)) => return Err(CliError::failure(why)),
            Err(Ask::Again { wait, why }) => {
                failures += 1;
                if failures > args.max_retries {
                    return Err(CliError::failure(format!("giving up after {failures} failed asks; the last: {why}")));
                }
                let wait = wait.unwrap_or_else(|| backoff(failures, &mut rng)).min(Duration::from_secs(300));
                eprintln!("{why}; asking again in {:.1} s", wait.as_secs_f64());
                tokio::time::sleep(wait).await;
                continue;
            }
            Ok(items) => items,
        };
        failures = 0;
        if items.is_empty() {
            if !args.follow {
                return Ok(cursor);
            }
            tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;
            continue;
        }
        for item in items {
            let id = item["id"].as_str().map(str::to_string);
            let (item, result) = apply(item).await;
            let time = item["created_at"].as_str().and_then(|t| tenure_engine::Timestamp::parse_rfc3339(t).ok());
            let outcome = match &result {
                Ok(webhooks::Applied::Stored(..)) => "stored",
                Ok(webhooks::Applied::Unchanged) => "unchanged",
                Ok(webhooks::Applied::Duplicate) => "duplicate",
                Err(_) => "failed",
            };
            app.metrics.consumed(&config.source, outcome, time.filter(|_| result.is_ok()));
            match result {
                Ok(webhooks::Applied::Stored(first, last)) => {
                    done.stored += 1;
                    done.events += last + 1 - first;
                }
                Ok(webhooks::Applied::Unchanged) => done.unchanged += 1,
                Ok(webhooks::Applied::Duplicate) => done.duplicates += 1,
                Err(webhooks::NotApplied::Malformed(why)) => {
                    done.failed += 1;
                    let mut kept = read_failed(path)?;
                    if !kept.iter().any(|k| k["id"] == item["id"]) {
                        eprintln!("{}: kept as failed: {why}", id.as_deref().unwrap_or("an event without an id"));
                        kept.push(
                            serde_json::json!({"id": item["id"], "event": item["event"], "error": why, "item": item}),
                        );
                        write_failed(path, &kept)?;
                    }
                }
                // Not stored: the cursor stays before it, and the next run asks again.
                Err(webhooks::NotApplied::Store(e)) => return Err(CliError::from(e)),
            }
            match id {
                Some(id) => cursor = Some(id),
                None => return Err(CliError::failure(format!("{url}: an event without an id: nothing to go on from"))),
            }
        }
    }
}

/// `tenure sync status`: per source, what the log holds of it, and the consumers' kept
/// failures.
fn status(data: &Path, as_json: bool, out: &mut dyn Write) -> Result<i32, CliError> {
    let store = crate::commands::open_existing(data)?;
    #[derive(Default)]
    struct Source {
        events: u64,
        deliveries: std::collections::BTreeSet<String>,
        last_position: u64,
        newest_effective: Option<tenure_engine::Timestamp>,
        cursor: Option<String>,
        lag_sum: i128,
    }
    let mut sources: std::collections::BTreeMap<String, Source> = Default::default();
    store.scan(Position(1), store.head(), |e| {
        let s = sources.entry(e.source.clone().unwrap_or_else(|| "(none)".into())).or_default();
        s.events += 1;
        s.last_position = e.position.get();
        s.newest_effective = s.newest_effective.max(Some(e.effective_at));
        s.lag_sum += i128::from(e.recorded_at.as_micros() - e.effective_at.as_micros());
        if let Some((id, _)) = e.source_event_id.as_deref().and_then(|k| k.rsplit_once(':')) {
            if e.raw.as_ref().is_some_and(|r| r.get("from").is_some() || r.get("signature").is_some()) {
                s.deliveries.insert(id.to_string());
            }
            if e.raw.as_ref().is_some_and(|r| r.get("from").is_some()) {
                s.cursor = Some(id.to_string());
            }
        }
        std::ops::ControlFlow::Continue(())
    })?;
    let now = tenure_engine::Timestamp::now();
    let mut rows = Vec::new();
    for (name, s) in &sources {
        let failed = read_failed(&failed_path(data, name))?;
        let behind = s.newest_effective.map(|t| (now.as_micros() - t.as_micros()) as f64 / 1e6);
        rows.push(serde_json::json!({
            "source": name,
            "events": s.events,
            "deliveries": s.deliveries.len(),
            "last_position": s.last_position,
            "newest_effective": s.newest_effective,
            "seconds_since_newest": behind,
            "mean_event_lag_seconds": (s.lag_sum as f64 / s.events.max(1) as f64) / 1e6,
            "cursor": s.cursor,
            "failed": failed.iter().map(|f| serde_json::json!({"id": f["id"], "event": f["event"], "error": f["error"]})).collect::<Vec<_>>(),
        }));
    }
    if as_json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"head": store.head().get(), "sources": rows}))?
        )?;
        return Ok(0);
    }
    writeln!(out, "log head {}", store.head())?;
    for r in &rows {
        writeln!(
            out,
            "{}: {} events ({} deliveries), last at position {}, newest effective {} ({:.0} s ago), mean event lag {:.1} s, cursor {}, {} failed",
            r["source"].as_str().unwrap_or_default(),
            r["events"],
            r["deliveries"],
            r["last_position"],
            r["newest_effective"].as_str().unwrap_or("-"),
            r["seconds_since_newest"].as_f64().unwrap_or(0.0),
            r["mean_event_lag_seconds"].as_f64().unwrap_or(0.0),
            r["cursor"].as_str().unwrap_or("-"),
            r["failed"].as_array().map_or(0, Vec::len),
        )?;
        for f in r["failed"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "  failed {} ({}): {}",
                f["id"],
                f["event"].as_str().unwrap_or("?"),
                f["error"].as_str().unwrap_or("")
            )?;
        }
    }
    Ok(0)
}
