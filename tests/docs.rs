//! The examples of docs/events.md are real: each parses, and together (in order) they
//! are a valid stream the engine accepts.

use tenure::engine::{NewEvent, Store};

#[test]
fn every_example_in_events_md_parses_and_appends() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.md")).unwrap();
    let mut examples = vec![];
    let mut inside = false;
    for line in text.lines() {
        match line {
            "```json" => inside = true,
            "```" => inside = false,
            l if inside => examples.push(NewEvent::from_json(l).unwrap_or_else(|e| panic!("{l}: {e}"))),
            _ => {}
        }
    }
    let n = tenure::engine::event::EVENT_TYPES.len() + 1;
    assert_eq!(examples.len(), n, "one example per type, two for joined");
    // Every type of the registry has its example.
    let types: std::collections::BTreeSet<&str> = examples.iter().map(|e| e.data.type_name()).collect();
    assert_eq!(types.len(), tenure::engine::event::EVENT_TYPES.len(), "{types:?}");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // In document order (the retraction refers to position 6): every one is stored, none
    // is taken for a duplicate of another.
    let outcomes = store.append(examples).unwrap();
    let stored: Vec<u64> = outcomes
        .iter()
        .map(|o| match o {
            tenure::engine::Outcome::Stored(p) => p.get(),
            tenure::engine::Outcome::Duplicate(p) => panic!("an example is a duplicate of position {p}"),
        })
        .collect();
    assert_eq!(stored, (1..=n as u64).collect::<Vec<_>>());
}
