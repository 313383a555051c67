//! `POST /webhooks/directory-sync`: WorkOS Directory Sync deliveries in, as events of the
//! log.
//!
//! A delivery is believed only when its `WorkOS-Signature` header (`t=<unix ms>,
//! v1=<hex HMAC-SHA256 of "<t>.<raw body>">`) matches the raw bytes under one of the
//! configured secrets (several at once, for rotation), compared in constant time, and its
//! timestamp is within the tolerance of now, past or future. The delivery's event id is
//! its idempotency key: a retry stores nothing new and is answered 200.
//!
//! Each delivery is written at its own time (the event's `created_at`), not its arrival's.
//! One that arrives late, older than what the log already holds about its user or group,
//! is placed at its time: the change it carries is written there, and the state the log
//! held at the next later event is written again at that event's time, so that the fold
//! (in effective order) gives every time the state of the latest delivery before it
//! ([`place`]). docs/sync.md has the mapping table and the rules.

use crate::directory::Directory;
use crate::model::{Attrs, Draft, Grants};
use crate::{App, Deactivate};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tenure_engine::event::{GroupLifecycle, GroupUpdated, Membership, Moved, StatusChange};
use tenure_engine::{Event, EventData, GroupId, IdentityId, NewEvent, Position, Subject, Timestamp};

/// How far a signature's timestamp may be from now, either way, unless configured.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(180);
/// The header a delivery is signed in.
pub const SIGNATURE_HEADER: &str = "workos-signature";
/// The origin the grants of a directory user's roles are justified by.
const ORIGIN: &str = "directory-sync";

/// A webhook secret. Never printed: its `Debug` says only that it is one.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(secret: &str) -> Secret {
        Secret(secret.as_bytes().to_vec())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The shortest secret accepted.
pub const MIN_SECRET: usize = 16;

/// Secrets from a file: one per line; blank lines and lines starting with `#` are skipped.
/// An error names the file and line, never the secret.
pub fn parse_secrets(name: &str, text: &str) -> Result<Vec<Secret>, String> {
    let mut secrets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.len() < MIN_SECRET {
            return Err(format!(
                "{name}:{}: a secret of fewer than {MIN_SECRET} characters is too easy to guess",
                i + 1
            ));
        }
        secrets.push(Secret::new(line));
    }
    if secrets.is_empty() {
        return Err(format!("{name}: no secret in the file"));
    }
    Ok(secrets)
}

/// What the webhook endpoint needs: the secrets, the tolerance, and the source name its
/// events are recorded under.
#[derive(Clone, Debug)]
pub struct Config {
    pub secrets: Vec<Secret>,
    pub tolerance: Duration,
    pub source: String,
}

impl Config {
    pub fn new(secrets: Vec<Secret>) -> Config {
        Config { secrets, tolerance: DEFAULT_TOLERANCE, source: "workos".into() }
    }
}

/// Why a delivery's signature was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("no WorkOS-Signature header")]
    Missing,
    #[error("the WorkOS-Signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("the signature's timestamp is {0} ms in the past, beyond the tolerance")]
    Stale(i64),
    #[error("the signature's timestamp is {0} ms in the future, beyond the tolerance")]
    Future(i64),
    #[error("the signature does not match the body under any configured secret")]
    Forged,
}

impl Rejection {
    /// The reason as counted and answered: `header`, `timestamp` or `signature`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Missing | Rejection::Malformed(_) => "header",
            Rejection::Stale(_) | Rejection::Future(_) => "timestamp",
            Rejection::Forged => "signature",
        }
    }
}

