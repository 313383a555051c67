//! Directory-sync webhooks over loopback: signatures (valid, forged, stale, from the
//! future, replayed, altered, malformed headers), rotation, the WorkOS payload corpus, and
//! deliveries out of order.

mod common;
use common::{now_ms, Server, OLD_SECRET, SECRET};
use serde_json::{json, Value};
use tenure_engine::Timestamp;

const PATH: &str = "/webhooks/directory-sync";

fn delivery(event: &str, id: &str, at: &str, data: Value) -> String {
    json!({"event": event, "id": id, "data": data, "created_at": at}).to_string()
}

fn user(id: &str, email: &str, title: &str, state: &str) -> Value {
    json!({
        "object": "directory_user", "id": id, "idp_id": format!("idp-{id}"),
        "directory_id": "directory_01", "organization_id": "org_01",
        "first_name": "Ana", "last_name": "Lima", "email": email,
        "emails": [{"primary": true, "type": "work", "value": email}],
        "state": state, "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
        "custom_attributes": {"department": "Finance", "job_title": title},
        "role": {"slug": "member"}, "raw_attributes": {}
    })
}

fn group(id: &str, name: &str) -> Value {
    json!({"object": "directory_group", "id": id, "idp_id": format!("idp-{id}"), "directory_id": "directory_01",
           "organization_id": "org_01", "name": name, "created_at": "2024-01-01T00:00:00Z",
           "updated_at": "2024-01-01T00:00:00Z", "raw_attributes": {}})
}

fn types(s: &Server) -> Vec<&'static str> {
    s.log().iter().map(|e| e.data.type_name()).collect()
}

#[test]
fn signatures_are_checked_over_the_raw_bytes() {
    let s = Server::start();
    let body =
        delivery("dsync.user.created", "event_1", "2024-03-01T09:00:00Z", user("u1", "ana@x.io", "CFO", "active"));
    let now = now_ms();
    let refused = |r: common::Reply, reason: &str| {
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.json["reason"], reason, "{}", r.text);
        assert!(!r.text.contains(SECRET) && !r.text.contains(OLD_SECRET), "a secret in an answer: {}", r.text);
    };
    // A wrong secret, a stale and a future timestamp, a body altered by one byte.
    refused(s.deliver_signed(&body, "whsec_someone_else_0123456789", now), "signature");
    refused(s.deliver_signed(&body, SECRET, now - 181_000), "timestamp");
    refused(s.deliver_signed(&body, SECRET, now + 181_000), "timestamp");
    let header = tenure_server::webhooks::sign(&tenure_server::webhooks::Secret::new(SECRET), now, body.as_bytes());
    let mut altered = body.clone().into_bytes();
    let i = altered.iter().position(|b| *b == b'A').unwrap();
    altered[i] = b'B';
    refused(s.raw("POST", &s.url(PATH), Some(&altered), &[("WorkOS-Signature", &header)]), "signature");
    // The header malformed in ten ways, and missing.
    let v1 = header.split("v1=").nth(1).unwrap().to_string();
    let malformed = [
        String::new(),
        "   ".to_string(),
        format!("v1={v1}"),
        format!("t={now}"),
        format!("t=soon, v1={v1}"),
        format!("t={now}, v1={}", &v1[..63]),
        format!("t={now}, v1={}zz", &v1[..62]),
        format!("t={now}, t={now}, v1={v1}"),
        format!("t={now}; v1={v1}"),
        format!("t=-{now}, v1={v1}"),
        format!("t={now}, v1={v1}, =x"),
    ];
    for h in &malformed {
        refused(s.raw("POST", &s.url(PATH), Some(body.as_bytes()), &[("WorkOS-Signature", h)]), "header");
    }
    refused(s.raw("POST", &s.url(PATH), Some(body.as_bytes()), &[]), "header");
    assert!(s.log().is_empty(), "a refused delivery stored something");

    // Signed right: stored. With the secret being rotated out: accepted too.
    let r = s.deliver(&body);
    assert_eq!((r.status, r.json["status"].as_str()), (200, Some("applied")), "{}", r.text);
    let n = s.log().len();
    // Replayed (a retry, a duplicate): answered 200, nothing new stored.
    let again = s.deliver_signed(&body, OLD_SECRET, now_ms());
    assert_eq!((again.status, again.json["status"].as_str()), (200, Some("duplicate")), "{}", again.text);
    assert_eq!(s.log().len(), n);
    let other =
        delivery("dsync.user.updated", "event_2", "2024-03-02T09:00:00Z", user("u1", "ana@x.io", "CEO", "active"));
    let r = s.deliver_signed(&other, OLD_SECRET, now_ms() - 170_000);
    assert_eq!(r.json["status"], "applied", "{}", r.text);

    // The delivery is kept as received: whoever holds the secret can check it again.
    let first = &s.log()[0];
    let raw = first.raw.as_ref().unwrap();
    assert_eq!(raw["body"].as_str().unwrap(), body);
    let sig = tenure_server::webhooks::parse_signature(raw["signature"].as_str().unwrap().as_bytes()).unwrap();
    let secrets = [tenure_server::webhooks::Secret::new(SECRET)];
    assert_eq!(tenure_server::webhooks::check_signature(&secrets, &sig, body.as_bytes()), Ok(0));
    assert_eq!(first.source.as_deref(), Some("workos"));
    assert_eq!(first.source_event_id.as_deref(), Some("event_1:0"));
    assert_eq!(first.effective_at, Timestamp::parse_rfc3339("2024-03-01T09:00:00Z").unwrap());
}

