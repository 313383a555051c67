//! SCIM users as Tenure identity attributes, and back.
//!
//! A user's attributes are kept flat, as an identity's string attributes: `userName`,
//! `displayName`, `name.givenName`, `emails.work` (one per email type, the primary's type
//! in `emails.primary`), `phoneNumbers.mobile`, and the enterprise extension's
//! `department`, `title`, `manager`, `employeeNumber`, `costCenter`, `organization`,
//! `division` under their own names (the names the rest of Tenure already uses). A value
//! of `""` in an `identity.moved` clears an attribute. docs/scim.md has the table.

use crate::error::ScimError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The schema Entra ID names beside the core one in a group it creates.
pub const ENTRA_GROUP: &str = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

pub type Attrs = BTreeMap<String, String>;

/// Single-valued string attributes of the core schema.
const CORE: [&str; 10] = [
    "userName",
    "externalId",
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
];
const NAME: [&str; 6] = ["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"];
/// The enterprise extension's string attributes (`manager` is complex, handled apart).
const ENTERPRISE_ATTRS: [&str; 5] = ["employeeNumber", "costCenter", "organization", "division", "department"];
/// Multi-valued attributes kept one value per `type`.
const MULTI: [&str; 2] = ["emails", "phoneNumbers"];
/// The sub-attributes of an address, kept as `addresses.TYPE.SUB`.
const ADDRESS: [&str; 6] = ["formatted", "streetAddress", "locality", "region", "postalCode", "country"];

/// A user as the directory holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub attrs: Attrs,
    pub active: bool,
    /// Deactivated by a leave (a token whose deactivation is `leave`): the identity has
    /// left, the SCIM resource stays, inactive, and a reactivation rejoins it.
    pub left: bool,
    /// Its `entitlements` and `roles`: the grants the directory made (by `Grants::justification`).
    pub grants: Grants,
    pub created: tenure_engine::Timestamp,
    pub modified: tenure_engine::Timestamp,
    /// The position of the last event about this user: its `meta.version`.
    pub version: u64,
}

/// A group as the directory holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    /// Member user ids.
    pub members: std::collections::BTreeSet<String>,
    pub created: tenure_engine::Timestamp,
    pub modified: tenure_engine::Timestamp,
    pub version: u64,
}

/// The SCIM representation of a group.
pub fn render_group(group: &Group, base: &str) -> Value {
    let members: Vec<Value> = group
        .members
        .iter()
        .map(|m| json!({"value": m, "$ref": format!("{base}/Users/{m}"), "type": "User"}))
        .collect();
    let mut out = json!({
        "schemas": [GROUP_SCHEMA],
        "id": group.id,
        "displayName": group.display_name,
        "members": members,
        "meta": {
            "resourceType": "Group",
            "created": group.created.to_rfc3339(),
            "lastModified": group.modified.to_rfc3339(),
            "location": format!("{base}/Groups/{}", group.id),
            "version": etag(group.version),
        },
    });
    if let Some(x) = &group.external_id {
        out["externalId"] = json!(x);
    }
    out
}

/// `s` without `prefix` (ASCII), compared without regard to case; none when `s` does not
/// start with it. Slices only where the prefix's bytes matched, so never inside a
/// character, whatever a client sent.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let n = prefix.len();
    (s.len() >= n && s.as_bytes()[..n].eq_ignore_ascii_case(prefix.as_bytes())).then(|| s.get(n..)).flatten()
}

fn canonical<'a>(list: &[&'a str], name: &str) -> Option<&'a str> {
    list.iter().copied().find(|c| c.eq_ignore_ascii_case(name))
}

fn string_value(path: &str, v: &Value) -> Result<String, ScimError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        _ => Err(ScimError::invalid_value(format!("{path}: expected a string"))),
    }
}

/// `true`, `false`, or Entra's `"True"` / `"False"`.
pub fn bool_value(path: &str, v: &Value) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid_value(format!("{path}: expected true or false"))),
    }
}