/// A parsed `WorkOS-Signature` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Signature {
    /// The timestamp as sent (the signed text uses it as sent).
    pub t: String,
    pub millis: i64,
    pub v1: Vec<[u8; 32]>,
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// Parses `t=<unix ms>, v1=<64 hex>` (the parts in any order, spaces around them
/// ignored, `v1` possibly more than once, other schemes ignored; `t` exactly once).
pub fn parse_signature(header: &[u8]) -> Result<Signature, Rejection> {
    let text = std::str::from_utf8(header).map_err(|_| Rejection::Malformed("not text"))?;
    if text.trim().is_empty() {
        return Err(Rejection::Malformed("empty"));
    }
    let (mut t, mut v1) = (None, Vec::new());
    for part in text.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(Rejection::Malformed("a part is not KEY=VALUE"))?;
        match key.trim() {
            "t" if t.is_some() => return Err(Rejection::Malformed("t given twice")),
            "t" => t = Some(value.trim().to_string()),
            "v1" => v1.push(hex32(value.trim()).ok_or(Rejection::Malformed("v1 is not 64 hex digits"))?),
            "" => return Err(Rejection::Malformed("a part has no key")),
            _ => {}
        }
    }
    let t = t.ok_or(Rejection::Malformed("no t"))?;
    if t.is_empty() || t.len() > 15 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::Malformed("t is not a time in milliseconds"));
    }
    let millis = t.parse().map_err(|_| Rejection::Malformed("t is not a time in milliseconds"))?;
    if v1.is_empty() {
        return Err(Rejection::Malformed("no v1"));
    }
    Ok(Signature { t, millis, v1 })
}

fn mac(secret: &Secret, t: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret.0).unwrap_or_else(|_| unreachable!());
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The index of the secret the signature was made with, compared in constant time.
pub fn check_signature(secrets: &[Secret], sig: &Signature, body: &[u8]) -> Result<usize, Rejection> {
    for (i, secret) in secrets.iter().enumerate() {
        for v1 in &sig.v1 {
            if mac(secret, &sig.t, body).verify_slice(v1).is_ok() {
                return Ok(i);
            }
        }
    }
    Err(Rejection::Forged)
}

/// Checks a delivery: its header parses, its timestamp is within `tolerance` of `now_ms`,
/// and its signature matches the body under one of `secrets` (whose index is returned).
pub fn verify(
    secrets: &[Secret],
    header: Option<&[u8]>,
    body: &[u8],
    now_ms: i64,
    tolerance: Duration,
) -> Result<usize, Rejection> {
    let sig = parse_signature(header.ok_or(Rejection::Missing)?)?;
    let tolerance = tolerance.as_millis() as i64;
    let age = now_ms.saturating_sub(sig.millis);
    if age > tolerance {
        return Err(Rejection::Stale(age));
    }
    if -age > tolerance {
        return Err(Rejection::Future(-age));
    }
    check_signature(secrets, &sig, body)
}

/// The header value signing `body` at `t_ms` with `secret`, as WorkOS makes it.
pub fn sign(secret: &Secret, t_ms: i64, body: &[u8]) -> String {
    let t = t_ms.to_string();
    let digest = mac(secret, &t, body).finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t}, v1={hex}")
}

/// What the endpoint remembers between deliveries, folded from the log at start: the
/// event ids already recorded, and the directory each group came from.
#[derive(Default)]
pub struct Memory {
    delivered: HashSet<String>,
    group_directory: HashMap<String, String>,
    /// The id of the last item of an events API that stored events (raw with `from`): a
    /// consumer's cursor. Webhooks of the same source do not move it (they may arrive
    /// ahead of items the consumer has not read).
    last: Option<String>,
}

impl Memory {
    /// The id of the last item of an events API that stored events (see [`Memory::last`]).
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    /// Takes a recorded event in (those of the webhook source).
    pub fn apply(&mut self, source: &str, event: &Event) {
        if event.source.as_deref() != Some(source) {
            return;
        }
        if let Some((id, _)) = event.source_event_id.as_deref().and_then(|k| k.rsplit_once(':')) {
            self.delivered.insert(id.to_string());
            if event.raw.as_ref().is_some_and(|r| r.get("from").is_some()) {
                self.last = Some(id.to_string());
            }
        }
        let body = event.raw.as_ref().and_then(|r| r.get("body")).and_then(Value::as_str);
        if let Some(body) = body.and_then(|b| serde_json::from_str::<Value>(b).ok()) {
            self.note_groups(&body);
        }
    }

