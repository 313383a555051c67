//! Discovery (RFC 7644 §4): what this server supports, exactly. A client that reads it
//! knows that filters, sorting and ETags work, that bulk and password changes do not, and
//! which attributes a user keeps.

use crate::error::ScimError;
use crate::model::{ENTERPRISE, GROUP_SCHEMA, USER_SCHEMA};
use crate::users::respond;
use crate::{App, Caller};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RT_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

fn list(items: Vec<Value>) -> Value {
    json!({
        "schemas": [crate::model::LIST_SCHEMA],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

#[utoipa::path(
    operation_id = "discovery_service_provider_config",
    get,
    path = "/scim/v2/ServiceProviderConfig",
    tag = "SCIM discovery",
    description = "What the server supports (RFC 7643 section 5).",
    responses((status = 200, description = "The configuration"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn service_provider_config(State(app): State<Arc<App>>, _c: Caller) -> Response {
    let body = json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://github.com/tenure/tenure/blob/main/docs/scim.md",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": crate::MAX_COUNT},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A static bearer token from --token-file or TENURE_SCIM_TOKEN",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{}/ServiceProviderConfig", app.base)},
    });
    respond(StatusCode::OK, body, None)
}

fn user_type(base: &str) -> Value {
    json!({
        "schemas": [RT_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A person or a service account; every change is an event of the Tenure log",
        "schema": USER_SCHEMA,
        "schemaExtensions": [{"schema": ENTERPRISE, "required": false}],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
    })
}

fn group_type(base: &str) -> Value {
    json!({
        "schemas": [RT_SCHEMA],
        "id": "Group",
        "name": "Group",
        "endpoint": "/Groups",
        "description": "A group; its creation, renames, deletion and member changes are events of the Tenure log",
        "schema": GROUP_SCHEMA,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
    })
}

#[utoipa::path(
    operation_id = "discovery_resource_types",
    get,
    path = "/scim/v2/ResourceTypes",
    tag = "SCIM discovery",
    description = "The resource types: User (with the enterprise extension) and Group.",
    responses((status = 200, description = "A ListResponse"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn resource_types(State(app): State<Arc<App>>, _c: Caller) -> Response {
    respond(StatusCode::OK, list(vec![user_type(&app.base), group_type(&app.base)]), None)
}

#[utoipa::path(
    operation_id = "discovery_resource_type",
    get,
    path = "/scim/v2/ResourceTypes/{name}",
    tag = "SCIM discovery",
    description = "One resource type.",
    params(("name" = String, Path, description = "User or Group")),
    responses((status = 200, description = "The resource type"), (status = 404, description = "No such resource"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn resource_type(
    State(app): State<Arc<App>>,
    _c: Caller,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    match name.as_str() {
        "User" => Ok(respond(StatusCode::OK, user_type(&app.base), None)),
        "Group" => Ok(respond(StatusCode::OK, group_type(&app.base), None)),
        _ => Err(ScimError::not_found(format!("no resource type '{name}'"))),
    }
}

fn attr(
    name: &str,
    kind: &str,
    multi: bool,
    required: bool,
    mutability: &str,
    unique: &str,
    case_exact: bool,
) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": multi, "description": name,
        "required": required, "caseExact": case_exact, "mutability": mutability,
        "returned": "default", "uniqueness": unique,
    })
}

fn reference(types: &[&str]) -> Value {
    let mut a = attr("$ref", "reference", false, false, "readWrite", "none", true);
    a["referenceTypes"] = json!(types);
    a
}

fn string(name: &str) -> Value {
    attr(name, "string", false, false, "readWrite", "none", false)
}

fn complex(name: &str, multi: bool, subs: Vec<Value>) -> Value {
    let mut a = attr(name, "complex", multi, false, "readWrite", "none", false);
    a["subAttributes"] = Value::Array(subs);
    a
}

fn schema_list(base: &str) -> Vec<Value> {
    let mut user_attrs = vec![
        attr("userName", "string", false, true, "readWrite", "server", false),
        attr("externalId", "string", false, false, "readWrite", "none", true),
        complex(
            "name",
            false,
            ["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"]
                .map(string)
                .to_vec(),
        ),
    ];
    for a in ["displayName", "nickName", "profileUrl", "title", "userType", "preferredLanguage", "locale", "timezone"] {
        user_attrs.push(string(a));
    }
    user_attrs.push(attr("active", "boolean", false, false, "readWrite", "none", false));
    for m in ["emails", "phoneNumbers"] {
        user_attrs.push(complex(
            m,
            true,
            vec![string("value"), string("type"), attr("primary", "boolean", false, false, "readWrite", "none", false)],
        ));
    }
    let mut address: Vec<Value> =
        ["formatted", "streetAddress", "locality", "region", "postalCode", "country", "type"].map(string).to_vec();
    address.push(attr("primary", "boolean", false, false, "readWrite", "none", false));
    user_attrs.push(complex("addresses", true, address));
    // Each value a direct grant (`RESOURCE#PERMISSION`, or `RESOURCE`): only `value` is kept.
    for m in ["entitlements", "roles"] {
        user_attrs.push(complex(m, true, vec![string("value")]));
    }
    let mut ent_attrs: Vec<Value> =
        ["employeeNumber", "costCenter", "organization", "division", "department"].map(string).to_vec();
    ent_attrs.push(complex(
        "manager",
        false,
        vec![
            string("value"),
            reference(&["User"]),
            attr("displayName", "string", false, false, "readOnly", "none", false),
        ],
    ));
    vec![
        json!({
            "schemas": [SCHEMA_SCHEMA], "id": USER_SCHEMA, "name": "User", "description": "User Account",
            "attributes": user_attrs,
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}")},
        }),
        json!({
            "schemas": [SCHEMA_SCHEMA], "id": GROUP_SCHEMA, "name": "Group", "description": "Group",
            "attributes": [
                attr("displayName", "string", false, true, "readWrite", "none", false),
                complex("members", true, vec![
                    attr("value", "string", false, false, "immutable", "none", true),
                    reference(&["User"]),
                    {
                        let mut t = attr("type", "string", false, false, "immutable", "none", false);
                        t["canonicalValues"] = json!(["User"]);
                        t
                    },
                ]),
            ],
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{GROUP_SCHEMA}")},
        }),
        json!({
            "schemas": [SCHEMA_SCHEMA], "id": ENTERPRISE, "name": "EnterpriseUser", "description": "Enterprise User",
            "attributes": ent_attrs,
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{ENTERPRISE}")},
        }),
    ]
}

#[utoipa::path(
    operation_id = "discovery_schemas",
    get,
    path = "/scim/v2/Schemas",
    tag = "SCIM discovery",
    description = "The schemas and their attributes.",
    responses((status = 200, description = "A ListResponse"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn schemas(State(app): State<Arc<App>>, _c: Caller) -> Response {
    respond(StatusCode::OK, list(schema_list(&app.base)), None)
}

#[utoipa::path(
    operation_id = "discovery_schema",
    get,
    path = "/scim/v2/Schemas/{id}",
    tag = "SCIM discovery",
    description = "One schema.",
    params(("id" = String, Path, description = "The schema URN")),
    responses((status = 200, description = "The schema"), (status = 404, description = "No such resource"), (status = 401, description = "No or a wrong bearer token (WWW-Authenticate)")),
    security(("bearer" = []))
)]
pub async fn schema(State(app): State<Arc<App>>, _c: Caller, Path(id): Path<String>) -> Result<Response, ScimError> {
    schema_list(&app.base)
        .into_iter()
        .find(|s| s["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&id)))
        .map(|s| respond(StatusCode::OK, s, None))
        .ok_or_else(|| ScimError::not_found(format!("no schema '{id}'")))
}