/// The working copy a request edits: attributes and `active`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    pub attrs: Attrs,
    pub active: bool,
    /// The user's `entitlements` and `roles`, as entitlements (see [`Grants`]).
    pub grants: Grants,
}

impl Draft {
    /// The state a user is in, as a draft to write.
    pub fn of(user: &User) -> Draft {
        Draft { attrs: user.attrs.clone(), active: user.active, grants: user.grants.clone() }
    }
}

/// A user's SCIM `entitlements` and `roles`: each value is a direct grant of the
/// entitlement it names, `RESOURCE#PERMISSION`, or `RESOURCE` alone for the permission
/// [`DEFAULT_PERMISSION`]. Only `value` is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    pub entitlements: std::collections::BTreeSet<tenure_engine::Entitlement>,
    pub roles: std::collections::BTreeSet<tenure_engine::Entitlement>,
}

/// The permission of an entitlement or role value without `#`.
pub const DEFAULT_PERMISSION: &str = "assigned";

/// The grant a value names.
pub fn entitlement_of(kind: &str, value: &str) -> Result<tenure_engine::Entitlement, ScimError> {
    let e = match value.rsplit_once('#') {
        Some(_) => tenure_engine::Entitlement::parse_short(value),
        None if !value.trim().is_empty() => Some(tenure_engine::Entitlement::new(value, DEFAULT_PERMISSION)),
        None => None,
    };
    match e {
        Some(e) if !e.resource.contains('#') => Ok(e),
        _ => Err(ScimError::invalid_value(format!("{kind}: '{value}' is not RESOURCE or RESOURCE#PERMISSION"))),
    }
}

/// The value a grant is shown as (the inverse of [`entitlement_of`]).
pub fn value_of(e: &tenure_engine::Entitlement) -> String {
    if e.permission == DEFAULT_PERMISSION {
        e.resource.clone()
    } else {
        e.to_string()
    }
}

impl Grants {
    fn list(&mut self, kind: &str) -> &mut std::collections::BTreeSet<tenure_engine::Entitlement> {
        if kind == "roles" {
            &mut self.roles
        } else {
            &mut self.entitlements
        }
    }

    /// The justification the log keeps on each grant event: where the list came from
    /// (`SCIM`, or `directory-sync` for a WorkOS role) and which list it is.
    pub fn justification(origin: &str, kind: &str) -> String {
        format!("{origin} {kind}")
    }

    /// The list a grant event's justification names (the inverse of [`Grants::justification`]).
    pub fn kind_of(justification: &str) -> Option<&'static str> {
        let kind = justification.strip_prefix("SCIM ").or_else(|| justification.strip_prefix("directory-sync "))?;
        ["roles", "entitlements"].into_iter().find(|k| *k == kind)
    }
}

/// Where a PATCH path or a resource key points.
enum Target {
    Active,
    /// A flat attribute.
    Attr(String),
    /// `name` as a whole.
    Name,
    /// `emails` / `phoneNumbers` as a whole, or one type of it.
    Multi {
        attr: &'static str,
        kind: Option<String>,
    },
    /// `manager` (its `value`).
    Manager,
    /// The enterprise extension as a whole.
    Enterprise,
    /// `addresses` as a whole, one type of it, or one sub-attribute of one type
    /// (`addresses[type eq "work"].locality`).
    Address {
        kind: Option<String>,
        sub: Option<&'static str>,
    },
    /// `entitlements` / `roles` as a whole, or one value of it (`roles[value eq "x"]`).
    Grants {
        kind: &'static str,
        value: Option<String>,
    },
}