    /// Remembers the directory of every group a delivery names.
    fn note_groups(&mut self, body: &Value) {
        let data = &body["data"];
        let mut note = |g: &Value| {
            if let (Some(id), Some(dir)) = (g["id"].as_str(), g["directory_id"].as_str()) {
                self.group_directory.insert(id.to_string(), dir.to_string());
            }
        };
        match body["event"].as_str().unwrap_or_default() {
            "dsync.group.created" | "dsync.group.updated" | "dsync.group.deleted" => note(data),
            "dsync.group.user_added" | "dsync.group.user_removed" => note(&data["group"]),
            _ => {}
        }
        for g in data["groups"].as_array().into_iter().flatten() {
            note(g);
        }
    }
}

/// A delivery that cannot be applied, and what to answer.
#[derive(Debug)]
enum Refusal {
    /// The body is not a delivery of a supported event (400).
    Malformed(String),
    /// The log refused the events or could not store them.
    Store(tenure_engine::Error),
}

impl From<tenure_engine::Error> for Refusal {
    fn from(e: tenure_engine::Error) -> Self {
        Refusal::Store(e)
    }
}

fn malformed(detail: impl Into<String>) -> Refusal {
    Refusal::Malformed(detail.into())
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn refuse(status: StatusCode, reason: &str, detail: &str) -> Response {
    answer(status, json!({"status": "rejected", "reason": reason, "error": detail}))
}

/// The ten event types handled.
pub const EVENTS: [&str; 10] = [
    "dsync.activated",
    "dsync.deleted",
    "dsync.user.created",
    "dsync.user.updated",
    "dsync.user.deleted",
    "dsync.group.created",
    "dsync.group.updated",
    "dsync.group.deleted",
    "dsync.group.user_added",
    "dsync.group.user_removed",
];

/// A delivery, parsed.
struct Delivery<'a> {
    id: &'a str,
    event: &'a str,
    data: &'a Value,
    time: Timestamp,
}

fn text<'a>(v: &'a Value, path: &str) -> Result<&'a str, Refusal> {
    let mut at = v;
    for key in path.split('.') {
        at = &at[key];
    }
    match at.as_str() {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(malformed(format!("{path}: missing or not a string"))),
    }
}

fn parse_delivery(body: &Value) -> Result<Delivery<'_>, Refusal> {
    let id = text(body, "id")?;
    let event = text(body, "event")?;
    if !EVENTS.contains(&event) {
        return Err(malformed(format!(
            "event: '{event}' is not a directory-sync event handled here ({})",
            EVENTS.join(", ")
        )));
    }
    let data = &body["data"];
    if !data.is_object() {
        return Err(malformed("data: missing or not an object"));
    }
    let at = text(body, "created_at")?;
    let time = Timestamp::parse_rfc3339(at)
        .map_err(|e| malformed(format!("created_at: '{at}' is not an RFC 3339 time ({e})")))?;
    Ok(Delivery { id, event, data, time })
}

/// A scalar as an attribute value (`None` for null, objects and arrays).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `custom_attributes` keys kept under the names the rest of Tenure uses.
const CUSTOM: [(&str, &str); 7] = [
    ("department", "department"),
    ("job_title", "title"),
    ("division", "division"),
    ("cost_center", "costCenter"),
    ("employee_number", "employeeNumber"),
    ("manager_email", "manager"),
    ("employment_type", "userType"),
];

fn flatten(prefix: &str, v: &Value, attrs: &mut Attrs) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}.{k}"), v, attrs);
            }
        }
        Value::Array(items) => {
            let values: Vec<String> = items.iter().filter_map(scalar).collect();
            if !values.is_empty() {
                attrs.insert(prefix.to_string(), values.join(", "));
            }
        }
        other => {
            if let Some(s) = scalar(other).filter(|s| !s.is_empty()) {
                attrs.insert(prefix.to_string(), s);
            }
        }
    }
}

