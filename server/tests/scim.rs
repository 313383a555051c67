//! `tenure serve` over real HTTP on loopback: every endpoint, the shapes Okta and Entra ID
//! send, and each error path, with its effect (or its lack of one) on the log.

mod common;
use common::{Server, OTHER_TOKEN, TOKEN};
use serde_json::{json, Value};
use tenure_engine::EventData;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn alice() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "userName": "Alice@Example.com",
        "externalId": "00u1",
        "name": {"givenName": "Alice", "familyName": "Ng"},
        "emails": [{"primary": true, "value": "alice@example.com", "type": "work"}],
        "title": "Analyst",
        "active": true,
        ENTERPRISE: {"department": "Finance", "manager": {"value": "bob@example.com"}}
    })
}

fn types(s: &Server) -> Vec<&'static str> {
    s.log().iter().map(|e| e.data.type_name()).collect()
}

#[test]
fn discovery_says_what_is_supported() {
    let s = Server::start();
    let spc = s.call("GET", "/ServiceProviderConfig", None);
    assert_eq!(spc.status, 200);
    assert_eq!(spc.header("content-type"), Some("application/scim+json"));
    assert_eq!(spc.json["patch"]["supported"], true);
    assert_eq!(spc.json["filter"]["supported"], true);
    assert_eq!(spc.json["etag"]["supported"], true);
    assert_eq!(spc.json["bulk"]["supported"], false);
    let rt = s.call("GET", "/ResourceTypes", None);
    assert_eq!(rt.json["Resources"][0]["schema"], USER);
    assert_eq!(rt.json["Resources"][0]["schemaExtensions"][0]["schema"], ENTERPRISE);
    let schemas = s.call("GET", "/Schemas", None);
    assert_eq!(schemas.json["totalResults"], 3);
    assert_eq!(rt.json["Resources"][1]["endpoint"], "/Groups");
    let one = s.call("GET", &format!("/Schemas/{USER}"), None);
    assert_eq!(one.json["id"], USER);
    let names: Vec<&str> =
        one.json["attributes"].as_array().unwrap().iter().filter_map(|a| a["name"].as_str()).collect();
    assert!(names.contains(&"userName") && names.contains(&"emails") && names.contains(&"active"), "{names:?}");
    s.call("GET", "/Schemas/urn:nope", None).is_error(404, None);
    s.call("GET", "/ResourceTypes/Widget", None).is_error(404, None);
}

#[test]
fn tokens_are_required_and_name_the_source_and_actor() {
    let s = Server::start();
    for auth in [None, Some("Bearer wrong-token-0123456789"), Some("Basic dGVzdDp0ZXN0"), Some(TOKEN)] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = s.call_with("POST", "/Users", Some(alice()), &headers);
        r.is_error(401, None);
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"tenure-scim\""));
        assert!(!r.text.contains("wrong-token"), "{}", r.text);
    }
    assert!(s.log().is_empty(), "an unauthenticated request wrote");
    let r = s.call_with("POST", "/Users", Some(alice()), &[("Authorization", &format!("Bearer {OTHER_TOKEN}"))]);
    assert_eq!(r.status, 201, "{}", r.text);
    let log = s.log();
    assert_eq!((log[0].source.as_deref(), log[0].actor.as_deref()), (Some("okta"), Some("okta-1")));
}

#[test]
fn create_get_and_a_repeated_create() {
    let s = Server::start();
    let r = s.call("POST", "/Users", Some(alice()));
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(r.header("location"), Some(format!("{}/Users/{id}", s.base).as_str()));
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert_eq!(r.json["meta"]["version"], "W/\"1\"");
    assert_eq!(r.json["userName"], "Alice@Example.com", "the original case is kept");
    assert_eq!(r.json[ENTERPRISE]["manager"]["value"], "bob@example.com");
    let log = s.log();
    assert_eq!(log.len(), 1);
    let EventData::IdentityJoined(j) = &log[0].data else { panic!("{:?}", log[0].data) };
    assert_eq!(j.identity.as_str(), id);
    assert_eq!(j.attributes["department"], "Finance");
    assert_eq!(j.attributes["emails.work"], "alice@example.com");
    assert_eq!(j.attributes["manager"], "bob@example.com");
    // The request as received, kept beside the normalised attributes.
    let raw = log[0].raw.as_ref().expect("the request is kept as raw");
    assert_eq!((raw["method"].as_str(), raw["path"].as_str()), (Some("POST"), Some("/scim/v2/Users")));
    assert_eq!(raw["body"], alice());
    let got = s.call("GET", &format!("/Users/{id}"), None);
    assert_eq!(got.json, r.json, "GET answers what the create answered");
    // The same userName in another case: 409 uniqueness, and nothing written, nothing wiped.
    let mut again = alice();
    again["userName"] = json!("ALICE@example.COM");
    again["title"] = json!("Intruder");
    s.call("POST", "/Users", Some(again)).is_error(409, Some("uniqueness"));
    assert_eq!(s.log().len(), 1);
    assert_eq!(s.call("GET", &format!("/Users/{id}"), None).json["title"], "Analyst");
    s.call("GET", "/Users/nobody", None).is_error(404, None);
}

