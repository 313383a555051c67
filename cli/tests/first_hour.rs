//! The first hour of a new user: every command of the README's "Using it" runs as written
//! against the demo store; `log` output re-ingests into another store; the small errors
//! people meet first say what is wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tenure")
}

fn run(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.current_dir(cwd).args(args).env_remove("TENURE_DATA");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn readme() -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap()
}

/// The README's "Using it" commands, verbatim, in a directory where `tenure demo` ran.
#[test]
fn the_readme_commands_run_as_written_against_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &[], &["demo"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let readme = readme();
    let block = readme.split("## Using it").nth(1).unwrap().split("```sh").nth(1).unwrap().split("```").next().unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut ran = 0;
    for line in block.lines() {
        let command = line.split(" # ").next().unwrap().trim();
        if command.is_empty() || command.starts_with("cargo install") {
            continue;
        }
        if let Some(assign) = command.strip_prefix("export ") {
            let (k, v) = assign.split_once('=').unwrap();
            env.push((k.to_string(), v.to_string()));
            continue;
        }
        let args: Vec<&str> =
            command.strip_prefix("tenure ").unwrap_or_else(|| panic!("{command}")).split_whitespace().collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let o = run(dir.path(), &env, &args);
        assert_eq!(o.status.code(), Some(0), "`{command}`: {}", text(&o.stderr));
        assert!(!o.stdout.is_empty() || !o.stderr.is_empty(), "`{command}` said nothing");
        ran += 1;
    }
    assert!(ran >= 12, "only {ran} commands found in the README");
}

#[test]
fn log_output_reingests_into_another_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("org.jsonl");
    assert!(run(dir.path(), &[], &["generate", "--identities", "200", "--years", "2", "--out", "org.jsonl"])
        .status
        .success());
    assert!(run(dir.path(), &[], &["--data", "a", "ingest", file.to_str().unwrap()]).status.success());
    let log = run(dir.path(), &[], &["--data", "a", "log"]);
    std::fs::write(dir.path().join("a.jsonl"), &log.stdout).unwrap();
    let o = run(dir.path(), &[], &["--data", "b", "ingest", "a.jsonl"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let strip = |out: &[u8]| -> Vec<serde_json::Value> {
        text(out)
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("recorded_at");
                v
            })
            .collect()
    };
    let again = run(dir.path(), &[], &["--data", "b", "log"]);
    let (a, b) = (strip(&log.stdout), strip(&again.stdout));
    assert!(a.len() > 100);
    assert_eq!(a, b, "positions, ids, times, sources and data survive the round trip");
}

#[test]
fn the_first_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notadir"), "x").unwrap();
    let o = run(dir.path(), &[], &["--data", "notadir", "access", "a", "--at", "2024-01-01"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        "tenure: notadir: a file, not a store directory (--data names the directory of a store)\n"
    );
    let o = run(dir.path(), &[], &["--data", "notadir", "ingest", "/dev/null"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(run(dir.path(), &[], &["--data", "s", "demo", "--identities", "200"]).status.success());
    let o = run(dir.path(), &[], &["--data", "s", "log", "--identity", "nobody"]);
    assert_eq!(
        (o.status.code(), text(&o.stderr)),
        (Some(2), "tenure: unknown identity 'nobody': no event names it\n".into())
    );
    let o = run(dir.path(), &[], &["--data", "s", "log", "--limit", "0"]);
    assert_eq!((o.status.code(), o.stdout.len()), (Some(0), 0));
    let o = run(dir.path(), &[], &["--data", "s", "access", "bob", "--at", "2022-04-15", "--as-of", "99999999"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).starts_with("tenure: --as-of 99999999: the log has "), "{}", text(&o.stderr));
    let o = run(dir.path(), &[], &["--version"]);
    assert!(text(&o.stdout).starts_with("tenure "), "{}", text(&o.stdout));
}

#[test]
fn completions_and_the_man_page_are_generated_from_the_help() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let o = run(dir.path(), &[], &["completions", shell]);
        assert!(o.status.success() && text(&o.stdout).contains("ingest"), "{shell}");
    }
    let o = run(dir.path(), &[], &["man"]);
    let page = text(&o.stdout);
    assert!(o.status.success() && page.contains(".TH tenure 1") && page.contains("verify"), "{page}");
}

