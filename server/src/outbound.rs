//! Outbound webhooks: each appended event POSTed to every subscriber of
//! `--subscribers FILE`, in log order, signed the way deliveries in are (`Tenure-Signature:
//! t=<unix ms>, v1=<hex HMAC-SHA256 of "<t>.<body>">` with the subscriber's secret).
//!
//! Each subscriber has a cursor, the last position it acknowledged (a 2xx), kept in
//! `DATA/sync/outbound-NAME.cursor` (written synced and renamed into place after each
//! acknowledgement): delivery is at least once, in order; a subscriber deduplicates by the
//! event's `id` or `position`. A delivery that fails is retried with backoff and jitter;
//! after the subscriber's attempts it goes to the dead-letter list
//! `DATA/sync/dead-NAME.jsonl` (position, id, error, time) and the stream goes on.

use crate::webhooks::{sign, Secret};
use crate::App;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tenure_engine::Position;

/// The header outbound deliveries are signed in.
pub const SIGNATURE_HEADER: &str = "Tenure-Signature";

/// One subscriber.
#[derive(Clone, Debug)]
pub struct Subscriber {
    pub name: String,
    pub url: String,
    pub secret: Secret,
    /// Attempts per event before it goes to the dead-letter list.
    pub attempts: u32,
}

/// Parses a subscribers file: `NAME URL SECRET [ATTEMPTS]` per line (blank lines and `#`
/// comments skipped). Errors name the line, never the secret.
pub fn parse_subscribers(path: &str, text: &str) -> Result<Vec<Subscriber>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let bad = |why: &str| {
            format!("{path}:{}: {why} (expected NAME URL SECRET [ATTEMPTS]; the secret is not shown)", i + 1)
        };
        let (name, url, secret, attempts) = match fields.as_slice() {
            [n, u, s] => (*n, *u, *s, 8),
            [n, u, s, a] => (*n, *u, *s, a.parse().map_err(|_| bad("ATTEMPTS is not a number"))?),
            _ => return Err(bad("not three or four fields")),
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad("URL is not http(s)"));
        }
        if secret.len() < crate::webhooks::MIN_SECRET {
            return Err(bad("a secret of fewer than 16 characters is too easy to guess"));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(bad("NAME is letters, digits, - and _ only (it names files)"));
        }
        if out.iter().any(|s: &Subscriber| s.name == name) {
            return Err(bad("NAME given twice"));
        }
        out.push(Subscriber {
            name: name.into(),
            url: url.into(),
            secret: Secret::new(secret),
            attempts: attempts.max(1),
        });
    }
    Ok(out)
}

fn cursor_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("sync").join(format!("outbound-{name}.cursor"))
}

/// The dead-letter list of a subscriber.
pub fn dead_letters_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("sync").join(format!("dead-{name}.jsonl"))
}

/// The position a subscriber acknowledged last (0: none yet).
pub fn read_cursor(dir: &Path, name: &str) -> u64 {
    std::fs::read_to_string(cursor_path(dir, name)).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

/// Writes `bytes` to `path` as a new file, synced, renamed into place (its directory made
/// if need be): a reader sees the old file or the new one, whole, and a crash after the
/// rename keeps the new one.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = tenure_engine::files::temporary_path(path);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn append_synced(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(line.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// One POST: Ok on a 2xx, else why not.
fn post(agent: &ureq::Agent, s: &Subscriber, body: &str) -> Result<(), String> {
    let now = tenure_engine::Timestamp::now().as_micros() / 1000;
    let header = sign(&s.secret, now, body.as_bytes());
    match agent.post(&s.url).set("Content-Type", "application/json").set(SIGNATURE_HEADER, &header).send_string(body) {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, _)) => Err(format!("answered {code}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Delivers the log to one subscriber, from its cursor, until the server stops.
pub async fn deliver(app: Arc<App>, s: Subscriber) {
    let dir = app.store.dir().to_path_buf();
    let agent =
        ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout(Duration::from_secs(30)).build();
    let after = read_cursor(&dir, &s.name);
    let mut events = Box::pin(app.store.subscribe(Position(after)));
    let mut rng = (tenure_engine::Timestamp::now().as_micros() as u64) | 1;
    let closing = app.closing();
    tokio::pin!(closing);
    loop {
        let next = tokio::select! {
            _ = &mut closing => return,
            next = events.next() => next,
        };
        let event = match next {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                tracing::error!(subscriber = s.name, error = %e, "reading the log for a subscriber");
                return;
            }
            None => return,
        };
        let body = match serde_json::to_string(&event) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(subscriber = s.name, error = %e, "an event that does not serialise");
                return;
            }
        };
        let mut last_error = String::new();
        let mut delivered = false;
        for attempt in 1..=s.attempts {
            let (agent, sub, text) = (agent.clone(), s.clone(), body.clone());
            let result = tokio::task::spawn_blocking(move || post(&agent, &sub, &text)).await;
            match result.map_err(|e| e.to_string()).and_then(|r| r) {
                Ok(()) => {
                    delivered = true;
                    break;
                }
                Err(e) => last_error = e,
            }
            if attempt < s.attempts {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let full = (0.1 * 2f64.powi(attempt.min(9) as i32 - 1)).min(30.0);
                let wait = Duration::from_secs_f64(full * (0.5 + (rng % 1000) as f64 / 2000.0));
                tokio::select! {
                    _ = &mut closing => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        let p = event.position.get();
        if !delivered {
            let line = serde_json::json!({"position": p, "id": event.id, "type": event.data.type_name(),
                "error": last_error, "attempts": s.attempts, "at": tenure_engine::Timestamp::now()})
            .to_string();
            tracing::warn!(subscriber = s.name, position = p, "delivery failed; kept in the dead-letter list");
            if let Err(e) = append_synced(&dead_letters_path(&dir, &s.name), &line) {
                // Not kept: stop here, so the event is tried again at the next start.
                tracing::error!(subscriber = s.name, error = %e, "writing the dead-letter list");
                return;
            }
        }
        if let Err(e) = write_synced(&cursor_path(&dir, &s.name), p.to_string().as_bytes()) {
            tracing::error!(subscriber = s.name, error = %e, "writing the subscriber's cursor");
            return;
        }
    }
}