/// Okta: look up by userName, create, PUT the whole user, PATCH only to deactivate and
/// reactivate (a path-less replace whose value is an object).
#[test]
fn okta_provisioning_cycle() {
    let s = Server::start();
    let q = "/Users?filter=userName%20eq%20%22alice%40example.com%22&startIndex=1&count=100";
    let found = s.call("GET", q, None);
    assert_eq!((found.status, found.json["totalResults"].clone()), (200, json!(0)));
    let id = s.call("POST", "/Users", Some(alice())).json["id"].as_str().unwrap().to_string();
    let found = s.call("GET", q, None);
    assert_eq!(found.json["totalResults"], 1);
    assert_eq!(found.json["Resources"][0]["id"], id.as_str());
    // PUT with one attribute changed: one identity.moved with exactly that attribute.
    let mut put = alice();
    put["id"] = json!(id);
    put["title"] = json!("Senior Analyst");
    let r = s.call("PUT", &format!("/Users/{id}"), Some(put.clone()));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["title"], "Senior Analyst");
    let log = s.log();
    let EventData::IdentityMoved(m) = &log[1].data else { panic!("{:?}", log[1].data) };
    assert_eq!(m.attributes.len(), 1, "{:?}", m.attributes);
    assert_eq!(m.attributes["title"], "Senior Analyst");
    // The same PUT again (Okta re-sends on every sync): nothing appended, version kept.
    let r = s.call("PUT", &format!("/Users/{id}"), Some(put));
    assert_eq!((r.status, r.json["meta"]["version"].clone()), (200, json!("W/\"2\"")));
    assert_eq!(s.log().len(), 2);
    let deactivate = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": false}}]});
    let r = s.call("PATCH", &format!("/Users/{id}"), Some(deactivate));
    assert_eq!((r.status, r.json["active"].clone()), (200, json!(false)), "{}", r.text);
    let reactivate = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": true}}]});
    assert_eq!(s.call("PATCH", &format!("/Users/{id}"), Some(reactivate)).json["active"], true);
    assert_eq!(types(&s), ["identity.joined", "identity.moved", "identity.suspended", "identity.reactivated"]);
    // Deactivation by PUT works too.
    let mut put = alice();
    put["title"] = json!("Senior Analyst");
    put["active"] = json!(false);
    assert_eq!(s.call("PUT", &format!("/Users/{id}"), Some(put)).json["active"], false);
    assert_eq!(types(&s).last(), Some(&"identity.suspended"));
}