/// Relative dates ("(5 years ago)") and hashes change with the day and the run.
fn normalize(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find(" (") {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        match after.find(')') {
            Some(close)
                if after[..close].contains(" ago")
                    || after[..close].contains("(in ")
                    || after[..close].contains("(today") =>
            {
                out.push_str(" (~)");
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(" (");
                rest = &after[2..];
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace()
        .map(|w| if w.len() >= 64 && w.chars().all(|c| c.is_ascii_hexdigit()) { "HASH" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The worked session of docs/cli.md: each `$ tenure ...` command runs against the demo
/// store and prints what the page shows (relative dates and hashes aside).
#[test]
fn the_worked_session_in_docs_cli_md_is_what_tenure_prints() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &[], &["demo"]).status.success());
    let doc = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md")).unwrap();
    let session = doc.split("## A worked audit session").nth(1).unwrap().split("```text").nth(1).unwrap();
    let session = session.split("\n```").next().unwrap();
    let mut checked = 0;
    for chunk in session.split("$ tenure ").skip(1) {
        let (command, shown) = chunk.split_once('\n').unwrap();
        let args: Vec<&str> = command.split_whitespace().collect();
        let o = run(dir.path(), &[], &args);
        assert!(o.status.code().is_some_and(|c| c == 0), "`tenure {command}`: {}", text(&o.stderr));
        assert_eq!(normalize(&text(&o.stdout)), normalize(shown), "`tenure {command}` prints otherwise");
        checked += 1;
    }
    assert!(checked >= 8, "{checked} commands");
}

/// The exit codes of docs/cli.md, command by command, on their error paths.
#[test]
fn every_command_exits_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &[], &["--data", "s", "demo", "--identities", "200"]).status.success());
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    let cases: Vec<(&[&str], i32)> = vec![
        // 0: success
        (&["--data", "s", "access", "alice", "--at", "2021-03-15"], 0),
        (&["--data", "s", "verify"], 0),
        (&["--data", "s", "repair"], 0),
        // 2: usage or input
        (&["--data", "s", "access", "nobody", "--at", "2021-03-15"], 2),
        (&["--data", "s", "access", "alice", "--at", "15/03/2021"], 2),
        (&["--data", "s", "who", "payroll-db", "--during", "2022-01-01..2021-01-01"], 2),
        (&["--data", "s", "who", "#read", "--at", "2021-03-15"], 2),
        (&["--data", "s", "timeline", "nobody"], 2),
        (&["--data", "s", "show", "nobody", "--at", "2021-03-15"], 2),
        (&["--data", "s", "diff", "--from", "2021-01-01", "--to", "soon"], 2),
        (&["--data", "s", "log", "--group", "nope"], 2),
        (&["--data", "s", "anomalies", "--as-of", "999999"], 2),
        (&["--data", "s", "ingest", "missing.jsonl"], 2),
        (&["--data", "empty", "access", "alice", "--at", "2021-03-15"], 2),
        (&["--data", "empty", "verify"], 2),
        (&["--data", "empty", "repair"], 2),
        (&["--data", "s", "frobnicate"], 2),
        (&["--data", "s", "generate", "--identities", "5"], 2),
        (&["man", "--data", "s"], 2),
        (&["generate", "--identities", "5"], 0),
    ];
    for (args, code) in cases {
        let o = run(dir.path(), &[], args);
        assert_eq!(o.status.code(), Some(code), "tenure {}: {}", args.join(" "), text(&o.stderr));
        if code != 0 {
            assert!(
                text(&o.stderr).starts_with("tenure: ") || text(&o.stderr).starts_with("error: "),
                "{}",
                text(&o.stderr)
            );
        }
    }
    // 1: an I/O or storage failure: here the store held by another writer. Queries still
    // answer beside it; a second writer is refused, and so is `repair --apply`.
    {
        let _writer = tenure_engine::Store::open(dir.path().join("s")).unwrap();
        for (args, code) in [
            (&["--data", "s", "ingest", "/dev/null"][..], 1),
            (&["--data", "s", "repair", "--apply"], 1),
            (&["--data", "s", "access", "alice", "--at", "2021-03-15"], 0),
        ] {
            let o = run(dir.path(), &[], args);
            assert_eq!(o.status.code(), Some(code), "tenure {}: {}", args.join(" "), text(&o.stderr));
            if code == 1 {
                assert!(text(&o.stderr).contains("in use by another process"), "{}", text(&o.stderr));
            }
        }
    }
    // 3: damaged evidence, for every command that reads the log.
    let log = dir.path().join("s/events.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 1;
    std::fs::write(&log, bytes).unwrap();
    std::fs::remove_file(dir.path().join("s/events.idx")).unwrap();
    for args in [
        &["--data", "s", "verify"][..],
        &["--data", "s", "access", "alice", "--at", "2021-03-15"],
        &["--data", "s", "log"],
        &["--data", "s", "anomalies"],
        &["--data", "s", "repair"],
        &["--data", "s", "ingest", "/dev/null"],
    ] {
        let o = run(dir.path(), &[], args);
        assert_eq!(o.status.code(), Some(3), "tenure {}: {}", args.join(" "), text(&o.stderr));
    }
}

/// The README's "Serving SCIM" commands, verbatim, through a shell (the token comes from
/// `openssl rand`): the server starts, answers, and stops cleanly on SIGTERM.
#[test]
fn the_readme_serve_commands_run_as_written() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let readme = readme();
    let block =
        readme.split("## Serving SCIM").nth(1).unwrap().split("```sh").nth(1).unwrap().split("```").next().unwrap();
    let script: String = block
        .lines()
        .map(|l| l.split(" # ").next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(script.contains("tenure --data my-store serve"), "{script}");
    let bin_dir = Path::new(bin()).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    // `exec` so that the signal reaches the server itself.
    let script = script.replace("\ntenure ", "\nexec tenure ");
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("TENURE_DATA")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on 127.0.0.1:8080, SCIM base http://127.0.0.1:8080/scim/v2"), "{line}");
    // Unauthenticated: 401, as a client without the token gets.
    let o = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:8080/scim/v2/Users"])
        .output();
    if let Ok(o) = o {
        assert_eq!(text(&o.stdout), "401");
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    assert!(child.wait().unwrap().success());
    assert!(dir.path().join("my-store/events.log").exists());
}
