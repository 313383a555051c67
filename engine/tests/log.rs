//! The log's contract: dense positions, idempotency, validation, atomic batches,
//! optimistic concurrency, reopen, subject reads, subscriptions, integrity.

use futures_util::StreamExt;
use std::ops::ControlFlow;
use tenure_engine::event::*;
use tenure_engine::{verify, Error, NewEvent, Outcome, Position, Store, Subject, Timestamp};

fn t(s: &str) -> Timestamp {
    Timestamp::parse_lenient(s).unwrap()
}

fn joined(id: &str, key: &str) -> NewEvent {
    NewEvent::new(
        t("2024-01-01"),
        EventData::IdentityJoined(Joined {
            identity: id.into(),
            kind: IdentityKind::Human,
            attributes: Default::default(),
            owner: None,
        }),
    )
    .with_source("hr", key)
}

fn left(id: &str, key: &str) -> NewEvent {
    NewEvent::new(t("2024-06-01"), EventData::IdentityLeft(StatusChange { identity: id.into(), reason: None }))
        .with_source("hr", key)
}

fn retract(position: u64) -> NewEvent {
    NewEvent::new(
        t("2024-07-01"),
        EventData::EventRetracted(Retracted { position: Position(position), reason: "error".into() }),
    )
}

#[test]
fn positions_are_dense_and_duplicates_return_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let out = store.append(vec![joined("alice", "1"), joined("bob", "2"), joined("alice", "1")]).unwrap();
    assert_eq!(out, vec![Outcome::Stored(Position(1)), Outcome::Stored(Position(2)), Outcome::Duplicate(Position(1))]);
    let out = store.append(vec![joined("bob", "2"), left("bob", "3")]).unwrap();
    assert_eq!(out, vec![Outcome::Duplicate(Position(2)), Outcome::Stored(Position(3))]);
    assert_eq!(store.head(), Position(3));
    let events = store.read_range(Position(1), Position(10)).unwrap();
    assert_eq!(events.iter().map(|e| e.position.get()).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(events.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));
}

#[test]
fn a_rejected_batch_stores_nothing_and_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.append(vec![joined("alice", "1")]).unwrap();
    let err = store.append(vec![joined("carol", "2"), left("bob", "3")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "event 1 of the batch: field data.identity: unknown identity 'bob': no earlier event joined it"
    );
    assert_eq!(store.head(), Position(1));
    // carol was not stored, so her key is free and a later reference to her fails.
    assert!(matches!(store.append(vec![left("carol", "4")]), Err(Error::Rejected { index: 0, .. })));
    // A reference to an identity joined earlier in the same batch is fine.
    assert_eq!(store.append(vec![joined("carol", "2"), left("carol", "3")]).unwrap().len(), 2);

    let group_add = NewEvent::new(
        t("2024-01-01"),
        EventData::GroupMemberAdded(Membership { group: "fin".into(), identity: "alice".into() }),
    );
    let err = store.append(vec![group_add]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "event 0 of the batch: field data.group: unknown group 'fin': no earlier event created it"
    );
}

#[test]
fn retractions_must_name_an_earlier_non_retraction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.append(vec![joined("alice", "1")]).unwrap();
    let err = store.append(vec![retract(5)]).unwrap_err();
    assert_eq!(err.to_string(), "event 0 of the batch: field data.position: position 5 does not exist");
    store.append(vec![retract(1)]).unwrap();
    let err = store.append(vec![retract(2)]).unwrap_err();
    assert_eq!(err.to_string(), "event 0 of the batch: field data.position: position 2 is itself a retraction");
}

#[test]
fn optimistic_concurrency_detects_a_moved_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.append_expecting(vec![joined("alice", "1")], Position(0)).unwrap();
    let err = store.append_expecting(vec![joined("bob", "2")], Position(0)).unwrap_err();
    assert_eq!(err.to_string(), "conflict: expected the log head at position 0, it is at 1");
    store.append_expecting(vec![joined("bob", "2")], Position(1)).unwrap();
}