/// A directory user as the state it asserts (docs/sync.md's table).
fn user_draft(user: &Value) -> Result<Draft, Refusal> {
    let mut attrs = Attrs::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            attrs.insert(k.to_string(), v.to_string());
        }
    };
    put("externalId", user["idp_id"].as_str());
    put("directory_id", user["directory_id"].as_str());
    put("name.givenName", user["first_name"].as_str());
    put("name.familyName", user["last_name"].as_str());
    put("displayName", user["name"].as_str());
    put("title", user["job_title"].as_str());
    let mut primary = None;
    for e in user["emails"].as_array().into_iter().flatten() {
        let Some(value) = e["value"].as_str() else { continue };
        let kind = e["type"].as_str().filter(|t| !t.is_empty()).unwrap_or("other");
        attrs.insert(format!("emails.{kind}"), value.to_string());
        if e["primary"].as_bool() == Some(true) {
            attrs.insert("emails.primary".into(), kind.to_string());
            primary = Some(value);
        }
    }
    let user_name = [user["username"].as_str(), user["email"].as_str(), primary]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .ok_or_else(|| malformed("data: a user with no username, email or primary email"))?;
    attrs.insert("userName".into(), user_name.to_string());
    if let Some(custom) = user["custom_attributes"].as_object() {
        for (k, v) in custom {
            match CUSTOM.iter().find(|(from, _)| from == k) {
                Some((_, to)) => {
                    if let Some(s) = scalar(v).filter(|s| !s.is_empty()) {
                        attrs.insert(to.to_string(), s);
                    }
                }
                None => flatten(&format!("custom.{k}"), v, &mut attrs),
            }
        }
    }
    let active = match user["state"].as_str() {
        Some("active") | None => true,
        Some("inactive") | Some("suspended") => false,
        Some(other) => return Err(malformed(format!("data.state: '{other}' is not active, inactive or suspended"))),
    };
    let mut grants = Grants::default();
    let roles = user["roles"].as_array().into_iter().flatten().chain(std::iter::once(&user["role"]));
    for slug in roles.filter_map(|r| r["slug"].as_str()).filter(|s| !s.is_empty()) {
        grants.roles.insert(tenure_engine::Entitlement::new(&format!("role:{slug}"), crate::model::DEFAULT_PERMISSION));
    }
    Ok(Draft { attrs, active, grants })
}

/// The fold of some events about one subject, in the order given.
fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Directory {
    let mut d = Directory::default();
    for e in events {
        d.apply(e);
    }
    d
}

