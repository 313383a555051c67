//! `GET /openapi.json`: the OpenAPI 3.1 document of the whole HTTP surface, made from the
//! handlers' own `#[utoipa::path]` annotations (utoipa), not written by hand.

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tenure serve",
        description = "SCIM 2.0 provisioning target, directory-sync webhooks, the events API, the audit API and metrics of a Tenure log (docs/scim.md, docs/sync.md)."
    ),
    paths(
        crate::discovery::service_provider_config,
        crate::discovery::resource_types,
        crate::discovery::resource_type,
        crate::discovery::schemas,
        crate::discovery::schema,
        crate::users::create,
        crate::users::get,
        crate::users::list,
        crate::users::search,
        crate::users::search_all,
        crate::users::replace,
        crate::users::patch,
        crate::users::delete,
        crate::groups::create,
        crate::groups::get,
        crate::groups::list,
        crate::groups::search,
        crate::groups::replace,
        crate::groups::patch,
        crate::groups::delete,
        crate::events::list,
        crate::events::stream,
        crate::webhooks::receive,
        crate::audit::access,
        crate::audit::holders,
        crate::audit::timeline,
        crate::audit::profile,
        crate::audit::diff,
        crate::audit::anomalies,
        crate::audit::verify,
        crate::audit::report_leavers,
        crate::audit::report_nhi,
        crate::audit::report_lag,
        crate::audit::report_access,
        crate::audit::report_sod,
        crate::audit::report_anomalies,
        crate::audit::report_reconcile,
        crate::metrics_endpoint,
        document,
    ),
    modifiers(&Bearer)
)]
pub struct Api;

/// The bearer tokens of `--token-file` (provisioning and audit scopes).
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document.
#[utoipa::path(operation_id = "document", get, path = "/openapi.json", tag = "Meta", responses((status = 200, description = "The OpenAPI document")))]
pub async fn document() -> Response {
    match Api::openapi().to_json() {
        Ok(text) => ([(axum::http::header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