/// Entra ID: capitalised ops, "True"/"False" strings, value-filter and extension paths,
/// a manager as a string, DELETE after a soft delete.
#[test]
fn entra_provisioning_cycle() {
    let s = Server::start();
    let found = s.call("GET", "/Users?filter=externalId%20eq%20%22e-42%22", None);
    assert_eq!(found.json["totalResults"], 0);
    let mut user = alice();
    user["externalId"] = json!("e-42");
    let id = s.call("POST", "/Users", Some(user)).json["id"].as_str().unwrap().to_string();
    assert_eq!(s.call("GET", "/Users?filter=externalId%20eq%20%22e-42%22", None).json["totalResults"], 1);
    let patch = json!({"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "alice.ng@example.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Alicia"},
        {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": "carol@example.com"},
        {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Audit"}
    ]});
    let r = s.call("PATCH", &format!("/Users/{id}"), Some(patch.clone()));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["emails"][0]["value"], "alice.ng@example.com");
    assert_eq!(r.json["name"]["givenName"], "Alicia");
    assert_eq!(r.json[ENTERPRISE]["manager"]["value"], "carol@example.com", "a string manager comes back as an object");
    let log = s.log();
    assert_eq!(log.len(), 2, "four operations, one event");
    let EventData::IdentityMoved(m) = &log[1].data else { panic!() };
    assert_eq!(m.attributes.len(), 4);
    // Entra re-sends the manager every cycle: a PATCH that changes nothing appends nothing.
    let same = json!({"schemas": [PATCH], "Operations": [{"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": {"value": "carol@example.com"}}]});
    let r = s.call("PATCH", &format!("/Users/{id}"), Some(same));
    assert_eq!(r.json["meta"]["version"], "W/\"2\"");
    assert_eq!(s.log().len(), 2);
    let soft = json!({"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    assert_eq!(s.call("PATCH", &format!("/Users/{id}"), Some(soft)).json["active"], false);
    let r = s.call("DELETE", &format!("/Users/{id}"), None);
    assert_eq!(r.status, 204, "{}", r.text);
    s.call("GET", &format!("/Users/{id}"), None).is_error(404, None);
    assert_eq!(types(&s), ["identity.joined", "identity.moved", "identity.suspended", "identity.left"]);
    s.call("DELETE", &format!("/Users/{id}"), None).is_error(404, None);
    // Provisioned again after the delete: the same identity rejoins.
    let r = s.call("POST", "/Users", Some(alice()));
    assert_eq!((r.status, r.json["id"].as_str()), (201, Some(id.as_str())), "{}", r.text);
    assert_eq!(types(&s).last(), Some(&"identity.rejoined"));
}

#[test]
fn a_patch_is_applied_whole_or_not_at_all() {
    let s = Server::start();
    let id = s.call("POST", "/Users", Some(alice())).json["id"].as_str().unwrap().to_string();
    let bad = json!({"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "title", "value": "Boss"},
        {"op": "replace", "path": "favouriteColour", "value": "blue"}
    ]});
    s.call("PATCH", &format!("/Users/{id}"), Some(bad)).is_error(400, Some("invalidPath"));
    assert_eq!(s.log().len(), 1);
    assert_eq!(s.call("GET", &format!("/Users/{id}"), None).json["title"], "Analyst");
}

#[test]
fn if_match_refuses_a_stale_version() {
    let s = Server::start();
    let id = s.call("POST", "/Users", Some(alice())).json["id"].as_str().unwrap().to_string();
    let patch = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Lead"}]});
    let auth = format!("Bearer {TOKEN}");
    let r = s.call_with(
        "PATCH",
        &format!("/Users/{id}"),
        Some(patch.clone()),
        &[("Authorization", &auth), ("If-Match", "W/\"7\"")],
    );
    r.is_error(412, None);
    assert_eq!(s.log().len(), 1);
    let r = s.call_with(
        "PATCH",
        &format!("/Users/{id}"),
        Some(patch),
        &[("Authorization", &auth), ("If-Match", "W/\"1\"")],
    );
    assert_eq!((r.status, r.header("etag")), (200, Some("W/\"2\"")));
}

/// Each hostile request gets its SCIM error and leaves the log as it was.
#[test]
fn hostile_requests_change_nothing() {
    let s = Server::start();
    let id = s.call("POST", "/Users", Some(alice())).json["id"].as_str().unwrap().to_string();
    let auth = format!("Bearer {TOKEN}");
    let h = [("Authorization", auth.as_str())];
    let user = format!("/Users/{id}");
    s.raw("POST", "/Users", Some(b"{\"userName\": "), &h).is_error(400, Some("invalidSyntax"));
    s.raw("POST", "/Users", Some(b"[1,2]"), &h).is_error(400, Some("invalidSyntax"));
    s.call("POST", "/Users", Some(json!({"schemas": ["urn:example:Widget"], "userName": "w"})))
        .is_error(400, Some("invalidValue"));
    s.call("POST", "/Users", Some(json!({"schemas": [USER]}))).is_error(400, Some("invalidValue"));
    s.call("POST", "/Users", Some(json!({"schemas": [USER], "userName": 7}))).is_error(400, Some("invalidValue"));
    s.call("GET", "/Users?filter=userName%20zz%20%22a%22", None).is_error(400, Some("invalidFilter"));
    let deep = format!("{}userName%20eq%20%22a%22{}", "(".repeat(10_000), ")".repeat(10_000));
    s.call("GET", &format!("/Users?filter={deep}"), None).is_error(400, Some("invalidFilter"));
    let op = |o: Value| json!({"schemas": [PATCH], "Operations": [o]});
    s.call("PATCH", &user, Some(op(json!({"op": "replace", "path": "shoeSize", "value": "9"}))))
        .is_error(400, Some("invalidPath"));
    s.call("PATCH", &user, Some(op(json!({"op": "replace", "path": "id", "value": "x"}))))
        .is_error(400, Some("mutability"));
    s.call("PATCH", &user, Some(op(json!({"op": "remove"})))).is_error(400, Some("noTarget"));
    s.call("PATCH", &user, Some(op(json!({"op": "replace", "path": "active", "value": "perhaps"}))))
        .is_error(400, Some("invalidValue"));
    s.call("PATCH", &user, Some(op(json!({"op": "frobnicate", "path": "title", "value": "x"}))))
        .is_error(400, Some("invalidValue"));
    s.call("PATCH", &user, Some(json!({"schemas": ["urn:nope"], "Operations": []})))
        .is_error(400, Some("invalidValue"));
    // A 10 MB body: refused from its Content-Length, before the server reads it.
    {
        use std::io::{Read, Write};
        let addr = s.base.trim_start_matches("http://").split('/').next().unwrap().to_string();
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            conn,
            "POST /scim/v2/Users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{{",
            10 << 20
        )
        .unwrap();
        let mut head = [0u8; 256];
        let n = conn.read(&mut head).unwrap();
        let head = String::from_utf8_lossy(&head[..n]);
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    }
    assert_eq!(s.log().len(), 1, "a hostile request wrote");
    assert_eq!(s.call("GET", &user, None).json["meta"]["version"], "W/\"1\"");
}

