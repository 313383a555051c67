//! Property tests of the event model and the log. proptest prints the failing seed and
//! case; `PROPTEST_CASES` scales the run.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use tenure_engine::event::*;
use tenure_engine::format::{decode_event, encode_event};
use tenure_engine::{Event, NewEvent, Outcome, Position, Store, Timestamp};

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}"
}

fn time() -> impl Strategy<Value = Timestamp> {
    (1_500_000_000i64..1_900_000_000).prop_map(|s| Timestamp::from_micros(s * 1_000_000))
}

fn entitlement() -> impl Strategy<Value = Entitlement> {
    (name(), name()).prop_map(|(r, p)| Entitlement::new(&r, &p))
}

fn attrs() -> impl Strategy<Value = Attributes> {
    proptest::collection::btree_map(name(), ".{0,12}", 0..3)
}

/// The parts an event body is made of, drawn once and shaped by [`body`].
type Parts = (
    (String, String, String, Entitlement),
    (Attributes, Option<String>, Option<Timestamp>, Option<String>),
    (Option<String>, String, u64, Option<Attributes>),
);

fn parts() -> impl Strategy<Value = Parts> {
    use proptest::option::of;
    (
        (name(), name(), name(), entitlement()),
        (attrs(), of(".{0,10}"), of(time()), of(name())),
        (of(name()), name(), 1u64..1000, of(attrs())),
    )
}

/// The body of type `code` (an index of `EVENT_TYPES`) made of `parts`: every type of the
/// registry, so that the round trips below cover all of them.
fn body(code: usize, parts: Parts) -> EventData {
    use tenure_engine::{CredentialId, GroupId, IdentityId};
    let ((i, o, g, entitlement), (attributes, reason, expires_at, approver), (justification, c, q, maybe_attrs)) =
        parts;
    let identity = IdentityId(i);
    let group = GroupId(g);
    let status = StatusChange { identity: identity.clone(), reason: reason.clone() };
    let cred = Credential { identity: identity.clone(), credential: CredentialId(c), expires_at };
    let lifecycle =
        GroupLifecycle { group: group.clone(), display_name: reason.clone(), external_id: approver.clone() };
    let membership = Membership { group: group.clone(), identity: identity.clone() };
    let updated = GroupUpdated {
        group: group.clone(),
        display_name: Some(reason.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| "x".into())),
        external_id: justification.clone(),
    };
    let access = GroupAccess { group, entitlement: entitlement.clone() };
    let data = match code {
        0 => {
            // An identity cannot own itself (refused by the parse): no owner then.
            let owner = approver.clone().filter(|o| o != identity.as_str()).map(IdentityId);
            let kind = if owner.is_some() { IdentityKind::Service } else { IdentityKind::Human };
            EventData::IdentityJoined(Joined { identity, kind, attributes, owner })
        }
        1 => EventData::IdentityMoved(Moved { identity, attributes }),
        2 => EventData::IdentitySuspended(status),
        3 => EventData::IdentityReactivated(status),
        4 => EventData::IdentityLeft(status),
        5 => EventData::IdentityRejoined(Rejoined { identity, attributes: maybe_attrs }),
        6 => EventData::IdentityOwnerChanged(OwnerChanged { identity, owner: IdentityId(o) }),
        7 => EventData::AccessGranted(Granted { identity, entitlement, expires_at, justification, approver }),
        8 => EventData::AccessRevoked(Revoked { identity, entitlement, reason }),
        9 => EventData::GroupCreated(lifecycle),
        10 => EventData::GroupDeleted(lifecycle),
        11 => EventData::GroupMemberAdded(membership),
        12 => EventData::GroupMemberRemoved(membership),
        13 => EventData::GroupAccessGranted(access),
        14 => EventData::GroupAccessRevoked(access),
        15 => EventData::CredentialIssued(cred),
        16 => EventData::CredentialRotated(cred),
        17 => EventData::CredentialRevoked(cred),
        18 => {
            EventData::EventRetracted(Retracted { position: Position(q), reason: reason.unwrap_or_else(|| "x".into()) })
        }
        19 => EventData::GroupUpdated(updated),
        20 => EventData::AccessReviewed(tenure_engine::event::Reviewed {
            identity,
            entitlement,
            reviewer: o,
            decision: if q % 2 == 0 {
                tenure_engine::event::Decision::Keep
            } else {
                tenure_engine::event::Decision::Revoke
            },
            comment: reason,
        }),
        other => panic!("type code {other} of the registry has no body here: add it"),
    };
    assert_eq!(usize::from(data.type_code()), code);
    data
}