/// Places a change at time `t` among the `events` already recorded about its subject:
/// `at` says what to write given the fold of the events up to `t`; when later events
/// exist, `restore` says what to write at the next later time, given the fold up to it
/// with the change (first) and without it (second), so the change holds only until then.
///
/// The usual case, a delivery no older than anything the log holds about its subject,
/// reads nothing: the fold up to `t` is then the directory's current entry (the caller
/// holds the subject's lock, so every event about it is folded in).
fn place(
    app: &App,
    subject: &Subject,
    t: Timestamp,
    at: impl Fn(&Directory) -> Vec<EventData>,
    restore: impl Fn(&Directory, &Directory) -> Vec<EventData>,
) -> Result<Vec<(Timestamp, EventData)>, Refusal> {
    {
        let dir = app.dir().map_err(|_| malformed("the directory is unavailable"))?;
        let held = match subject {
            Subject::Identity(id) => dir.users.contains_key(id) || dir.departed.contains_key(id),
            Subject::Group(id) => dir.group_names.contains(id),
        };
        let now = match dir.latest(subject) {
            None => Some(at(&Directory::default())),
            Some(latest) if latest <= t && held => Some(at(&dir)),
            Some(_) => None,
        };
        if let Some(now) = now {
            return Ok(now.into_iter().map(|d| (t, d)).collect());
        }
    }
    let mut events = app.store.read_subject(subject, Position(1))?;
    events.sort_by_key(|e| (e.effective_at, e.position));
    let now = at(&fold(events.iter().filter(|e| e.effective_at <= t)));
    let mut plan: Vec<(Timestamp, EventData)> = now.iter().map(|d| (t, d.clone())).collect();
    let Some(next) = events.iter().map(|e| e.effective_at).find(|e| *e > t) else { return Ok(plan) };
    let upto: Vec<&Event> = events.iter().filter(|e| e.effective_at <= next).collect();
    let synthetic: Vec<Event> = now
        .into_iter()
        .enumerate()
        .map(|(i, data)| Event {
            position: Position(u64::MAX / 2 + i as u64),
            id: tenure_engine::Uuid::nil(),
            recorded_at: t,
            effective_at: t,
            source: None,
            source_event_id: None,
            actor: None,
            raw: None,
            data,
        })
        .collect();
    let mut with: Vec<&Event> = upto.iter().copied().chain(synthetic.iter()).collect();
    with.sort_by_key(|e| (e.effective_at, e.position));
    let back = restore(&fold(with), &fold(upto));
    plan.extend(back.into_iter().map(|d| (next, d)));
    Ok(plan)
}

/// What to write of a directory user's state at `t` (or its deletion). With `reassert`, a
/// state the log already holds is written anyway, as an `identity.moved` of the
/// attributes the delivery carries: every delivery is then in the log (evidence, with its
/// raw body), and one that arrives later and older is bounded by it (see [`place`]).
fn user_plan(
    app: &App,
    user: &Value,
    t: Timestamp,
    deleted: bool,
    reassert: bool,
) -> Result<Vec<(Timestamp, EventData)>, Refusal> {
    let id = text(user, "id")?.to_string();
    let draft = user_draft(user)?;
    let subject = Subject::Identity(id.clone());
    let state = |d: &Directory| {
        crate::users::changes(ORIGIN, d.users.get(&id), d.departed.get(&id), &id, &draft, Deactivate::Suspend)
    };
    if deleted {
        let leave = |d: &Directory| {
            let left = EventData::IdentityLeft(StatusChange {
                identity: IdentityId::from(id.as_str()),
                reason: Some("dsync.user.deleted".into()),
            });
            match (d.users.contains_key(&id), d.departed.contains_key(&id)) {
                (true, _) => vec![left],
                // Never seen: it joined before it was deleted, as the delivery shows it.
                (false, false) => state(d).into_iter().chain([left]).collect(),
                (false, true) => vec![],
            }
        };
        return place(app, &subject, t, leave, |_, _| vec![]);
    }
    let restore = |with: &Directory, without: &Directory| match (with.users.get(&id), without.users.get(&id)) {
        (Some(w), Some(o)) => crate::users::changes(ORIGIN, Some(w), None, &id, &Draft::of(o), Deactivate::Suspend),
        _ => vec![],
    };
    let mut plan = place(app, &subject, t, state, restore)?;
    if plan.is_empty() && reassert {
        let again = Moved { identity: IdentityId::from(id.as_str()), attributes: draft.attrs.clone() };
        plan.push((t, EventData::IdentityMoved(again)));
    }
    Ok(plan)
}

