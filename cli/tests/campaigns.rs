//! Damage and concurrency campaigns through the real binary: bytes flipped in every
//! derived file never change an answer; a query killed while it rewrites the index leaves
//! a store that answers the same; one writer and many reader processes at once.
//!
//! Randomized: each test prints its seed; `TENURE_SEED=N` replays it.

mod common;
use common::tenure;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn seed() -> u64 {
    let seed = std::env::var("TENURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    println!("seed {seed} (replay with TENURE_SEED={seed})");
    seed
}

fn rng(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// A generated organisation's store, with its access index file written.
fn org_store(dir: &Path) -> (PathBuf, PathBuf) {
    let file = dir.join("org.jsonl");
    let o = tenure(dir, &["generate", "--identities", "300", "--years", "2", "--out", file.to_str().unwrap()]);
    assert!(o.status.success());
    let data = dir.join("store");
    assert!(tenure(&data, &["ingest", file.to_str().unwrap()]).status.success());
    // A damaged index file is rebuilt and written: the way to get one for a small store.
    std::fs::write(data.join("access.index"), b"not yet").unwrap();
    assert!(tenure(&data, &["anomalies"]).status.success());
    assert!(Command::new("true").status().is_ok());
    (data, file)
}

/// The queries whose answers must not move, with an identity and an entitlement that
/// exist in the store.
fn queries(data: &Path) -> Vec<Vec<String>> {
    let log = String::from_utf8(tenure(data, &["log", "--limit", "400"]).stdout).unwrap();
    let mut ids = Vec::new();
    let mut ent = None;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "identity.joined" && ids.len() < 3 {
            ids.push(v["data"]["identity"].as_str().unwrap().to_string());
        }
        if v["type"] == "access.granted" && ent.is_none() {
            let e = &v["data"]["entitlement"];
            ent = Some(format!("{}#{}", e["resource"].as_str().unwrap(), e["permission"].as_str().unwrap()));
        }
    }
    let ent = ent.expect("a grant");
    let resource = ent.split('#').next().unwrap().to_string();
    let mut q: Vec<Vec<String>> = Vec::new();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    for id in &ids {
        q.push(s(&["access", id, "--at", "2025-06-01", "--json"]));
        q.push(s(&["show", id, "--at", "2025-06-01", "--json"]));
        q.push(s(&["timeline", id, "--json"]));
        q.push(s(&["log", "--identity", id]));
    }
    q.push(s(&["who", &ent, "--at", "2025-06-01", "--json"]));
    q.push(s(&["who", &resource, "--during", "2024-01-01..2026-01-01", "--json"]));
    q.push(s(&["who", &ent, "--at", "2025-06-01", "--as-of", "300", "--json"]));
    q.push(s(&["diff", "--from", "2025-01-01", "--to", "2025-07-01", "--json"]));
    q.push(s(&["anomalies", "--json"]));
    q
}

fn answers(data: &Path, queries: &[Vec<String>]) -> Vec<(i32, Vec<u8>)> {
    queries
        .iter()
        .map(|q| {
            let args: Vec<&str> = q.iter().map(String::as_str).collect();
            let o = tenure(data, &args);
            (o.status.code().unwrap_or(-1), o.stdout)
        })
        .collect()
}

#[test]
fn a_flipped_byte_in_any_derived_file_never_changes_an_answer() {
    let seed = seed();
    let mut next = rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let (pristine, _) = org_store(dir.path());
    let queries = queries(&pristine);
    let want = answers(&pristine, &queries);
    assert!(want.iter().all(|(code, _)| *code == 0));
    let mut rebuilt = 0;
    for (file, rounds) in [("access.index", 24u64), ("events.idx", 8)] {
        let len = std::fs::metadata(pristine.join(file)).unwrap().len();
        for round in 0..rounds {
            let data = dir.path().join(format!("damaged-{file}-{round}"));
            copy_dir(&pristine, &data);
            // Half the rounds aim past the index file's 4 KiB header, at its sections.
            let at = match round % 2 {
                0 if len > 4096 => 4096 + next() % (len - 4096),
                _ => next() % len,
            };
            let mut bytes = std::fs::read(data.join(file)).unwrap();
            bytes[at as usize] ^= 1 << (next() % 8);
            std::fs::write(data.join(file), &bytes).unwrap();
            let log_before = std::fs::read(data.join("events.log")).unwrap();
            for (q, (want, got)) in queries.iter().zip(want.iter().zip(answers(&data, &queries))) {
                assert_eq!(
                    (want.0, String::from_utf8_lossy(&want.1)),
                    (got.0, String::from_utf8_lossy(&got.1)),
                    "seed {seed}: {file} byte {at} flipped: `tenure {}` answered otherwise",
                    q.join(" ")
                );
            }
            let o = tenure(&data, &["verify"]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "seed {seed}: {file} byte {at}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let said = String::from_utf8_lossy(&o.stdout).to_string();
            if said.contains("rebuilt") {
                rebuilt += 1;
            }
            if file == "events.idx" {
                assert!(said.contains("events.idx: damaged: the entry of position"), "seed {seed}: byte {at}: {said}");
            }
            assert_eq!(std::fs::read(data.join("events.log")).unwrap(), log_before, "seed {seed}: the log changed");
            std::fs::remove_dir_all(&data).unwrap();
        }
    }
    println!("{rebuilt} damaged index files found by verify after the queries");
}

#[test]
fn a_query_killed_while_it_rewrites_the_index_leaves_the_same_answers() {
    let seed = seed();
    let mut next = rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = org_store(dir.path());
    let queries = queries(&data);
    let want = answers(&data, &queries);
    for round in 0..12 {
        // A damaged index makes the next query rebuild and rewrite it: kill it then.
        std::fs::write(data.join("access.index"), b"damaged").unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
            .arg("--data")
            .arg(&data)
            .args(["anomalies", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(next() % 120));
        child.kill().unwrap();
        child.wait().unwrap();
        let got = answers(&data, &queries);
        assert!(got == want, "seed {seed} round {round}: answers changed after a killed rewrite");
    }
    // The writer's next open removes what the killed processes left behind.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    assert!(tenure(&data, &["ingest", empty.to_str().unwrap()]).status.success());
    let left: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "seed {seed}: temporaries left: {left:?}");
}

#[test]
fn one_writer_and_many_reader_processes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("org.jsonl");
    assert!(tenure(dir.path(), &["generate", "--identities", "300", "--years", "2", "--out", file.to_str().unwrap()])
        .status
        .success());
    // The file in eight parts, ingested one after the other by one writer process each.
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let parts: Vec<PathBuf> = lines
        .chunks(lines.len().div_ceil(8))
        .enumerate()
        .map(|(i, chunk)| {
            let p = dir.path().join(format!("part-{i}.jsonl"));
            std::fs::write(&p, chunk.join("\n") + "\n").unwrap();
            p
        })
        .collect();
    let data = dir.path().join("store");
    assert!(tenure(&data, &["ingest", parts[0].to_str().unwrap()]).status.success());
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            for p in &parts[1..] {
                let o = tenure(&data, &["ingest", p.to_str().unwrap()]);
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut readers = Vec::new();
        for r in 0..3 {
            let (data, done) = (&data, &done);
            readers.push(scope.spawn(move || {
                let mut runs = 0;
                let mut last = 0usize;
                while !done.load(std::sync::atomic::Ordering::SeqCst) || runs < 2 {
                    let o = match r {
                        0 => tenure(data, &["log"]),
                        1 => tenure(data, &["verify"]),
                        _ => tenure(data, &["anomalies", "--json"]),
                    };
                    assert!(o.status.success(), "reader {r}: {}", String::from_utf8_lossy(&o.stderr));
                    if r == 0 {
                        let out = String::from_utf8(o.stdout).unwrap();
                        let positions: Vec<u64> = out
                            .lines()
                            .map(|l| {
                                serde_json::from_str::<serde_json::Value>(l).unwrap()["position"].as_u64().unwrap()
                            })
                            .collect();
                        assert!(positions.iter().enumerate().all(|(i, &p)| p == i as u64 + 1), "not a prefix");
                        assert!(positions.len() >= last, "a reader saw the log shrink");
                        last = positions.len();
                    }
                    runs += 1;
                }
                runs
            }));
        }
        writer.join().unwrap();
        for r in readers {
            assert!(r.join().unwrap() >= 2);
        }
    });
    // As many events as one ingest of the whole file stores (it re-delivers some).
    let reference = dir.path().join("reference");
    assert!(tenure(&reference, &["ingest", file.to_str().unwrap()]).status.success());
    let count = |d: &Path| String::from_utf8(tenure(d, &["log"]).stdout).unwrap().lines().count();
    assert_eq!(count(&data), count(&reference));
}