#[test]
fn reopen_keeps_everything_and_subject_reads_use_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let hash;
    {
        let store = Store::open(dir.path()).unwrap();
        store.append(vec![joined("alice", "1"), joined("bob", "2"), left("alice", "3")]).unwrap();
        hash = store.head_hash();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.head(), Position(3));
    assert_eq!(store.head_hash(), hash);
    assert_eq!(store.positions_of(&Subject::Identity("alice".into())).unwrap(), vec![Position(1), Position(3)]);
    let bob = store.read_subject(&Subject::Identity("bob".into()), Position(0)).unwrap();
    assert_eq!(bob.len(), 1);
    // Idempotency survives the reopen.
    assert_eq!(store.append(vec![left("alice", "3")]).unwrap(), vec![Outcome::Duplicate(Position(3))]);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.intact, 3);
    assert_eq!(report.head_hash, hash);
    assert_eq!(report.first_bad, None);
}

#[test]
fn recorded_time_maps_to_positions() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(1000));
    let c = clock.clone();
    let options = tenure_engine::StoreOptions {
        clock: Box::new(move || Timestamp::from_micros(c.load(std::sync::atomic::Ordering::SeqCst))),
        sync: true,
        ..Default::default()
    };
    let store = Store::open_with(dir.path(), options).unwrap();
    for i in 0..5 {
        clock.store(1000 * (i + 2), std::sync::atomic::Ordering::SeqCst);
        store.append(vec![joined(&format!("u{i}"), &format!("{i}"))]).unwrap();
    }
    assert_eq!(store.position_at_recorded(Timestamp::from_micros(500)).unwrap(), Position(0));
    assert_eq!(store.position_at_recorded(Timestamp::from_micros(2000)).unwrap(), Position(1));
    assert_eq!(store.position_at_recorded(Timestamp::from_micros(4500)).unwrap(), Position(3));
    assert_eq!(store.position_at_recorded(Timestamp::from_micros(99999)).unwrap(), Position(5));
}

fn flip_byte(dir: &std::path::Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(dir.join("events.log")).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x20;
    f.write_all_at(&b, offset).unwrap();
}

#[test]
fn verify_names_the_first_altered_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut offsets = vec![];
    {
        let store = Store::open(dir.path()).unwrap();
        for i in 0..10 {
            offsets.push(std::fs::metadata(dir.path().join("events.log")).unwrap().len());
            store.append(vec![joined(&format!("user{i}"), &format!("{i}"))]).unwrap();
        }
    }
    // A byte inside the payload of position 7.
    flip_byte(dir.path(), offsets[6] + 8 + 20);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.first_bad.as_ref().map(|b| b.0), Some(7));
    assert_eq!(report.intact, 6);
    // Open trusts the offsets file and does not read every record; reading the altered
    // one fails naming it, and so does the first append (which reads the whole log).
    let store = Store::open(dir.path()).unwrap();
    let err = store.read(Position(7)).unwrap_err();
    assert_eq!(err.to_string(), "position 7: record checksum mismatch (run `tenure verify`)");
    let err = store.append(vec![joined("zed", "z")]).unwrap_err();
    assert!(err.to_string().ends_with("position 7: record checksum mismatch (run `tenure verify`)"), "{err}");
    drop(store);
    // Without the offsets file, open scans the log and refuses at once: the record is
    // acknowledged (the head marker names position 10), so it is not a torn tail.
    std::fs::remove_file(dir.path().join("events.idx")).unwrap();
    let err = Store::open(dir.path()).err().unwrap();
    assert!(err.to_string().starts_with("position 7: record checksum mismatch"), "{err}");
    assert!(err.to_string().contains("positions up to 10 were acknowledged"), "{err}");
}

#[test]
fn verify_catches_a_forger_who_fixes_the_checksum() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let off3;
    {
        let store = Store::open(dir.path()).unwrap();
        store.append(vec![joined("alice", "1"), joined("bob", "2")]).unwrap();
        off3 = store.disk_bytes();
        store.append(vec![joined("carol", "3"), joined("dave", "4")]).unwrap();
    }
    // Rewrite carol -> cArol and recompute the CRC, as a forger would; the chain hash
    // still fails.
    let path = dir.path().join("events.log");
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut head = [0u8; 8];
    f.read_exact_at(&mut head, off3).unwrap();
    let len = (u32::from_le_bytes(head[..4].try_into().unwrap()) & !(1 << 31)) as usize;
    let mut payload = vec![0u8; len];
    f.read_exact_at(&mut payload, off3 + 8).unwrap();
    let at = payload.windows(5).position(|w| w == b"carol").unwrap();
    payload[at + 1] = b'A';
    let mut chain = [0u8; 32];
    f.read_exact_at(&mut chain, off3 + 8 + len as u64).unwrap();
    let mut c = crc32fast::Hasher::new();
    c.update(&head[..4]);
    c.update(&payload);
    c.update(&chain);
    f.write_all_at(&payload, off3 + 8).unwrap();
    f.write_all_at(&c.finalize().to_le_bytes(), off3 + 4).unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.first_bad, Some((3, "chain hash mismatch".to_string())));
}