/// Resolves a PATCH path (or a key of a path-less value) to what it edits.
fn target(path: &str) -> Result<Target, ScimError> {
    if path.eq_ignore_ascii_case(ENTERPRISE) {
        return Ok(Target::Enterprise);
    }
    if let Some(rest) = strip_prefix_ci(path, ENTERPRISE).and_then(|r| r.strip_prefix(':')) {
        if rest.eq_ignore_ascii_case("manager") || rest.eq_ignore_ascii_case("manager.value") {
            return Ok(Target::Manager);
        }
        return canonical(&ENTERPRISE_ATTRS, rest).map(|a| Target::Attr(a.to_string())).ok_or_else(|| {
            ScimError::invalid_path(format!("`{path}` is not an attribute of the enterprise extension"))
        });
    }
    let path = strip_prefix_ci(path, USER_SCHEMA).and_then(|r| r.strip_prefix(':')).unwrap_or(path);
    if path.eq_ignore_ascii_case("active") {
        return Ok(Target::Active);
    }
    if path.eq_ignore_ascii_case("name") {
        return Ok(Target::Name);
    }
    if let Some(rest) = strip_prefix_ci(path, "addresses") {
        if rest.is_empty() {
            return Ok(Target::Address { kind: None, sub: None });
        }
        let bad = || {
            ScimError::invalid_path(format!(
                "`{path}`: expected addresses[type eq \"...\"] or addresses[type eq \"...\"].SUB"
            ))
        };
        let inner = rest.strip_prefix('[').ok_or_else(bad)?;
        let (filter, after) = inner.split_once(']').ok_or_else(bad)?;
        let kind = match crate::filter::parse(filter).map_err(|e| ScimError::invalid_path(e.detail))? {
            crate::filter::Filter::Compare(p, crate::filter::Op::Eq, Value::String(kind))
                if p.name.eq_ignore_ascii_case("type") && p.sub.is_none() =>
            {
                kind.to_ascii_lowercase()
            }
            _ => return Err(bad()),
        };
        let sub = match after.strip_prefix('.') {
            None if after.is_empty() => None,
            Some(s) => Some(canonical(&ADDRESS, s).ok_or_else(bad)?),
            None => return Err(bad()),
        };
        return Ok(Target::Address { kind: Some(kind), sub });
    }
    for kind in ["entitlements", "roles"] {
        if let Some(rest) = strip_prefix_ci(path, kind) {
            if rest.is_empty() {
                return Ok(Target::Grants { kind, value: None });
            }
            let filter = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
            let parsed = filter.map(crate::filter::parse).transpose().map_err(|e| ScimError::invalid_path(e.detail))?;
            return match parsed {
                Some(crate::filter::Filter::Compare(p, crate::filter::Op::Eq, Value::String(v)))
                    if p.name.eq_ignore_ascii_case("value") && p.sub.is_none() =>
                {
                    Ok(Target::Grants { kind, value: Some(v) })
                }
                _ => Err(ScimError::invalid_path(format!("`{path}`: only `{kind}[value eq \"...\"]` selects a value"))),
            };
        }
    }
    if let Some(sub) = path.strip_prefix("name.").or_else(|| path.strip_prefix("Name.")) {
        return canonical(&NAME, sub)
            .map(|s| Target::Attr(format!("name.{s}")))
            .ok_or_else(|| ScimError::invalid_path(format!("`{path}` is not a sub-attribute of name")));
    }
    for attr in MULTI {
        if let Some(rest) = strip_prefix_ci(path, attr) {
            if rest.is_empty() {
                return Ok(Target::Multi { attr, kind: None });
            }
            // `emails[type eq "work"]` or `emails[type eq "work"].value`.
            let Some(inner) = rest.strip_prefix('[') else { break };
            let Some((filter, after)) = inner.split_once(']') else {
                return Err(ScimError::invalid_path(format!("`{path}`: `[` is not closed")));
            };
            if !(after.is_empty() || after.eq_ignore_ascii_case(".value")) {
                return Err(ScimError::invalid_path(format!("`{path}`: only `.value` can follow the filter")));
            }
            let parsed = crate::filter::parse(filter).map_err(|e| ScimError::invalid_path(e.detail))?;
            return match parsed {
                crate::filter::Filter::Compare(p, crate::filter::Op::Eq, Value::String(kind))
                    if p.name.eq_ignore_ascii_case("type") && p.sub.is_none() =>
                {
                    Ok(Target::Multi { attr, kind: Some(kind.to_ascii_lowercase()) })
                }
                _ => Err(ScimError::invalid_path(format!(
                    "`{path}`: only `[type eq \"...\"]` selects a value of {attr}"
                ))),
            };
        }
    }
    if path.eq_ignore_ascii_case("id") || strip_prefix_ci(path, "meta").is_some() {
        return Err(ScimError::mutability(format!("`{path}` is read-only")));
    }
    if path.eq_ignore_ascii_case("groups") {
        return Err(ScimError::mutability("`groups` is read-only: change membership through the group"));
    }
    if path.eq_ignore_ascii_case("password") {
        // Accepted and never stored (a password is not evidence; it is a secret).
        return Ok(Target::Attr(String::new()));
    }
    if let Some(a) = canonical(&CORE, path) {
        return Ok(Target::Attr(a.to_string()));
    }
    // The enterprise attributes are accepted without their URN too (some clients send them so).
    if path.eq_ignore_ascii_case("manager") {
        return Ok(Target::Manager);
    }
    canonical(&ENTERPRISE_ATTRS, path).map(|a| Target::Attr(a.to_string())).ok_or_else(|| {
        ScimError::invalid_path(format!("`{path}` is not an attribute Tenure keeps (see /scim/v2/Schemas)"))
    })
}

