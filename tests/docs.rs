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
    assert_eq!(examples.len(), 20, "one example per type, two for joined");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // In document order, except that the retraction refers to position 6.
    let outcomes = store.append(examples).unwrap();
    assert_eq!(outcomes.len(), 20);
}
