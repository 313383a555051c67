//! PATCH (RFC 7644 §3.5.2), for users and groups alike: the operations list, and each
//! operation applied in order to a draft of the resource, so that one that fails fails
//! the whole request and nothing of it is stored.

use crate::error::ScimError;
use crate::model::{check_schemas, PATCH_SCHEMA};
use serde_json::Value;

/// What a PATCH edits: a draft of one resource.
pub trait Patch {
    /// `add` or `replace` of what `path` names (`replace` first clears a multi-valued one).
    fn set(&mut self, path: &str, value: &Value, replace: bool) -> Result<(), ScimError>;
    /// `remove` of what `path` names; `value`, when given, says which values (Entra ID
    /// removes members so).
    fn remove(&mut self, path: &str, value: Option<&Value>) -> Result<(), ScimError>;
}

/// The operations of a PATCH body (its schema checked).
pub fn operations(body: &Value) -> Result<&[Value], ScimError> {
    let Value::Object(map) = body else { return Err(ScimError::invalid_syntax("the body must be a JSON object")) };
    check_schemas(map, PATCH_SCHEMA)?;
    match map.get("Operations").or_else(|| map.get("operations")) {
        Some(Value::Array(ops)) => Ok(ops),
        _ => Err(ScimError::invalid_value("a PATCH needs an Operations list")),
    }
}

/// Applies every operation in order to `draft` (of the resource `id`); the first that
/// fails is the error, named by its index.
pub fn apply(draft: &mut impl Patch, id: &str, ops: &[Value]) -> Result<(), ScimError> {
    for (i, op) in ops.iter().enumerate() {
        apply_one(draft, id, op).map_err(|mut e| {
            e.detail = format!("Operations[{i}]: {}", e.detail);
            e
        })?;
    }
    Ok(())
}

fn apply_one(draft: &mut impl Patch, id: &str, op: &Value) -> Result<(), ScimError> {
    let Value::Object(op) = op else { return Err(ScimError::invalid_syntax("an operation must be an object")) };
    let kind =
        op.get("op").and_then(Value::as_str).ok_or_else(|| ScimError::invalid_value("an operation needs `op`"))?;
    let path = op.get("path").and_then(Value::as_str);
    let value = op.get("value");
    let replace = kind.eq_ignore_ascii_case("replace");
    // Entra ID capitalises the ops (`Replace`, `Add`, `Remove`).
    match (kind.to_ascii_lowercase().as_str(), path, value) {
        ("add" | "replace", Some(path), Some(v)) => draft.set(path, v, replace),
        // Path-less: the value is an object of attributes (Okta's `{"active": false}`).
        ("add" | "replace", None, Some(Value::Object(map))) => {
            for (k, v) in map {
                // Okta's path-less replace of a group carries the group's own id.
                if k.eq_ignore_ascii_case("id") && v.as_str() == Some(id) {
                    continue;
                }
                draft.set(k, v, replace)?;
            }
            Ok(())
        }
        ("add" | "replace", _, _) => {
            Err(ScimError::invalid_value(format!("`{kind}` needs a value (an object when there is no path)")))
        }
        ("remove", Some(path), v) => draft.remove(path, v),
        ("remove", None, _) => Err(ScimError::no_target("`remove` needs a path")),
        (other, _, _) => Err(ScimError::invalid_value(format!("unknown op `{other}` (add, replace, remove)"))),
    }
}
