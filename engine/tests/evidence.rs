//! No reader ever destroys evidence: damage to acknowledged records is refused by every
//! open, nothing is cut without `repair`, readers write nothing and see the acknowledged
//! prefix beside a running writer.

use std::collections::BTreeMap;
use std::path::Path;
use tenure_engine::event::*;
use tenure_engine::{repair, verify, Error, NewEvent, Position, Store, Timestamp};

fn joined(id: &str) -> NewEvent {
    NewEvent::new(
        Timestamp::parse_lenient("2024-01-01").unwrap(),
        EventData::IdentityJoined(Joined {
            identity: id.into(),
            kind: IdentityKind::Human,
            attributes: Default::default(),
            owner: None,
        }),
    )
    .with_source("hr", id)
}

/// Every file of the store, by name, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in walk(dir) {
        out.insert(entry.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&entry).unwrap());
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A store of three batches (1-2, 3-5, 6-8), closed.
fn three_batches(dir: &Path) -> Vec<u64> {
    let store = Store::open(dir).unwrap();
    let mut ends = vec![];
    for batch in [vec!["a", "b"], vec!["c", "d", "e"], vec!["f", "g", "h"]] {
        store.append(batch.into_iter().map(joined).collect()).unwrap();
        ends.push(store.disk_bytes());
    }
    ends
}

/// The damages of the issue: a flipped byte in the last record, a few bytes cut off the
/// end, a cut at a record boundary inside the last batch.
type Damage = (&'static str, Box<dyn Fn(&Path)>);

fn damages(ends: &[u64]) -> Vec<Damage> {
    let last = ends[2];
    let inside = {
        // The end of position 7: the start of position 8 (the last record).
        let dir = tempfile::tempdir().unwrap();
        three_batches(dir.path());
        let idx = std::fs::read(dir.path().join("events.idx")).unwrap();
        u64::from_le_bytes(idx[6 * 8..7 * 8].try_into().unwrap())
    };
    vec![
        (
            "a byte flipped in the last record",
            Box::new(move |d: &Path| {
                use std::os::unix::fs::FileExt;
                let f = std::fs::OpenOptions::new().read(true).write(true).open(d.join("events.log")).unwrap();
                let mut b = [0u8; 1];
                f.read_exact_at(&mut b, last - 40).unwrap();
                b[0] ^= 0x20;
                f.write_all_at(&b, last - 40).unwrap();
            }),
        ),
        (
            "a few bytes cut off the end",
            Box::new(move |d: &Path| {
                std::fs::OpenOptions::new().write(true).open(d.join("events.log")).unwrap().set_len(last - 3).unwrap();
            }),
        ),
        (
            "a cut at a record boundary inside the last batch",
            Box::new(move |d: &Path| {
                std::fs::OpenOptions::new().write(true).open(d.join("events.log")).unwrap().set_len(inside).unwrap();
            }),
        ),
    ]
}

#[test]
fn damage_to_acknowledged_records_is_refused_by_every_open_and_nothing_is_cut() {
    let probe = tempfile::tempdir().unwrap();
    let ends = three_batches(probe.path());
    for (name, damage) in damages(&ends) {
        for idx_kept in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            three_batches(dir.path());
            damage(dir.path());
            if !idx_kept {
                std::fs::remove_file(dir.path().join("events.idx")).unwrap();
            }
            let before = snapshot(dir.path());
            let report = verify(dir.path()).unwrap();
            let (position, _) = report.first_bad.clone().unwrap_or_else(|| panic!("{name}: verify found nothing"));
            assert!((6..=8).contains(&position), "{name}: {report:?}");
            assert!(report.torn_tail.is_none(), "{name}");
            match Store::open_read_only(dir.path()) {
                Err(Error::Corrupt { position: p, .. }) => assert!((6..=8).contains(&p), "{name}"),
                Err(e) => panic!("{name}: {e}"),
                Ok(s) => {
                    // The offsets file let the reader skip the record; reading it fails.
                    assert!(idx_kept, "{name}: a reader without offsets opened over damage");
                    let err = s.read_range(Position(1), Position(8)).unwrap_err();
                    assert!(matches!(err, Error::Corrupt { .. }), "{name}: {err}");
                }
            }
            let writer = Store::open(dir.path());
            match &writer {
                Err(Error::Corrupt { .. }) => {}
                Err(e) => panic!("{name}: {e}"),
                Ok(s) => {
                    assert!(idx_kept, "{name}");
                    assert!(matches!(s.append(vec![joined("z")]), Err(Error::Poisoned(_) | Error::Corrupt { .. })));
                }
            }
            drop(writer);
            let mut after = snapshot(dir.path());
            // The writer's lock file is all that a refused writer may leave.
            after.remove("LOCK");
            let mut before = before;
            before.remove("LOCK");
            assert_eq!(before.get("events.log"), after.get("events.log"), "{name}: the log was changed");
            assert_eq!(verify(dir.path()).unwrap().first_bad, report.first_bad, "{name}: verify changed its mind");
        }
    }
}

