//! A record's payload as read from disk (schema versions 1 and 2): decode never panics,
//! and what decodes encodes back to bytes that decode to the same event.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tenure_engine::format::{decode_event, encode_event};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = decode_event(data) {
        let again = decode_event(&encode_event(&event)).expect("an encoded event decodes");
        assert_eq!(again, event);
    }
});
