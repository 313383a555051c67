//! The JSON form of each query's answer, as `tenure ... --json` prints it and the audit
//! API (`/v1/...` of `tenure serve`) answers it: one builder per query, so the two can
//! never differ. The answers that can be large (`who`, `diff`, `report leavers`) are
//! written a row at a time by each side instead (the CLI's `Sink`, the server's
//! `JsonOut`), in the shapes of docs/cli.md; tests compare the two as values. Also the
//! parsing of the arguments both take (times, `as of`, windows).

use crate::query::{AsOf, Held, Profile, Timeline};
use crate::Anomaly;
use serde_json::{json, Value};
use tenure_engine::Timestamp;

/// A time: RFC 3339 or a `YYYY-MM-DD` date.
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_lenient(s).map_err(|e| match e {
        tenure_engine::time::TimeError::OutOfRange => format!("'{s}' is {e}"),
        _ => format!("'{s}' is not an RFC 3339 time or a YYYY-MM-DD date"),
    })
}

/// A knowledge point: a position, or a record time (RFC 3339 or a date).
pub fn parse_as_of(s: &str) -> Result<AsOf, String> {
    if let Ok(p) = s.parse::<u64>() {
        return Ok(AsOf::Position(p));
    }
    Timestamp::parse_lenient(s)
        .map(AsOf::Recorded)
        .map_err(|_| format!("'{s}' is not a position, an RFC 3339 time or a YYYY-MM-DD date"))
}

/// A window `T1..T2`, T1 before T2.
pub fn parse_window(s: &str) -> Result<(Timestamp, Timestamp), String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("'{s}' is not a window T1..T2"))?;
    let (a, b) = (parse_time(a)?, parse_time(b)?);
    if a >= b {
        return Err(format!("'{s}': the window is empty (T1 must be before T2)"));
    }
    Ok((a, b))
}

/// `access`: what an identity had at `at`, as known at `as_of` (a resolved position).
pub fn access(identity: &str, at: Timestamp, as_of: u64, held: &[Held]) -> Value {
    json!({"identity": identity, "at": at, "as_of": as_of, "entitlements": held})
}

/// When a `who` asks: at a time, or at some time in a window.
#[derive(Clone, Copy, Debug)]
pub enum When {
    At(Timestamp),
    During(Timestamp, Timestamp),
}

/// `timeline`.
pub fn timeline(timeline: &Timeline, as_of: u64) -> Value {
    let mut answer = serde_json::to_value(timeline).unwrap_or(Value::Null);
    if let Some(obj) = answer.as_object_mut() {
        obj.insert("as_of".into(), json!(as_of));
    }
    answer
}

/// `show`: what the records said of an identity at `at`.
pub fn profile(profile: &Profile, at: Timestamp, as_of: u64) -> Value {
    let mut answer = serde_json::to_value(profile).unwrap_or(Value::Null);
    if let Some(obj) = answer.as_object_mut() {
        obj.insert("at".into(), json!(at));
        obj.insert("as_of".into(), json!(as_of));
    }
    answer
}

/// `anomalies`, each with the type of the event at its position.
pub fn anomalies(as_of: u64, anomalies: &[(Anomaly, &str)]) -> Value {
    let rows: Vec<Value> = anomalies
        .iter()
        .map(|(a, kind)| json!({"position": a.position, "type": kind, "kind": a.kind, "reason": a.kind.to_string()}))
        .collect();
    json!({"as_of": as_of, "anomalies": rows})
}

/// `verify`: the log's integrity report and the status of each derived file checked.
pub fn verify(report: &tenure_engine::VerifyReport, derived: &[(String, String)]) -> Value {
    let bad = report.first_bad.as_ref().map(|(p, r)| json!({"position": p, "reason": r}));
    let torn = report
        .torn_tail
        .as_ref()
        .map(|t| json!({"position": t.position, "from_byte": t.from_byte, "bytes": t.bytes, "reason": t.reason}));
    let derived: Vec<Value> = derived.iter().map(|(f, s)| json!({"file": f, "status": s})).collect();
    json!({
        "intact": report.intact, "head_hash": report.head_hash, "first_bad": bad,
        "acknowledged": report.acknowledged, "torn_tail": torn, "derived": derived,
    })
}

/// A duration: a number and a unit, `s`, `m`, `h`, `d` or `w` (`90d`, `12h`); µs.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let text = s.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let unit_us: i64 = match unit {
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        "w" => 604_800_000_000,
        _ => return Err(format!("'{s}' is not a duration (a number and s, m, h, d or w: 90d)")),
    };
    n.parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_us))
        .ok_or_else(|| format!("'{s}' is not a duration (a number and s, m, h, d or w: 90d)"))
}

/// `report nhi`.
pub fn nhi(report: &crate::reports::Nhi) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}

/// `report lag`: the event lag per source and type, as known at `as_of`.
pub fn lag(as_of: u64, rows: &[crate::reports::LagRow]) -> Value {
    json!({"as_of": as_of, "rows": rows})
}

/// `report access`.
pub fn access_review(review: &crate::reports::AccessReview) -> Value {
    serde_json::to_value(review).unwrap_or(Value::Null)
}

/// `report sod`.
pub fn sod(report: &crate::reports::Sod) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}

/// A window of which either end may be open: `None` when both are.
pub fn open_window(from: Option<Timestamp>, to: Option<Timestamp>) -> Result<Option<(Timestamp, Timestamp)>, String> {
    match (from, to) {
        (None, None) => Ok(None),
        (a, b) => {
            let (a, b) = (a.unwrap_or(Timestamp::from_micros(i64::MIN)), b.unwrap_or(Timestamp::MAX));
            if a >= b {
                return Err(format!("{a} is not before {b}"));
            }
            Ok(Some((a, b)))
        }
    }
}

/// `report anomalies`.
pub fn anomalies_report(report: &crate::reports::Anomalies) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}

/// `reconcile`: the report, with its corrections as the JSON lines `--emit-corrections`
/// writes.
pub fn reconcile(report: &crate::reports::Reconciliation) -> Value {
    let mut value = serde_json::to_value(report).unwrap_or(Value::Null);
    let corrections: Vec<Value> =
        report.corrections.iter().filter_map(|e| serde_json::from_str(&e.to_json()).ok()).collect();
    value["corrections"] = Value::Array(corrections);
    value
}
