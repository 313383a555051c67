//! The SCIM compliance checker `scim2-tester` (PyPI, through `scim2-cli`'s `test`
//! command) against a live `tenure serve`: every check it runs passes. The checker is
//! installed by this test on its first run into `target/scim-venv` (pinned versions), so
//! that `cargo test --workspace` needs nothing but Python 3 and the package registry.
//! Its full output is written to `target/scim-compliance.txt` (docs/scim.md quotes it).

mod common;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHECKER: &[&str] = &[
    "scim2-cli==0.6.0",
    "scim2-tester==0.5.2",
    "scim2-client==0.13.2",
    "scim2-models==0.12.3",
    "openapi-spec-validator==0.7.1",
];
const TOKEN: &str = "compliance-token-0123456789";

fn target_dir() -> PathBuf {
    // CARGO_MANIFEST_DIR is cli/; the workspace's target/ is beside it.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The `scim2` command, installed into a virtual environment on first use (by one test
/// at a time: the tests of this file run at once, and two pips in one environment fail).
fn checker() -> PathBuf {
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let venv = target_dir().join("scim-venv");
    let scim2 = venv.join("bin/scim2");
    // Every checker of the list (one added since the environment was made is installed).
    if scim2.exists() && venv.join("bin/openapi-spec-validator").exists() {
        return scim2;
    }
    let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().is_ok_and(|s| s.success());
    assert!(ok, "python3 -m venv {} failed: the compliance check needs Python 3 with venv", venv.display());
    let ok = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(CHECKER)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "installing {CHECKER:?} from PyPI failed");
    scim2
}

/// `tenure serve` on a free loopback port over `data`, and the line it prints first
/// (`listening on ADDR, SCIM base URL`).
fn serve(data: &Path) -> (std::process::Child, String) {
    common::serve(data, &[], &[("TENURE_SCIM_TOKEN", TOKEN)])
}

#[test]
fn scim2_tester_passes_every_check() {
    let scim2 = checker();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let (mut server, first) = serve(&data);
    let url = first
        .split("SCIM base ")
        .nth(1)
        .map(str::trim)
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    let out = Command::new(&scim2)
        .args(["--url", &url, "test", "-v"])
        // The token by the environment, as scim2-cli advises (not on the command line).
        .env("SCIM_CLI_HEADERS", format!("Authorization: Bearer {TOKEN}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    std::fs::write(target_dir().join("scim-compliance.txt"), &text).unwrap();
    // SIGTERM: a graceful stop, after which the log the checker wrote must verify.
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let stopped = server.wait().unwrap();
    let statuses: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_uppercase()) && w.len() > 3)
        .collect();
    let passed = statuses.iter().filter(|s| **s == "SUCCESS").count();
    let other: Vec<&str> =
        text.lines().filter(|l| ["ERROR", "SKIPPED", "WARNING", "CRITICAL"].iter().any(|s| l.starts_with(s))).collect();
    assert!(out.status.success(), "scim2 test failed ({passed} passed):\n{}", other.join("\n"));
    assert!(other.is_empty(), "checks not passed:\n{}", other.join("\n"));
    assert!(passed >= 100, "only {passed} checks ran:\n{text}");
    assert!(stopped.success(), "the server did not stop cleanly on SIGTERM: {stopped:?}");
    let verify = Command::new(env!("CARGO_BIN_EXE_tenure")).arg("--data").arg(&data).arg("verify").output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
}

/// SIGTERM in the middle of a load: every write answered 2xx is in the log, the log
/// verifies, and the server exits cleanly; requests after the stop are refused, never
/// half-applied.
#[test]
fn a_stop_under_load_loses_no_acknowledged_write() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let (mut server, first) = serve(&data);
    let addr = first.split_whitespace().nth(2).unwrap().trim_end_matches(',').to_string();
    // One create per request, on fresh connections, from 8 threads, until the server stops.
    let post = |name: &str| -> Option<u16> {
        let mut c = std::net::TcpStream::connect(&addr).ok()?;
        let body = format!(r#"{{"userName":"{name}"}}"#);
        let req = format!(
            "POST /scim/v2/Users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        c.write_all(req.as_bytes()).ok()?;
        let mut answer = String::new();
        c.read_to_string(&mut answer).ok()?;
        answer.split_whitespace().nth(1)?.parse().ok()
    };
    let acknowledged = std::sync::atomic::AtomicU64::new(0);
    let refused = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (post, acknowledged, refused) = (&post, &acknowledged, &refused);
            scope.spawn(move || {
                for i in 0.. {
                    match post(&format!("u{t}-{i}")) {
                        Some(201) => acknowledged.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
                        Some(other) => panic!("a create answered {other}"),
                        None => {
                            // Stopped: from now on nothing is answered.
                            refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            break;
                        }
                    };
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let _ = Command::new("kill").arg(server.id().to_string()).status();
    });
    assert!(server.wait().unwrap().success(), "the server did not stop cleanly");
    let acked = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
    assert!(acked > 50, "only {acked} creates were answered before the stop");
    let store = tenure_engine::Store::open_read_only(&data).unwrap();
    let joined = store.read_range(tenure_engine::Position(1), store.head()).unwrap().len() as u64;
    // Every answered create is there; a create the stop cut off before its answer may be
    // there too (durable, unanswered: its retry is a 409 the client can read).
    assert!(joined >= acked, "{acked} creates answered, {joined} in the log");
    assert!(joined <= acked + 8, "{acked} creates answered, {joined} in the log");
    let verify = Command::new(env!("CARGO_BIN_EXE_tenure")).arg("--data").arg(&data).arg("verify").output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
}

/// The server's `/openapi.json` is a valid OpenAPI document, as `openapi-spec-validator`
/// (PyPI, installed beside the SCIM checker) judges it.
#[test]
fn the_openapi_document_validates() {
    let scim2 = checker();
    let validator = scim2.with_file_name("openapi-spec-validator");
    let dir = tempfile::tempdir().unwrap();
    let (mut server, first) = serve(&dir.path().join("store"));
    let root = common::root_of(&first);
    let doc = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())",
        ])
        .arg(format!("{root}/openapi.json"))
        .output()
        .unwrap();
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    server.wait().unwrap();
    assert!(doc.status.success(), "{}", String::from_utf8_lossy(&doc.stderr));
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &doc.stdout).unwrap();
    let out = Command::new(&validator).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("OK"), "{text}");
}