#[test]
fn a_stale_or_missing_offsets_file_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.append(vec![joined("alice", "1"), joined("bob", "2")]).unwrap();
        store.append(vec![joined("carol", "3")]).unwrap();
    }
    let idx = dir.path().join("events.idx");
    // Lose the last entry and half of another: open scans the rest of the log.
    let len = std::fs::metadata(&idx).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&idx).unwrap().set_len(len - 12).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.head(), Position(3));
    assert_eq!(store.read(Position(3)).unwrap().position.get(), 3);
    drop(store);
    assert_eq!(std::fs::metadata(&idx).unwrap().len(), 24, "rewritten whole");
    // Garbage in it: ignored.
    std::fs::write(&idx, [0xFFu8; 40]).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.head(), Position(3));
    assert_eq!(store.positions_of(&Subject::Identity("carol".into())).unwrap(), vec![Position(3)]);
}

/// A bit flipped anywhere in `events.idx` but its last entry (which open checks) sends a
/// read astray, past the end of the log among others: every read still answers the
/// event at its position (the offsets are rebuilt from the log), never an I/O error.
#[test]
fn a_flipped_offset_is_rebuilt_never_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.append((0..20).map(|i| joined(&format!("p{i}"), &i.to_string())).collect()).unwrap();
    }
    let idx = std::fs::read(dir.path().join("events.idx")).unwrap();
    let want: Vec<String> = {
        let store = Store::open_read_only(dir.path()).unwrap();
        (1..=20).map(|p| format!("{:?}", store.read(Position(p)).unwrap())).collect()
    };
    for byte in 0..idx.len() - 8 {
        for bit in [0, 7] {
            let copy = tempfile::tempdir().unwrap();
            for f in std::fs::read_dir(dir.path()).unwrap() {
                let f = f.unwrap().path();
                std::fs::copy(&f, copy.path().join(f.file_name().unwrap())).unwrap();
            }
            let mut bad = idx.clone();
            bad[byte] ^= 1 << bit;
            std::fs::write(copy.path().join("events.idx"), &bad).unwrap();
            let store = Store::open_read_only(copy.path()).unwrap();
            for p in 1..=20u64 {
                let got = store.read(Position(p)).map(|e| format!("{e:?}"));
                assert_eq!(
                    got.as_ref().ok(),
                    Some(&want[p as usize - 1]),
                    "byte {byte} bit {bit}: position {p}: {got:?}"
                );
            }
        }
    }
}

/// Appends `first`, keeps the head marker as it was then, appends `second`, closes, and
/// puts the old marker back: the log as a crash would leave it after `second` was
/// written and before it was acknowledged. Returns the log's length after `first`.
fn written_not_acknowledged(dir: &std::path::Path, first: Vec<NewEvent>, second: Vec<NewEvent>) -> u64 {
    let store = Store::open(dir).unwrap();
    store.append(first).unwrap();
    let good = store.disk_bytes();
    let marker = std::fs::read(dir.join("events.head")).unwrap();
    store.append(second).unwrap();
    drop(store);
    std::fs::write(dir.join("events.head"), marker).unwrap();
    good
}