#[test]
fn repair_shows_then_moves_the_damage_to_the_quarantine() {
    let probe = tempfile::tempdir().unwrap();
    let ends = three_batches(probe.path());
    let (_, flip) = damages(&ends).into_iter().next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    three_batches(dir.path());
    flip(dir.path());
    let log_before = std::fs::read(dir.path().join("events.log")).unwrap();
    let plan = repair(dir.path(), false).unwrap();
    assert_eq!(plan.first_bad.as_ref().map(|b| b.0), Some(8));
    assert_eq!((plan.keep_head, plan.cut_from, plan.applied), (5, ends[1], false));
    assert_eq!(std::fs::read(dir.path().join("events.log")).unwrap(), log_before, "a plan changes nothing");
    let done = repair(dir.path(), true).unwrap();
    assert!(done.applied);
    let saved = std::fs::read(done.quarantined.unwrap()).unwrap();
    assert_eq!(saved, log_before[ends[1] as usize..], "the cut bytes are kept");
    let repairs = std::fs::read_to_string(dir.path().join("quarantine/repairs.log")).unwrap();
    assert!(repairs.contains("operator repair") && repairs.contains("\"first_position\":6"), "{repairs}");
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.intact, report.first_bad, report.acknowledged), (5, None, Some(5)));
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.head(), Position(5));
    assert_eq!(store.append(vec![joined("f")]).unwrap()[0].position().get(), 6);
}

#[test]
fn a_reader_writes_nothing_refuses_appends_and_sees_the_acknowledged_prefix() {
    let dir = tempfile::tempdir().unwrap();
    three_batches(dir.path());
    let before = snapshot(dir.path());
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.head(), Position(8));
    assert!(matches!(reader.append(vec![joined("z")]), Err(Error::ReadOnly)));
    assert_eq!(reader.read_range(Position(1), Position(8)).unwrap().len(), 8);
    drop(reader);
    assert_eq!(snapshot(dir.path()), before, "a reader changed the store");
}

#[test]
fn readers_beside_a_writer_see_prefixes_and_never_block_it() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Store::open(dir.path()).unwrap();
    writer.append(vec![joined("first")]).unwrap();
    // A second writer is refused, a reader is not.
    assert!(matches!(Store::open(dir.path()), Err(Error::Locked { .. })));
    let readers: Vec<Store> = (0..4).map(|_| Store::open_read_only(dir.path()).unwrap()).collect();
    std::thread::scope(|scope| {
        let w = &writer;
        scope.spawn(move || {
            for i in 0..200 {
                let batch = (0..(i % 5 + 1)).map(|j| joined(&format!("u{i}-{j}"))).collect();
                w.append(batch).unwrap();
            }
        });
        for r in &readers {
            scope.spawn(move || {
                let mut last = r.head();
                for _ in 0..200 {
                    let head = r.refresh().unwrap();
                    assert!(head >= last, "the head went back");
                    let events = r.read_range(Position(1), head).unwrap();
                    assert_eq!(events.len() as u64, head.get());
                    for (i, e) in events.iter().enumerate() {
                        assert_eq!(e.position.get(), i as u64 + 1, "positions dense");
                    }
                    last = head;
                }
            });
        }
    });
    let total = writer.head().get();
    assert_eq!(total, 1 + (0..200).map(|i| i % 5 + 1).sum::<u64>());
    for r in &readers {
        assert_eq!(r.refresh().unwrap().get(), total);
        assert_eq!(r.head_hash(), writer.head_hash());
    }
}

#[test]
fn a_damaged_offsets_entry_is_not_blamed_on_the_log() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    three_batches(dir.path());
    let expected: Vec<_> = Store::open_read_only(dir.path()).unwrap().read_range(Position(1), Position(8)).unwrap();
    // Entry 3 (the end of position 4, the start of 5) made 4 bytes smaller: still
    // ascending, so the file is believed at open.
    let f = std::fs::OpenOptions::new().read(true).write(true).open(dir.path().join("events.idx")).unwrap();
    let mut e = [0u8; 8];
    f.read_exact_at(&mut e, 3 * 8).unwrap();
    f.write_all_at(&(u64::from_le_bytes(e) - 4).to_le_bytes(), 3 * 8).unwrap();
    let before = snapshot(dir.path());
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.read(Position(5)).unwrap(), expected[4]);
    assert_eq!(reader.read_range(Position(1), Position(8)).unwrap(), expected);
    let notices = reader.take_notices();
    assert!(notices.len() == 1 && notices[0].contains("offsets file is damaged"), "{notices:?}");
    assert_eq!(verify(dir.path()).unwrap().first_bad, None);
    drop(reader);
    assert_eq!(snapshot(dir.path()), before, "a reader wrote");
}

#[test]
fn the_marker_slots_alternate_across_reopens() {
    use std::os::unix::fs::FileExt;
    use tenure_engine::marker::{self, Read, SLOT_LEN};
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let store = Store::open(dir.path()).unwrap();
        store.append(vec![joined(&format!("r{round}"))]).unwrap();
    }
    let Read::Found(newest) = marker::read(dir.path()).unwrap() else { panic!("no marker") };
    assert_eq!(newest.head, 3);
    // Tear the newest slot: the other one holds the marker before it, whole.
    let f = std::fs::OpenOptions::new().write(true).open(dir.path().join(marker::MARKER_FILE)).unwrap();
    f.write_all_at(&[0xAA; 8], (newest.seq % 2) * SLOT_LEN + 16).unwrap();
    let Read::Found(before) = marker::read(dir.path()).unwrap() else { panic!("both slots torn") };
    assert_eq!((before.seq + 1, before.head), (newest.seq, 2));
}