#[test]
fn lists_page_sort_and_project() {
    let s = Server::start();
    for name in ["carol", "alice", "bob", "dave"] {
        let r = s.call(
            "POST",
            "/Users",
            Some(json!({"schemas": [USER], "userName": format!("{name}@example.com"), "title": name})),
        );
        assert_eq!(r.status, 201);
    }
    let page = s.call("GET", "/Users?sortBy=userName&startIndex=2&count=2", None);
    assert_eq!(page.json["totalResults"], 4);
    assert_eq!((page.json["startIndex"].clone(), page.json["itemsPerPage"].clone()), (json!(2), json!(2)));
    let names: Vec<&str> =
        page.json["Resources"].as_array().unwrap().iter().map(|r| r["userName"].as_str().unwrap()).collect();
    assert_eq!(names, ["bob@example.com", "carol@example.com"]);
    let r =
        s.call("GET", "/Users?filter=title%20sw%20%22c%22%20or%20title%20eq%20%22dave%22&attributes=userName", None);
    assert_eq!(r.json["totalResults"], 2);
    let first = &r.json["Resources"][0];
    assert!(first.get("title").is_none() && first.get("userName").is_some() && first.get("id").is_some(), "{first}");
    let r = s.call("GET", "/Users?count=0", None);
    assert_eq!((r.json["totalResults"].clone(), r.json["Resources"].as_array().map(Vec::len)), (json!(4), Some(0)));
}

/// Racing creates of one userName: one 201, the rest 409. Racing PATCHes of one user:
/// none is lost.
#[test]
fn concurrent_writes() {
    let s = Server::start();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    let mut u = alice();
                    u["title"] = json!(format!("racer {i}"));
                    s.call("POST", "/Users", Some(u)).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|&&c| c == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&c| c == 409).count(), 15, "{statuses:?}");
    let id = "alice@example.com";
    std::thread::scope(|scope| {
        for i in 0..16 {
            let s = &s;
            scope.spawn(move || {
                let op = json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": format!("phoneNumbers[type eq \"line{i}\"].value"), "value": format!("+1-555-{i:04}")}]});
                assert_eq!(s.call("PATCH", &format!("/Users/{id}"), Some(op)).status, 200);
            });
        }
    });
    let user = s.call("GET", &format!("/Users/{id}"), None);
    assert_eq!(user.json["phoneNumbers"].as_array().map(Vec::len), Some(16), "{}", user.text);
    assert_eq!(s.log().len(), 17);
}