/// What to write of a directory group at `t` (or its deletion); `reassert` as for
/// [`user_plan`], as a `group.updated` of its name.
fn group_plan(
    app: &App,
    group: &Value,
    t: Timestamp,
    deleted: bool,
    reassert: bool,
) -> Result<Vec<(Timestamp, EventData)>, Refusal> {
    let id = text(group, "id")?.to_string();
    let name = text(group, "name")?.to_string();
    let external_id = group["idp_id"].as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let subject = Subject::Group(id.clone());
    let gid = GroupId::from(id.as_str());
    let created = EventData::GroupCreated(GroupLifecycle {
        group: gid.clone(),
        display_name: Some(name.clone()),
        external_id: external_id.clone(),
    });
    let renamed = |to: &str| {
        EventData::GroupUpdated(GroupUpdated {
            group: gid.clone(),
            display_name: Some(to.to_string()),
            external_id: None,
        })
    };
    if deleted {
        let gone =
            EventData::GroupDeleted(GroupLifecycle { group: gid.clone(), display_name: None, external_id: None });
        let delete = |d: &Directory| match (d.groups.contains_key(&id), d.group_names.contains(&id)) {
            (true, _) => vec![gone.clone()],
            (false, false) => vec![created.clone(), gone.clone()],
            (false, true) => vec![],
        };
        return place(app, &subject, t, delete, |_, _| vec![]);
    }
    let state = |d: &Directory| match d.groups.get(&id) {
        None => vec![created.clone()],
        Some(g) if g.display_name != name => vec![renamed(&name)],
        Some(_) => vec![],
    };
    let restore = |with: &Directory, without: &Directory| match (with.groups.get(&id), without.groups.get(&id)) {
        (Some(w), Some(o)) if w.display_name != o.display_name => vec![renamed(&o.display_name)],
        _ => vec![],
    };
    let mut plan = place(app, &subject, t, state, restore)?;
    if plan.is_empty() && reassert {
        plan.push((t, renamed(&name)));
    }
    Ok(plan)
}

/// A membership change: the user and the group as the delivery shows them at its time
/// first (nothing when the log already says so; a user or group the log has never seen,
/// or not yet at that time, comes to exist then), then the membership event, always
/// written (a delivery is evidence; an add that already holds renews it, a remove that
/// does not is a no-op the anomalies report).
fn membership_plan(app: &App, d: &Delivery<'_>, added: bool) -> Result<Vec<(Timestamp, EventData)>, Refusal> {
    let (user, group) = (&d.data["user"], &d.data["group"]);
    let (uid, gid) = (text(user, "id")?, text(group, "id")?);
    let mut plan = user_plan(app, user, d.time, false, false)?;
    plan.extend(group_plan(app, group, d.time, false, false)?);
    let m = Membership { group: GroupId::from(gid), identity: IdentityId::from(uid) };
    plan.push((d.time, if added { EventData::GroupMemberAdded(m) } else { EventData::GroupMemberRemoved(m) }));
    Ok(plan)
}

/// `dsync.deleted`: the directory's users leave and its groups are deleted (WorkOS sends
/// no per-user or per-group event then).
fn directory_deleted(app: &App, memory: &Memory, d: &Delivery<'_>) -> Result<Vec<(Timestamp, EventData)>, Refusal> {
    let directory = text(d.data, "id")?;
    let dir = app.dir().map_err(|_| malformed("the directory is unavailable"))?;
    let mut plan = Vec::new();
    for u in dir.users.values().filter(|u| !u.left && u.attrs.get("directory_id").is_some_and(|x| x == directory)) {
        let change = StatusChange { identity: IdentityId::from(u.id.as_str()), reason: Some("dsync.deleted".into()) };
        plan.push((d.time, EventData::IdentityLeft(change)));
    }
    for g in dir.groups.values().filter(|g| memory.group_directory.get(&g.id).is_some_and(|x| x == directory)) {
        let gone = GroupLifecycle { group: GroupId::from(g.id.as_str()), display_name: None, external_id: None };
        plan.push((d.time, EventData::GroupDeleted(gone)));
    }
    Ok(plan)
}

/// The subjects a delivery changes, for the locks that order the writes of each (the
/// keys SCIM's handlers lock too).
fn lock_keys(d: &Delivery<'_>) -> Vec<String> {
    let id = |v: &Value| v["id"].as_str().unwrap_or_default().to_string();
    match d.event {
        "dsync.user.created" | "dsync.user.updated" | "dsync.user.deleted" => vec![format!("u:{}", id(d.data))],
        "dsync.group.created" | "dsync.group.updated" | "dsync.group.deleted" => vec![format!("g:{}", id(d.data))],
        "dsync.group.user_added" | "dsync.group.user_removed" => {
            vec![format!("u:{}", id(&d.data["user"])), format!("g:{}", id(&d.data["group"]))]
        }
        _ => vec!["dsync:directory".into()],
    }
}

