//! `/Groups`: a group's creation, rename and deletion, and its member changes, as the
//! `group.*` events. The group's name in the log is made once, from its first display
//! name; a rename (or a new `externalId`) is `group.updated`, so the history of a group
//! stays one history.

use crate::error::ScimError;
use crate::model::{self, Group, GROUP_SCHEMA};
use crate::users::{base, check_if_match, commit, envelope, parse_body, respond};
use crate::{App, Caller};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tenure_engine::event::{GroupLifecycle, GroupUpdated, Membership};
use tenure_engine::{EventData, GroupId, IdentityId};

/// What a request makes of a group.
struct Draft {
    display_name: String,
    external_id: Option<String>,
    members: BTreeSet<String>,
}

/// A member reference: `{"value": id}` (or, leniently, the id as a string).
fn member_ids(value: &Value) -> Result<Vec<String>, ScimError> {
    let items: Vec<&Value> = match value {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![value],
        _ => return Err(ScimError::invalid_value("members: expected a list of {\"value\": id}")),
    };
    items
        .into_iter()
        .map(|i| match i {
            Value::Object(m) => m
                .get("value")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ScimError::invalid_value("members: each needs a \"value\" (the user's id)")),
            Value::String(s) => Ok(s.clone()),
            _ => Err(ScimError::invalid_value("members: expected a list of {\"value\": id}")),
        })
        .collect()
}

/// `members[value eq "id"]`: the id.
fn member_filter(path: &str) -> Result<Option<String>, ScimError> {
    let Some(inner) = path.get(..8).filter(|p| p.eq_ignore_ascii_case("members[")).map(|_| &path[8..]) else {
        return Ok(None);
    };
    let Some(filter) = inner.strip_suffix(']') else {
        return Err(ScimError::invalid_path(format!("`{path}`: `[` is not closed")));
    };
    match crate::filter::parse(filter).map_err(|e| ScimError::invalid_path(e.detail))? {
        crate::filter::Filter::Compare(p, crate::filter::Op::Eq, Value::String(id))
            if p.name.eq_ignore_ascii_case("value") =>
        {
            Ok(Some(id))
        }
        _ => Err(ScimError::invalid_path(format!("`{path}`: only `members[value eq \"id\"]` selects a member"))),
    }
}

impl crate::patch::Patch for Draft {
    fn set(&mut self, path: &str, value: &Value, replace: bool) -> Result<(), ScimError> {
        if path.eq_ignore_ascii_case("displayName") {
            match value {
                Value::String(s) if !s.trim().is_empty() => self.display_name = s.clone(),
                _ => return Err(ScimError::invalid_value("displayName: expected a non-empty string")),
            }
        } else if path.eq_ignore_ascii_case("members") {
            if replace {
                self.members.clear();
            }
            self.members.extend(member_ids(value)?);
        } else if path.eq_ignore_ascii_case("id") || path.to_ascii_lowercase().starts_with("meta") {
            return Err(ScimError::mutability(format!("`{path}` is read-only")));
        } else if path.eq_ignore_ascii_case("externalId") {
            match value {
                Value::String(s) if !s.is_empty() => self.external_id = Some(s.clone()),
                Value::String(_) | Value::Null => self.external_id = None,
                _ => return Err(ScimError::invalid_value("externalId: expected a string")),
            }
        } else {
            return Err(ScimError::invalid_path(format!("`{path}` is not an attribute of a group")));
        }
        Ok(())
    }

    fn remove(&mut self, path: &str, value: Option<&Value>) -> Result<(), ScimError> {
        if let Some(id) = member_filter(path)? {
            self.members.remove(&id);
        } else if path.eq_ignore_ascii_case("members") {
            match value {
                // Entra ID: `remove` on `members` with the members to remove as its value.
                Some(v) if !v.is_null() => {
                    for id in member_ids(v)? {
                        self.members.remove(&id);
                    }
                }
                _ => self.members.clear(),
            }
        } else if path.eq_ignore_ascii_case("externalId") {
            self.external_id = None;
        } else if path.eq_ignore_ascii_case("displayName") {
            return Err(ScimError::mutability("displayName is required"));
        } else {
            return Err(ScimError::invalid_path(format!("`{path}` is not an attribute of a group")));
        }
        Ok(())
    }
}