/// Unmounts on drop, so that a failed assertion leaves no mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Queries on read-only media (an auditor's evidence copy): a read-only bind mount of a
/// store. Needs root and a `mount` that works; says so and checks nothing else where not.
#[test]
fn queries_answer_on_read_only_media() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = org_store(dir.path());
    let queries = queries(&data);
    let want = answers(&data, &queries);
    // No index file on the copy: the queries build the index and cannot write it.
    std::fs::remove_file(data.join("access.index")).unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let bind = Command::new("mount").arg("--bind").arg(&data).arg(&ro).output();
    if !bind.as_ref().is_ok_and(|o| o.status.success()) {
        println!("not checked here: a bind mount needs root ({bind:?})");
        return;
    }
    let _mount = Mount(ro.clone());
    let remount = Command::new("mount").args(["-o", "remount,ro,bind"]).arg(&ro).status().unwrap();
    assert!(remount.success());
    assert!(std::fs::write(ro.join("probe"), b"x").is_err(), "the mount is writable");
    let got = answers(&ro, &queries);
    for (q, (w, g)) in queries.iter().zip(want.iter().zip(&got)) {
        assert_eq!(w, g, "`tenure {}` on read-only media", q.join(" "));
    }
    let o = tenure(&ro, &["verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let o = tenure(&ro, &["ingest", "/dev/null"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Read-only file system"));
}