impl Draft {
    /// Sets what `path` names to `value` (`add` and `replace` on a singular attribute mean
    /// the same; on a multi-valued one, `replace` first clears it).
    pub fn set(&mut self, path: &str, value: &Value, replace: bool) -> Result<(), ScimError> {
        match target(path)? {
            Target::Active => {
                self.active = bool_value(path, value)?;
                self.attrs.remove("active");
            }
            Target::Attr(a) if a.is_empty() => {}
            Target::Attr(a) => {
                let v = string_value(path, value)?;
                self.put(&a, v);
            }
            Target::Name => {
                let Value::Object(map) = value else {
                    return Err(ScimError::invalid_value("name: expected an object"));
                };
                for (k, v) in map {
                    self.set(&format!("name.{k}"), v, replace)?;
                }
            }
            Target::Manager => {
                let id = match value {
                    Value::Object(m) => {
                        m.get("value").map(|v| string_value("manager.value", v)).transpose()?.unwrap_or_default()
                    }
                    other => string_value(path, other)?,
                };
                self.put("manager", id);
            }
            Target::Enterprise => {
                let Value::Object(map) = value else {
                    return Err(ScimError::invalid_value("the enterprise extension: expected an object"));
                };
                for (k, v) in map {
                    // The extension object may name its own schema.
                    if k == "schemas" {
                        continue;
                    }
                    self.set(&format!("{ENTERPRISE}:{k}"), v, replace)?;
                }
            }
            Target::Grants { kind, value: Some(_) } => {
                return Err(ScimError::invalid_path(format!("`{path}`: add or replace the whole {kind} list")));
            }
            Target::Address { kind: Some(kind), sub: Some(sub) } => {
                let v = string_value(path, value)?;
                self.put(&format!("addresses.{kind}.{sub}"), v);
            }
            Target::Address { kind, sub: None } => {
                let items: Vec<&Value> = match value {
                    Value::Array(a) if kind.is_none() => a.iter().collect(),
                    Value::Object(_) => vec![value],
                    _ => return Err(ScimError::invalid_value("addresses: expected a list of objects")),
                };
                if replace && kind.is_none() {
                    self.clear_multi("addresses");
                }
                for item in items {
                    let Value::Object(m) = item else {
                        return Err(ScimError::invalid_value("addresses: expected a list of objects"));
                    };
                    let kind = match &kind {
                        Some(k) => k.clone(),
                        None => m.get("type").and_then(Value::as_str).unwrap_or("other").to_ascii_lowercase(),
                    };
                    // An address is replaced whole.
                    let prefix = format!("addresses.{kind}.");
                    self.attrs.retain(|k, _| !k.starts_with(&prefix));
                    for (k, v) in m {
                        if let Some(sub) = canonical(&ADDRESS, k) {
                            let v = string_value(&format!("addresses.{sub}"), v)?;
                            self.put(&format!("{prefix}{sub}"), v);
                        }
                    }
                    if m.get("primary").is_some_and(|p| bool_value("primary", p).unwrap_or(false)) {
                        self.put("addresses.primary", kind.clone());
                    }
                }
            }
            Target::Address { kind: None, sub: Some(_) } => {
                return Err(ScimError::invalid_path("addresses: name a type"))
            }
            Target::Grants { kind, value: None } => {
                let items: Vec<&Value> = match value {
                    Value::Array(a) => a.iter().collect(),
                    Value::Null => Vec::new(),
                    other => vec![other],
                };
                let mut list = std::collections::BTreeSet::new();
                for item in items {
                    let v = match item {
                        Value::Object(m) => m.get("value").and_then(Value::as_str),
                        Value::String(s) => Some(s.as_str()),
                        _ => None,
                    };
                    let v =
                        v.ok_or_else(|| ScimError::invalid_value(format!("{kind}: each needs a string \"value\"")))?;
                    list.insert(entitlement_of(kind, v)?);
                }
                if replace {
                    self.grants.list(kind).clear();
                }
                self.grants.list(kind).extend(list);
            }
            Target::Multi { attr, kind: Some(kind) } => {
                let v = match value {
                    Value::Object(m) => m.get("value").map(|v| string_value(path, v)).transpose()?.unwrap_or_default(),
                    other => string_value(path, other)?,
                };
                self.put(&format!("{attr}.{kind}"), v);
            }
            Target::Multi { attr, kind: None } => {
                let items: Vec<&Value> = match value {
                    Value::Array(a) => a.iter().collect(),
                    Value::Object(_) => vec![value],
                    _ => return Err(ScimError::invalid_value(format!("{attr}: expected a list of objects"))),
                };
                if replace {
                    self.clear_multi(attr);
                }
                for item in items {
                    let Value::Object(m) = item else {
                        return Err(ScimError::invalid_value(format!("{attr}: expected a list of objects")));
                    };
                    let kind = m.get("type").and_then(Value::as_str).unwrap_or("other").to_ascii_lowercase();
                    let v = m.get("value").map(|v| string_value(attr, v)).transpose()?.unwrap_or_default();
                    if m.get("primary").is_some_and(|p| bool_value("primary", p).unwrap_or(false)) {
                        self.put(&format!("{attr}.primary"), kind.clone());
                    }
                    self.put(&format!("{attr}.{kind}"), v);
                }
            }
        }
        Ok(())
    }