#[test]
fn a_torn_tail_is_cut_on_open_and_kept_in_the_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let good = written_not_acknowledged(
        dir.path(),
        vec![joined("alice", "1"), joined("bob", "2")],
        vec![joined("carol", "3")],
    );
    let path = dir.path().join("events.log");
    let full = std::fs::metadata(&path).unwrap().len();
    // Cut the last record in half, as a crash mid-write would.
    let torn = good + (full - good) / 2;
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(torn).unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.first_bad, None, "a torn tail is not damage to evidence");
    assert_eq!(report.torn_tail.as_ref().map(|t| (t.position, t.from_byte, t.bytes)), Some((3, good, torn - good)));
    // A reader sees the acknowledged prefix and cuts nothing.
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.head(), Position(2));
    drop(reader);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), torn);
    // The writer cuts it, into the quarantine.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.head(), Position(2));
    assert_eq!(store.disk_bytes(), good);
    let q = dir.path().join("quarantine");
    let saved: Vec<_> = std::fs::read_dir(&q).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(saved.iter().any(|n| n.ends_with(".cut")), "{saved:?}");
    let log = std::fs::read_to_string(q.join("repairs.log")).unwrap();
    assert!(log.contains("unacknowledged torn tail"), "{log}");
    assert_eq!(store.append(vec![joined("carol", "3")]).unwrap(), vec![Outcome::Stored(Position(3))]);
    assert_eq!(verify(dir.path()).unwrap().first_bad, None);
}

#[test]
fn a_batch_missing_its_last_record_is_cut_whole() {
    let dir = tempfile::tempdir().unwrap();
    let before = written_not_acknowledged(
        dir.path(),
        vec![joined("alice", "1")],
        vec![joined("bob", "2"), joined("carol", "3"), joined("dave", "4")],
    );
    let path = dir.path().join("events.log");
    let full = std::fs::metadata(&path).unwrap().len();
    // Lose the last 10 bytes: the third record of the batch is torn, the first two are whole.
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(full - 10).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.head(), Position(1), "the whole batch is gone, not two thirds of it");
    assert_eq!(store.disk_bytes(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_lose_nothing_and_share_no_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
    let mut tasks = vec![];
    for task in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = vec![];
            for i in 0..20 {
                let out = store.append_async(vec![joined(&format!("t{task}-{i}"), &format!("{task}/{i}"))], None).await;
                got.push(out.unwrap()[0].position().get());
            }
            got
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=640).collect::<Vec<_>>());
    assert_eq!(store.head(), Position(640));
}

#[tokio::test]
async fn subscription_has_no_gap_and_no_duplicate_across_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
    for i in 0..50 {
        store.append(vec![joined(&format!("a{i}"), &format!("a{i}"))]).unwrap();
    }
    let mut stream = Box::pin(store.subscribe(Position(10)));
    let writer = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            for i in 0..50 {
                store.append(vec![joined(&format!("b{i}"), &format!("b{i}"))]).unwrap();
            }
        })
    };
    let mut seen = vec![];
    while seen.len() < 90 {
        let e = stream.next().await.unwrap().unwrap();
        seen.push(e.position.get());
    }
    writer.await.unwrap();
    assert_eq!(seen, (11..=100).collect::<Vec<_>>());
}

#[test]
fn scan_stops_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.append((0..100).map(|i| joined(&format!("u{i}"), &format!("{i}"))).collect()).unwrap();
    let mut n = 0;
    store
        .scan(Position(5), Position(100), |_| {
            n += 1;
            if n == 10 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(n, 10);
}

#[test]
fn check_validates_without_storing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.check(vec![joined("alice", "1"), left("alice", "2")]).unwrap().len(), 2);
    assert_eq!(store.head(), Position(0));
    let err = store.check(vec![left("bob", "3")]).unwrap_err();
    assert!(matches!(err, Error::Rejected { index: 0, .. }));
}

#[test]
fn a_second_open_of_the_same_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).err().unwrap();
    assert!(err.to_string().ends_with("the store is in use by another process"), "{err}");
}

#[test]
fn assigned_ids_are_distinct_uuid_v7_stamped_with_the_recording_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let batch: Vec<NewEvent> = (0..2000).map(|i| joined(&format!("id-{i}"), &format!("k{i}"))).collect();
    store.append(batch).unwrap();
    let events = store.read_range(Position(1), store.head()).unwrap();
    let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), events.len(), "every assigned id is distinct");
    for e in &events {
        assert_eq!(e.id.get_version_num(), 7, "{}", e.id);
        let (secs, nanos) = e.id.get_timestamp().expect("v7 carries a time").to_unix();
        let millis = secs as i64 * 1000 + nanos as i64 / 1_000_000;
        assert_eq!(millis, e.recorded_at.as_micros() / 1000, "{}", e.id);
    }
}