#[test]
fn malformed_deliveries_are_refused_naming_the_field() {
    let s = Server::start();
    let cases = [
        ("not json", "not JSON"),
        (r#"{"event":"dsync.user.created","data":{},"created_at":"2024-01-01T00:00:00Z"}"#, "id"),
        (r#"{"id":"e1","event":"user.created","data":{},"created_at":"2024-01-01T00:00:00Z"}"#, "event"),
        (r#"{"id":"e1","event":"dsync.user.created","data":{},"created_at":"yesterday"}"#, "created_at"),
        (r#"{"id":"e1","event":"dsync.user.created","data":[],"created_at":"2024-01-01T00:00:00Z"}"#, "data"),
    ];
    for (body, field) in cases {
        let r = s.deliver(body);
        assert_eq!((r.status, r.json["reason"].as_str()), (400, Some("malformed")), "{body}: {}", r.text);
        assert!(r.json["error"].as_str().unwrap().contains(field), "{body}: {}", r.text);
    }
    let mut bad = user("u1", "a@x.io", "CFO", "vanished");
    let r = s.deliver(&delivery("dsync.user.created", "e2", "2024-01-01T00:00:00Z", bad.clone()));
    assert!(r.json["error"].as_str().unwrap().contains("data.state"), "{}", r.text);
    bad["state"] = json!("active");
    bad["email"] = Value::Null;
    bad["emails"] = json!([]);
    let r = s.deliver(&delivery("dsync.user.created", "e3", "2024-01-01T00:00:00Z", bad));
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(s.log().is_empty());
}

/// WorkOS's documented payloads, replayed in order: each stores exactly the events named.
#[test]
fn workos_corpus() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/workos.json");
    let corpus: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let s = Server::start();
    for step in corpus["steps"].as_array().unwrap() {
        let name = step["name"].as_str().unwrap();
        let before = s.log().len();
        let r = s.deliver(&step["delivery"].to_string());
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        assert_eq!(r.json["status"], step["answer"], "{name}: {}", r.text);
        let got: Vec<&str> = s.log()[before..].iter().map(|e| e.data.type_name()).collect();
        let want: Vec<&str> = step["events"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(got, want, "{name}");
    }
    let log = s.log();
    // Names as the directory gives them; attributes mapped as docs/sync.md says.
    let joined = log.iter().find(|e| e.data.type_name() == "identity.joined").unwrap();
    let j = serde_json::to_value(joined).unwrap();
    assert_eq!(j["data"]["identity"], "directory_user_01E1X1B89NH8Z3SDFJR4H7RGX7");
    assert_eq!(j["data"]["attributes"]["userName"], "veda@foo-corp.com");
    assert_eq!(j["data"]["attributes"]["department"], "Engineering");
    assert_eq!(j["data"]["attributes"]["title"], "Software Engineer");
    assert_eq!(j["data"]["attributes"]["directory_id"], "directory_01ECAZ4NV9QMV47GW873HDCX74");
    assert_eq!(j["actor"], "directory_01ECAZ4NV9QMV47GW873HDCX74");
    let granted = log.iter().find(|e| e.data.type_name() == "access.granted").unwrap();
    let granted = serde_json::to_value(granted).unwrap();
    assert_eq!(granted["data"]["entitlement"], json!({"resource": "role:member", "permission": "assigned"}));
    assert_eq!(granted["data"]["justification"], "directory-sync roles");
    // Replayed whole a second time: every delivery a duplicate, nothing stored.
    let n = log.len();
    for step in corpus["steps"].as_array().unwrap() {
        let r = s.deliver(&step["delivery"].to_string());
        assert_eq!(r.json["status"], "duplicate", "{}", r.text);
    }
    assert_eq!(s.log().len(), n);
    let report = tenure_engine::verify(&s.dir).unwrap();
    assert!(report.first_bad.is_none() && report.intact == n as u64, "{report:?}");
}

fn profile_at(s: &Server, identity: &str, at: &str) -> tenure_projections::Profile {
    s.index().profile(identity, Timestamp::parse_rfc3339(at).unwrap(), tenure_projections::AsOf::Head).unwrap()
}

/// An `updated` that arrives before its `created` is not lost: the user joins as the
/// update shows it, the creation is placed at its own time, and every time answers the
/// state of the latest delivery before it. The SCIM view shows the newest.
#[test]
fn an_update_before_its_creation_is_placed_by_its_own_time() {
    let s = Server::start();
    let updated =
        delivery("dsync.user.updated", "e_upd", "2024-01-02T00:00:00Z", user("u1", "ana@x.io", "CEO", "active"));
    let created =
        delivery("dsync.user.created", "e_cre", "2024-01-01T00:00:00Z", user("u1", "ana@x.io", "CFO", "active"));
    assert_eq!(s.deliver(&updated).json["status"], "applied");
    assert_eq!(s.deliver(&created).json["status"], "applied");
    assert_eq!(profile_at(&s, "u1", "2024-01-01T12:00:00Z").attributes["title"], "CFO");
    assert_eq!(profile_at(&s, "u1", "2024-01-03T00:00:00Z").attributes["title"], "CEO");
    assert_eq!(profile_at(&s, "u1", "2024-01-03T00:00:00Z").state, "active");
    let r = s.call("GET", "/Users?filter=userName%20eq%20%22ana%40x.io%22", None);
    assert_eq!(r.json["Resources"][0]["title"], "CEO", "{}", r.text);

    // A late update between two recorded ones holds only until the next.
    let late =
        delivery("dsync.user.updated", "e_mid", "2024-01-01T12:00:00Z", user("u1", "ana@x.io", "CTO", "inactive"));
    assert_eq!(s.deliver(&late).json["status"], "applied");
    let mid = profile_at(&s, "u1", "2024-01-01T18:00:00Z");
    assert_eq!((mid.attributes["title"].as_str(), mid.state.as_str()), ("CTO", "suspended"));
    let end = profile_at(&s, "u1", "2024-01-03T00:00:00Z");
    assert_eq!((end.attributes["title"].as_str(), end.state.as_str()), ("CEO", "active"));
    let r = s.call("GET", "/Users?filter=userName%20eq%20%22ana%40x.io%22", None);
    assert_eq!((&r.json["Resources"][0]["title"], &r.json["Resources"][0]["active"]), (&json!("CEO"), &json!(true)));

    // After a restart the SCIM view folds the same way.
    let mut s = s;
    s.stop();
    let s2 = Server::start_in(&s.dir);
    let r = s2.call("GET", "/Users?filter=userName%20eq%20%22ana%40x.io%22", None);
    assert_eq!((&r.json["Resources"][0]["title"], &r.json["Resources"][0]["active"]), (&json!("CEO"), &json!(true)));
}

/// Membership out of order: a removal delivered before the add it follows leaves the user
/// a member only between the two times; a membership naming a user and a group never
/// seen brings both in as the delivery shows them.
#[test]
fn membership_out_of_order_and_unseen_subjects() {
    let s = Server::start();
    let (u, g) = (user("u9", "bo@x.io", "Dev", "active"), group("g9", "Developers"));
    let membership = |event: &str, id: &str, at: &str| {
        delivery(event, id, at, json!({"directory_id": "directory_01", "user": u, "group": g}))
    };
    assert_eq!(
        s.deliver(&membership("dsync.group.user_removed", "e_rm", "2024-02-01T00:00:00Z")).json["status"],
        "applied"
    );
    assert_eq!(types(&s), ["identity.joined", "access.granted", "group.created", "group.member_removed"]);
    assert_eq!(
        s.deliver(&membership("dsync.group.user_added", "e_add", "2024-01-15T00:00:00Z")).json["status"],
        "applied"
    );
    let index = s.index();
    // The membership holds from the add to the removal, whatever the arrival order.
    let timeline = index.timeline("u9", tenure_projections::AsOf::Head).unwrap();
    let spans: Vec<(String, Option<String>)> =
        timeline.memberships.iter().map(|m| (m.from.to_rfc3339(), m.to.map(|t| t.to_rfc3339()))).collect();
    assert_eq!(spans, [("2024-01-15T00:00:00Z".to_string(), Some("2024-02-01T00:00:00Z".to_string()))]);
    let r = s.call("GET", "/Groups/g9", None);
    assert_eq!(r.json["members"].as_array().map_or(0, Vec::len), 0, "{}", r.text);
}

#[test]
fn a_late_rename_holds_until_the_next_one() {
    let s = Server::start();
    let rename = |id: &str, at: &str, name: &str| delivery("dsync.group.updated", id, at, group("g1", name));
    assert_eq!(s.deliver(&delivery("dsync.group.created", "c", "2024-01-01T00:00:00Z", group("g1", "A"))).status, 200);
    assert_eq!(s.deliver(&rename("r3", "2024-03-01T00:00:00Z", "C")).json["status"], "applied");
    assert_eq!(s.deliver(&rename("r2", "2024-02-01T00:00:00Z", "B")).json["status"], "applied");
    // B is written at its time; C, a rename of its own, needs no restoring.
    assert_eq!(types(&s), ["group.created", "group.updated", "group.updated"]);
    let r = s.call("GET", "/Groups/g1", None);
    assert_eq!(r.json["displayName"], "C", "{}", r.text);
    // A membership at 01-20 (its group as named then), then a late rename at 01-10: the
    // rename is placed at its time and the name the record had at 01-20 written again
    // there, so the rename holds only between the two.
    let m = json!({"directory_id": "directory_01", "user": user("u1", "a@x.io", "Dev", "active"), "group": group("g1", "A")});
    assert_eq!(
        s.deliver(&delivery("dsync.group.user_added", "m", "2024-01-20T00:00:00Z", m)).json["status"],
        "applied"
    );
    let n = s.log().len();
    let late = delivery("dsync.group.updated", "r1", "2024-01-10T00:00:00Z", group("g1", "A2"));
    assert_eq!(s.deliver(&late).json["status"], "applied");
    let tail: Vec<(String, String)> = s.log()[n..]
        .iter()
        .map(|e| {
            let v = serde_json::to_value(e).unwrap();
            (e.effective_at.to_rfc3339(), v["data"]["display_name"].as_str().unwrap().to_string())
        })
        .collect();
    let want = [("2024-01-10T00:00:00Z", "A2"), ("2024-01-20T00:00:00Z", "A")];
    assert_eq!(tail, want.map(|(t, n)| (t.to_string(), n.to_string())));
    let r = s.call("GET", "/Groups/g1", None);
    assert_eq!(r.json["displayName"], "C", "{}", r.text);
}

/// Whatever the arrival order, every time answers the state of the latest delivery at or
/// before it. Seeded (`TENURE_SEED` replays a run; the seed is printed).
#[test]
fn any_arrival_order_folds_to_the_latest_delivery_before_each_time() {
    let seed: u64 = std::env::var("TENURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| now_ms() as u64);
    println!("TENURE_SEED={seed}");
    let mut x = seed | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let s = Server::start();
    for round in 0..25 {
        let id = format!("u{round}");
        // Deliveries at distinct hours, each with its own title and state.
        let mut hours: Vec<u64> = (0..40).collect();
        let count = 2 + next(9) as usize;
        let mut sent = Vec::new();
        for i in 0..count {
            let h = hours.remove(next(hours.len() as u64) as usize);
            let state = if next(3) == 0 { "inactive" } else { "active" };
            let title = format!("t{}", next(4));
            sent.push((h, title, state, format!("e{round}-{i}")));
        }
        let t = |h: u64| format!("2024-01-{:02}T{:02}:00:00Z", 1 + h / 24, h % 24);
        for (h, title, state, eid) in &sent {
            let kind = if next(2) == 0 { "dsync.user.updated" } else { "dsync.user.created" };
            let r = s.deliver(&delivery(kind, eid, &t(*h), user(&id, &format!("{id}@x.io"), title, state)));
            assert_eq!(r.status, 200, "seed {seed} round {round}: {}", r.text);
        }
        let mut by_time = sent.clone();
        by_time.sort();
        for h in 0..41 {
            let want = by_time.iter().rev().find(|(at, ..)| *at <= h);
            let p = profile_at(&s, &id, &t(h));
            match want {
                None => assert_eq!(p.state, "absent", "seed {seed} round {round} hour {h}: {sent:?}"),
                Some((_, title, state, _)) => {
                    let want_state = if *state == "active" { "active" } else { "suspended" };
                    assert_eq!(
                        (p.attributes["title"].as_str(), p.state.as_str()),
                        (title.as_str(), want_state),
                        "seed {seed} round {round} hour {h}: {sent:?}"
                    );
                }
            }
        }
        // The SCIM view: the latest.
        let (_, title, state, _) = by_time.last().unwrap();
        let r = s.call("GET", &format!("/Users/{id}"), None);
        assert_eq!(r.json["title"], json!(title), "seed {seed} round {round}: {}", r.text);
        assert_eq!(r.json["active"], json!(*state == "active"), "seed {seed} round {round}: {}", r.text);
    }
}

/// `GET /metrics`: deliveries by outcome, events appended by source and type, their lag,
/// request latency by route (not by path), the head; a bearer token required.
#[test]
fn metrics_count_what_happened() {
    let s = Server::start();
    let body = delivery("dsync.user.created", "m1", "2024-01-01T00:00:00Z", user("u1", "a@x.io", "CFO", "active"));
    assert_eq!(s.deliver(&body).json["status"], "applied");
    assert_eq!(s.deliver(&body).json["status"], "duplicate");
    assert_eq!(s.deliver_signed(&body, "whsec_wrong_secret_0123456789", now_ms()).status, 401);
    assert_eq!(s.call("GET", "/Users/u1", None).status, 200);
    assert_eq!(s.raw("GET", &s.url("/metrics"), None, &[]).status, 401);
    let m = s.call("GET", &s.url("/metrics"), None);
    assert_eq!(m.status, 200);
    let text = m.text;
    for line in [
        "tenure_webhook_deliveries_total{outcome=\"applied\"} 1",
        "tenure_webhook_deliveries_total{outcome=\"duplicate\"} 1",
        "tenure_webhook_deliveries_total{outcome=\"rejected_signature\"} 1",
        "tenure_events_appended_total{source=\"workos\",type=\"identity.joined\"} 1",
        "tenure_events_appended_total{source=\"workos\",type=\"access.granted\"} 1",
        "tenure_event_lag_seconds_count{source=\"workos\"} 2",
        "tenure_log_head 2",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    assert!(text.contains("route=\"/scim/v2/Users/{id}\""), "{text}");
    assert!(!text.contains("/Users/u1"), "a resource id in a label:\n{text}");
    assert!(!text.contains(SECRET), "{text}");
}