    /// Clears what `path` names (`remove`).
    pub fn remove(&mut self, path: &str) -> Result<(), ScimError> {
        match target(path)? {
            // The directory no longer asserts the user active: not active for Tenure (an
            // unasserted status gives no access), and kept as the attribute
            // `active` = `unasserted` so that the history says why.
            Target::Active => {
                self.active = false;
                self.attrs.insert("active".into(), "unasserted".into());
            }
            Target::Attr(a) if a == "userName" => return Err(ScimError::mutability("`userName` is required")),
            Target::Attr(a) => {
                self.attrs.remove(&a);
            }
            Target::Name => self.attrs.retain(|k, _| !k.starts_with("name.")),
            Target::Manager => {
                self.attrs.remove("manager");
            }
            Target::Enterprise => self.attrs.retain(|k, _| k != "manager" && !ENTERPRISE_ATTRS.contains(&k.as_str())),
            Target::Multi { attr, kind: Some(kind) } => {
                self.attrs.remove(&format!("{attr}.{kind}"));
                if self.attrs.get(&format!("{attr}.primary")) == Some(&kind) {
                    self.attrs.remove(&format!("{attr}.primary"));
                }
            }
            Target::Multi { attr, kind: None } => self.clear_multi(attr),
            Target::Grants { kind, value: None } => self.grants.list(kind).clear(),
            Target::Address { kind: None, .. } => self.clear_multi("addresses"),
            Target::Address { kind: Some(kind), sub: None } => {
                let prefix = format!("addresses.{kind}.");
                self.attrs.retain(|k, _| !k.starts_with(&prefix));
                if self.attrs.get("addresses.primary") == Some(&kind) {
                    self.attrs.remove("addresses.primary");
                }
            }
            Target::Address { kind: Some(kind), sub: Some(sub) } => {
                self.attrs.remove(&format!("addresses.{kind}.{sub}"));
            }
            Target::Grants { kind, value: Some(v) } => {
                let e = entitlement_of(kind, &v)?;
                self.grants.list(kind).remove(&e);
            }
        }
        Ok(())
    }

