//! Durability: a real child process appends and reports each acknowledged position; the
//! parent kills it with SIGKILL at a random moment, reopens the store, and checks that
//! every acknowledged event is there, intact, with the chain valid. Many times over.
//!
//! The child is this same test binary, started with `TENURE_CRASH_CHILD=<dir>`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tenure_engine::event::*;
use tenure_engine::{verify, NewEvent, Position, Store};

fn event(n: u64) -> NewEvent {
    common::numbered_join(n, "crash")
}

/// The child: appends batches of 1 to 8 events forever, printing the last position of
/// each acknowledged batch.
fn child(dir: &str) {
    let store = Store::open(dir).expect("child opens the store");
    let mut n = store.head().get();
    loop {
        let size = 1 + (n % 8);
        let batch: Vec<_> = (n + 1..=n + size).map(event).collect();
        let out = store.append(batch).expect("child append");
        n = out.last().map(|o| o.position().get()).unwrap_or(n);
        println!("{n}");
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    if let Ok(dir) = std::env::var("TENURE_CRASH_CHILD") {
        child(&dir);
        return;
    }
    let seed: u64 = std::env::var("TENURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    println!("crash test seed {seed} (replay with TENURE_SEED={seed})");
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let rounds = 100;
    let mut acked_total = 0u64;
    let mut checked = 0u64;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["--exact", "acknowledged_appends_survive_sigkill", "--nocapture", "--test-threads=1"])
            .env("TENURE_CRASH_CHILD", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Kill at a random moment after the child has started acknowledging.
        let wait = Duration::from_millis(next() % 150);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(n) = line.trim().parse::<u64>() {
                    let _ = tx.send(n);
                }
            }
        });
        let mut acked = rx.recv_timeout(Duration::from_secs(30)).expect("the child acknowledges an append");
        let start = Instant::now();
        while start.elapsed() < wait {
            if let Ok(n) = rx.recv_timeout(Duration::from_millis(5)) {
                acked = acked.max(n);
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        while let Ok(n) = rx.try_recv() {
            acked = acked.max(n);
        }
        // A reader first, before any writer's recovery: it sees every acknowledged
        // event, whatever the killed writer left past them, and changes nothing.
        let log_len = std::fs::metadata(dir.path().join("events.log")).unwrap().len();
        let reader = Store::open_read_only(dir.path()).unwrap();
        assert!(reader.head().get() >= acked, "seed {seed} round {round}: a reader sees {} of {acked}", reader.head());
        let from = checked + 1;
        assert_eq!(
            reader.read_range(Position(from), reader.head()).unwrap().len() as u64,
            reader.head().get() + 1 - from
        );
        drop(reader);
        assert_eq!(std::fs::metadata(dir.path().join("events.log")).unwrap().len(), log_len, "a reader cut the log");
        let store = Store::open(dir.path()).unwrap();
        assert!(
            store.head().get() >= acked,
            "seed {seed} round {round}: acknowledged {acked} but the log holds {}",
            store.head()
        );
        // Each round reads what is new since the last (the chain check below covers all).
        for e in store.read_range(Position(from), store.head()).unwrap() {
            let EventData::IdentityJoined(j) = &e.data else { panic!("seed {seed}: wrong event type") };
            assert_eq!(j.identity.as_str(), format!("user-{}", e.position), "seed {seed}: event content");
        }
        println!("round {round}: killed after {wait:?}, {acked} acknowledged, {} recovered", store.head());
        let report = verify(dir.path()).unwrap();
        assert_eq!(report.first_bad, None, "seed {seed} round {round}");
        assert_eq!(report.intact, store.head().get());
        acked_total = acked_total.max(acked);
        drop(store);
        // One append by a writer that saves its validation state at close: the next
        // child's first append reads `writer.state` and the log after it (killed, the
        // children never save one), and must still find the keys and names before it.
        let options = tenure_engine::StoreOptions { save_state_after: 1, ..Default::default() };
        let store = Store::open_with(dir.path(), options).unwrap();
        let next = store.head().get() + 1;
        store.append(vec![event(next)]).unwrap();
        assert_eq!(store.append(vec![event(next)]).unwrap()[0].position().get(), next, "seed {seed}: a duplicate");
        drop(store);
        checked = next;
    }
    assert!(acked_total > 0, "seed {seed}: the child never acknowledged anything");
}
