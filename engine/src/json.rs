//! Parsing of the JSONL interchange form with errors that name the field at fault.

use crate::event::{EventData, FieldError, NewEvent};
use crate::time::Timestamp;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;

/// The longest line the engine accepts (a limit, so that one bad line cannot exhaust
/// memory). Exceeding it is an error.
pub const MAX_EVENT_JSON_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope<'a> {
    #[serde(rename = "type")]
    kind: Option<Value>,
    effective_at: Option<Value>,
    /// The text of `data`, parsed straight into its type once `type` is known (no
    /// `Value` tree in between). (`null`, as for every field, is
    /// missing.)
    #[serde(borrow, default, deserialize_with = "raw_text")]
    data: Option<&'a RawValue>,
    id: Option<Value>,
    source: Option<Value>,
    source_event_id: Option<Value>,
    actor: Option<Value>,
    raw: Option<Value>,
    /// What `tenure log` prints besides: accepted so that a log re-ingests into another
    /// store, checked, and not kept (a store assigns its own positions and record times).
    position: Option<Value>,
    recorded_at: Option<Value>,
}

fn optional_string(field: &str, value: Option<Value>) -> Result<Option<String>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(FieldError::new(field, "must not be empty")),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(FieldError::new(field, "expected a string")),
    }
}

fn required_string(field: &str, value: Option<Value>) -> Result<String, FieldError> {
    optional_string(field, value)?.ok_or_else(|| FieldError::new(field, "missing"))
}

fn raw_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn data_as<T: DeserializeOwned>(data: &RawValue) -> Result<T, FieldError> {
    let mut de = serde_json::Deserializer::from_str(data.get());
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() { "data".to_string() } else { format!("data.{path}") };
        let inner = e.into_inner().to_string();
        // serde_json appends " at line 1 column N", which means nothing to a user here.
        let reason = match inner.find(" at line ") {
            Some(i) => inner[..i].to_string(),
            None => inner,
        };
        FieldError::new(field, reason)
    })
}

/// Parses one event line. See [`NewEvent::from_json`].
pub fn parse_event(line: &str) -> Result<NewEvent, FieldError> {
    if line.len() > MAX_EVENT_JSON_BYTES {
        return Err(FieldError::new("-", format!("line longer than {MAX_EVENT_JSON_BYTES} bytes")));
    }
    // An event is a JSON object; saying so beats serde's words about a struct of ours.
    if !line.trim_start().starts_with('{') {
        let start: String = line.trim_start().chars().take(12).collect();
        return Err(FieldError::new(
            "-",
            format!("not a JSON event object: a line must start with `{{` (it starts {start:?})"),
        ));
    }
    let raw: RawEnvelope = serde_json::from_str(line).map_err(|e| {
        let text = e.to_string();
        if let Some(rest) = text.strip_prefix("unknown field `") {
            let name = rest.split('`').next().unwrap_or("?");
            return FieldError::new(name, "unknown field");
        }
        let reason = match text.find(" at line ") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        FieldError::new("-", format!("not a JSON event object: {reason}"))
    })?;
    let kind = required_string("type", raw.kind)?;
    let effective_text = required_string("effective_at", raw.effective_at)?;
    let effective_at =
        Timestamp::parse_rfc3339(&effective_text).map_err(|e| FieldError::new("effective_at", e.to_string()))?;
    let data = match raw.data {
        Some(text) if text.get() == "null" => return Err(FieldError::new("data", "missing")),
        Some(text) if text.get().starts_with('{') => text,
        Some(_) => return Err(FieldError::new("data", "expected an object")),
        None => return Err(FieldError::new("data", "missing")),
    };
    let id = match optional_string("id", raw.id)? {
        None => None,
        Some(text) => Some(Uuid::parse_str(&text).map_err(|_| FieldError::new("id", "not a UUID"))?),
    };
    match raw.position {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some_and(|p| p > 0) => {}
        Some(_) => return Err(FieldError::new("position", "expected a position (an integer from 1)")),
    }
    if let Some(text) = optional_string("recorded_at", raw.recorded_at)? {
        Timestamp::parse_rfc3339(&text).map_err(|e| FieldError::new("recorded_at", e.to_string()))?;
    }
    let source = optional_string("source", raw.source)?;
    let source_event_id = optional_string("source_event_id", raw.source_event_id)?;
    let actor = optional_string("actor", raw.actor)?;
    let raw = raw.raw.filter(|v| !v.is_null());
    let data = parse_data(&kind, data)?;
    validate_data(&data)?;
    Ok(NewEvent { data, effective_at, id, source, source_event_id, actor, raw })
}

macro_rules! define_parse_data {
    ($($code:literal => $name:literal, $variant:ident($body:ty);)*) => {
        /// The `data` of an event of type `kind`, by the registry (`for_each_event_type!`).
        fn parse_data(kind: &str, data: &RawValue) -> Result<EventData, FieldError> {
            match kind {
                $($name => data_as(data).map(EventData::$variant),)*
                other => Err(FieldError::new("type", format!("unknown event type '{other}'"))),
            }
        }
    };
}

crate::for_each_event_type!(define_parse_data);