/// The directory is the fold of the log: a restarted server answers as before.
#[test]
fn a_restarted_server_answers_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mut s = Server::start_in(&dir);
    let id = s.call("POST", "/Users", Some(alice())).json["id"].as_str().unwrap().to_string();
    let patch = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": false, "title": "Gone fishing"}}]});
    s.call("PATCH", &format!("/Users/{id}"), Some(patch));
    let before = s.call("GET", &format!("/Users/{id}"), None).json;
    let listed = s.call("GET", "/Users", None).json;
    s.stop();
    let old_base = s.base.clone();
    let s = Server::start_in(&dir);
    // The same answers, but for the address in `location` (a new port).
    let same = |now: Value, then: Value| assert_eq!(now.to_string(), then.to_string().replace(&old_base, &s.base));
    same(s.call("GET", &format!("/Users/{id}"), None).json, before);
    same(s.call("GET", "/Users", None).json, listed);
}

const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

fn user(s: &Server, name: &str) -> String {
    let r = s.call("POST", "/Users", Some(json!({"schemas": [USER], "userName": format!("{name}@example.com")})));
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

fn members(s: &Server, gid: &str) -> Vec<String> {
    let g = s.call("GET", &format!("/Groups/{gid}"), None);
    assert_eq!(g.status, 200, "{}", g.text);
    g.json["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap().to_string()).collect()
}

/// Okta's group push: create with members, a member's remove and another's add in one
/// PATCH, a rename by a path-less replace carrying the id, then delete.
#[test]
fn okta_group_push() {
    let s = Server::start();
    let (a, b, c) = (user(&s, "ann"), user(&s, "ben"), user(&s, "cat"));
    let r = s.call(
        "POST",
        "/Groups",
        Some(json!({"schemas": [GROUP], "displayName": "Finance Team", "members": [{"value": a}, {"value": b}]})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(gid, "finance-team");
    assert_eq!(r.json["members"].as_array().unwrap().len(), 2);
    assert_eq!(r.json["members"][0]["type"], "User");
    let found = s.call("GET", "/Groups?filter=displayName%20eq%20%22finance%20team%22", None);
    assert_eq!(found.json["totalResults"], 1);
    let patch = json!({"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": format!("members[value eq \"{a}\"]")},
        {"op": "add", "path": "members", "value": [{"value": c, "display": "cat@example.com"}]}
    ]});
    let r = s.call("PATCH", &format!("/Groups/{gid}"), Some(patch));
    // A member change answers 204 (the group's resource lists every member), with its version.
    assert_eq!((r.status, r.header("etag")), (204, Some("W/\"8\"")), "{}", r.text);
    assert_eq!(members(&s, &gid), [b.clone(), c.clone()]);
    let rename = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"id": gid, "displayName": "Finance & Treasury"}}]});
    let r = s.call("PATCH", &format!("/Groups/{gid}?excludedAttributes=members"), Some(rename));
    assert_eq!((r.status, r.json["displayName"].as_str()), (200, Some("Finance & Treasury")), "{}", r.text);
    assert_eq!(r.json["id"], gid.as_str(), "a rename keeps the group's name in the log");
    assert_eq!(s.call("DELETE", &format!("/Groups/{gid}"), None).status, 204);
    s.call("GET", &format!("/Groups/{gid}"), None).is_error(404, None);
    let groups: Vec<&str> =
        s.log().iter().map(|e| e.data.type_name()).filter(|t| t.starts_with("group.")).collect::<Vec<_>>();
    assert_eq!(
        groups,
        [
            "group.created",
            "group.member_added",
            "group.member_added",
            "group.member_removed",
            "group.member_added",
            "group.updated",
            "group.deleted"
        ]
    );
    // A new group of the same display name is a new group of the log.
    let r = s.call("POST", "/Groups", Some(json!({"schemas": [GROUP], "displayName": "Finance Team"})));
    assert_eq!(r.json["id"], "finance-team-2", "{}", r.text);
}

