//! The audit API of `tenure serve` (`/v1/...`) answers exactly what `tenure ... --json`
//! prints for the same question, over real HTTP, with read-only tokens kept apart from
//! the provisioning ones; and it follows the writes the server takes.

mod common;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const SCIM: &str = "provision-token-0123456789";
const AUDIT: &str = "audit-token-0123456789abc";

fn cli(data: &Path, args: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("TENURE_DATA")
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = ureq::get(url);
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    match r.call() {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{url}: {e}"),
    }
}

#[test]
fn the_audit_api_answers_what_the_cli_prints() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let o = common::tenure(&data, &["demo", "--identities", "300"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // An identity, an entitlement and times to ask about, from the log.
    let log =
        Command::new(env!("CARGO_BIN_EXE_tenure")).arg("--data").arg(&data).args(["log", "--json"]).output().unwrap();
    let events: Vec<Value> =
        String::from_utf8_lossy(&log.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let grant = events.iter().find(|e| e["type"] == "access.granted").unwrap();
    let who = grant["data"]["identity"].as_str().unwrap().to_string();
    let resource = grant["data"]["entitlement"]["resource"].as_str().unwrap().to_string();
    let at = events[events.len() / 2]["effective_at"].as_str().unwrap().to_string();
    let from = events[events.len() / 4]["effective_at"].as_str().unwrap().to_string();
    let as_of = (events.len() * 3 / 4).to_string();

    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("okta okta {SCIM}\nauditor audit {AUDIT}\n")).unwrap();
    let (mut server, first) = common::serve(&data, &["--token-file", tokens.to_str().unwrap()], &[]);
    let root = common::root_of(&first);

    let enc = |s: &str| s.replace('+', "%2B").replace('#', "%23");
    let pairs: Vec<(String, Vec<String>)> = vec![
        (format!("/v1/access/{who}?at={}", enc(&at)), vec!["access".into(), who.clone(), "--at".into(), at.clone()]),
        (
            format!("/v1/access/{who}?at={}&as_of={as_of}", enc(&at)),
            vec!["access".into(), who.clone(), "--at".into(), at.clone(), "--as-of".into(), as_of.clone()],
        ),
        (
            format!("/v1/holders?resource={resource}&at={}", enc(&at)),
            vec!["who".into(), resource.clone(), "--at".into(), at.clone()],
        ),
        (
            format!("/v1/holders?resource={resource}&during={}..{}", enc(&from), enc(&at)),
            vec!["who".into(), resource.clone(), "--during".into(), format!("{from}..{at}")],
        ),
        (format!("/v1/timeline/{who}"), vec!["timeline".into(), who.clone()]),
        (format!("/v1/profile/{who}?at={}", enc(&at)), vec!["show".into(), who.clone(), "--at".into(), at.clone()]),
        (
            format!("/v1/diff?from={}&to={}", enc(&from), enc(&at)),
            vec!["diff".into(), "--from".into(), from.clone(), "--to".into(), at.clone()],
        ),
        (format!("/v1/anomalies?as_of={as_of}"), vec!["anomalies".into(), "--as-of".into(), as_of.clone()]),
    ];
    for (path, args) in &pairs {
        let (status, api) = get(&format!("{root}{path}"), Some(AUDIT));
        assert_eq!(status, 200, "{path}: {api}");
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.push("--json");
        assert_eq!(api, cli(&data, &args), "{path} differs from tenure {args:?}");
    }
    let (status, v) = get(&format!("{root}/v1/verify"), Some(AUDIT));
    assert_eq!(status, 200);
    assert_eq!(v["head_hash"], cli(&data, &["verify", "--json"])["head_hash"]);

    // Scopes: a provisioning token is refused by the audit API, an audit token by SCIM;
    // no token, 401.
    assert_eq!(get(&format!("{root}/v1/timeline/{who}"), Some(SCIM)).0, 403);
    assert_eq!(get(&format!("{root}/v1/timeline/{who}"), None).0, 401);
    assert_eq!(get(&format!("{root}/scim/v2/Users"), Some(AUDIT)).0, 403);
    assert_eq!(get(&format!("{root}/scim/v2/Users"), Some(SCIM)).0, 200);
    // Bad parameters: 400 naming them; an unknown identity: 404.
    assert_eq!(get(&format!("{root}/v1/access/{who}?at=yesterday"), Some(AUDIT)).0, 400);
    assert_eq!(get(&format!("{root}/v1/holders"), Some(AUDIT)).0, 400);
    assert_eq!(get(&format!("{root}/v1/access/nobody-at-all"), Some(AUDIT)).0, 404);

    // A write the server takes is in the next answer.
    let user = serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "new.hire@example.com",
        "entitlements": [{"value": "payroll#read"}]});
    let created = ureq::post(&format!("{root}/scim/v2/Users"))
        .set("Authorization", &format!("Bearer {SCIM}"))
        .send_json(user)
        .unwrap();
    assert_eq!(created.status(), 201);
    let (status, v) = get(&format!("{root}/v1/access/new.hire@example.com"), Some(AUDIT));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["entitlements"][0]["resource"], "payroll", "{v}");
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    server.wait().unwrap();
}

