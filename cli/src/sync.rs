//! `tenure sync`: directory sync from the command line.

use crate::{CliError, SyncAction};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use tenure_engine::{Event, Position, Store};
use tenure_server::webhooks;

pub fn run(data: &Path, action: SyncAction, out: &mut dyn Write) -> Result<i32, CliError> {
    match action {
        SyncAction::VerifyDelivery { position, webhook_secret_file, json } => {
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