/// Entra ID: capitalised ops, `Add` and `Remove` on `members` with a value list,
/// `excludedAttributes=members`, and a member that leaves.
#[test]
fn entra_group_membership() {
    let s = Server::start();
    let (a, b) = (user(&s, "ann"), user(&s, "ben"));
    let gid = s
        .call("POST", "/Groups", Some(json!({"schemas": [GROUP], "displayName": "Ops", "externalId": "g-1"})))
        .json["id"]
        .as_str()
        .unwrap()
        .to_string();
    let add = json!({"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members", "value": [{"value": a}, {"value": b}]}]});
    assert_eq!(s.call("PATCH", &format!("/Groups/{gid}"), Some(add.clone())).status, 204);
    assert_eq!(members(&s, &gid), [a.clone(), b.clone()]);
    // The same add again changes nothing and appends nothing.
    let n = s.log().len();
    s.call("PATCH", &format!("/Groups/{gid}"), Some(add));
    assert_eq!(s.log().len(), n);
    let lean = s.call("GET", &format!("/Groups/{gid}?excludedAttributes=members"), None);
    assert!(lean.json.get("members").is_none() && lean.json["displayName"] == "Ops", "{}", lean.text);
    let check = s.call(
        "GET",
        &format!("/Groups?filter=id%20eq%20%22{gid}%22%20and%20members%5Bvalue%20eq%20%22{a}%22%5D"),
        None,
    );
    assert_eq!(check.json["totalResults"], 1, "{}", check.text);
    let remove =
        json!({"schemas": [PATCH], "Operations": [{"op": "Remove", "path": "members", "value": [{"value": a}]}]});
    assert_eq!(s.call("PATCH", &format!("/Groups/{gid}"), Some(remove)).status, 204);
    assert_eq!(members(&s, &gid), std::slice::from_ref(&b));
    // Deleting a user ends its memberships, as leaving does in the log.
    assert_eq!(s.call("DELETE", &format!("/Users/{b}"), None).status, 204);
    assert!(members(&s, &gid).is_empty());
    // A member that is no user, an unknown path: refused, nothing written.
    let n = s.log().len();
    let bad =
        json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": "ghost"}]}]});
    s.call("PATCH", &format!("/Groups/{gid}"), Some(bad)).is_error(400, Some("invalidValue"));
    let bad = json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "owners", "value": "x"}]});
    s.call("PATCH", &format!("/Groups/{gid}"), Some(bad)).is_error(400, Some("invalidPath"));
    s.call("POST", "/Groups", Some(json!({"schemas": [GROUP], "displayName": "ops"})))
        .is_error(409, Some("uniqueness"));
    s.call("POST", "/Groups", Some(json!({"schemas": [GROUP]}))).is_error(400, Some("invalidValue"));
    assert_eq!(s.log().len(), n);
}

/// A token whose deactivation is the offboarding: `active: false` is `identity.left` (its
/// memberships end), the resource stays, inactive, and `active: true` rejoins.
#[test]
fn deactivation_as_a_leave() {
    let s = Server::start();
    let auth = format!("Bearer {}", common::LEAVE_TOKEN);
    let h = [("Authorization", auth.as_str())];
    let id = s.call_with("POST", "/Users", Some(alice()), &h).json["id"].as_str().unwrap().to_string();
    let gid = s
        .call("POST", "/Groups", Some(json!({"schemas": [GROUP], "displayName": "Fin", "members": [{"value": id}]})))
        .json["id"]
        .as_str()
        .unwrap()
        .to_string();
    let off = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": false}}]});
    let r = s.call_with("PATCH", &format!("/Users/{id}"), Some(off), &h);
    assert_eq!((r.status, r.json["active"].clone()), (200, json!(false)), "{}", r.text);
    assert_eq!(types(&s).last(), Some(&"identity.left"));
    assert!(members(&s, &gid).is_empty(), "leaving ended the membership");
    assert_eq!(s.call("GET", &format!("/Users/{id}"), None).json["active"], false, "the resource stays");
    let on = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": true}}]});
    assert_eq!(s.call_with("PATCH", &format!("/Users/{id}"), Some(on), &h).json["active"], true);
    assert_eq!(types(&s).last(), Some(&"identity.rejoined"));
    assert!(members(&s, &gid).is_empty(), "a rehire starts with nothing");
}

