//! Criterion micro-benchmarks of the hot paths: record codec, framing and hashing, the
//! per-subject fold and the access query.
//!
//! ```text
//! cargo bench --bench hot_paths
//! ```

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::ops::ControlFlow;
use tenure::engine::format::{decode_event, encode_event, frame_record, GENESIS};
use tenure::engine::{Event, NewEvent, Position, Timestamp};
use tenure::projections::{AccessIndex, AsOf, Target};

fn org(identities: usize) -> Vec<NewEvent> {
    let mut out = vec![];
    tenure_gen::generate(&tenure_gen::OrgConfig::new(identities, 3, 9), |e| out.push(e));
    out
}

fn recorded(e: &NewEvent, p: u64) -> Event {
    Event {
        position: Position(p),
        id: uuid::Uuid::now_v7(),
        recorded_at: Timestamp::from_micros(1),
        effective_at: e.effective_at,
        source: e.source.clone(),
        source_event_id: e.source_event_id.clone(),
        actor: e.actor.clone(),
        raw: e.raw.clone(),
        data: e.data.clone(),
    }
}

fn codec(c: &mut Criterion) {
    let events = org(200);
    // A typical event: a grant (the most common type).
    let grant = events.iter().find(|e| e.data.type_name() == "access.granted").expect("a grant");
    let event = recorded(grant, 42);
    let payload = encode_event(&event);
    c.bench_function("encode_event (grant)", |b| b.iter(|| black_box(encode_event(black_box(&event)))));
    c.bench_function("decode_event (grant)", |b| b.iter(|| black_box(decode_event(black_box(&payload)))));
    c.bench_function("frame_record (CRC + 2 SHA-256)", |b| {
        let mut buf = Vec::with_capacity(512);
        b.iter(|| {
            buf.clear();
            black_box(frame_record(&mut buf, black_box(&payload), &GENESIS, false))
        })
    });
    c.bench_function("NewEvent::from_json (grant)", |b| {
        let line = grant.to_json();
        b.iter(|| black_box(NewEvent::from_json(black_box(&line))))
    });
}

fn queries(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    let store = tenure::Store::open(dir.path()).expect("store");
    for chunk in org(5000).chunks(10_000) {
        store.append(chunk.to_vec()).expect("append");
    }
    let mut index = AccessIndex::new();
    store
        .scan(Position(1), store.head(), |e| {
            index.apply(&e);
            ControlFlow::Continue(())
        })
        .expect("scan");
    let at = Timestamp::parse_lenient("2021-06-01").expect("date");
    let head = store.head();
    c.bench_function("access (one identity, head)", |b| {
        b.iter(|| black_box(index.access(black_box("u0000100"), at, AsOf::Head)))
    });
    c.bench_function("access (one identity, as of R)", |b| {
        b.iter(|| black_box(index.access(black_box("u0000100"), at, AsOf::Position(head.get() / 2))))
    });
    let target = Target::parse("app-0010#read").expect("target");
    c.bench_function("holders (uncommon entitlement)", |b| {
        b.iter(|| black_box(index.holders(&target, at, AsOf::Head)))
    });
    c.bench_function("index apply (whole log, 5k identities)", |b| {
        let log = store.read_range(Position(1), head).expect("read");
        b.iter(|| {
            let mut i = AccessIndex::new();
            for e in &log {
                i.apply(e);
            }
            black_box(i.head())
        })
    });
}

/// Bitemporal stores are known to slow down sharply after rounds of overwrites. Here one
/// identity's grant is granted, retracted and granted again `rounds` times; the cost of
/// asking for its access (at head, and as of the middle of the corrections) should grow
/// linearly with its own events, and not at all with anyone else's.
fn overwrites(c: &mut Criterion) {
    use tenure::engine::event::*;
    for rounds in [0usize, 10, 100, 1000] {
        let dir = tempfile::tempdir().expect("dir");
        let store = tenure::Store::open(dir.path()).expect("store");
        let t0 = Timestamp::parse_lenient("2024-01-01").expect("date");
        let join = NewEvent::new(
            t0,
            EventData::IdentityJoined(Joined {
                identity: "ann".into(),
                kind: IdentityKind::Human,
                attributes: Default::default(),
                owner: None,
            }),
        );
        store.append(vec![join]).expect("append");
        let grant = || {
            NewEvent::new(
                t0,
                EventData::AccessGranted(Granted {
                    identity: "ann".into(),
                    entitlement: tenure::Entitlement::new("db", "read"),
                    expires_at: None,
                    justification: None,
                    approver: None,
                }),
            )
        };
        store.append(vec![grant()]).expect("append");
        for _ in 0..rounds {
            let p = store.head().get();
            let retract = NewEvent::new(
                t0,
                EventData::EventRetracted(Retracted { position: Position(p), reason: "correction".into() }),
            );
            store.append(vec![retract, grant()]).expect("append");
        }
        let mut index = AccessIndex::new();
        store
            .scan(Position(1), store.head(), |e| {
                index.apply(&e);
                ControlFlow::Continue(())
            })
            .expect("scan");
        let at = Timestamp::parse_lenient("2024-06-01").expect("date");
        let mid = store.head().get() / 2;
        c.bench_function(&format!("access after {rounds} rounds of overwrites, head"), |b| {
            b.iter(|| black_box(index.access("ann", at, AsOf::Head)))
        });
        c.bench_function(&format!("access after {rounds} rounds of overwrites, as of the middle"), |b| {
            b.iter(|| black_box(index.access("ann", at, AsOf::Position(mid))))
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = codec, queries, overwrites
}
criterion_main!(benches);