impl Draft {
    fn from_resource(value: &Value) -> Result<Draft, ScimError> {
        use crate::patch::Patch;
        let Value::Object(map) = value else { return Err(ScimError::invalid_syntax("the body must be a JSON object")) };
        model::check_schemas(map, GROUP_SCHEMA)?;
        let mut draft = Draft { display_name: String::new(), external_id: None, members: BTreeSet::new() };
        match map.get("displayName") {
            Some(v) => draft.set("displayName", v, true)?,
            None => return Err(ScimError::invalid_value("displayName is required")),
        }
        if let Some(m) = map.get("members").filter(|m| !m.is_null()) {
            draft.set("members", m, true)?;
        }
        if let Some(x) = map.get("externalId") {
            draft.set("externalId", x, true)?;
        }
        Ok(draft)
    }
}

/// The events from `old` to `new`; members must be present users.
fn events(
    dir: &crate::directory::Directory,
    old: Option<&Group>,
    id: &str,
    new: &Draft,
) -> Result<Vec<EventData>, ScimError> {
    if let Some(unknown) = new.members.iter().find(|m| !dir.users.contains_key(m.as_str())) {
        return Err(ScimError::invalid_value(format!("members: no user '{unknown}'")));
    }
    let group = GroupId::from(id);
    let mut data = Vec::new();
    let empty = BTreeSet::new();
    let before = match old {
        None => {
            data.push(EventData::GroupCreated(GroupLifecycle {
                group: group.clone(),
                display_name: Some(new.display_name.clone()),
                external_id: new.external_id.clone(),
            }));
            &empty
        }
        Some(old) => {
            let renamed = old.display_name != new.display_name;
            let external = old.external_id != new.external_id;
            if renamed || external {
                data.push(EventData::GroupUpdated(GroupUpdated {
                    group: group.clone(),
                    display_name: renamed.then(|| new.display_name.clone()),
                    external_id: external.then(|| new.external_id.clone().unwrap_or_default()),
                }));
            }
            &old.members
        }
    };
    for gone in before.difference(&new.members) {
        data.push(EventData::GroupMemberRemoved(Membership {
            group: group.clone(),
            identity: IdentityId::from(gone.as_str()),
        }));
    }
    for added in new.members.difference(before) {
        data.push(EventData::GroupMemberAdded(Membership {
            group: group.clone(),
            identity: IdentityId::from(added.as_str()),
        }));
    }
    Ok(data)
}

/// A fresh name for a new group: its display name, lower-cased, other characters than
/// letters and digits as `-`; `-2`, `-3`... when a group of the log ever had it.
fn slug(display_name: &str) -> String {
    let slug: String = display_name.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { '-' }).collect();
    let slug = slug.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
    if slug.is_empty() {
        "group".into()
    } else {
        slug
    }
}

fn fresh_name(dir: &crate::directory::Directory, display_name: &str) -> String {
    let slug = slug(display_name);
    let mut name = slug.clone();
    let mut n = 1;
    while dir.group_names.contains(&name) {
        n += 1;
        name = format!("{slug}-{n}");
    }
    name
}

/// A new display name (of a PUT or PATCH): reserved for this write, and refused when
/// another group has it.
fn take_name<'a>(
    app: &'a App,
    dir: &crate::directory::Directory,
    group: &Group,
    draft: &Draft,
) -> Result<Option<crate::Reservation<'a>>, ScimError> {
    if group.display_name.to_lowercase() == draft.display_name.to_lowercase() {
        return Ok(None);
    }
    let reservation = app.reserve(format!("d:{}", draft.display_name.to_lowercase()))?;
    if let Some(other) = dir.group_by_name(&draft.display_name).filter(|g| g.id != group.id) {
        return Err(ScimError::uniqueness(format!("displayName is taken by group '{}'", other.id)));
    }
    Ok(Some(reservation))
}

fn answer(app: &App, id: &str, status: StatusCode) -> Result<Response, ScimError> {
    let dir = app.dir()?;
    let group =
        dir.groups.get(id).ok_or_else(|| ScimError::internal("the group is not in the directory after the write"))?;
    let mut response = respond(status, model::render_group(group, base(app)), Some(group.version));
    if status == StatusCode::CREATED {
        if let Ok(loc) = header::HeaderValue::from_str(&format!("{}/Groups/{id}", base(app))) {
            response.headers_mut().insert(header::LOCATION, loc);
        }
    }
    Ok(response)
}

