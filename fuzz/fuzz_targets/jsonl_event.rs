//! A line of a JSONL file, as `tenure ingest` reads it: parse, validate, and (when it
//! parses) back to JSON and parse again to the same event.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tenure_engine::NewEvent;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    if let Ok(event) = NewEvent::from_json(line) {
        let _ = tenure_engine::json::validate_data(&event.data);
        let again = NewEvent::from_json(&event.to_json()).expect("an event's own JSON parses");
        assert_eq!(again.data, event.data);
        assert_eq!(again.effective_at, event.effective_at);
    }
});
