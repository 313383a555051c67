//! `Store::replicate`: a follower that appends what another store recorded, page by page,
//! ends with the same positions and the same chain head, the events having crossed the
//! interchange form (JSON) on the way, as they do over the events API.

mod common;
use common::numbered_join;
use tenure_engine::{Error, Event, Position, Store};

fn through_json(events: &[Event]) -> Vec<Event> {
    events.iter().map(|e| serde_json::from_str(&serde_json::to_string(e).unwrap()).unwrap()).collect()
}

fn source_store(dir: &std::path::Path) -> Store {
    let store = Store::open(dir).unwrap();
    for batch in 0..5u64 {
        let events = (1..=9u64)
            .map(|i| {
                let n = batch * 9 + i;
                let mut e = numbered_join(n, "hr");
                // Evidence of every shape: floats, unicode, nesting, escapes.
                e.raw = Some(serde_json::json!({"n": n, "f": 0.1 + n as f64 / 3.0, "s": "Zoë \"q\"\n",
                                                 "nested": {"b": [1, 2.5e-7, null, true], "a": {}}}));
                e
            })
            .collect();
        store.append(events).unwrap();
    }
    store
}

#[test]
fn a_replica_has_the_sources_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let source = source_store(&tmp.path().join("a"));
    let all = through_json(&source.read_range(Position(1), source.head()).unwrap());
    let replica = Store::open(tmp.path().join("b")).unwrap();
    for page in all.chunks(7) {
        let head = replica.replicate(page.to_vec()).unwrap();
        assert_eq!(head, page.last().unwrap().position);
    }
    assert_eq!(replica.head(), source.head());
    let (mine, theirs) = (
        replica.read_range(Position(1), replica.head()).unwrap(),
        source.read_range(Position(1), source.head()).unwrap(),
    );
    for (a, b) in mine.iter().zip(&theirs) {
        assert_eq!(a, b);
    }
    assert_eq!(replica.head_hash(), source.head_hash());

    // A page again, a page with a gap, a page out of its place: refused, nothing stored.
    let head = replica.head();
    assert!(matches!(replica.replicate(all[..3].to_vec()), Err(Error::Conflict { .. })));
    let mut gap = all[40..43].to_vec();
    gap.remove(1);
    assert!(matches!(replica.replicate(gap), Err(Error::Rejected { .. })));
    assert_eq!(replica.head(), head);
    replica.close();
    source.close();
    let a = tenure_engine::verify(tmp.path().join("a")).unwrap();
    let b = tenure_engine::verify(tmp.path().join("b")).unwrap();
    assert_eq!((a.intact, &a.head_hash, a.first_bad.is_none()), (b.intact, &b.head_hash, true));
}

/// A log that is not the source's is refused, not merged: a key already recorded here
/// at another position, or a record time that goes back.
#[test]
fn a_log_that_is_not_the_sources_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let source = source_store(&tmp.path().join("a"));
    let all = through_json(&source.read_range(Position(1), source.head()).unwrap());
    let other = Store::open(tmp.path().join("c")).unwrap();
    // Its own first event, with the source's first key.
    other.append(vec![numbered_join(1, "hr")]).unwrap();
    let mut shifted: Vec<Event> = all[1..4].to_vec();
    for (i, e) in shifted.iter_mut().enumerate() {
        e.position = Position(2 + i as u64);
    }
    shifted[0].source_event_id = Some("1".into());
    assert!(matches!(other.replicate(shifted.clone()), Err(Error::Rejected { .. })));
    shifted[0].source_event_id = Some("x".into());
    shifted[0].recorded_at = tenure_engine::Timestamp::from_micros(0);
    assert!(matches!(other.replicate(shifted), Err(Error::Rejected { .. })));
    assert_eq!(other.head(), Position(1));
}

/// Evidence reads back as sent: a number in `raw` that a parser without exact float
/// reading turns into its neighbour (1.4333333333333333 read as ...331) keeps its digits.
#[test]
fn raw_numbers_read_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let mut e = numbered_join(1, "hr");
    let text = r#"{"a":1.4333333333333333,"b":0.30000000000000004,"c":1e-300}"#;
    e.raw = Some(serde_json::from_str(text).unwrap());
    store.append(vec![e]).unwrap();
    let back = store.read(Position(1)).unwrap();
    assert_eq!(back.raw.unwrap().to_string(), text);
}
