//! `tenure report ...` on a small hand-built organisation whose answers are written here,
//! as a table, CSV and JSON, and the same JSON from the audit API (`/v1/reports/...`).

mod common;
use serde_json::{json, Value};
use std::path::Path;

const AUDIT: &str = "audit-token-0123456789abc";

/// Alice (in group eng, which grants db#read; directly vault#admin) and Bob; a service
/// owned by Bob with a key expiring 2024-03-01. Bob leaves 2024-02-01 (position 9), Alice
/// 2024-03-01 (position 10).
const ORG: &str = r#"{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","source":"hr","source_event_id":"1","data":{"identity":"alice","kind":"human","attributes":{}}}
{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","source":"hr","source_event_id":"2","data":{"identity":"bob","kind":"human","attributes":{}}}
{"type":"group.created","effective_at":"2024-01-01T00:00:00Z","source":"okta","source_event_id":"3","data":{"group":"eng"}}
{"type":"group.access_granted","effective_at":"2024-01-01T00:00:00Z","source":"okta","source_event_id":"4","data":{"group":"eng","entitlement":{"resource":"db","permission":"read"}}}
{"type":"group.member_added","effective_at":"2024-01-02T00:00:00Z","source":"okta","source_event_id":"5","data":{"group":"eng","identity":"alice"}}
{"type":"access.granted","effective_at":"2024-01-03T00:00:00Z","source":"okta","source_event_id":"6","data":{"identity":"alice","entitlement":{"resource":"vault","permission":"admin"},"approver":"carol"}}
{"type":"identity.joined","effective_at":"2024-01-05T00:00:00Z","source":"okta","source_event_id":"7","data":{"identity":"svc","kind":"service","owner":"bob","attributes":{}}}
{"type":"credential.issued","effective_at":"2024-01-05T00:00:00Z","source":"okta","source_event_id":"8","data":{"identity":"svc","credential":"key1","expires_at":"2024-03-01T00:00:00Z"}}
{"type":"identity.left","effective_at":"2024-02-01T00:00:00Z","source":"hr","source_event_id":"9","data":{"identity":"bob"}}
{"type":"identity.left","effective_at":"2024-03-01T00:00:00Z","source":"hr","source_event_id":"10","data":{"identity":"alice"}}
"#;

/// `tenure serve` over a store with an audit token, and calls to its audit API.
struct Api {
    server: std::process::Child,
    root: String,
}

impl Api {
    fn start(dir: &Path, data: &Path) -> Api {
        let tokens = dir.join("tokens");
        std::fs::write(&tokens, format!("auditor audit {AUDIT}\n")).unwrap();
        let (server, first) = common::serve(data, &["--token-file", tokens.to_str().unwrap()], &[]);
        Api { server, root: common::root_of(&first) }
    }

    /// Status and JSON body (null when the body is not JSON).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let request =
            ureq::request(method, &format!("{}{path}", self.root)).set("Authorization", &format!("Bearer {AUDIT}"));
        let result = match body {
            Some(b) => request.send_json(b.clone()),
            None => request.call(),
        };
        match result {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    fn stop(mut self) {
        let _ = std::process::Command::new("kill").arg(self.server.id().to_string()).status();
        self.server.wait().unwrap();
    }
}

fn json_of(data: &Path, args: &[&str]) -> Value {
    let o = common::tenure(data, args);
    assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn store(dir: &Path) -> (std::path::PathBuf, Vec<Value>) {
    let file = dir.join("org.jsonl");
    std::fs::write(&file, ORG).unwrap();
    let data = dir.join("store");
    let o = common::tenure(&data, &["ingest", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let log = common::tenure(&data, &["log", "--json"]);
    let events = common::stdout(&log).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (data, events)
}

#[test]
fn leavers_nhi_and_lag_on_a_small_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let (data, log) = store(dir.path());
    let recorded = |p: usize| log[p - 1]["recorded_at"].clone();

    let report = json_of(&data, &["report", "leavers", "--json"]);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report:#}");
    // Bob held nothing; no one believed he did.
    assert_eq!(rows[0]["identity"], "bob");
    assert_eq!(rows[0]["position"], 9);
    assert_eq!(rows[0]["source"], "hr");
    assert_eq!(rows[0]["held_before"], json!([]));
    assert_eq!(rows[0]["believed_after"], json!([]));
    // Alice held db#read through eng and vault#admin directly, and the records showed both
    // held from her leave until it was recorded.
    assert_eq!(rows[1]["identity"], "alice");
    assert_eq!(rows[1]["position"], 10);
    assert_eq!(rows[1]["effective_at"], "2024-03-01T00:00:00Z");
    assert_eq!(rows[1]["recorded_at"], recorded(10));
    assert_eq!(
        rows[1]["held_before"],
        json!([
            {"resource": "db", "permission": "read", "via": [{"kind": "group", "group": "eng", "membership": 5, "grant": 4}]},
            {"resource": "vault", "permission": "admin", "via": [{"kind": "direct", "grant": 6}]},
        ])
    );
    assert_eq!(
        rows[1]["believed_after"],
        json!([
            {"resource": "db", "permission": "read", "via": [{"kind": "group", "group": "eng", "membership": 5, "grant": 4}], "from": "2024-03-01T00:00:00Z", "to": recorded(10)},
            {"resource": "vault", "permission": "admin", "via": [{"kind": "direct", "grant": 6}], "from": "2024-03-01T00:00:00Z", "to": recorded(10)},
        ])
    );
    let lag = |p: usize| {
        let t = |v: &Value| tenure_engine::Timestamp::parse_rfc3339(v.as_str().unwrap()).unwrap().as_micros();
        (t(&log[p - 1]["recorded_at"]) - t(&log[p - 1]["effective_at"])) as f64 / 1e6
    };
    assert_eq!(rows[1]["lag_seconds"].as_f64().unwrap(), lag(10));
    assert_eq!(report["by_source"]["hr"]["count"], 2);
    assert_eq!(report["by_source"]["hr"]["worst_seconds"].as_f64().unwrap(), lag(9).max(lag(10)));
    // In a window; and as known before Alice's leave was recorded.
    let late = json_of(&data, &["report", "leavers", "--from", "2024-02-15", "--json"]);
    assert_eq!(late["rows"].as_array().unwrap().len(), 1);
    assert_eq!(late["rows"][0]["identity"], "alice");
    let early = json_of(&data, &["report", "leavers", "--as-of", "9", "--json"]);
    assert_eq!(early["rows"].as_array().unwrap().iter().map(|r| &r["identity"]).collect::<Vec<_>>(), ["bob"]);

    // The service is orphaned from Bob's leave, known from its recording; as known before
    // that (position 8) it was not.
    let nhi = json_of(&data, &["report", "nhi", "--at", "2024-02-15", "--max-age", "30d", "--json"]);
    assert_eq!(
        nhi["services"],
        json!([{"service": "svc", "state": "active", "owner": "bob", "owner_state": "left",
                "orphaned_since": "2024-02-01T00:00:00Z", "ended_by": 9, "known_since": recorded(9), "profile_since": 7}])
    );
    let findings: Vec<(&str, &str)> = nhi["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["credential"].as_str().unwrap(), c["finding"].as_str().unwrap()))
        .collect();
    assert_eq!(findings, [("key1", "not_rotated")]);
    assert_eq!(nhi["dormant"], json!([]), "the service's join is 41 days before: not dormant after 365 days");
    let quiet = json_of(&data, &["report", "nhi", "--at", "2024-02-15", "--dormant-after", "30d", "--json"]);
    assert_eq!(
        quiet["dormant"],
        json!([{"identity": "svc", "last_event": 7, "last_event_at": "2024-01-05T00:00:00Z"}])
    );
    let before = json_of(&data, &["report", "nhi", "--at", "2024-02-15", "--as-of", "8", "--json"]);
    assert_eq!(before["services"], json!([]));
    assert_eq!(before["credentials"], json!([]), "issued 2024-01-05: within 90 days");
    let march = json_of(&data, &["report", "nhi", "--at", "2024-03-15", "--json"]);
    assert_eq!(march["credentials"][0]["finding"], "expired");
    assert_eq!(march["credentials"][0]["issued_by"], 8);

    // Event lag per source and type.
    let lags = json_of(&data, &["report", "lag", "--json"]);
    let rows: Vec<(&str, &str, u64)> = lags["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["source"].as_str().unwrap(), r["type"].as_str().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [
            ("hr", "identity.joined", 2),
            ("hr", "identity.left", 2),
            ("okta", "access.granted", 1),
            ("okta", "credential.issued", 1),
            ("okta", "group.access_granted", 1),
            ("okta", "group.created", 1),
            ("okta", "group.member_added", 1),
            ("okta", "identity.joined", 1),
        ]
    );

    // The table and the CSV say the same.
    let table = common::stdout(&common::tenure(&data, &["report", "leavers"]));
    // Rows first (streamed), then the count and the lag.
    assert!(table.starts_with("IDENTITY "), "{table}");
    assert!(table.contains("\n2 leaves, as known at position 10 (the head)\nlag:\n"), "{table}");
    assert!(table.contains("vault#admin (direct grant @6)") && table.contains("hr: 2 leaves"), "{table}");
    let csv = common::stdout(&common::tenure(&data, &["report", "nhi", "--at", "2024-03-15", "--csv"]));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("FINDING,IDENTITY,OF,SINCE,KNOWN SINCE,POSITION"));
    assert!(lines.next().unwrap().starts_with("owner left,svc,bob,"), "{csv}");
    // A bad duration is an input error naming it.
    let bad = common::tenure(&data, &["report", "nhi", "--max-age", "ninety"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(common::stderr(&bad).contains("'ninety' is not a duration"), "{}", common::stderr(&bad));

    // The audit API answers the same JSON.
    let api = Api::start(dir.path(), &data);
    let get = |path: &str| api.call("GET", path, None).1;
    assert_eq!(get("/v1/reports/leavers"), report);
    assert_eq!(get("/v1/reports/leavers?from=2024-02-15"), late);
    assert_eq!(get("/v1/reports/nhi?at=2024-02-15&max_age=30d"), nhi);
    assert_eq!(get("/v1/reports/lag"), lags);
    assert_eq!(api.call("GET", "/v1/reports/nhi?max_age=ninety", None).0, 400);
    api.stop();
}

/// Access review: decisions recorded with `tenure review record`, then the report at
/// several times: who holds, how, since when, approved by whom, the latest decision, and
/// whether a `revoke` was carried out (Alice's leave ends the access 20 days after it).
#[test]
fn an_access_review_and_its_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = store(dir.path());
    let record = |args: &[&str]| {
        let mut all = vec!["review", "record", "--json"];
        all.extend_from_slice(args);
        json_of(&data, &all)
    };
    let revoke = record(&[
        "--resource",
        "vault",
        "--reviewer",
        "carol",
        "--decision",
        "revoke",
        "--at",
        "2024-02-10",
        "--comment",
        "left the team",
    ]);
    assert_eq!(
        revoke["recorded"],
        json!([{"identity": "alice", "resource": "vault", "permission": "admin", "position": 11}])
    );
    let keep = record(&["--resource", "db", "--reviewer", "dave", "--decision", "keep", "--at", "2024-02-11"]);
    assert_eq!(keep["recorded"][0]["position"], 12);
    // Nobody to review: an input error, nothing appended.
    let none = common::tenure(
        &data,
        &["review", "record", "--resource", "vault", "--reviewer", "x", "--decision", "keep", "--identity", "bob"],
    );
    assert_eq!(none.status.code(), Some(2));
    assert!(common::stderr(&none).contains("'bob' does not hold vault"), "{}", common::stderr(&none));

    let vault = json_of(&data, &["report", "access", "--resource", "vault", "--at", "2024-02-20", "--json"]);
    assert_eq!(vault["as_of"], 12);
    assert_eq!(
        vault["rows"],
        json!([{
            "identity": "alice", "resource": "vault", "permission": "admin",
            "via": [{"kind": "direct", "grant": 6}],
            "since": "2024-01-03T00:00:00Z",
            "granted_by": [{"position": 6, "type": "access.granted", "effective_at": "2024-01-03T00:00:00Z", "source": "okta", "actor": null, "approver": "carol", "justification": null}],
            "last_review": {"position": 11, "reviewer": "carol", "decision": "revoke", "decided_at": "2024-02-10T00:00:00Z", "recorded_at": vault["rows"][0]["last_review"]["recorded_at"], "comment": "left the team"},
            "flags": ["revoke_not_carried_out"],
        }])
    );
    assert_eq!(vault["revocations"][0]["carried_out_at"], Value::Null);
    assert_eq!(vault["revocations"][0]["stayed_seconds"], 10.0 * 86_400.0);
    // After Alice's leave: no holder, the decision carried out 20 days after it.
    let later = json_of(&data, &["report", "access", "--resource", "vault", "--at", "2024-03-20", "--json"]);
    assert_eq!(later["rows"], json!([]));
    assert_eq!(later["revocations"][0]["carried_out_at"], "2024-03-01T00:00:00Z");
    assert_eq!(later["revocations"][0]["stayed_seconds"], 20.0 * 86_400.0);
    // db#read through the group: both events behind it, kept by dave; before the review
    // (as known at position 10) never reviewed.
    let db = json_of(&data, &["report", "access", "--resource", "db", "--at", "2024-02-20", "--json"]);
    let row = &db["rows"][0];
    assert_eq!(row["since"], "2024-01-02T00:00:00Z");
    assert_eq!(
        row["granted_by"].as_array().unwrap().iter().map(|g| g["position"].as_u64().unwrap()).collect::<Vec<_>>(),
        [5, 4]
    );
    assert_eq!(row["last_review"]["decision"], "keep");
    assert_eq!(row["flags"], json!([]));
    let before =
        json_of(&data, &["report", "access", "--resource", "db", "--at", "2024-02-20", "--as-of", "10", "--json"]);
    assert_eq!(before["rows"][0]["flags"], json!(["never_reviewed"]));
    // The table names the decision and what became of it.
    let table =
        common::stdout(&common::tenure(&data, &["report", "access", "--resource", "vault", "--at", "2024-03-20"]));
    assert!(table.contains("revoke by carol on 2024-02-10") && table.contains("carried out 2024-03-01"), "{table}");

    // The audit API answers the same JSON.
    let api = Api::start(dir.path(), &data);
    assert_eq!(api.call("GET", "/v1/reports/access?resource=vault&at=2024-02-20", None), (200, vault));
    api.stop();
}

/// Separation of duties over history: Alice read the db (through eng) and administered
/// the vault (directly) together from 2024-01-03 until she left; the records showed it
/// only later (they were written in one ingest, today). A bad policy names its file,
/// rule and field.
#[test]
fn separation_of_duties_over_history() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = store(dir.path());
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nname = \"read db and administer vault\"\nentitlements = [\"db#read\", \"vault#admin\"]\n\n\
         [[rule]]\nname = \"never held\"\nentitlements = [\"db#read\", \"nothing#here\"]\n",
    )
    .unwrap();
    let p = policy.to_str().unwrap();
    let sod = json_of(&data, &["report", "sod", "--policy", p, "--json"]);
    assert_eq!(
        sod["violations"],
        json!([{
            "rule": "read db and administer vault", "identity": "alice",
            "from": "2024-01-03T00:00:00Z", "to": "2024-03-01T00:00:00Z",
            "sides": [
                {"resource": "db", "permission": "read", "via": [{"kind": "group", "group": "eng", "membership": 5, "grant": 4}]},
                {"resource": "vault", "permission": "admin", "via": [{"kind": "direct", "grant": 6}]},
            ],
            "known_at_start": false,
        }])
    );
    // A window after the overlap finds nothing; as known before the vault grant, nothing.
    let after = json_of(&data, &["report", "sod", "--policy", p, "--from", "2024-03-01", "--json"]);
    assert_eq!(after["violations"], json!([]));
    let before = json_of(&data, &["report", "sod", "--policy", p, "--as-of", "5", "--json"]);
    assert_eq!(before["violations"], json!([]));
    // Bad policies.
    for (text, says) in [
        ("[[rule]]\nname = \"x\"\nentitlements = [\"a#b\"]\n", "rule 1 ('x'): entitlements: give two or more"),
        ("[[rule]]\nname = \"x\"\nentitlements = [\"a#b\", \"c\"]\n", "'c' is not RESOURCE#PERMISSION"),
        ("[[rule]]\nnam = \"x\"\n", "unknown field `nam`"),
        ("", "no [[rule]] in the policy"),
    ] {
        std::fs::write(&policy, text).unwrap();
        let o = common::tenure(&data, &["report", "sod", "--policy", p]);
        assert_eq!(o.status.code(), Some(2), "{text}");
        assert!(
            common::stderr(&o).contains(says) && common::stderr(&o).contains("policy.toml"),
            "{}",
            common::stderr(&o)
        );
    }
    // The audit API, for one rule.
    let api = Api::start(dir.path(), &data);
    let (_, got) = api.call("GET", "/v1/reports/sod?entitlements=db%23read,vault%23admin", None);
    assert_eq!(got["violations"][0]["from"], "2024-01-03T00:00:00Z");
    assert_eq!(got["violations"][0]["sides"], sod["violations"][0]["sides"]);
    assert_eq!(api.call("GET", "/v1/reports/sod?entitlements=db%23read", None).0, 400);
    api.stop();
}

/// The anomalies report: a grant to Bob after he left (from okta) and a second join of
/// Alice (from hr), counted by kind and source, and kept to a window.
#[test]
fn anomalies_counted_by_kind_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = store(dir.path());
    let more = dir.path().join("more.jsonl");
    std::fs::write(
        &more,
        r#"{"type":"access.granted","effective_at":"2024-02-05T00:00:00Z","source":"okta","source_event_id":"11","data":{"identity":"bob","entitlement":{"resource":"db","permission":"admin"}}}
{"type":"identity.joined","effective_at":"2024-04-01T00:00:00Z","source":"hr","source_event_id":"12","data":{"identity":"alice","kind":"human","attributes":{}}}
"#,
    )
    .unwrap();
    assert!(common::tenure(&data, &["ingest", more.to_str().unwrap()]).status.success());
    let report = json_of(&data, &["report", "anomalies", "--json"]);
    assert_eq!(
        report["groups"],
        json!([
            {"kind": "transition", "source": "hr", "count": 1, "positions": [12]},
            {"kind": "not_joined", "source": "okta", "count": 1, "positions": [11]},
        ])
    );
    assert_eq!(report["rows"][0]["position"], 11);
    assert_eq!(report["rows"][0]["type"], "access.granted");
    assert_eq!(report["rows"][0]["identity"], "bob");
    let window = json_of(&data, &["report", "anomalies", "--from", "2024-03-01", "--json"]);
    assert_eq!(
        window["rows"].as_array().unwrap().iter().map(|r| r["position"].as_u64().unwrap()).collect::<Vec<_>>(),
        [12]
    );
    let table = common::stdout(&common::tenure(&data, &["report", "anomalies"]));
    assert!(table.contains("1  not_joined from okta"), "{table}");
}

/// A drift row's kind, identity, directory key and field.
type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

/// Reconciliation against an Okta-shaped SCIM export (a ListResponse of Users and one of
/// Groups): the drift rows, the corrections, and drift 0 once they are ingested; the same
/// from CSV; a bad CSV names its line and field.
#[test]
fn reconciliation_against_a_directory_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = store(dir.path());
    let users = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 3, "startIndex": 1, "itemsPerPage": 3,
        "Resources": [
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
             "id": "00u1alice", "userName": "alice", "active": true,
             "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Finance"}},
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "00u2bob", "userName": "bob", "active": false},
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "00u3dave", "userName": "dave", "active": true,
             "name": {"givenName": "Dave"}},
        ]
    });
    let groups = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 2, "startIndex": 1, "itemsPerPage": 2,
        "Resources": [
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "00g1", "displayName": "eng", "members": [{"value": "00u1alice", "display": "alice"}]},
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "00g2", "displayName": "ops", "members": [{"value": "00u1alice"}, {"value": "00u3dave"}]},
        ]
    });
    let (u, g) = (dir.path().join("users.json"), dir.path().join("groups.json"));
    std::fs::write(&u, users.to_string()).unwrap();
    std::fs::write(&g, groups.to_string()).unwrap();
    let fix = dir.path().join("fix.jsonl");
    let args =
        ["reconcile", "--directory", u.to_str().unwrap(), "--directory", g.to_str().unwrap(), "--at", "2024-02-15"];
    let mut with_fix = args.to_vec();
    with_fix.extend(["--emit-corrections", fix.to_str().unwrap(), "--json"]);
    let report = json_of(&data, &with_fix);
    let rows: Vec<Row> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["identity"].as_str(), r["directory"].as_str(), r["field"].as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("attribute", Some("alice"), Some("alice"), Some("department")),
            ("membership_missing", Some("alice"), Some("alice"), Some("ops")),
            ("missing", None, Some("dave"), None),
        ],
        "{report:#}"
    );
    assert_eq!(report["drift"], 3);
    assert_eq!(report["rows"][0]["there"], "Finance");
    // The service is compared only when asked: its owner left, it is not in the directory.
    let mut all = args.to_vec();
    all.extend(["--include-services", "--json"]);
    let with_services = json_of(&data, &all);
    assert_eq!(with_services["drift"], 4);
    assert!(with_services["rows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["kind"] == "orphaned" && r["identity"] == "svc"));
    // The rows are the same whether corrections are made (for a file) or not (CSV alone).
    let mut csv_args = args.to_vec();
    csv_args.push("--csv");
    let plain = common::stdout(&common::tenure(&data, &csv_args));
    let other_fix = dir.path().join("fix2.jsonl");
    let mut csv_fix = csv_args.clone();
    csv_fix.extend(["--emit-corrections", other_fix.to_str().unwrap()]);
    assert_eq!(plain, common::stdout(&common::tenure(&data, &csv_fix)));
    assert_eq!(plain.lines().count(), 4, "{plain}");
    // The corrections bring Tenure in line: drift 0.
    let fixes = std::fs::read_to_string(&fix).unwrap();
    assert_eq!(fixes, std::fs::read_to_string(&other_fix).unwrap());
    assert_eq!(fixes.lines().count(), 5, "{fixes}");
    let o = common::tenure(&data, &["ingest", fix.to_str().unwrap()]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let mut again = args.to_vec();
    again.push("--json");
    assert_eq!(json_of(&data, &again)["drift"], 0, "{fixes}");
    let table = common::stdout(&common::tenure(&data, &args));
    assert!(table.contains("\ndrift 0 at 2024-02-15"), "{table}");

    // CSV: Alice moved to sales, Carol unknown here, Dave gone from ops.
    let csv = dir.path().join("dir.csv");
    std::fs::write(&csv, "identity,active,department,groups\nalice,true,sales,eng;ops\ncarol,true,,\ndave,true,,\n")
        .unwrap();
    let report = json_of(&data, &["reconcile", "--directory", csv.to_str().unwrap(), "--at", "2024-02-15", "--json"]);
    let rows: Vec<(&str, Option<&str>, Option<&str>)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["directory"].as_str(), r["field"].as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("attribute", Some("alice"), Some("department")),
            ("missing", Some("carol"), None),
            ("membership_extra", Some("dave"), Some("ops"))
        ]
    );
    // The audit API takes the snapshot as the request body (both ListResponses at once).
    let api = Api::start(dir.path(), &data);
    let post = |body: &Value| api.call("POST", "/v1/reports/reconcile?at=2024-02-15", Some(body));
    let (status, answer) = post(&json!([users, groups]));
    assert_eq!((status, &answer["drift"], &answer["corrections"]), (200, &json!(0), &json!([])), "{answer}");
    let (status, answer) = post(&json!({"Resources": [{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}]}));
    assert_eq!(status, 400);
    assert!(answer.to_string().contains("userName is required"), "{answer}");
    api.stop();
    // A bad resource on the second page: the error names the file, the page, the resource
    // and the line, before anything is compared; no corrections file is left behind.
    let pages = dir.path().join("pages.json");
    let bad_user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "active": true});
    std::fs::write(&pages, format!("[{users},\n{{\"Resources\": [\n{}, {bad_user}]}}]", users["Resources"][0]))
        .unwrap();
    let gone = dir.path().join("never.jsonl");
    let o = common::tenure(
        &data,
        &["reconcile", "--directory", pages.to_str().unwrap(), "--emit-corrections", gone.to_str().unwrap(), "--json"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let said = common::stderr(&o);
    assert!(said.contains("pages.json: resource 2 of page 2: userName is required"), "{said}");
    assert!(said.contains("line 3"), "{said}");
    assert!(common::stdout(&o).is_empty());
    assert!(!gone.exists());
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(!names.iter().any(|n| n.starts_with(".tmp")), "{names:?}");
    std::fs::write(&pages, "{\"Resources\": [{\"userName\": \"x\",}]}").unwrap();
    let o = common::tenure(&data, &["reconcile", "--directory", pages.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("pages.json: trailing comma at line 1 column 33"), "{}", common::stderr(&o));
    std::fs::write(&csv, "identity,active\nalice,maybe\n").unwrap();
    let bad = common::tenure(&data, &["reconcile", "--directory", csv.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        common::stderr(&bad).contains("dir.csv: line 2: active: 'maybe' is not true or false"),
        "{}",
        common::stderr(&bad)
    );
}