#[test]
fn the_generator_covers_every_type_of_the_registry() {
    let runner = &mut proptest::test_runner::TestRunner::deterministic();
    for (code, name) in EVENT_TYPES.iter().enumerate() {
        let parts = parts().new_tree(runner).unwrap().current();
        assert_eq!(body(code, parts).type_name(), *name);
    }
}

fn data() -> impl Strategy<Value = EventData> {
    (0..EVENT_TYPES.len(), parts()).prop_map(|(code, parts)| body(code, parts))
}

fn new_event() -> impl Strategy<Value = NewEvent> {
    let raw = proptest::option::of((".{0,20}", any::<i32>(), any::<bool>()));
    (data(), time(), proptest::option::of((name(), name())), proptest::option::of(name()), raw).prop_map(
        |(data, effective_at, key, actor, raw)| {
            let mut e = NewEvent::new(effective_at, data);
            if let Some((s, k)) = key {
                e = e.with_source(&s, &k);
            }
            e.actor = actor;
            e.raw =
                raw.map(|(body, n, flag)| serde_json::json!({"body": body, "n": n, "flag": flag, "list": [n, body]}));
            e
        },
    )
}

proptest! {
    #[test]
    fn json_round_trip(event in new_event()) {
        let line = event.to_json();
        prop_assert_eq!(NewEvent::from_json(&line).unwrap(), event);
    }

    #[test]
    fn messagepack_round_trip(event in new_event(), position in 1u64..u64::MAX / 2, recorded in time()) {
        let recorded = Event {
            position: Position(position),
            id: uuid::Uuid::now_v7(),
            recorded_at: recorded,
            effective_at: event.effective_at,
            source: event.source.clone(),
            source_event_id: event.source_event_id.clone(),
            actor: event.actor.clone(),
            raw: event.raw.clone(),
            data: event.data.clone(),
        };
        let payload = encode_event(&recorded);
        prop_assert_eq!(decode_event(&payload).unwrap(), recorded.clone());
        // The head alone says the same of the event as the whole decode.
        let head = tenure_engine::format::decode_head(&payload).unwrap();
        prop_assert_eq!(
            (head.position, head.type_code, head.recorded_at, head.effective_at, head.source),
            (position, recorded.data.type_code(), recorded.recorded_at, recorded.effective_at, recorded.source)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Delivering the same keyed events again, in any order and in any batching, stores
    /// each once, and every re-delivery answers with the first position.
    #[test]
    fn idempotent_under_duplicate_and_reordered_delivery(
        n in 1usize..30,
        redelivery in proptest::collection::vec(0usize..30, 0..60),
        batch in 1usize..7,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mk = |i: usize| NewEvent::new(
            Timestamp::from_micros(i as i64),
            EventData::IdentityJoined(Joined {
                identity: format!("u{i}").as_str().into(),
                kind: IdentityKind::Human,
                attributes: Default::default(),
                owner: None,
            }),
        ).with_source("idp", &format!("e{i}"));
        let first: Vec<Outcome> = store.append((0..n).map(mk).collect()).unwrap();
        let positions: Vec<u64> = first.iter().map(|o| o.position().get()).collect();
        let again: Vec<usize> = redelivery.into_iter().map(|i| i % n).collect();
        for chunk in again.chunks(batch) {
            let out = store.append(chunk.iter().map(|&i| mk(i)).collect()).unwrap();
            for (o, &i) in out.iter().zip(chunk) {
                prop_assert_eq!(*o, Outcome::Duplicate(Position(positions[i])));
            }
        }
        prop_assert_eq!(store.head(), Position(n as u64));
    }
}