/// `POST /webhooks/directory-sync`.
#[utoipa::path(
    operation_id = "webhooks_receive",
    post,
    path = "/webhooks/directory-sync",
    tag = "Directory sync",
    description = "A WorkOS Directory Sync delivery, checked by its WorkOS-Signature.",
    params(("WorkOS-Signature" = String, Header, description = "t=<unix ms>, v1=<hex HMAC-SHA256 of t.body>")),
    responses((status = 200, description = "applied, unchanged or duplicate"), (status = 400, description = "malformed"), (status = 401, description = "header, timestamp or signature refused"), (status = 404, description = "No webhook secret configured"), (status = 422, description = "The log refused the events"), (status = 503, description = "Not stored"))
)]
pub async fn receive(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(config) = app.webhooks.as_ref().filter(|c| !c.secrets.is_empty()) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_configured",
            "no webhook secret is configured (--webhook-secret-file)",
        );
    };
    let header = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    let now_ms = Timestamp::now().as_micros() / 1000;
    if let Err(r) = verify(&config.secrets, header, &body, now_ms, config.tolerance) {
        app.metrics.delivery(match r.reason() {
            "header" => "rejected_header",
            "timestamp" => "rejected_timestamp",
            _ => "rejected_signature",
        });
        tracing::warn!(reason = r.reason(), "webhook delivery refused");
        return refuse(StatusCode::UNAUTHORIZED, r.reason(), &r.to_string());
    }
    let signature = header.and_then(|h| std::str::from_utf8(h).ok()).unwrap_or_default();
    match deliver(&app, config, &body, signature).await {
        Ok(response) => response,
        Err(Refusal::Malformed(detail)) => {
            app.metrics.delivery("rejected_malformed");
            refuse(StatusCode::BAD_REQUEST, "malformed", &detail)
        }
        Err(Refusal::Store(e)) => {
            app.metrics.delivery("failed");
            let status = match e {
                tenure_engine::Error::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            tracing::error!(error = %e, "webhook delivery not stored");
            refuse(status, "failed", &format!("not stored: {e}"))
        }
    }
}

/// What became of a delivery (a webhook's, or an item of an events API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Stored, at these positions (first, last).
    Stored(u64, u64),
    /// Nothing to store (`dsync.activated`, a deletion of what is gone).
    Unchanged,
    /// Its id is recorded already.
    Duplicate,
}

/// Why a delivery was not applied.
#[derive(Debug, thiserror::Error)]
pub enum NotApplied {
    /// Not a delivery of a supported event, as the detail says (the same again would fail
    /// the same way).
    #[error("{0}")]
    Malformed(String),
    /// The log refused the events or could not store them.
    #[error("not stored: {0}")]
    Store(tenure_engine::Error),
}

/// Applies one directory-sync event (a webhook's body, or an item of an events API) as
/// docs/sync.md's table says, keeping `raw` (what was received) on its first event. Its id
/// is the idempotency key; its events are recorded under `config.source`.
pub async fn apply(app: &App, config: &Config, value: &Value, raw: Value) -> Result<Applied, NotApplied> {
    apply_inner(app, config, value, raw).await.map_err(|r| match r {
        Refusal::Malformed(m) => NotApplied::Malformed(m),
        Refusal::Store(e) => NotApplied::Store(e),
    })
}

