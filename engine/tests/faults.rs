//! The fault-injecting file layer: a failed, short or ENOSPC write and a failed sync, at a
//! chosen group. Nothing unacknowledged is reported stored, every append after the fault
//! is refused, and the store reopens with every acknowledged event (a partial write is
//! a torn tail, moved to the quarantine).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tenure_engine::event::*;
use tenure_engine::{verify, Error, Faults, NewEvent, Position, Store, StoreOptions};

fn event(n: u64) -> NewEvent {
    common::numbered_join(n, "faults")
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// The write fails with nothing written.
    WriteFails,
    /// Half the group is written, then the device is full.
    ShortWriteEnospc,
    /// All but the last byte is written, then EIO.
    AllButOneByte,
    /// The sync fails (the bytes were written).
    SyncFails,
}

struct Plan {
    kind: Kind,
    /// The operation (write or sync, counted separately) that fails.
    at: usize,
    writes: AtomicUsize,
    syncs: AtomicUsize,
}

impl Faults for Plan {
    fn write(&self, len: usize) -> Option<(usize, std::io::Error)> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        let enospc = std::io::Error::from_raw_os_error(28);
        match self.kind {
            Kind::WriteFails if n == self.at => Some((0, std::io::Error::other("injected write failure"))),
            Kind::ShortWriteEnospc if n == self.at => Some((len / 2, enospc)),
            Kind::AllButOneByte if n == self.at => Some((len - 1, std::io::Error::from_raw_os_error(5))),
            _ => None,
        }
    }
    fn sync(&self) -> Option<std::io::Error> {
        let n = self.syncs.fetch_add(1, Ordering::SeqCst);
        match self.kind {
            Kind::SyncFails if n == self.at => Some(std::io::Error::from_raw_os_error(5)),
            _ => None,
        }
    }
}

#[test]
fn no_fault_loses_an_acknowledged_event_or_reports_an_unacknowledged_one() {
    for kind in [Kind::WriteFails, Kind::ShortWriteEnospc, Kind::AllButOneByte, Kind::SyncFails] {
        for at in [0usize, 1, 3, 7] {
            let dir = tempfile::tempdir().unwrap();
            let plan = Arc::new(Plan { kind, at, writes: AtomicUsize::new(0), syncs: AtomicUsize::new(0) });
            let options = StoreOptions { faults: Some(plan.clone()), ..StoreOptions::default() };
            let store = Store::open_with(dir.path(), options).unwrap();
            let mut acked = 0u64;
            let mut n = 0u64;
            let mut failed_batch = 0u64;
            for round in 0..12u64 {
                let size = 1 + round % 4;
                let batch: Vec<_> = (n + 1..=n + size).map(event).collect();
                match store.append(batch) {
                    Ok(out) => {
                        assert_eq!(failed_batch, 0, "{kind:?} at {at}: an append after the fault succeeded");
                        acked = out.last().unwrap().position().get();
                        n += size;
                    }
                    Err(Error::Poisoned(reason)) => {
                        assert!(!reason.is_empty());
                        if failed_batch == 0 {
                            failed_batch = size;
                        }
                    }
                    Err(e) => panic!("{kind:?} at {at}: {e}"),
                }
            }
            assert!(failed_batch > 0, "{kind:?} at {at}: the fault never fired");
            assert_eq!(store.head().get(), acked, "{kind:?} at {at}: the head passed what was acknowledged");
            drop(store);
            // A reader sees exactly the acknowledged events; the writer's open cuts a torn
            // tail into the quarantine, or keeps a whole batch whose sync failed (written,
            // never acknowledged: an ambiguous outcome that a retry with the same keys
            // resolves).
            assert_eq!(Store::open_read_only(dir.path()).unwrap().head().get(), acked, "{kind:?} at {at}");
            let report = verify(dir.path()).unwrap();
            assert_eq!(report.first_bad, None, "{kind:?} at {at}: {report:?}");
            let store = Store::open(dir.path()).unwrap();
            let head = store.head().get();
            match kind {
                Kind::SyncFails => assert!(head == acked || head == acked + failed_batch, "{kind:?} at {at}: {head}"),
                Kind::WriteFails => assert_eq!(head, acked, "{kind:?} at {at}"),
                Kind::ShortWriteEnospc | Kind::AllButOneByte => {
                    assert_eq!(head, acked, "{kind:?} at {at}");
                    let q = dir.path().join("quarantine/repairs.log");
                    assert!(std::fs::read_to_string(q).unwrap().contains("torn tail"), "{kind:?} at {at}");
                }
            }
            let events = store.read_range(Position(1), Position(head)).unwrap();
            for (i, e) in events.iter().enumerate() {
                let EventData::IdentityJoined(j) = &e.data else { panic!() };
                assert_eq!(j.identity.as_str(), format!("user-{}", i + 1));
            }
            // The same batches again: the acknowledged ones are duplicates, the rest go in.
            let out = store.append((1..=n + failed_batch).map(event).collect()).unwrap();
            assert_eq!(store.head().get(), n + failed_batch, "{kind:?} at {at}");
            assert_eq!(out.iter().filter(|o| matches!(o, tenure_engine::Outcome::Duplicate(_))).count() as u64, head);
        }
    }
}