/// A user's `entitlements` and `roles` are direct grants in the log, justified by the list
/// they came from; removing one revokes it; the audit index sees them as access.
#[test]
fn entitlements_and_roles_are_grants() {
    let s = Server::start();
    let mut u = alice();
    u["entitlements"] = json!([{"value": "payroll-db#read"}, {"value": "vault#admin", "display": "Vault admin"}]);
    u["roles"] = json!([{"value": "approver", "primary": true}]);
    let r = s.call("POST", "/Users", Some(u));
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(r.json["entitlements"], json!([{"value": "payroll-db#read"}, {"value": "vault#admin"}]));
    assert_eq!(r.json["roles"], json!([{"value": "approver"}]));
    let log = s.log();
    let grants: Vec<(String, Option<String>)> = log
        .iter()
        .filter_map(|e| match &e.data {
            EventData::AccessGranted(g) => Some((g.entitlement.to_string(), g.justification.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        grants,
        [
            ("payroll-db#read".to_string(), Some("SCIM entitlements".to_string())),
            ("vault#admin".to_string(), Some("SCIM entitlements".to_string())),
            ("approver#assigned".to_string(), Some("SCIM roles".to_string())),
        ]
    );
    // Entra's way: remove one value by a filter; Okta's: replace the whole list.
    let patch =
        json!({"schemas": [PATCH], "Operations": [{"op": "Remove", "path": "entitlements[value eq \"vault#admin\"]"}]});
    assert_eq!(s.call("PATCH", &format!("/Users/{id}"), Some(patch)).status, 200);
    let patch = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "roles", "value": [{"value": "auditor"}]}]});
    let r = s.call("PATCH", &format!("/Users/{id}"), Some(patch));
    assert_eq!(r.json["roles"], json!([{"value": "auditor"}]), "{}", r.text);
    let tail: Vec<&str> = s.log()[log.len()..].iter().map(|e| e.data.type_name()).collect();
    assert_eq!(tail, ["access.revoked", "access.revoked", "access.granted"]);
    // What the audit queries see.
    let index = s.index();
    let now = tenure_engine::Timestamp::now();
    let held: Vec<String> = index
        .access(&id, now, tenure_projections::AsOf::Head)
        .unwrap()
        .iter()
        .map(|h| format!("{}#{}", h.resource, h.permission))
        .collect();
    assert_eq!(held, ["auditor#assigned", "payroll-db#read"]);
    // One entitlement cannot be both a role and an entitlement; a bad value is refused.
    let n = s.log().len();
    let both = json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "entitlements", "value": [{"value": "auditor"}]}]});
    s.call("PATCH", &format!("/Users/{id}"), Some(both)).is_error(400, Some("invalidValue"));
    let bad =
        json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "roles", "value": [{"value": "#read"}]}]});
    s.call("PATCH", &format!("/Users/{id}"), Some(bad)).is_error(400, Some("invalidValue"));
    assert_eq!(s.log().len(), n);
}

