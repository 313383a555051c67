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
    for bad in ["limit=0", "limit=10001", "limit=ten", "after=-1", "after=99", "events=identity.vanished"] {
        let r = s.call("GET", &format!("{root}/events?{bad}"), None);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    assert_eq!(s.call_with("GET", &format!("{root}/events"), None, &[]).status, 401);
}

/// GET with `Accept` set to the records form: status, content type, chain header, bytes.
fn records(url: &str) -> (u16, String, Option<String>, Vec<u8>) {
    let r = ureq::get(url)
        .set("Authorization", &format!("Bearer {}", common::TOKEN))
        .set("Accept", &format!("{}, application/json;q=0.5", tenure_server::RECORDS_MEDIA_TYPE))
        .call()
        .unwrap();
    let (status, kind) = (r.status(), r.content_type().to_string());
    let chain = r.header(tenure_server::CHAIN_HEADER).map(str::to_string);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut bytes).unwrap();
    (status, kind, chain, bytes)
}

/// The records form: the same events as the JSON pages, as the log stores them, with the
/// chain hash after each page's last event; a filter answers JSON; a page cut anywhere
/// does not decode.
#[test]
fn the_records_form_is_the_log_as_stored() {
    let s = Server::start();
    for name in ["ann", "ben", "cat", "dan", "eve"] {
        let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
        assert_eq!(s.call("POST", "/Users", Some(user)).status, 201);
    }
    let root = s.base.trim_end_matches("/scim/v2").to_string();
    let log = s.log();
    let store = tenure_engine::Store::open_read_only(&s.dir).unwrap();
    let mut followed = Vec::new();
    let mut after = 0u64;
    loop {
        let (status, kind, chain, bytes) = records(&format!("{root}/events?after={after}&limit=2"));
        assert_eq!((status, kind.as_str()), (200, tenure_server::RECORDS_MEDIA_TYPE));
        let page = tenure_server::decode_records(&bytes).unwrap();
        let Some(last) = page.last().map(|e| e.position) else {
            assert!(chain.is_none() && bytes == [0, 0, 0, 0]);
            break;
        };
        assert!(page.len() <= 2);
        assert_eq!(chain.unwrap(), store.chain_hash_at(last).unwrap(), "the chain after position {last}");
        // Each record is the stored payload, byte for byte.
        let mut stored = (page.len() as u32).to_le_bytes().to_vec();
        store
            .scan_records(page[0].position, last, |_, payload, _| {
                stored.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                stored.extend_from_slice(payload);
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .unwrap();
        assert_eq!(bytes, stored);
        // Cut anywhere, the page does not decode.
        for cut in [0, 1, 3, 4, 5, 8, 9, bytes.len() / 2, bytes.len() / 2 + 2, bytes.len() - 1] {
            assert!(tenure_server::decode_records(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        after = last.get();
        followed.extend(page);
    }
    assert_eq!(followed, log);
    assert_eq!(store.chain_hash_at(tenure_engine::Position(log.len() as u64)).unwrap(), store.head_hash());
    // With a filter the page is JSON, whatever was asked.
    let (status, kind, _, bytes) = records(&format!("{root}/events?events=identity.joined&limit=100"));
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    let page: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
    // Garbage is not a page: a length past any record, a payload that is not an event.
    assert!(tenure_server::decode_records(&u32::MAX.to_le_bytes()).unwrap_err().contains("more than any"));
    assert!(tenure_server::decode_records(&[1, 0, 0, 0, 255, 255, 255, 255]).unwrap_err().contains("more than any"));
    assert!(tenure_server::decode_records(&[1, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3]).unwrap_err().contains("not a record"));
    assert!(tenure_server::decode_records(&[0, 0, 0, 0, 7]).unwrap_err().contains("after the page"));
}

/// Reads server-sent events from a raw connection until `n` ids have come.
fn read_ids(reader: &mut impl std::io::BufRead, n: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut line = String::new();
    while ids.len() < n {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(id) = line.trim().strip_prefix("id:") {
            ids.push(id.trim().parse().unwrap());
        }
    }
    ids
}

fn open_stream(s: &Server, extra: &str) -> std::io::BufReader<std::net::TcpStream> {
    use std::io::Write;
    let addr = s.base.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    write!(c, "GET /events/stream{extra} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n", common::TOKEN)
        .unwrap();
    c.write_all(b"\r\n").unwrap();
    std::io::BufReader::new(c)
}

/// The stream starts after a cursor (or the Last-Event-ID of a reconnection), then follows
/// live appends with no gap and no duplicate; a stopping server ends it.
#[test]
fn the_event_stream_follows_live_appends() {
    let mut s = Server::start();
    let user = |name: &str| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
    for name in ["ann", "ben", "cat"] {
        assert_eq!(s.call("POST", "/Users", Some(user(name))).status, 201);
    }
    let mut stream = open_stream(&s, "?after=1");
    assert_eq!(read_ids(&mut stream, 2), [2, 3], "the history after the cursor");
    for name in ["dan", "eve"] {
        assert_eq!(s.call("POST", "/Users", Some(user(name))).status, 201);
    }
    assert_eq!(read_ids(&mut stream, 2), [4, 5], "then the live appends, no gap, no repeat");
    // A reconnection resumes after its Last-Event-ID.
    use std::io::Write;
    let addr = s.base.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        c,
        "GET /events/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nLast-Event-ID: 3\r\n\r\n",
        common::TOKEN
    )
    .unwrap();
    let mut resumed = std::io::BufReader::new(c);
    assert_eq!(read_ids(&mut resumed, 2), [4, 5]);
    // Stopping the server ends the open streams (and the stop does not wait for them).
    s.stop();
    assert_eq!(read_ids(&mut stream, 1), Vec::<u64>::new());
}

/// `GET /openapi.json`: the whole HTTP surface, every route of the router with its
/// methods, public (it holds no data).
#[test]
fn the_openapi_document_lists_every_route() {
    let s = Server::start();
    let r = s.raw("GET", &s.url("/openapi.json"), None, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["openapi"].as_str().unwrap().starts_with("3."), "{}", r.text);
    let routes: [(&str, &[&str]); 33] = [
        ("/scim/v2/ServiceProviderConfig", &["get"]),
        ("/scim/v2/ResourceTypes", &["get"]),
        ("/scim/v2/ResourceTypes/{name}", &["get"]),
        ("/scim/v2/Schemas", &["get"]),
        ("/scim/v2/Schemas/{id}", &["get"]),
        ("/scim/v2/Users", &["get", "post"]),
        ("/scim/v2/Users/{id}", &["get", "put", "patch", "delete"]),
        ("/scim/v2/Users/.search", &["post"]),
        ("/scim/v2/.search", &["post"]),
        ("/scim/v2/Groups", &["get", "post"]),
        ("/scim/v2/Groups/{id}", &["get", "put", "patch", "delete"]),
        ("/scim/v2/Groups/.search", &["post"]),
        ("/events", &["get"]),
        ("/events/stream", &["get"]),
        ("/webhooks/directory-sync", &["post"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
        ("/v1/access/{identity}", &["get"]),
        ("/v1/holders", &["get"]),
        ("/v1/timeline/{identity}", &["get"]),
        ("/v1/profile/{identity}", &["get"]),
        ("/v1/diff", &["get"]),
        ("/v1/anomalies", &["get"]),
        ("/v1/verify", &["get"]),
        ("/v1/reports/leavers", &["get"]),
        ("/v1/reports/nhi", &["get"]),
        ("/v1/reports/lag", &["get"]),
        ("/v1/reports/access", &["get"]),
        ("/v1/reports/sod", &["get"]),
        ("/v1/reports/anomalies", &["get"]),
        ("/v1/reports/reconcile", &["post"]),
        ("/scim/v2/Users/{id}", &["get"]),
        ("/scim/v2/Groups/{id}", &["delete"]),
    ];
    let paths = r.json["paths"].as_object().unwrap();
    for (path, methods) in routes {
        for m in methods {
            assert!(paths.get(path).and_then(|p| p.get(*m)).is_some(), "{m} {path} is not in the document");
        }
    }
    assert_eq!(paths.len(), 31, "{:?}", paths.keys().collect::<Vec<_>>());
    assert_eq!(r.json["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // Every route the document names answers something other than "no such endpoint".
    for path in paths.keys() {
        let concrete = path.replace("{id}", "x").replace("{name}", "User").replace("{identity}", "x");
        let probe = s.raw("GET", &s.url(&concrete), None, &[]);
        assert_ne!(probe.text, s.raw("GET", &s.url("/no/such/route"), None, &[]).text, "{path}");
    }
}
