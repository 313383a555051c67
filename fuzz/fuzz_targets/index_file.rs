//! The access index file's reader over arbitrary bytes: opening, checking and querying
//! never panic; a file that passes `check_file` answers every query without error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tenure_engine::Timestamp;
use tenure_projections::{AccessIndex, AsOf, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(index) = AccessIndex::from_bytes(data) else { return };
    let checked = index.check_file().is_ok();
    let t = Timestamp::from_micros(1_700_000_000_000_000);
    let mut results = Vec::new();
    results.push(index.anomalies(AsOf::Head).err());
    results.push(index.diff(None, Timestamp::from_micros(0), t, AsOf::Head).err());
    if let Some(target) = Target::parse("db#read") {
        results.push(index.holders(&target, t, AsOf::Position(3)).err());
        results.push(index.holders_during(&target, Timestamp::from_micros(0), t, AsOf::Head).err());
    }
    for name in ["a", "alice", "bob"] {
        results.push(index.access(name, t, AsOf::Head).err().filter(|e| !e.to_string().starts_with("unknown identity")));
        results.push(index.timeline(name, AsOf::Head).err().filter(|e| !e.to_string().starts_with("unknown identity")));
    }
    if checked {
        for r in results.into_iter().flatten() {
            panic!("a checked file failed a query: {r}");
        }
    }
});
