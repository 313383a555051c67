//! Property tests of the event model and the log. proptest prints the failing seed and
//! case; `PROPTEST_CASES` scales the run.

use proptest::prelude::*;
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

fn data() -> impl Strategy<Value = EventData> {
    let id = || name().prop_map(tenure_engine::IdentityId);
    let grp = || name().prop_map(tenure_engine::GroupId);
    prop_oneof![
        (id(), attrs(), proptest::option::of(id())).prop_map(|(identity, attributes, owner)| {
            let kind = if owner.is_some() { IdentityKind::Service } else { IdentityKind::Human };
            EventData::IdentityJoined(Joined { identity, kind, attributes, owner })
        }),
        (id(), attrs()).prop_map(|(identity, attributes)| EventData::IdentityMoved(Moved { identity, attributes })),
        (id(), proptest::option::of(".{0,10}"))
            .prop_map(|(identity, reason)| EventData::IdentityLeft(StatusChange { identity, reason })),
        (id(), proptest::option::of(attrs()))
            .prop_map(|(identity, attributes)| EventData::IdentityRejoined(Rejoined { identity, attributes })),
        (id(), entitlement(), proptest::option::of(time()), proptest::option::of(name())).prop_map(
            |(identity, entitlement, expires_at, approver)| EventData::AccessGranted(Granted {
                identity,
                entitlement,
                expires_at,
                justification: None,
                approver
            })
        ),
        (grp(), entitlement())
            .prop_map(|(group, entitlement)| EventData::GroupAccessRevoked(GroupAccess { group, entitlement })),
        (grp(), id()).prop_map(|(group, identity)| EventData::GroupMemberAdded(Membership { group, identity })),
        (id(), name(), proptest::option::of(time())).prop_map(|(identity, c, expires_at)| {
            EventData::CredentialRotated(Credential {
                identity,
                credential: tenure_engine::CredentialId(c),
                expires_at,
            })
        }),
        (1u64..1000, ".{1,10}")
            .prop_map(|(p, reason)| EventData::EventRetracted(Retracted { position: Position(p), reason })),
    ]
}

fn new_event() -> impl Strategy<Value = NewEvent> {
    (data(), time(), proptest::option::of((name(), name())), proptest::option::of(name())).prop_map(
        |(data, effective_at, key, actor)| {
            let mut e = NewEvent::new(effective_at, data);
            if let Some((s, k)) = key {
                e = e.with_source(&s, &k);
            }
            e.actor = actor;
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
            data: event.data.clone(),
        };
        prop_assert_eq!(decode_event(&encode_event(&recorded)).unwrap(), recorded);
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
        prop_assert_eq!(store.head(), n as u64);
    }
}
