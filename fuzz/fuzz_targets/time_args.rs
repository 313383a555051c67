//! Time and entitlement arguments, as the CLI and the reports take them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tenure_engine::{Entitlement, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(t) = Timestamp::parse_lenient(s) {
        // What prints parses back to the same instant.
        let again = Timestamp::parse_lenient(&t.to_string()).expect("a printed time parses");
        assert_eq!(again, t);
    }
    if let Some(e) = Entitlement::parse_short(s) {
        assert!(!e.resource.is_empty() && !e.permission.is_empty());
    }
    let _ = tenure_projections::Target::parse(s);
});
