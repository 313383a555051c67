//! What the engine's process-level tests share.
#![allow(dead_code)]

use tenure_engine::event::*;
use tenure_engine::{NewEvent, Timestamp};

/// The `n`th event of a test stream: `user-N` joins, keyed `(source, N)`, so that the
/// event at position `p` of a stream written from 1 names `user-p`.
pub fn numbered_join(n: u64, source: &str) -> NewEvent {
    NewEvent::new(
        Timestamp::from_micros(1_700_000_000_000_000 + n as i64),
        EventData::IdentityJoined(Joined {
            identity: format!("user-{n}").as_str().into(),
            kind: IdentityKind::Human,
            attributes: [("n".to_string(), n.to_string())].into(),
            owner: None,
        }),
    )
    .with_source(source, &n.to_string())
}