    fn clear_multi(&mut self, attr: &str) {
        let prefix = format!("{attr}.");
        self.attrs.retain(|k, _| !k.starts_with(&prefix));
    }

    fn put(&mut self, key: &str, value: String) {
        if value.is_empty() {
            self.attrs.remove(key);
        } else {
            self.attrs.insert(key.to_string(), value);
        }
    }

    /// What no single attribute can say: one entitlement is either a role or an
    /// entitlement of the user (one grant in the log cannot be both).
    pub fn check(&self) -> Result<(), ScimError> {
        match self.grants.roles.intersection(&self.grants.entitlements).next() {
            Some(e) => Err(ScimError::invalid_value(format!("'{}' is both a role and an entitlement", value_of(e)))),
            None => Ok(()),
        }
    }

    /// A whole resource (POST, PUT): every attribute it gives, `active` defaulting to true.
    pub fn from_resource(body: &Value, active_default: bool) -> Result<Draft, ScimError> {
        let Value::Object(map) = body else {
            return Err(ScimError::invalid_syntax("the body must be a JSON object"));
        };
        check_schemas(map, USER_SCHEMA)?;
        let mut draft = Draft { attrs: Attrs::new(), active: active_default, grants: Grants::default() };
        for (k, v) in map {
            match k.as_str() {
                "schemas" | "meta" | "groups" => {}
                k if k.eq_ignore_ascii_case("id") => {}
                k if k.eq_ignore_ascii_case("password") => {}
                k => draft.set(k, v, true)?,
            }
        }
        match draft.attrs.get("userName") {
            Some(u) if !u.trim().is_empty() => Ok(draft),
            _ => Err(ScimError::invalid_value("userName is required")),
        }
    }
}

impl crate::patch::Patch for Draft {
    fn set(&mut self, path: &str, value: &Value, replace: bool) -> Result<(), ScimError> {
        Draft::set(self, path, value, replace)
    }
    fn remove(&mut self, path: &str, _value: Option<&Value>) -> Result<(), ScimError> {
        Draft::remove(self, path)
    }
}

/// `schemas` must name `core` (extensions may follow).
pub fn check_schemas(map: &Map<String, Value>, core: &str) -> Result<(), ScimError> {
    match map.get("schemas") {
        None => Ok(()),
        Some(Value::Array(list)) if list.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(core))) => {
            let known = |s: &str| {
                s.eq_ignore_ascii_case(core)
                    || s.eq_ignore_ascii_case(ENTERPRISE)
                    || s.eq_ignore_ascii_case(ENTRA_GROUP)
            };
            match list.iter().find(|s| !s.as_str().is_some_and(known)) {
                Some(other) => {
                    Err(ScimError::invalid_value(format!("schemas: {other} is not a schema of this resource")))
                }
                None => Ok(()),
            }
        }
        Some(_) => Err(ScimError::invalid_value(format!("schemas must list {core}"))),
    }
}