#[utoipa::path(
    operation_id = "groups_create",
    post,
    path = "/scim/v2/Groups",
    tag = "SCIM groups",
    description = "Creates a group: group.created and its members.",
    request_body(content = serde_json::Value, description = "A SCIM Group", content_type = "application/scim+json"),
    responses((status = 201, description = "The group"), (status = 409, description = "uniqueness: the displayName is taken"), (status = 400, description = "A SCIM error: invalidValue, invalidFilter, invalidPath, mutability..."), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn create(State(app): State<Arc<App>>, caller: Caller, body: Bytes) -> Result<Response, ScimError> {
    let value = parse_body(&body)?;
    let draft = Draft::from_resource(&value)?;
    // Creates whose names would collide take the same lock, so the second sees the first.
    let _lock = app.lock(&format!("g:{}", slug(&draft.display_name))).await;
    let _name = app.reserve(format!("d:{}", draft.display_name.to_lowercase()))?;
    let (events, id) = {
        let dir = app.dir()?;
        if let Some(other) = dir.group_by_name(&draft.display_name) {
            return Err(ScimError::uniqueness(format!(
                "displayName '{}' is taken by group '{}'",
                draft.display_name, other.id
            )));
        }
        let id = fresh_name(&dir, &draft.display_name);
        let data = events(&dir, None, &id, &draft)?;
        (envelope(&caller, data, &id, 0, Some(&value)), id)
    };
    commit(&app, events).await?;
    answer(&app, &id, StatusCode::CREATED)
}

#[utoipa::path(
    operation_id = "groups_get",
    get,
    path = "/scim/v2/Groups/{id}",
    tag = "SCIM groups",
    description = "One group.",
    params(("id" = String, Path, description = "The group id"), ("attributes" = Option<String>, Query, description = "Attributes to return"), ("excludedAttributes" = Option<String>, Query, description = "Attributes to leave out")),
    responses((status = 200, description = "The group"), (status = 404, description = "No such resource"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn get(
    State(app): State<Arc<App>>,
    _caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let dir = app.dir()?;
    let group = dir.groups.get(&id).ok_or_else(|| ScimError::not_found(format!("no group '{id}'")))?;
    let body = model::project(model::render_group(group, base(&app)), &q);
    Ok(respond(StatusCode::OK, body, Some(group.version)))
}

#[utoipa::path(
    operation_id = "groups_search",
    post,
    path = "/scim/v2/Groups/.search",
    tag = "SCIM groups",
    description = "Groups by a SearchRequest body.",
    request_body(content = serde_json::Value, description = "A SearchRequest", content_type = "application/scim+json"),
    responses((status = 200, description = "A ListResponse"), (status = 400, description = "A SCIM error: invalidValue, invalidFilter, invalidPath, mutability..."), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn search(State(app): State<Arc<App>>, caller: Caller, body: Bytes) -> Result<Response, ScimError> {
    let q = crate::users::search_query(&body)?;
    list(State(app), caller, Query(q)).await
}

#[utoipa::path(
    operation_id = "groups_list",
    get,
    path = "/scim/v2/Groups",
    tag = "SCIM groups",
    description = "Groups, filtered, sorted and paged.",
    params(("filter" = Option<String>, Query, description = "RFC 7644 filter"), ("startIndex" = Option<u64>, Query, description = "1-based index of the first result"), ("count" = Option<u64>, Query, description = "Page size (at most 1000)"), ("sortBy" = Option<String>, Query, description = "Attribute path to sort by"), ("sortOrder" = Option<String>, Query, description = "ascending or descending"), ("attributes" = Option<String>, Query, description = "Attributes to return"), ("excludedAttributes" = Option<String>, Query, description = "Attributes to leave out")),
    responses((status = 200, description = "A ListResponse"), (status = 400, description = "A SCIM error: invalidValue, invalidFilter, invalidPath, mutability..."), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn list(
    State(app): State<Arc<App>>,
    _caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let filter = q.get("filter").map(|f| crate::filter::parse(f)).transpose()?;
    let dir = app.dir()?;
    let b = base(&app);
    let found: Vec<Value> = dir
        .groups
        .values()
        .map(|g| model::render_group(g, b))
        .filter(|r| filter.as_ref().is_none_or(|f| crate::filter::matches(f, r)))
        .collect();
    crate::users::answer_list(found, &q)
}

#[utoipa::path(
    operation_id = "groups_replace",
    put,
    path = "/scim/v2/Groups/{id}",
    tag = "SCIM groups",
    description = "Replaces a group: rename and member changes.",
    params(("id" = String, Path, description = "The group id")),
    request_body(content = serde_json::Value, description = "A SCIM Group", content_type = "application/scim+json"),
    responses((status = 200, description = "The group"), (status = 412, description = "If-Match names a stale version"), (status = 404, description = "No such resource"), (status = 400, description = "A SCIM error: invalidValue, invalidFilter, invalidPath, mutability..."), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn replace(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let value = parse_body(&body)?;
    let draft = Draft::from_resource(&value)?;
    let _lock = app.lock(&format!("g:{id}")).await;
    let mut _name = None;
    let events = {
        let dir = app.dir()?;
        let group = dir.groups.get(&id).ok_or_else(|| ScimError::not_found(format!("no group '{id}'")))?;
        check_if_match(&headers, group.version)?;
        _name = take_name(&app, &dir, group, &draft)?;
        let data = events(&dir, Some(group), &id, &draft)?;
        envelope(&caller, data, &id, group.version, Some(&value))
    };
    commit(&app, events).await?;
    answer(&app, &id, StatusCode::OK)
}

#[utoipa::path(
    operation_id = "groups_patch",
    patch,
    path = "/scim/v2/Groups/{id}",
    tag = "SCIM groups",
    description = "Applies a PatchOp to a group (members add and remove).",
    params(("id" = String, Path, description = "The group id")),
    request_body(content = serde_json::Value, description = "A PatchOp", content_type = "application/scim+json"),
    responses((status = 200, description = "The group"), (status = 204, description = "Applied (no attributes asked for)"), (status = 404, description = "No such resource"), (status = 400, description = "A SCIM error: invalidValue, invalidFilter, invalidPath, mutability..."), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn patch(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let value = parse_body(&body)?;
    let ops = crate::patch::operations(&value)?;
    let _lock = app.lock(&format!("g:{id}")).await;
    let mut _name = None;
    let events = {
        let dir = app.dir()?;
        let group = dir.groups.get(&id).ok_or_else(|| ScimError::not_found(format!("no group '{id}'")))?;
        check_if_match(&headers, group.version)?;
        let mut draft = Draft {
            display_name: group.display_name.clone(),
            external_id: group.external_id.clone(),
            members: group.members.clone(),
        };
        crate::patch::apply(&mut draft, &id, ops)?;
        _name = take_name(&app, &dir, group, &draft)?;
        let data = events(&dir, Some(group), &id, &draft)?;
        envelope(&caller, data, &id, group.version, Some(&value))
    };
    commit(&app, events).await?;
    // RFC 7644 §3.5.2: 200 with the resource, or 204. A group's resource lists every
    // member, so a member change answers 204 with the new version (what Okta expects), and
    // the resource only when `attributes` or `excludedAttributes` asks for it.
    let dir = app.dir()?;
    let group =
        dir.groups.get(&id).ok_or_else(|| ScimError::internal("the group is not in the directory after the write"))?;
    if q.contains_key("attributes") || q.contains_key("excludedAttributes") {
        let body = model::project(model::render_group(group, base(&app)), &q);
        return Ok(respond(StatusCode::OK, body, Some(group.version)));
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(tag) = header::HeaderValue::from_str(&model::etag(group.version)) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    Ok(response)
}

#[utoipa::path(
    operation_id = "groups_delete",
    delete,
    path = "/scim/v2/Groups/{id}",
    tag = "SCIM groups",
    description = "Deletes a group: group.deleted.",
    params(("id" = String, Path, description = "The group id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such resource"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let _lock = app.lock(&format!("g:{id}")).await;
    let events = {
        let dir = app.dir()?;
        let group = dir.groups.get(&id).ok_or_else(|| ScimError::not_found(format!("no group '{id}'")))?;
        check_if_match(&headers, group.version)?;
        let deleted = EventData::GroupDeleted(GroupLifecycle {
            group: GroupId::from(id.as_str()),
            display_name: None,
            external_id: None,
        });
        envelope(&caller, vec![deleted], &id, group.version, None)
    };
    commit(&app, events).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
