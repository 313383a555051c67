//! The router in process (axum's `oneshot`, no socket): the layers' answers are SCIM
//! error bodies, and a write through it is in the log.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "router-token-0123456789";

fn app(dir: &std::path::Path) -> Arc<tenure_server::App> {
    let store = tenure_engine::Store::open(dir).unwrap();
    let tokens = vec![tenure_server::Token::new("scim", "scim", TOKEN)];
    Arc::new(tenure_server::App::open(store, tokens, "http://tenure.test/scim/v2".into()).unwrap())
}

async fn send(
    app: &Arc<tenure_server::App>,
    method: &str,
    uri: &str,
    body: Option<Value>,
    auth: bool,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri).header("content-type", "application/scim+json");
    if auth {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))).unwrap();
    let response = tenure_server::router(app.clone()).oneshot(req).await.unwrap();
    let status = response.status();
    let ctype = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    if !bytes.is_empty() {
        assert_eq!(ctype.as_deref(), Some("application/scim+json"), "{method} {uri}");
    }
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_router_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let (s, body) = send(&app, "GET", "/scim/v2/Users", None, false).await;
    assert_eq!((s, body["status"].as_str()), (StatusCode::UNAUTHORIZED, Some("401")));
    let (s, body) = send(&app, "GET", "/nowhere", None, true).await;
    assert_eq!((s, body["status"].as_str()), (StatusCode::NOT_FOUND, Some("404")));
    // A method the endpoint has not: 405, as a SCIM error body.
    let (s, body) = send(&app, "DELETE", "/scim/v2/Users", None, true).await;
    assert_eq!((s, body["status"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("405")), "{body}");
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "dora"});
    let (s, body) = send(&app, "POST", "/scim/v2/Users", Some(user), true).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["meta"]["location"], "http://tenure.test/scim/v2/Users/dora");
    assert_eq!(app.store.head().get(), 1);
    let (s, body) = send(&app, "GET", "/scim/v2/Users?filter=userName%20eq%20%22DORA%22", None, true).await;
    assert_eq!((s, body["totalResults"].as_u64()), (StatusCode::OK, Some(1)));
}
