//! `GET /events` over real HTTP: the log as an events API, followed page by page from a
//! cursor, equals the log; filters by type and subject; bad parameters are errors.

mod common;
use common::Server;
use serde_json::{json, Value};

#[test]
fn the_log_as_an_events_api() {
    let s = Server::start();
    for name in ["ann", "ben", "cat"] {
        let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
        assert_eq!(s.call("POST", "/Users", Some(user)).status, 201);
    }
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops", "members": [{"value": "ann"}, {"value": "cat"}]});
    assert_eq!(s.call("POST", "/Groups", Some(group)).status, 201);
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": false}}]});
    assert_eq!(s.call("PATCH", "/Users/ben", Some(off)).status, 200);
    let root = s.base.trim_end_matches("/scim/v2").to_string();
    let log: Vec<Value> = s.log().iter().map(|e| serde_json::to_value(e).unwrap()).collect();
    assert_eq!(log.len(), 7);
    // Followed two at a time from the start, the pages are the log, in order.
    let mut cursor = String::new();
    let mut followed = Vec::new();
    loop {
        let page = s.call("GET", &format!("{root}/events?limit=2{cursor}"), None);
        assert_eq!(page.status, 200, "{}", page.text);
        let data = page.json["data"].as_array().unwrap().clone();
        if data.is_empty() {
            assert_eq!(page.json["list_metadata"]["after"], Value::Null);
            break;
        }
        assert!(data.len() <= 2);
        cursor = format!("&after={}", page.json["list_metadata"]["after"].as_str().unwrap());
        followed.extend(data);
    }
    assert_eq!(followed, log);
    // From a cursor: what follows it.
    let page = s.call("GET", &format!("{root}/events?after=5&limit=100"), None);
    assert_eq!(page.json["data"].as_array().unwrap(), &log[5..]);
    // By type, and by subject (through the subject index).
    let page = s.call("GET", &format!("{root}/events?events=group.member_added&limit=100"), None);
    let members: Vec<&str> =
        page.json["data"].as_array().unwrap().iter().map(|e| e["data"]["identity"].as_str().unwrap()).collect();
    assert_eq!(members, ["ann", "cat"]);
    let page = s.call("GET", &format!("{root}/events?identity=ben&limit=100"), None);
    let types: Vec<&str> = page.json["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["identity.joined", "identity.suspended"]);
    // Bad parameters; no token.
    for bad in ["limit=0", "limit=101", "limit=ten", "after=-1", "after=99", "events=identity.vanished"] {
        let r = s.call("GET", &format!("{root}/events?{bad}"), None);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    assert_eq!(s.call_with("GET", &format!("{root}/events"), None, &[]).status, 401);
}