/// A store written by 0.1 (schema version 1 records: the body nested under `d` with its
/// JSON names), kept as bytes in `fixtures/store-v1`: this release reads every event of it
/// as 0.1 did (`log.jsonl` is what 0.1's `tenure log` printed), keeps its chain intact,
/// and appends version 2 records after it.
#[test]
fn a_store_written_by_0_1_still_reads_verifies_and_grows() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture.join("events.log"), dir.path().join("events.log")).unwrap();
    let head_hash = "8559ddf50e7e833ef6260de93c2ca9cf767c7e0933a40724f03ae92911cf556b";

    let report = verify(dir.path()).unwrap();
    assert_eq!((report.intact, report.head_hash.as_str(), report.first_bad), (20, head_hash, None));

    let store = Store::open(dir.path()).unwrap();
    let expected: Vec<Event> = std::fs::read_to_string(fixture.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(expected.len(), 20);
    assert_eq!(store.read_range(Position(1), Position(20)).unwrap(), expected);
    assert_eq!(store.head_hash(), head_hash);
    // Its validation state came from the old records: a duplicate is known, a reference
    // to an identity it joined is accepted.
    let first =
        NewEvent::from_json(std::fs::read_to_string(fixture.join("events.jsonl")).unwrap().lines().next().unwrap())
            .unwrap();
    assert_eq!(store.append(vec![first]).unwrap(), vec![Outcome::Duplicate(Position(1))]);
    assert_eq!(store.append(vec![left("alice", "v2-leave")]).unwrap(), vec![Outcome::Stored(Position(21))]);
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.read_range(Position(1), Position(20)).unwrap(), expected);
    assert!(matches!(store.read(Position(21)).unwrap().data, EventData::IdentityLeft(_)));
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.intact, report.first_bad), (21, None));
}

/// The idempotency key is the pair, not the two strings run together.
#[test]
fn idempotency_keys_that_concatenate_alike_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = joined("a1", "x").with_source("ab", "c");
    let b = joined("a2", "x").with_source("a", "bc");
    let out = store.append(vec![a.clone(), b.clone()]).unwrap();
    assert_eq!(out, vec![Outcome::Stored(Position(1)), Outcome::Stored(Position(2))]);
    drop(store);
    // And after a reopen, which rebuilds the keys from the log.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.append(vec![b, a]).unwrap(),
        vec![Outcome::Duplicate(Position(2)), Outcome::Duplicate(Position(1))]
    );
}

/// Reads by subject in a new process use the snapshot of the subject index (written once
/// the log has grown 50,000 events past it), the log after it, and this process's own
/// appends; a damaged snapshot is read past, never believed.
#[test]
fn subject_reads_survive_reopen_through_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let n = 52_000u64;
    let store = Store::open(dir.path()).unwrap();
    let mut batch = vec![];
    for i in 0..n / 2 {
        batch.push(joined(&format!("u{i}"), &format!("j{i}")));
        batch.push(left(&format!("u{}", i / 2), &format!("l{i}")));
        if batch.len() == 10_000 {
            store.append(std::mem::take(&mut batch)).unwrap();
        }
    }
    store.append(batch).unwrap();
    let expect_u7 = vec![Position(15), Position(30), Position(32)];
    assert_eq!(store.positions_of(&Subject::Identity("u7".into())).unwrap(), expect_u7);
    drop(store);
    let snapshot = dir.path().join("subjects.idx");
    assert!(!snapshot.exists(), "the first process filed everything live");

    // A new process reads the whole log once and writes the snapshot.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.positions_of(&Subject::Identity("u7".into())).unwrap(), expect_u7);
    assert!(snapshot.exists());
    drop(store);

    // The next one answers from it, plus its own appends.
    let store = Store::open(dir.path()).unwrap();
    store.append(vec![left("u7", "again")]).unwrap();
    let mut with_new = expect_u7.clone();
    with_new.push(Position(n + 1));
    assert_eq!(store.positions_of(&Subject::Identity("u7".into())).unwrap(), with_new);
    assert_eq!(store.read_subject(&Subject::Identity("u7".into()), Position(31)).unwrap().len(), 2);
    drop(store);

    let mut bytes = std::fs::read(&snapshot).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&snapshot, bytes).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.positions_of(&Subject::Identity("u7".into())).unwrap(), with_new);
    assert!(store.positions_of(&Subject::Group("nobody".into())).unwrap().is_empty());
}