impl NewEvent {
    /// Parses one line of the JSONL interchange form. Unknown fields, unknown types and
    /// bad times are rejected with the name of the field at fault.
    pub fn from_json(line: &str) -> Result<NewEvent, FieldError> {
        parse_event(line)
    }

    /// The JSONL interchange form, one line.
    pub fn to_json(&self) -> String {
        // A map of strings and numbers always serializes.
        serde_json::to_string(self).expect("NewEvent is plain data")
    }
}

/// Checks that need more than the shape of the JSON: non-empty names, an owner for a
/// service. The same checks guard the library API (`Store::append`).
pub fn validate_data(data: &EventData) -> Result<(), FieldError> {
    use crate::event::IdentityKind;
    fn non_empty(field: &str, value: &str) -> Result<(), FieldError> {
        if value.is_empty() {
            Err(FieldError::new(field, "must not be empty"))
        } else {
            Ok(())
        }
    }
    // `#` separates resource and permission wherever an entitlement is written short
    // (`payroll-db#read`): a resource holding one could not be asked for.
    fn entitlement(e: &crate::event::Entitlement) -> Result<(), FieldError> {
        non_empty("data.entitlement.resource", &e.resource)?;
        non_empty("data.entitlement.permission", &e.permission)?;
        if e.resource.contains('#') {
            return Err(FieldError::new(
                "data.entitlement.resource",
                "must not contain '#' (it separates resource and permission in RESOURCE#PERMISSION)",
            ));
        }
        Ok(())
    }
    if let Some(identity) = data.identity() {
        non_empty("data.identity", identity.as_str())?;
    }
    if let Some(group) = data.group() {
        non_empty("data.group", group.as_str())?;
    }
    match data {
        EventData::IdentityJoined(j) => {
            if j.kind == IdentityKind::Service && j.owner.is_none() {
                return Err(FieldError::new("data.owner", "required for a service identity"));
            }
            if let Some(owner) = &j.owner {
                non_empty("data.owner", owner.as_str())?;
                if owner == &j.identity {
                    return Err(FieldError::new("data.owner", "an identity cannot own itself"));
                }
            }
        }
        EventData::AccessGranted(g) => entitlement(&g.entitlement)?,
        EventData::AccessRevoked(r) => entitlement(&r.entitlement)?,
        EventData::AccessReviewed(r) => {
            entitlement(&r.entitlement)?;
            non_empty("data.reviewer", &r.reviewer)?;
        }
        EventData::GroupAccessGranted(g) | EventData::GroupAccessRevoked(g) => entitlement(&g.entitlement)?,
        EventData::CredentialIssued(c) | EventData::CredentialRotated(c) | EventData::CredentialRevoked(c) => {
            non_empty("data.credential", c.credential.as_str())?;
        }
        EventData::GroupUpdated(u) => {
            if u.display_name.is_none() && u.external_id.is_none() {
                return Err(FieldError::new("data", "give display_name, external_id or both"));
            }
            if let Some(name) = &u.display_name {
                non_empty("data.display_name", name)?;
            }
        }
        EventData::EventRetracted(r) if r.position.get() == 0 => {
            return Err(FieldError::new("data.position", "positions start at 1"));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_example() {
        let line = r#"{"type": "identity.joined", "effective_at": "2024-03-01T09:00:00Z",
 "source": "okta", "source_event_id": "evt_01HX", "actor": "hr-sync",
 "data": {"identity": "alice", "kind": "human",
          "attributes": {"display_name": "Alice Ng", "department": "finance"}}}"#;
        let e = parse_event(line).unwrap();
        assert_eq!(e.data.type_name(), "identity.joined");
        assert_eq!(e.idempotency_key(), Some(("okta", "evt_01HX")));
    }

    fn err(line: &str) -> String {
        parse_event(line).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            err(r#"{"type":"identity.left","effective_at":"yesterday","data":{"identity":"a"}}"#),
            "field effective_at: not an RFC 3339 time"
        );
        assert_eq!(
            err(r#"{"type":"identity.fired","effective_at":"2024-01-01T00:00:00Z","data":{}}"#),
            "field type: unknown event type 'identity.fired'"
        );
        assert_eq!(
            err(r#"{"type":"identity.left","effective_at":"2024-01-01T00:00:00Z","data":{"identity":"a"},"colour":1}"#),
            "field colour: unknown field"
        );
        assert_eq!(
            err(
                r#"{"type":"access.granted","effective_at":"2024-01-01T00:00:00Z","data":{"identity":"a","entitlement":{"resource":"db"}}}"#
            ),
            "field data.entitlement: missing field `permission`"
        );
        assert_eq!(
            err(
                r#"{"type":"access.granted","effective_at":"2024-01-01T00:00:00Z","data":{"identity":"a","entitlement":{"resource":"db","permission":"r"},"expires_at":"soon"}}"#
            ),
            "field data.expires_at: not an RFC 3339 time"
        );
        assert_eq!(
            err(
                r#"{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","data":{"identity":"bot","kind":"service"}}"#
            ),
            "field data.owner: required for a service identity"
        );
        assert_eq!(err(r#"{"type":"identity.left""#).split(':').next(), Some("field -"));
    }
}
