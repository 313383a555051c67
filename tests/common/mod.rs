#![allow(dead_code)]

pub mod oracle;

use tenure::engine::{NewEvent, Position, Store};
use tenure::projections::AccessIndex;

/// Appends a JSONL file's events, one append per line as a source would deliver them.
pub fn ingest_jsonl(store: &Store, text: &str) {
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event = NewEvent::from_json(line).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
        store.append(vec![event]).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
    }
}

/// Builds the access index from the whole log.
pub fn build_index(store: &Store) -> AccessIndex {
    let mut index = AccessIndex::new();
    store
        .scan(Position(1), store.head(), |e| {
            index.apply(&e);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    index
}