/// Addresses, as Entra ID maps them by default (one sub-attribute of the work address per
/// operation), are kept and returned.
#[test]
fn addresses_are_kept() {
    let s = Server::start();
    let id = s.call("POST", "/Users", Some(alice())).json["id"].as_str().unwrap().to_string();
    let patch = json!({"schemas": [PATCH], "Operations": [
        {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
        {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield"},
        {"op": "Add", "path": "addresses[type eq \"work\"].country", "value": "US"}
    ]});
    let r = s.call("PATCH", &format!("/Users/{id}"), Some(patch));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["addresses"],
        json!([{"type": "work", "primary": false, "streetAddress": "1 Main St", "locality": "Springfield", "country": "US"}])
    );
    let EventData::IdentityMoved(m) = &s.log()[1].data else { panic!() };
    assert_eq!(m.attributes["addresses.work.locality"], "Springfield");
    let remove =
        json!({"schemas": [PATCH], "Operations": [{"op": "Remove", "path": "addresses[type eq \"work\"].country"}]});
    let r = s.call("PATCH", &format!("/Users/{id}"), Some(remove));
    assert!(r.json["addresses"][0].get("country").is_none(), "{}", r.text);
    let bad = json!({"schemas": [PATCH], "Operations": [{"op": "Add", "path": "addresses[type eq \"work\"].planet", "value": "Mars"}]});
    s.call("PATCH", &format!("/Users/{id}"), Some(bad)).is_error(400, Some("invalidPath"));
}

/// The server rewrites the access index file in the background once enough events were
/// applied since it, and puts the new index in place of its own without a stop: the
/// file reaches the head, the audit API answers as the fold of the log before and after
/// the swap, and writes made after it reach the new index.
#[test]
fn the_access_index_file_is_rewritten_in_the_background() {
    use std::sync::atomic::Ordering;
    let s = Server::start_configured(|app| app.index_rewrite_after.store(40, Ordering::Relaxed));
    let path = s.dir.join(tenure_projections::ACCESS_INDEX_FILE);
    let file_head = || tenure_projections::AccessIndex::open_file(&path).map(|f| f.head().get()).unwrap_or(0);
    assert_eq!(file_head(), 0, "no file before any event");
    let audit = [("Authorization", format!("Bearer {}", common::AUDIT_TOKEN))];
    let audit: Vec<(&str, &str)> = audit.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let holders = |s: &Server| -> Vec<String> {
        let r = s.call_with("GET", &s.url("/v1/holders?resource=payroll-db%23read"), None, &audit);
        assert_eq!(r.status, 200, "{}", r.text);
        let mut names: Vec<String> =
            r.json["holders"].as_array().unwrap().iter().map(|h| h["identity"].as_str().unwrap().to_string()).collect();
        names.sort();
        names
    };
    let make = |s: &Server, i: usize| {
        let mut u = alice();
        u["userName"] = json!(format!("user{i:03}@example.com"));
        u["externalId"] = json!(format!("ext{i}"));
        u["entitlements"] = json!([{"value": "payroll-db#read"}]);
        let r = s.call("POST", "/Users", Some(u));
        assert_eq!(r.status, 201, "{}", r.text);
    };
    let folded = |s: &Server| -> Vec<String> {
        let index = s.index();
        let target = tenure_projections::Target::Entitlement(tenure_engine::Entitlement::new("payroll-db", "read"));
        let mut names: Vec<String> = index
            .holders(&target, tenure_engine::Timestamp::now(), tenure_projections::AsOf::Head)
            .unwrap()
            .into_iter()
            .map(|h| h.identity)
            .collect();
        names.sort();
        names
    };
    for i in 0..30 {
        make(&s, i);
    }
    // 60 events (a join and a grant each): due.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while file_head() < 60 {
        assert!(std::time::Instant::now() < deadline, "the file was not rewritten (head {})", file_head());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(holders(&s), folded(&s));
    assert_eq!(holders(&s).len(), 30);
    // Writes after the swap reach the new index.
    for i in 30..35 {
        make(&s, i);
    }
    assert_eq!(holders(&s).len(), 35);
    assert_eq!(holders(&s), folded(&s));
    // The file opens and checks whole.
    tenure_projections::AccessIndex::open_file(&path).unwrap().check_file().unwrap();
}

/// An index file that cannot be written (here a directory stands where it would go) is
/// counted in `/metrics` as a failed rewrite and tried again less often each time, while
/// the audit API answers from memory.
#[test]
fn an_index_file_that_cannot_be_written_is_counted_and_tried_less_often() {
    use std::sync::atomic::Ordering;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    std::fs::create_dir_all(dir.join(tenure_projections::ACCESS_INDEX_FILE)).unwrap();
    // Due at the 20th event, the last user's: no try fails before every user is in.
    let s = Server::start_with(&dir, |app| app.index_rewrite_after.store(20, Ordering::Relaxed));
    for i in 0..10 {
        let mut u = alice();
        u["userName"] = json!(format!("user{i:03}@example.com"));
        u["externalId"] = json!(format!("ext{i}"));
        u["entitlements"] = json!([{"value": "payroll-db#read"}]);
        assert_eq!(s.call("POST", "/Users", Some(u)).status, 201);
    }
    // Tries within 2 s, then 4 s and 8 s after each failure: one or two by 7 s (three or
    // more without the backing off).
    std::thread::sleep(std::time::Duration::from_secs(7));
    let metrics = s.call("GET", &s.url("/metrics"), None).text;
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let failed = value("tenure_index_rewrites_total{outcome=\"failed\"}");
    assert!((1..=2).contains(&failed), "{failed} failed rewrites:\n{metrics}");
    assert_eq!(value("tenure_index_rewrites_total{outcome=\"written\"}"), 0);
    assert_eq!(value("tenure_index_tail_events"), 20);
    let audit = [("Authorization", format!("Bearer {}", common::AUDIT_TOKEN))];
    let audit: Vec<(&str, &str)> = audit.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = s.call_with("GET", &s.url("/v1/holders?resource=payroll-db%23read"), None, &audit);
    assert_eq!(r.json["holders"].as_array().map(Vec::len), Some(10), "{}", r.text);
    assert!(dir.join(tenure_projections::ACCESS_INDEX_FILE).is_dir());
}
