//! The real `tenure` binary, driven through every command and its error paths.

mod common;
use common::{stderr, stdout, tenure};

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios")
}

fn canonical(items: &Value, with_identity: bool) -> BTreeSet<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let id = if with_identity { i["identity"].to_string() } else { String::new() };
            let vias: BTreeSet<String> = i["via"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
            format!("{id}|{}|{}|{vias:?}", i["resource"], i["permission"])
        })
        .collect()
}

/// Every query of every shared scenario, through the binary, against its expected answer.
#[test]
fn scenarios_through_the_binary() {
    for name in ["01-group-and-expiry", "02-backdated-leave-and-retraction", "03-renewal-group-deletion-service"] {
        let dir = tempfile::tempdir().unwrap();
        let file = scenarios().join(format!("{name}.jsonl"));
        let o = tenure(dir.path(), &["ingest", file.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(scenarios().join(format!("{name}.expected.json"))).unwrap())
                .unwrap();
        for case in expected.as_array().unwrap() {
            let query = case["query"].as_str().unwrap();
            let words: Vec<&str> = query.split_whitespace().skip(1).collect();
            let o = tenure(dir.path(), &words);
            assert!(o.status.success(), "{query}: {}", stderr(&o));
            let got: Value = serde_json::from_str(&stdout(&o)).unwrap();
            let (key, with_id) = if words[0] == "access" { ("entitlements", false) } else { ("holders", true) };
            assert_eq!(canonical(&got[key], with_id), canonical(&case["answer"][key], with_id), "{name}: {query}");
            if words[0] == "access" {
                assert_eq!(got["identity"], case["answer"]["identity"]);
                assert!(got["at"].is_string() && got["as_of"].is_u64(), "{got}");
            } else {
                assert_eq!(got["resource"], case["answer"]["resource"]);
            }
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const GOOD: &str = r#"{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","source":"hr","source_event_id":"1","data":{"identity":"ann","kind":"human","attributes":{}}}
{"type":"access.granted","effective_at":"2024-01-02T00:00:00Z","source":"it","source_event_id":"2","data":{"identity":"ann","entitlement":{"resource":"db","permission":"read"}}}
"#;

#[test]
fn ingest_reports_appended_and_duplicates_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "good.jsonl", GOOD);
    let data = dir.path().join("store");
    let o = tenure(&data, &["ingest", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{}: 2 appended (positions 1..2), 0 duplicates skipped\n", f.display()));
    let o = tenure(&data, &["ingest", f.to_str().unwrap()]);
    assert_eq!(stdout(&o), format!("{}: 0 appended, 2 duplicates skipped\n", f.display()));
}

#[test]
fn ingest_reads_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["--data", dir.path().to_str().unwrap(), "ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(GOOD.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o), "-: 2 appended (positions 1..2), 0 duplicates skipped\n");
}

#[test]
fn a_bad_line_names_file_line_and_field_and_stores_nothing_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let bad_time = GOOD.to_string()
        + r#"{"type":"identity.left","effective_at":"2024-13-45","source":"hr","source_event_id":"3","data":{"identity":"ann"}}"#
        + "\n";
    let f = write(dir.path(), "bad.jsonl", &bad_time);
    let o = tenure(&data, &["ingest", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), format!("tenure: {}:3: field effective_at: not an RFC 3339 time\n", f.display()));
    assert!(!data.join("events.log").exists() || tenure(&data, &["log"]).stdout.is_empty());

    let unknown = GOOD.to_string()
        + r#"{"type":"identity.left","effective_at":"2024-02-01T00:00:00Z","source":"hr","source_event_id":"3","data":{"identity":"zed"}}"#
        + "\n";
    let f = write(dir.path(), "unknown.jsonl", &unknown);
    let o = tenure(&data, &["ingest", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!("tenure: {}:3: field data.identity: unknown identity 'zed': no earlier event joined it\n", f.display())
    );
    assert!(tenure(&data, &["log"]).stdout.is_empty(), "nothing of the file is stored");

    let unknown_field = r#"{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","data":{"identity":"a","kind":"human","colour":"red"}}"#;
    let f = write(dir.path(), "field.jsonl", unknown_field);
    let o = tenure(&data, &["ingest", f.to_str().unwrap()]);
    assert_eq!(stderr(&o), format!("tenure: {}:1: field data.colour: unknown field `colour`, expected one of `identity`, `kind`, `attributes`, `owner`\n", f.display()));

    let missing = dir.path().join("missing.jsonl");
    let o = tenure(&data, &["ingest", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with(&format!("tenure: {}: ", missing.display())), "{}", stderr(&o));
}

/// Lines near the longest an event may be end a part by its bytes (`PART_BYTES`) long
/// before its count: the check still covers the whole file, the duplicate in a later
/// part is known as one, and a bad last line still stores nothing.
#[test]
fn a_file_of_long_lines_is_checked_whole_across_parts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let long = "x".repeat(60_000);
    let line = |k: usize, who: &str| {
        format!(
            r#"{{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","source":"hr","source_event_id":"{k}","data":{{"identity":"{who}","kind":"human","attributes":{{"note":"{long}"}}}}}}"#
        ) + "\n"
    };
    // 700 lines of about 60 KB: two parts by their bytes.
    let mut text: String = (0..699).map(|k| line(k, &format!("p{k}"))).collect();
    text.push_str(&line(0, "p0"));
    let bad =
        text.clone() + r#"{"type":"identity.left","effective_at":"2024-02-01T00:00:00Z","data":{"identity":"nobody"}}"#;
    let f = write(dir.path(), "bad.jsonl", &bad);
    let o = tenure(&data, &["ingest", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with(&format!("tenure: {}:701: field data.identity: unknown identity", f.display())),
        "{}",
        stderr(&o)
    );
    assert!(
        !data.join("events.log").exists() || tenure(&data, &["log"]).stdout.is_empty(),
        "nothing of the file is stored"
    );
    let f = write(dir.path(), "good.jsonl", &text);
    let o = tenure(&data, &["ingest", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{}: 699 appended (positions 1..699), 1 duplicate skipped\n", f.display()));
}

#[test]
fn skip_invalid_stores_the_good_lines_and_writes_the_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let text = GOOD.to_string()
        + "not json\n"
        + r#"{"type":"identity.left","effective_at":"2024-02-01T00:00:00Z","source":"hr","source_event_id":"3","data":{"identity":"zed"}}"#
        + "\n"
        + r#"{"type":"identity.left","effective_at":"2024-02-01T00:00:00Z","source":"hr","source_event_id":"4","data":{"identity":"ann"}}"#
        + "\n";
    let f = write(dir.path(), "mixed.jsonl", &text);
    let rejects = dir.path().join("rejects.jsonl");
    let o = tenure(&data, &["ingest", f.to_str().unwrap(), "--skip-invalid", rejects.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("3 appended (positions 1..3), 0 duplicates skipped, 2 rejected"), "{}", stdout(&o));
    let lines: Vec<Value> =
        std::fs::read_to_string(&rejects).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line"], 3);
    assert!(lines[0]["error"].as_str().unwrap().starts_with("field -: not a JSON event object"));
    assert_eq!(lines[1]["line"], 4);
    assert_eq!(lines[1]["error"], "field data.identity: unknown identity 'zed': no earlier event joined it");
    assert_eq!(lines[1]["event"]["data"]["identity"], "zed");
}

#[test]
fn queries_answer_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let f = scenarios().join("01-group-and-expiry.jsonl");
    assert!(tenure(dir.path(), &["ingest", f.to_str().unwrap()]).status.success());

    let o = tenure(dir.path(), &["access", "alice", "--at", "2024-02-15"]);
    let text = stdout(&o);
    assert!(text.contains("payroll-db  read        group fin (member @4, grant @3)"), "{text}");
    assert!(text.contains("vault       admin       direct grant @5"), "{text}");

    let o = tenure(dir.path(), &["access", "alice", "--at", "2024-02-15", "--csv"]);
    assert_eq!(stdout(&o), "RESOURCE,PERMISSION,WHY\npayroll-db,read,group:fin:4:3\nvault,admin,direct:5\n");

    let o = tenure(dir.path(), &["who", "payroll-db#read", "--during", "2024-01-01..2024-07-01", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["during"]["from"], "2024-01-01T00:00:00Z");
    assert_eq!(v["holders"][0]["identity"], "alice");

    let o = tenure(dir.path(), &["timeline", "alice", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"][0]["what"], "active");
    assert_eq!(v["status"][1]["what"], "left");
    let vault = v["access"].as_array().unwrap().iter().find(|s| s["what"] == "vault#admin").unwrap();
    assert_eq!(vault["to"], "2024-03-01T00:00:00Z");

    let o = tenure(dir.path(), &["show", "alice", "--at", "2024-03-01", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["state"], "active");
    assert_eq!(v["attributes"]["department"], "finance");

    let o = tenure(dir.path(), &["diff", "--from", "2024-02-15", "--to", "2024-07-01", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["lost"].as_array().unwrap().len(), 2);
    assert!(v["gained"].as_array().unwrap().is_empty());

    let o = tenure(dir.path(), &["log", "--group", "fin"]);
    let positions: Vec<u64> =
        stdout(&o).lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["position"].as_u64().unwrap()).collect();
    assert_eq!(positions, vec![2, 3, 4]);
    let o = tenure(dir.path(), &["log", "--from", "5", "--limit", "1"]);
    assert_eq!(stdout(&o).lines().count(), 1);

    let o = tenure(dir.path(), &["anomalies", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["anomalies"].as_array().unwrap().is_empty());
}

#[test]
fn query_errors_are_one_sentence_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = tenure(dir.path(), &["access", "alice", "--at", "2024-01-01"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no Tenure store here"), "{}", stderr(&o));
    let f = write(dir.path(), "good.jsonl", GOOD);
    tenure(dir.path(), &["ingest", f.to_str().unwrap()]);
    let o = tenure(dir.path(), &["access", "nobody", "--at", "2024-01-01"]);
    assert_eq!(
        (o.status.code(), stderr(&o)),
        (Some(2), "tenure: unknown identity 'nobody': no event names it\n".into())
    );
    let o = tenure(dir.path(), &["who", "#read", "--at", "2024-01-01"]);
    assert_eq!(o.status.code(), Some(2));
    let o = tenure(dir.path(), &["who", "db", "--during", "2024-02-01..2024-01-01"]);
    assert_eq!(o.status.code(), Some(2));
    let o = tenure(dir.path(), &["access", "ann", "--at", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'soon' is not an RFC 3339 time or a YYYY-MM-DD date"));
    let o = tenure(dir.path(), &["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn verify_exits_3_naming_the_first_altered_position() {
    let dir = tempfile::tempdir().unwrap();
    let f = scenarios().join("03-renewal-group-deletion-service.jsonl");
    assert!(tenure(dir.path(), &["ingest", f.to_str().unwrap()]).status.success());
    let o = tenure(dir.path(), &["verify"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("intact: 13 events, head hash "), "{}", stdout(&o));
    // Alter one byte in the payload of position 9 (find it through the log offsets: scan
    // records by their length fields).
    let path = dir.path().join("events.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut off = 16usize;
    for _ in 1..9 {
        let len = (u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) & !(1 << 31)) as usize;
        off += 8 + len + 32;
    }
    bytes[off + 12] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let o = tenure(dir.path(), &["verify"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).starts_with("tenure: position 9: chain hash mismatch (positions 1..8 are intact"),
        "{}",
        stderr(&o)
    );
    let o = tenure(dir.path(), &["access", "dan", "--at", "2024-01-01"]);
    assert_eq!(o.status.code(), Some(3), "a query refuses a corrupt store: {}", stderr(&o));
}

#[test]
fn demo_runs_and_runs_again_without_storing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let o = tenure(dir.path(), &["demo", "--identities", "300"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("2514 stored, 29 skipped: the directory feed re-delivers some events on purpose"), "{text}");
    assert!(text.contains("1. Who could read payroll-db on 2022-03-14?"), "{text}");
    assert!(text.contains("bob still held:\n     payroll-db#write"), "{text}");
    assert!(text.contains("ci-bot       bob"), "{text}");
    let o = tenure(dir.path(), &["demo", "--identities", "300"]);
    assert!(
        stdout(&o).contains("; 0 stored, 2543 skipped: all of them were stored by an earlier run"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn generate_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let o = tenure(
        dir.path(),
        &["generate", "--identities", "200", "--years", "1", "--seed", "5", "--out", a.to_str().unwrap()],
    );
    assert!(o.status.success());
    let o = tenure(dir.path(), &["generate", "--identities", "200", "--years", "1", "--seed", "5"]);
    assert_eq!(std::fs::read_to_string(&a).unwrap(), stdout(&o));
    let store = dir.path().join("store");
    let o = tenure(&store, &["ingest", a.to_str().unwrap()]);
    assert!(o.status.success(), "the generated file ingests: {}", stderr(&o));
}

/// An ingest killed at a random moment and run again ends with the same log as one that
/// was never interrupted (ids and record times aside, which are the engine's own).
#[test]
fn an_ingest_killed_and_rerun_gives_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("org.jsonl");
    let o = tenure(dir.path(), &["generate", "--identities", "3000", "--years", "2", "--out", file.to_str().unwrap()]);
    assert!(o.status.success());
    let reference = dir.path().join("reference");
    assert!(tenure(&reference, &["ingest", file.to_str().unwrap()]).status.success());
    let strip = |data: &Path| -> Vec<Value> {
        stdout(&tenure(data, &["log"]))
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                let o = v.as_object_mut().unwrap();
                o.remove("id");
                o.remove("recorded_at");
                v
            })
            .collect()
    };
    let want = strip(&reference);
    let seed: u64 = std::env::var("TENURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64
    });
    println!("kill seed {seed} (replay with TENURE_SEED={seed})");
    for round in 0..4u64 {
        let data = dir.path().join(format!("run{round}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
            .args(["--data", data.to_str().unwrap(), "ingest", file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis((seed + round * 37) % 60 + round * 20));
        child.kill().unwrap();
        child.wait().unwrap();
        let o = tenure(&data, &["ingest", file.to_str().unwrap()]);
        assert!(o.status.success(), "seed {seed} round {round}: {}", stderr(&o));
        assert_eq!(strip(&data), want, "seed {seed} round {round}");
        assert_eq!(tenure(&data, &["verify"]).status.code(), Some(0));
    }
}

/// docs/cli.md carries the binary's own `--help` text for every command: regenerate it
/// (see the top of that file) when a flag changes.
#[test]
fn docs_cli_md_has_the_current_help_text() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md")).unwrap();
    for sub in [
        "",
        "ingest",
        "access",
        "who",
        "timeline",
        "show",
        "diff",
        "log",
        "anomalies",
        "report",
        "report leavers",
        "report nhi",
        "report lag",
        "report access",
        "report sod",
        "report anomalies",
        "reconcile",
        "review",
        "review record",
        "verify",
        "repair",
        "serve",
        "sync",
        "sync status",
        "sync verify-delivery",
        "demo",
        "completions",
        "man",
        "generate",
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenure"));
        cmd.args(sub.split_whitespace());
        let o = cmd.arg("--help").env_remove("TENURE_DATA").output().unwrap();
        let help = stdout(&o);
        assert!(doc.contains(help.trim_end()), "docs/cli.md is missing the current `tenure {sub} --help`");
    }
}

/// A store of `identities` generated over two years (2020 and 2021), in `dir/store`.
fn generated_store(dir: &std::path::Path, identities: u32) -> std::path::PathBuf {
    let file = dir.join("org.jsonl");
    let n = identities.to_string();
    assert!(tenure(dir, &["generate", "--identities", &n, "--years", "2", "--out", file.to_str().unwrap()])
        .status
        .success());
    let data = dir.join("store");
    assert!(tenure(&data, &["ingest", file.to_str().unwrap()]).status.success());
    data
}

/// `tenure log | head -1`: the reader closing the pipe is where output stops, not an error
/// (also for the streamed reports, whose CSV goes through the `csv` crate's writer).
#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data = generated_store(dir.path(), 3000);
    let commands: [&[&str]; 4] = [
        &["log"],
        &["report", "leavers", "--csv"],
        &["report", "leavers"],
        &["report", "access", "--resource", "app-0000", "--csv"],
    ];
    for args in commands {
        // Longer than the pipe's buffer and the output's: the writes after the reader
        // stopped do fail.
        let whole = tenure(&data, args);
        assert!(whole.status.success() && whole.stdout.len() > 300_000, "{args:?}: {} bytes", whole.stdout.len());
        let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
            .arg("--data")
            .arg(&data)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert!(!first.is_empty(), "{args:?}");
        // The reader is dropped here: the pipe closes with most of the output unwritten.
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stderr.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// `diff` and `who` stream their answers a few thousand rows at a time (spilled to disk
/// for `diff`): the table, the CSV and the JSON still say the same, in the same order,
/// across batches.
#[test]
fn streamed_answers_say_the_same_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_store(dir.path(), 3000);
    let queries: [(&[&str], &str); 2] = [
        (&["diff", "--from", "2020-06-01", "--to", "2021-12-01"], "gained"),
        (&["who", "app-0000", "--during", "2020-01-01..2022-01-01"], "holders"),
    ];
    for (args, array) in queries {
        let run = |extra: &str| {
            let mut a = args.to_vec();
            if !extra.is_empty() {
                a.push(extra);
            }
            let o = tenure(&data, &a);
            assert!(o.status.success(), "{a:?}: {}", stderr(&o));
            String::from_utf8(o.stdout).unwrap()
        };
        let json: serde_json::Value = serde_json::from_str(&run("--json")).unwrap();
        let csv = run("--csv");
        let table = run("");
        // The JSON's rows, in order: gains then losses for diff.
        let mut rows: Vec<(String, &serde_json::Value)> =
            json[array].as_array().unwrap().iter().map(|r| ("+".to_string(), r)).collect();
        if array == "gained" {
            rows.extend(json["lost"].as_array().unwrap().iter().map(|r| ("-".to_string(), r)));
        }
        assert!(rows.len() > 4096, "{args:?}: {} rows, fewer than a batch", rows.len());
        let mut lines = csv.lines();
        lines.next();
        let table_rows: Vec<&str> = table.lines().skip(2).collect();
        assert_eq!(table_rows.len(), rows.len(), "{args:?}");
        for (i, ((change, row), line)) in rows.iter().zip(lines).enumerate() {
            let mut want = vec![
                row["identity"].as_str().unwrap(),
                row["resource"].as_str().unwrap(),
                row["permission"].as_str().unwrap(),
            ];
            if array == "gained" {
                want.insert(0, change);
            }
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(&fields[..want.len()], &want[..], "{args:?} row {i}");
            let cells: Vec<&str> = table_rows[i].split_whitespace().collect();
            assert_eq!(&cells[..want.len()], &want[..], "{args:?} table row {i}");
        }
    }
}

/// Every command the demo prints runs as printed (through a shell, from where the demo
/// ran), exits 0 and answers something.
#[test]
fn every_command_the_demo_prints_works_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .current_dir(dir.path())
        .args(["--data", "demo", "demo", "--identities", "300"])
        .env_remove("TENURE_DATA")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let printed: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Ask your own questions"))
        .skip(1)
        .filter(|l| l.starts_with("  "))
        .map(str::trim)
        .collect();
    assert_eq!(printed.len(), 10, "{text}");
    for line in printed {
        let o = Command::new("sh").arg("-c").arg(line).current_dir(dir.path()).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "`{line}`: {}", stderr(&o));
        assert!(!o.stdout.is_empty(), "`{line}` printed nothing");
    }
}

/// An access run names the event that ended it: the leave that ended a membership's
/// access, and no event for a grant that expired.
#[test]
fn timeline_access_names_the_event_that_ended_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenarios().join("01-group-and-expiry.jsonl");
    assert!(tenure(dir.path(), &["ingest", file.to_str().unwrap()]).status.success());
    let o = tenure(dir.path(), &["timeline", "alice", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let access = t["access"].as_array().unwrap();
    let span = |what: &str| access.iter().find(|a| a["what"] == what).unwrap_or_else(|| panic!("{what}: {t}"));
    // Position 6 is alice's identity.left; position 5's grant expired on its own.
    assert_eq!(span("payroll-db#read")["closed_by"], 6, "{t}");
    assert_eq!(span("vault#admin")["closed_by"], Value::Null, "{t}");
    assert_eq!(span("vault#admin")["to"], "2024-03-01T00:00:00Z");
}

/// `--json` on the commands whose output is a summary or a stream: `ingest` prints one
/// JSON line per file, `log --json` is the same JSON lines as `log`.
#[test]
fn ingest_and_log_take_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenarios().join("01-group-and-expiry.jsonl");
    let o = tenure(dir.path(), &["ingest", "--json", file.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (&lines[0]["appended"], &lines[0]["first"], &lines[0]["last"], &lines[0]["duplicates"]),
        (&Value::from(6), &Value::from(1), &Value::from(6), &Value::from(0))
    );
    assert_eq!(
        (&lines[1]["appended"], &lines[1]["first"], &lines[1]["duplicates"]),
        (&Value::from(0), &Value::Null, &Value::from(6))
    );
    assert_eq!(lines[1]["file"], file.to_str().unwrap());
    let plain = tenure(dir.path(), &["log"]);
    let json = tenure(dir.path(), &["log", "--json"]);
    assert!(json.status.success());
    assert_eq!(plain.stdout, json.stdout);
    assert_eq!(stdout(&json).lines().count(), 6);
}

/// An auditor names a person by the userName the directory gave them, also a past one, in
/// any case: the queries answer for the identity it belongs to and say so.
#[test]
fn queries_accept_a_user_name_also_a_past_one() {
    let dir = tempfile::tempdir().unwrap();
    let events = [
        r#"{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","source":"scim","source_event_id":"1","data":{"identity":"alice.ng@example.com","kind":"human","attributes":{"userName":"Alice.Ng@example.com"}}}"#,
        r#"{"type":"access.granted","effective_at":"2024-01-02T00:00:00Z","source":"scim","source_event_id":"2","data":{"identity":"alice.ng@example.com","entitlement":{"resource":"vault","permission":"read"}}}"#,
        r#"{"type":"identity.moved","effective_at":"2024-06-01T00:00:00Z","source":"scim","source_event_id":"3","data":{"identity":"alice.ng@example.com","attributes":{"userName":"alice.smith@example.com"}}}"#,
        r#"{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","source":"hr","source_event_id":"4","data":{"identity":"bob","kind":"human","attributes":{"userName":"shared@example.com"}}}"#,
        r#"{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","source":"hr","source_event_id":"5","data":{"identity":"carol","kind":"human","attributes":{"userName":"Shared@example.com"}}}"#,
    ];
    let file = write(dir.path(), "e.jsonl", &(events.join("\n") + "\n"));
    let data = dir.path().join("store");
    assert!(tenure(&data, &["ingest", file.to_str().unwrap()]).status.success());
    for name in ["ALICE.SMITH@example.com", "alice.ng@EXAMPLE.com"] {
        let o = tenure(&data, &["access", name, "--at", "2024-07-01", "--json"]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["identity"], "alice.ng@example.com", "{name}");
        assert_eq!(v["entitlements"][0]["resource"], "vault");
        assert!(stderr(&o).contains("is a userName of identity 'alice.ng@example.com'"), "{}", stderr(&o));
    }
    let o = tenure(&data, &["timeline", "alice.smith@example.com"]);
    assert!(o.status.success() && stdout(&o).contains("timeline of alice.ng@example.com"), "{}", stdout(&o));
    let o = tenure(&data, &["log", "--identity", "alice.smith@example.com"]);
    assert_eq!(stdout(&o).lines().count(), 3, "{}", stderr(&o));
    // The identity's own name needs no resolving, and says nothing about it.
    let o = tenure(&data, &["access", "alice.ng@example.com", "--at", "2024-07-01"]);
    assert!(o.status.success() && stderr(&o).is_empty(), "{}", stderr(&o));
    // A userName two identities had is ambiguous; a name nobody had is unknown.
    let o = tenure(&data, &["access", "shared@example.com", "--at", "2024-07-01"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("several identities ('bob', 'carol')"), "{}", stderr(&o));
    let o = tenure(&data, &["access", "nobody@example.com", "--at", "2024-07-01"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown identity 'nobody@example.com'"), "{}", stderr(&o));
}

/// An ingest that leaves the access index file 50,000 events or more behind the log
/// brings it up to date before it returns, so the next query maps it and writes nothing;
/// a small ingest after it leaves the file as it is (the next query reads the short tail).
#[test]
fn a_large_ingest_leaves_the_index_file_current() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("org.jsonl");
    let path = file.to_str().unwrap();
    assert!(tenure(dir.path(), &["generate", "--identities", "7000", "--years", "3", "--out", path]).status.success());
    let data = dir.path().join("store");
    let o = tenure(&data, &["ingest", path]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("access index brought up to date at position"), "{}", stderr(&o));
    let index_file = data.join(tenure_projections::ACCESS_INDEX_FILE);
    let head = tenure_engine::Store::open_read_only(&data).unwrap().head();
    assert!(head.get() >= tenure_projections::REWRITE_AFTER, "{head}");
    assert_eq!(tenure_projections::AccessIndex::open_file(&index_file).unwrap().head(), head);
    let written = std::fs::metadata(&index_file).unwrap().modified().unwrap();
    let o = tenure(&data, &["who", "app-0000", "--at", "2021-06-01"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&index_file).unwrap().modified().unwrap(), written, "the query wrote the index");
    let one = dir.path().join("one.jsonl");
    std::fs::write(&one, GOOD).unwrap();
    let o = tenure(&data, &["ingest", one.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("access index"), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&index_file).unwrap().modified().unwrap(), written);
}