async fn apply_inner(app: &App, config: &Config, value: &Value, raw: Value) -> Result<Applied, Refusal> {
    let d = parse_delivery(value)?;
    let keys = lock_keys(&d);
    let _locks = app.lock_all(&keys).await;
    let seen = app.memory.lock().map_err(|_| malformed("webhook memory poisoned"))?.delivered.contains(d.id);
    if seen {
        return Ok(Applied::Duplicate);
    }
    let plan = match d.event {
        "dsync.user.created" | "dsync.user.updated" => user_plan(app, d.data, d.time, false, true)?,
        "dsync.user.deleted" => user_plan(app, d.data, d.time, true, false)?,
        "dsync.group.created" | "dsync.group.updated" => group_plan(app, d.data, d.time, false, true)?,
        "dsync.group.deleted" => group_plan(app, d.data, d.time, true, false)?,
        "dsync.group.user_added" => membership_plan(app, &d, true)?,
        "dsync.group.user_removed" => membership_plan(app, &d, false)?,
        "dsync.deleted" => {
            let memory = app.memory.lock().map_err(|_| malformed("webhook memory poisoned"))?;
            directory_deleted(app, &memory, &d)?
        }
        // dsync.activated: a connection made; no identity or group changes.
        _ => vec![],
    };
    // The directory connection that sent it.
    let actor = match d.event {
        "dsync.activated" | "dsync.deleted" => d.data["id"].as_str(),
        _ => d.data["directory_id"].as_str(),
    };
    let consumed = raw.get("from").is_some();
    let mut raw = Some(raw);
    let events: Vec<NewEvent> = plan
        .into_iter()
        .enumerate()
        .map(|(i, (t, data))| {
            let mut e = NewEvent::new(t, data).with_source(&config.source, &format!("{}:{i}", d.id));
            e.actor = actor.map(str::to_string);
            e.raw = raw.take();
            e
        })
        .collect();
    let positions = crate::users::commit_positions(app, events).await.map_err(|e| match e {
        crate::users::CommitError::Store(e) => Refusal::Store(e),
        crate::users::CommitError::Poisoned => malformed("the directory is unavailable"),
    })?;
    if let Ok(mut memory) = app.memory.lock() {
        memory.delivered.insert(d.id.to_string());
        memory.note_groups(value);
        if positions.is_some() && consumed {
            memory.last = Some(d.id.to_string());
        }
    }
    Ok(match positions {
        Some((first, last)) => Applied::Stored(first, last),
        None => Applied::Unchanged,
    })
}

async fn deliver(app: &App, config: &Config, body: &[u8], signature: &str) -> Result<Response, Refusal> {
    let text = std::str::from_utf8(body).map_err(|_| malformed("the body is not UTF-8"))?;
    let value: Value = serde_json::from_str(text).map_err(|e| malformed(format!("the body is not JSON: {e}")))?;
    let raw = json!({"body": text, "signature": signature});
    let (outcome, positions) = match apply_inner(app, config, &value, raw).await? {
        Applied::Duplicate => ("duplicate", None),
        Applied::Unchanged => ("unchanged", None),
        Applied::Stored(first, last) => ("applied", Some([first, last])),
    };
    app.metrics.delivery(outcome);
    let mut body = json!({"status": outcome, "event": value["id"]});
    if let Some(positions) = positions {
        body["positions"] = json!(positions);
    }
    Ok(answer(StatusCode::OK, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_made_is_one_verified() {
        let s = Secret::new("whsec_0123456789abcdef");
        let header = sign(&s, 1_700_000_000_000, b"{}");
        assert_eq!(
            verify(std::slice::from_ref(&s), Some(header.as_bytes()), b"{}", 1_700_000_000_000, DEFAULT_TOLERANCE),
            Ok(0)
        );
        assert_eq!(
            verify(&[s], Some(header.as_bytes()), b"{} ", 1_700_000_000_000, DEFAULT_TOLERANCE),
            Err(Rejection::Forged)
        );
    }

    #[test]
    fn a_secret_is_never_printed() {
        let s = Secret::new("whsec_0123456789abcdef");
        assert!(!format!("{s:?} {:?}", Config::new(vec![s.clone()])).contains("0123456789"));
    }
}