/// The writer's validation state saved at close (`writer.state`) and brought up to date
/// from the log's tail answers every append as the state built from the whole log does:
/// the same store is written twice, once keeping the file (saved at every close, or
/// damaged, or taken from another store) and once without it, through random sessions of
/// joins, groups, memberships, repeated idempotency keys and retractions. Replay a failure
/// with `TENURE_SEED=<seed>`.
#[test]
fn a_saved_validation_state_answers_like_the_whole_log() {
    use tenure_engine::store::STATE_FILE;
    use tenure_engine::StoreOptions;
    let seed: u64 = std::env::var("TENURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    println!("seed {seed} (replay with TENURE_SEED={seed})");
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let (kept, rebuilt, foreign) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Another store's state file, to be dropped beside the kept one.
    {
        let other =
            Store::open_with(foreign.path(), StoreOptions { save_state_after: 1, ..Default::default() }).unwrap();
        other.append(vec![joined("x", "1"), joined("y", "2")]).unwrap();
    }
    let mut events = 0u64;
    for session in 0..24 {
        match next(4) {
            0 => {
                // A damaged file: one byte flipped.
                let path = kept.path().join(STATE_FILE);
                if let Ok(mut bytes) = std::fs::read(&path) {
                    let at = next(bytes.len() as u64) as usize;
                    bytes[at] ^= 0x20;
                    std::fs::write(&path, bytes).unwrap();
                }
            }
            1 => {
                std::fs::copy(foreign.path().join(STATE_FILE), kept.path().join(STATE_FILE)).unwrap();
            }
            _ => {}
        }
        let _ = std::fs::remove_file(rebuilt.path().join(STATE_FILE));
        let save_state_after = [1, 1, 3, 100][next(4) as usize];
        let a = Store::open_with(kept.path(), StoreOptions { save_state_after, ..Default::default() }).unwrap();
        let b = Store::open_with(rebuilt.path(), StoreOptions { save_state_after: u64::MAX, ..Default::default() })
            .unwrap();
        for _ in 0..1 + next(5) {
            let mut batch = Vec::new();
            for _ in 0..1 + next(6) {
                let key = format!("k{}", next(events + 3));
                let id = format!("u{}", next(12));
                let group = format!("g{}", next(5));
                let line = match next(6) {
                    0 | 1 => format!(
                        r#"{{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","data":{{"identity":"{id}","kind":"human"}},"source":"hr","source_event_id":"{key}"}}"#
                    ),
                    2 => format!(
                        r#"{{"type":"group.created","effective_at":"2024-01-01T00:00:00Z","data":{{"group":"{group}"}},"source":"okta","source_event_id":"{key}"}}"#
                    ),
                    3 => format!(
                        r#"{{"type":"group.member_added","effective_at":"2024-01-02T00:00:00Z","data":{{"group":"{group}","identity":"{id}"}},"source":"okta","source_event_id":"{key}"}}"#
                    ),
                    4 => format!(
                        r#"{{"type":"identity.left","effective_at":"2024-02-01T00:00:00Z","data":{{"identity":"{id}"}},"source":"hr","source_event_id":"{key}"}}"#
                    ),
                    _ => format!(
                        r#"{{"type":"event.retracted","effective_at":"2024-03-01T00:00:00Z","data":{{"position":{},"reason":"test"}}}}"#,
                        1 + next(events + 2)
                    ),
                };
                batch.push(NewEvent::from_json(&line).unwrap());
            }
            let (x, y) = (a.append(batch.clone()), b.append(batch));
            assert_eq!(format!("{x:?}"), format!("{y:?}"), "seed {seed}, session {session}");
            events = a.head().get();
        }
        drop((a, b));
        if save_state_after == 1 && events > 0 {
            let saved = tenure_engine::store::saved_state_head(kept.path()).map(|(head, _)| head);
            assert_eq!(saved, Some(events), "seed {seed}: no sound state saved after session {session}");
        }
    }
    assert!(events > 0, "seed {seed}: nothing was stored");
}