/// The large answers (`holders`, `diff`, `report leavers`) are written by the server a row
/// at a time into a temporary file and sent from it: on a generated organisation, with
/// thousands of rows, gains and losses, they still equal what the CLI prints.
#[test]
fn the_large_answers_are_streamed_and_still_equal_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("org.jsonl");
    let o = common::tenure(
        dir.path(),
        &["generate", "--identities", "2000", "--years", "2", "--out", file.to_str().unwrap()],
    );
    assert!(o.status.success());
    let data = dir.path().join("store");
    assert!(common::tenure(&data, &["ingest", file.to_str().unwrap()]).status.success());
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("auditor audit {AUDIT}\n")).unwrap();
    let (mut server, first) = common::serve(&data, &["--token-file", tokens.to_str().unwrap()], &[]);
    let root = common::root_of(&first);
    let pairs: [(&str, &[&str]); 5] = [
        ("/v1/diff?from=2020-06-01&to=2021-12-01", &["diff", "--from", "2020-06-01", "--to", "2021-12-01"]),
        ("/v1/holders?resource=app-0000&at=2021-06-01", &["who", "app-0000", "--at", "2021-06-01"]),
        (
            "/v1/holders?resource=app-0000&during=2020-01-01..2022-01-01",
            &["who", "app-0000", "--during", "2020-01-01..2022-01-01"],
        ),
        ("/v1/reports/leavers", &["report", "leavers"]),
        (
            "/v1/reports/leavers?from=2021-01-01&as_of=10000",
            &["report", "leavers", "--from", "2021-01-01", "--as-of", "10000"],
        ),
    ];
    for (path, args) in pairs {
        let (status, api) = get(&format!("{root}{path}"), Some(AUDIT));
        assert_eq!(status, 200, "{path}: {api}");
        let mut args = args.to_vec();
        args.push("--json");
        let want = cli(&data, &args);
        assert_eq!(api, want, "{path} differs from tenure {args:?}");
        let rows =
            ["gained", "lost", "holders", "rows"].iter().filter_map(|k| api[k].as_array()).map(Vec::len).sum::<usize>();
        assert!(rows > 50, "{path}: {rows} rows");
        if path.starts_with("/v1/diff") {
            assert!(!api["lost"].as_array().unwrap().is_empty() && !api["gained"].as_array().unwrap().is_empty());
        }
    }
    // A bad parameter is still the answer's status, before any byte of a body.
    assert_eq!(get(&format!("{root}/v1/diff?from=2020-06-01"), Some(AUDIT)).0, 400);
    assert_eq!(
        get(&format!("{root}/v1/holders?resource=app-0000&at=2021-06-01&during=2020-01-01..2021-01-01"), Some(AUDIT)).0,
        400
    );
    let _ = server.kill();
    let _ = server.wait();
}
