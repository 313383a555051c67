//! The log scanner and recovery over arbitrary bytes after a valid header (and an
//! arbitrary head marker and offsets file, taken from the input's first bytes): a
//! reader's open, reads, `verify` and `repair`'s plan never panic, never write, and agree:
//! what a reader reads back whole, `verify` finds whole too, but for a forged record (a
//! CRC made to match, which the fuzzer's comparison tracing finds), which only the chain
//! catches.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use tenure_engine::{repair, verify, Position, Store};

fn dir() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let d = base.join(format!("tenure-fuzz-recovery-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    d
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    // [marker length u8][marker bytes][idx length u8 * 8][idx bytes][log body]
    let (mlen, rest) = match data.split_first() {
        Some((m, r)) => ((*m as usize).min(r.len()), r),
        None => (0, data),
    };
    let (marker, rest) = rest.split_at(mlen);
    let (ilen, rest) = match rest.split_first() {
        Some((i, r)) => (((*i as usize) * 8).min(r.len()), r),
        None => (0, rest),
    };
    let (idx, body) = rest.split_at(ilen);
    let mut log = tenure_engine::format::header().to_vec();
    log.extend_from_slice(body);
    std::fs::write(d.join("events.log"), &log).unwrap();
    let write_or_remove = |name: &str, bytes: &[u8]| {
        if bytes.is_empty() {
            let _ = std::fs::remove_file(d.join(name));
        } else {
            std::fs::write(d.join(name), bytes).unwrap();
        }
    };
    write_or_remove("events.head", marker);
    write_or_remove("events.idx", idx);
    let report = verify(&d).expect("verify reads any bytes");
    if let Ok(store) = Store::open_read_only(&d) {
        let head = store.head().get();
        if let Ok(events) = store.read_range(Position(1), Position(head)) {
            assert_eq!(events.len() as u64, head);
            // Reads check each record's CRC; only `verify` recomputes the chain, so a record
            // whose CRC was forged to match reads back and is caught by `verify` alone.
            if let Some((p, reason)) = &report.first_bad {
                assert!(*p > head || reason == "chain hash mismatch", "{report:?}");
            }
        }
    }
    let _ = repair(&d, false);
    assert_eq!(std::fs::read(d.join("events.log")).unwrap(), log, "a reader wrote the log");
});