/// The SCIM representation of a user.
pub fn render(user: &User, base: &str) -> Value {
    let a = &user.attrs;
    let mut out = Map::new();
    let mut schemas = vec![json!(USER_SCHEMA)];
    out.insert("id".into(), json!(user.id));
    for c in CORE {
        if let Some(v) = a.get(c) {
            out.insert(c.into(), json!(v));
        }
    }
    let mut name = Map::new();
    for n in NAME {
        if let Some(v) = a.get(&format!("name.{n}")) {
            name.insert(n.into(), json!(v));
        }
    }
    if !name.is_empty() {
        out.insert("name".into(), Value::Object(name));
    }
    for attr in MULTI {
        let prefix = format!("{attr}.");
        let primary = a.get(&format!("{attr}.primary"));
        let items: Vec<Value> = a
            .iter()
            .filter_map(|(k, v)| {
                let kind = k.strip_prefix(&prefix)?;
                (kind != "primary").then(|| {
                    let mut item = json!({"type": kind, "value": v});
                    item["primary"] = json!(primary.is_some_and(|p| p == kind));
                    item
                })
            })
            .collect();
        if !items.is_empty() {
            out.insert(attr.into(), Value::Array(items));
        }
    }
    let mut addresses: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for (k, v) in a.range("addresses.".to_string()..) {
        let Some(rest) = k.strip_prefix("addresses.") else { break };
        if let Some((kind, sub)) = rest.split_once('.') {
            addresses.entry(kind).or_default().insert(sub.to_string(), json!(v));
        }
    }
    if !addresses.is_empty() {
        let primary = a.get("addresses.primary");
        let items = addresses.into_iter().map(|(kind, mut item)| {
            item.insert("type".into(), json!(kind));
            item.insert("primary".into(), json!(primary.is_some_and(|p| p == kind)));
            Value::Object(item)
        });
        out.insert("addresses".into(), Value::Array(items.collect()));
    }
    if !a.contains_key("active") {
        out.insert("active".into(), json!(user.active));
    }
    for (kind, list) in [("entitlements", &user.grants.entitlements), ("roles", &user.grants.roles)] {
        if !list.is_empty() {
            out.insert(kind.into(), Value::Array(list.iter().map(|e| json!({"value": value_of(e)})).collect()));
        }
    }
    let mut ext = Map::new();
    for e in ENTERPRISE_ATTRS {
        if let Some(v) = a.get(e) {
            ext.insert(e.into(), json!(v));
        }
    }
    if let Some(m) = a.get("manager") {
        ext.insert("manager".into(), json!({"value": m, "$ref": format!("{base}/Users/{m}")}));
    }
    if !ext.is_empty() {
        schemas.push(json!(ENTERPRISE));
        out.insert(ENTERPRISE.into(), Value::Object(ext));
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": user.created.to_rfc3339(),
            "lastModified": user.modified.to_rfc3339(),
            "location": format!("{base}/Users/{}", user.id),
            "version": etag(user.version),
        }),
    );
    Value::Object(out)
}

pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// Applies `attributes` / `excludedAttributes` to a rendered resource (`id`, `schemas` and
/// `meta` always stay, as RFC 7643 §7 has them "returned always").
pub fn project(mut resource: Value, query: &std::collections::HashMap<String, String>) -> Value {
    let (attributes, excluded) =
        (query.get("attributes").map(String::as_str), query.get("excludedAttributes").map(String::as_str));
    let Value::Object(map) = &mut resource else { return resource };
    let always = |k: &str| matches!(k, "id" | "schemas" | "meta");
    let names = |list: &str| -> Vec<String> {
        list.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect()
    };
    let top = |n: &str| -> String {
        let n = n.rsplit_once(':').filter(|_| n.starts_with("urn:")).map_or(n, |(_, last)| last);
        n.split('.').next().unwrap_or(n).to_string()
    };
    if let Some(list) = attributes {
        let wanted: Vec<String> = names(list).iter().map(|n| top(n)).collect();
        map.retain(|k, v| {
            if always(k) {
                return true;
            }
            if k.starts_with("urn:") {
                if let Value::Object(ext) = v {
                    ext.retain(|ek, _| wanted.contains(&ek.to_ascii_lowercase()));
                    return !ext.is_empty();
                }
            }
            wanted.contains(&k.to_ascii_lowercase())
        });
    }
    if let Some(list) = excluded {
        let unwanted: Vec<String> = names(list).iter().map(|n| top(n)).collect();
        map.retain(|k, v| {
            if always(k) {
                return true;
            }
            if let Value::Object(ext) = v {
                if k.starts_with("urn:") {
                    ext.retain(|ek, _| !unwanted.contains(&ek.to_ascii_lowercase()));
                }
            }
            !unwanted.contains(&k.to_ascii_lowercase())
        });
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cut_inside_a_character_are_refused_not_panicked_on() {
        // Each path has a two-byte character where a prefix's last byte would fall.
        for path in ["addresseé", "entitlementé", "roleé", "emailé", "urn:ietf:params:scim:schemas:core:2.0:Useé"]
        {
            assert!(target(path).is_err(), "{path}");
        }
        assert!(matches!(target("ADDRESSES"), Ok(Target::Address { kind: None, sub: None })));
        assert!(
            matches!(target(&format!("{}:userName", USER_SCHEMA.to_uppercase())), Ok(Target::Attr(a)) if a == "userName")
        );
        assert!(matches!(target(&format!("{ENTERPRISE}:Manager.Value")), Ok(Target::Manager)));
        assert!(matches!(target("Meta.created"), Err(e) if e.detail.contains("read-only")));
    }

    fn draft() -> Draft {
        Draft::from_resource(
            &json!({
                "schemas": [USER_SCHEMA, ENTERPRISE], "userName": "alice@example.com",
                "name": {"givenName": "Alice", "familyName": "Ng"},
                "emails": [{"type": "work", "value": "alice@example.com", "primary": true}],
                ENTERPRISE: {"department": "Finance", "manager": {"value": "bob"}}
            }),
            true,
        )
        .unwrap()
    }

    #[test]
    fn a_resource_flattens_to_attributes() {
        let d = draft();
        let keys: Vec<&str> = d.attrs.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["department", "emails.primary", "emails.work", "manager", "name.familyName", "name.givenName", "userName"]
        );
        assert!(d.active);
    }

    #[test]
    fn entra_and_okta_paths() {
        let mut d = draft();
        d.set(r#"emails[type eq "work"].value"#, &json!("a2@example.com"), false).unwrap();
        d.set("name.givenName", &json!("Al"), false).unwrap();
        d.set(&format!("{ENTERPRISE}:manager"), &json!("carol"), false).unwrap();
        d.set(&format!("{ENTERPRISE}:department"), &json!("Audit"), false).unwrap();
        d.set("active", &json!("False"), false).unwrap();
        assert_eq!(d.attrs["emails.work"], "a2@example.com");
        assert_eq!(d.attrs["name.givenName"], "Al");
        assert_eq!(d.attrs["manager"], "carol");
        assert_eq!(d.attrs["department"], "Audit");
        assert!(!d.active);
        d.remove(&format!("{ENTERPRISE}:manager")).unwrap();
        assert!(!d.attrs.contains_key("manager"));
        assert_eq!(d.set("nosuch", &json!("x"), false).unwrap_err().scim_type, Some("invalidPath"));
        assert_eq!(d.set("id", &json!("x"), false).unwrap_err().scim_type, Some("mutability"));
        assert_eq!(d.set("active", &json!("maybe"), false).unwrap_err().scim_type, Some("invalidValue"));
    }
}
