//! The index against the naive fold: random valid streams (backdated events, duplicate
//! deliveries, retractions, expiries, suspensions, rehires, group deletions), every query
//! at random `T` and `R`, provenance included.
//!
//! The run prints its seed; `TENURE_SEED=<seed>` replays it, `PROPTEST_CASES` scales it.

mod common;

use common::oracle::{self, OVia};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::collections::BTreeMap;
use tenure::engine::event::*;
use tenure::engine::{Entitlement, Event, NewEvent, Position, Store, Timestamp};
use tenure::projections::{AccessIndex, AsOf, Target, Via};

const IDS: [&str; 5] = ["ann", "bo", "cy", "di", "svc"];
const GROUPS: [&str; 2] = ["eng", "fin"];
const RESOURCES: [&str; 2] = ["db", "vault"];
const PERMS: [&str; 2] = ["read", "admin"];
const DAY: i64 = 86_400_000_000;

/// Day `d` after 2024-01-01; every third day at 00:00:00.123456 rather than midnight, so
/// that the index file stores times of both forms (whole seconds and µs).
fn day(d: i64) -> Timestamp {
    let odd = if d.rem_euclid(3) == 1 { 123_456 } else { 0 };
    Timestamp::from_micros(1_704_067_200_000_000 + d * DAY + odd)
}

#[derive(Clone, Debug)]
enum Op {
    Join(usize),
    Suspend(usize),
    Reactivate(usize),
    Leave(usize),
    Rejoin(usize),
    Move(usize, u8),
    Owner(usize, usize),
    Grant(usize, usize, usize, Option<i64>),
    Revoke(usize, usize, usize),
    Create(usize),
    Delete(usize),
    Add(usize, usize),
    Remove(usize, usize),
    GGrant(usize, usize, usize),
    GRevoke(usize, usize, usize),
    Issue(usize, u8, Option<i64>),
    Rotate(usize, u8, Option<i64>),
    Retract(usize),
    Review(usize, usize, usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let i = || 0..IDS.len();
    let g = || 0..GROUPS.len();
    let r = || 0..RESOURCES.len();
    let p = || 0..PERMS.len();
    prop_oneof![
        2 => i().prop_map(Op::Join),
        2 => i().prop_map(Op::Suspend),
        2 => i().prop_map(Op::Reactivate),
        2 => i().prop_map(Op::Leave),
        2 => i().prop_map(Op::Rejoin),
        1 => (i(), 0u8..3).prop_map(|(a, b)| Op::Move(a, b)),
        1 => (i(), i()).prop_map(|(a, b)| Op::Owner(a, b)),
        6 => (i(), r(), p(), proptest::option::of(-2i64..8)).prop_map(|(a, b, c, d)| Op::Grant(a, b, c, d)),
        3 => (i(), r(), p()).prop_map(|(a, b, c)| Op::Revoke(a, b, c)),
        3 => g().prop_map(Op::Create),
        3 => g().prop_map(Op::Delete),
        4 => (g(), i()).prop_map(|(a, b)| Op::Add(a, b)),
        2 => (g(), i()).prop_map(|(a, b)| Op::Remove(a, b)),
        3 => (g(), r(), p()).prop_map(|(a, b, c)| Op::GGrant(a, b, c)),
        1 => (g(), r(), p()).prop_map(|(a, b, c)| Op::GRevoke(a, b, c)),
        2 => (i(), 0u8..2, proptest::option::of(-2i64..10)).prop_map(|(a, b, c)| Op::Issue(a, b, c)),
        1 => (i(), 0u8..2, proptest::option::of(-2i64..10)).prop_map(|(a, b, c)| Op::Rotate(a, b, c)),
        2 => (0usize..1000).prop_map(Op::Retract),
        2 => (i(), r(), p(), proptest::bool::ANY).prop_map(|(a, b, c, d)| Op::Review(a, b, c, d)),
    ]
}

/// (op, effective day, key reuse): a key reuse re-delivers an earlier event's key.
fn stream() -> impl Strategy<Value = Vec<(Op, i64, Option<usize>)>> {
    proptest::collection::vec((op(), 0i64..30, proptest::option::weighted(0.05, 0usize..1000)), 1..80)
}

fn ent(r: usize, p: usize) -> Entitlement {
    Entitlement::new(RESOURCES[r], PERMS[p])
}

fn to_event(op: &Op, eff: Timestamp, head: u64) -> Option<NewEvent> {
    let id = |i: usize| tenure::engine::IdentityId::from(IDS[i]);
    let gid = |g: usize| tenure::engine::GroupId::from(GROUPS[g]);
    let status = |i| StatusChange { identity: id(i), reason: None };
    let data = match *op {
        Op::Join(i) => EventData::IdentityJoined(Joined {
            identity: id(i),
            kind: if i == 4 { IdentityKind::Service } else { IdentityKind::Human },
            attributes: [("dept".to_string(), format!("d{i}"))].into(),
            owner: (i == 4).then(|| id(0)),
        }),
        Op::Suspend(i) => EventData::IdentitySuspended(status(i)),
        Op::Reactivate(i) => EventData::IdentityReactivated(status(i)),
        Op::Leave(i) => EventData::IdentityLeft(status(i)),
        Op::Rejoin(i) => EventData::IdentityRejoined(Rejoined {
            identity: id(i),
            attributes: Some([("rehired".to_string(), "yes".to_string())].into()),
        }),
        Op::Move(i, d) => EventData::IdentityMoved(Moved {
            identity: id(i),
            attributes: [("dept".to_string(), format!("m{d}"))].into(),
        }),
        Op::Owner(i, o) if i != o => EventData::IdentityOwnerChanged(OwnerChanged { identity: id(i), owner: id(o) }),
        Op::Owner(..) => return None,
        Op::Grant(i, r, p, exp) => EventData::AccessGranted(Granted {
            identity: id(i),
            entitlement: ent(r, p),
            expires_at: exp.map(|d| Timestamp::from_micros(eff.as_micros() + d * DAY)),
            justification: None,
            approver: None,
        }),
        Op::Revoke(i, r, p) => {
            EventData::AccessRevoked(Revoked { identity: id(i), entitlement: ent(r, p), reason: None })
        }
        Op::Create(g) => {
            EventData::GroupCreated(GroupLifecycle { group: gid(g), display_name: None, external_id: None })
        }
        Op::Delete(g) => {
            EventData::GroupDeleted(GroupLifecycle { group: gid(g), display_name: None, external_id: None })
        }
        Op::Add(g, i) => EventData::GroupMemberAdded(Membership { group: gid(g), identity: id(i) }),
        Op::Remove(g, i) => EventData::GroupMemberRemoved(Membership { group: gid(g), identity: id(i) }),
        Op::GGrant(g, r, p) => EventData::GroupAccessGranted(GroupAccess { group: gid(g), entitlement: ent(r, p) }),
        Op::GRevoke(g, r, p) => EventData::GroupAccessRevoked(GroupAccess { group: gid(g), entitlement: ent(r, p) }),
        Op::Issue(i, c, exp) | Op::Rotate(i, c, exp) => {
            let cred = Credential {
                identity: id(i),
                credential: format!("key{c}").as_str().into(),
                expires_at: exp.map(|d| Timestamp::from_micros(eff.as_micros() + d * DAY)),
            };
            if matches!(op, Op::Issue(..)) {
                EventData::CredentialIssued(cred)
            } else {
                EventData::CredentialRotated(cred)
            }
        }
        Op::Review(i, r, p, keep) => EventData::AccessReviewed(tenure::engine::event::Reviewed {
            identity: id(i),
            entitlement: ent(r, p),
            reviewer: "rev".into(),
            decision: if keep { Decision::Keep } else { Decision::Revoke },
            comment: None,
        }),
        Op::Retract(p) => {
            if head == 0 {
                return None;
            }
            EventData::EventRetracted(Retracted { position: Position(1 + (p as u64 % head)), reason: "error".into() })
        }
    };
    Some(NewEvent::new(eff, data))
}

/// Builds a store from a generated stream: every identity joined and every group created
/// first (in position order; their effective days are random too, so many events come
/// "before" them), then the stream. Events the engine refuses (a retraction of a
/// retraction) are dropped, as a source would see them refused.
fn build(stream: &[(Op, i64, Option<usize>)]) -> (tempfile::TempDir, Vec<Event>) {
    let dir = tempfile::tempdir().unwrap();
    // The engine's clock follows the stream: each event is recorded about when it takes
    // effect (or later: record times never go back), so that reports that read record
    // times (lags, known since, known at the start) meet late, early and timely records.
    let clock = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(day(0).as_micros()));
    let reading = clock.clone();
    let options = tenure::engine::StoreOptions {
        clock: Box::new(move || Timestamp::from_micros(reading.load(std::sync::atomic::Ordering::SeqCst))),
        ..Default::default()
    };
    let store = Store::open_with(dir.path(), options).unwrap();
    let mut n = 0usize;
    let mut key = |reuse: Option<usize>| {
        n += 1;
        match reuse {
            Some(k) if k < n - 1 => format!("e{}", k),
            _ => format!("e{}", n - 1),
        }
    };
    let mut setup = vec![];
    for (i, _) in IDS.iter().enumerate() {
        setup.push(to_event(&Op::Join(i), day(i as i64 * 3), 0).unwrap().with_source("gen", &key(None)));
    }
    for (g, _) in GROUPS.iter().enumerate() {
        setup.push(to_event(&Op::Create(g), day(g as i64 * 5), 0).unwrap().with_source("gen", &key(None)));
    }
    store.append(setup).unwrap();
    for (n, (op, d, reuse)) in stream.iter().enumerate() {
        let Some(e) = to_event(op, day(*d), store.head().get()) else { continue };
        // Recorded a day early (a leave entered ahead of its date), at once, or a day late.
        let delay = (*d + n as i64) % 3 - 1;
        clock.store(day(*d + delay).as_micros(), std::sync::atomic::Ordering::SeqCst);
        let e = e.with_source("gen", &key(*reuse));
        match store.append(vec![e]) {
            Ok(_) => {}
            Err(tenure::engine::Error::Rejected { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let log = store.read_range(Position(1), store.head()).unwrap();
    (dir, log)
}

fn from_index(vias: &[Via]) -> Vec<OVia> {
    let mut out: Vec<OVia> = vias
        .iter()
        .map(|v| match v {
            Via::Direct { grant } => OVia::Direct(*grant),
            Via::Group { group, membership, grant } => OVia::Group(group.clone(), *membership, *grant),
        })
        .collect();
    out.sort();
    out
}

fn check(stream: &[(Op, i64, Option<usize>)], probes: &[(i64, u64, i64)]) -> Result<(), TestCaseError> {
    let (dir, log) = build(stream);
    let mut index = AccessIndex::new();
    for e in &log {
        index.apply(e);
    }
    let head = log.len() as u64;
    // Rebuilding from a snapshot answers the same; so does an index made of a frozen
    // snapshot of the first `split` events and a tail of the rest applied after it (the
    // shape of a reopened store), backdated events and retractions crossing the boundary.
    let restored = AccessIndex::from_bytes(&index.to_bytes()).unwrap();
    let split = probes.first().map_or(0, |p| p.1 % (head + 1)) as usize;
    let mut early = AccessIndex::new();
    for e in &log[..split] {
        early.apply(e);
    }
    let mut mixed = AccessIndex::from_bytes(&early.to_bytes()).unwrap();
    for e in &log[split..] {
        mixed.apply(e);
    }
    // Rewriting the file from a file and a tail (the runs of identities the tail leaves
    // alone carried over, the others folded) writes the bytes a build from the log writes.
    prop_assert!(
        mixed.to_bytes() == index.to_bytes(),
        "the file rewritten after a tail from position {} differs",
        split
    );
    let all = [&index, &restored, &mixed];
    for &(t_day, r_raw, len) in probes {
        let t = day(t_day);
        let r = r_raw % (head + 1);
        let as_of = AsOf::Position(r);
        for id in IDS {
            let want = oracle::access(&log, id, t.as_micros(), r);
            for idx in all {
                let got: BTreeMap<Entitlement, Vec<OVia>> = idx
                    .access(id, t, as_of)
                    .unwrap()
                    .into_iter()
                    .map(|h| (Entitlement::new(&h.resource, &h.permission), from_index(&h.via)))
                    .collect();
                prop_assert_eq!(&got, &want, "access {} at day {} as of {} (split {})", id, t_day, r, split);
            }
            let w = oracle::world(&log, r, t.as_micros());
            let o = w.idents.get(id).cloned().unwrap_or_default();
            let o_state = match o.state {
                None => "absent",
                Some(oracle::St::Active) => "active",
                Some(oracle::St::Suspended) => "suspended",
                Some(oracle::St::Left) => "left",
            };
            for idx in all {
                let p = idx.profile(id, t, as_of).unwrap();
                prop_assert_eq!(p.state.as_str(), o_state, "state of {} at day {} as of {}", id, t_day, r);
                prop_assert_eq!(&p.attributes, &o.attributes, "attributes of {} at day {} as of {}", id, t_day, r);
                prop_assert_eq!(&p.owner, &o.owner, "owner of {} at day {} as of {}", id, t_day, r);
            }
        }
        let targets: Vec<Target> = RESOURCES
            .iter()
            .map(|r| Target::Resource(r.to_string()))
            .chain((0..2).flat_map(|r| (0..2).map(move |p| Target::Entitlement(ent(r, p)))))
            .collect();
        for target in &targets {
            let pred = |e: &Entitlement| match target {
                Target::Entitlement(x) => x == e,
                Target::Resource(r) => &e.resource == r,
            };
            let to_map = |hs: Vec<tenure::projections::Holder>| -> BTreeMap<(String, Entitlement), Vec<OVia>> {
                hs.into_iter()
                    .map(|h| ((h.identity, Entitlement::new(&h.resource, &h.permission)), from_index(&h.via)))
                    .collect()
            };
            let want = oracle::holders(&log, pred, t.as_micros(), r);
            let t2 = day(t_day + 1 + len);
            let want_during = oracle::holders_during(&log, pred, t.as_micros(), t2.as_micros(), r);
            // As known at the head, the frozen file's runs answer for what the tail leaves alone.
            let want_head = oracle::holders(&log, pred, t.as_micros(), head);
            let want_during_head = oracle::holders_during(&log, pred, t.as_micros(), t2.as_micros(), head);
            for idx in all {
                let got = to_map(idx.holders_during(target, t, t2, AsOf::Head).unwrap());
                prop_assert_eq!(
                    &got,
                    &want_during_head,
                    "who {} during day {}..{} at the head",
                    target,
                    t_day,
                    t_day + 1 + len
                );
                let got = to_map(idx.holders(target, t, AsOf::Head).unwrap());
                prop_assert_eq!(&got, &want_head, "who {} at day {} at the head (split {})", target, t_day, split);
                let got = to_map(idx.holders(target, t, as_of).unwrap());
                prop_assert_eq!(&got, &want, "who {} at day {} as of {} (split {})", target, t_day, r, split);
                let got = to_map(idx.holders_during(target, t, t2, as_of).unwrap());
                prop_assert_eq!(
                    &got,
                    &want_during,
                    "who {} during day {}..{} as of {}",
                    target,
                    t_day,
                    t_day + 1 + len,
                    r
                );
            }
        }
        let want: std::collections::BTreeSet<(u64, String)> =
            oracle::anomalies(&log, r).into_iter().map(|(p, k)| (p, k.to_string())).collect();
        for idx in all {
            let got: std::collections::BTreeSet<(u64, String)> = idx
                .anomalies(as_of)
                .unwrap()
                .into_iter()
                .map(|a| (a.position, serde_json::to_value(a.kind).unwrap().as_str().unwrap().to_string()))
                .collect();
            prop_assert_eq!(&got, &want, "anomalies as of {} (split {})", r, split);
        }
        // The reports: leavers (whole and in a window) and non-human identities.
        let store = Store::open_read_only(dir.path()).unwrap();
        let to_map = |held: &[tenure::projections::Held]| -> BTreeMap<Entitlement, Vec<OVia>> {
            held.iter().map(|h| (Entitlement::new(&h.resource, &h.permission), from_index(&h.via))).collect()
        };
        let want = oracle::leavers(&log, r);
        let t2 = day(t_day + 1 + len);
        let want_window: Vec<_> =
            want.iter().filter(|x| t.as_micros() <= x.2 && x.2 < t2.as_micros()).cloned().collect();
        for idx in all {
            for (window, want) in [(None, &want), (Some((t, t2)), &want_window)] {
                let report = idx.leavers(window, as_of, &store).unwrap();
                let got: Vec<oracle::Leave> = report
                    .rows
                    .iter()
                    .map(|row| {
                        let after = row
                            .believed_after
                            .iter()
                            .map(|b| (Entitlement::new(&b.resource, &b.permission), from_index(&b.via)))
                            .collect();
                        (
                            row.identity.clone(),
                            row.position,
                            row.effective_at.as_micros(),
                            row.recorded_at.as_micros(),
                            to_map(&row.held_before),
                            after,
                        )
                    })
                    .collect();
                prop_assert_eq!(&got, want, "leavers as of {} in {:?} (split {})", r, window, split);
                prop_assert_eq!(report.overall.map_or(0, |o| o.count), want.len());
            }
            let max_age = len * DAY;
            let report = idx.nhi(t, as_of, max_age, max_age).unwrap();
            let got: Vec<oracle::Orphan> = report
                .services
                .iter()
                .map(|s| {
                    (
                        s.service.clone(),
                        s.owner.clone(),
                        s.owner_state.as_deref().map(|x| match x {
                            "absent" => "absent",
                            "suspended" => "suspended",
                            _ => "left",
                        }),
                        s.orphaned_since.map(|x| x.as_micros()),
                        s.ended_by,
                    )
                })
                .collect();
            let want_services = oracle::orphaned_services(&log, t.as_micros(), r);
            prop_assert_eq!(&got, &want_services, "nhi services at day {} as of {} (split {})", t_day, r, split);
            for s in &report.services {
                let known = s.ended_by.map(|p| log[p as usize - 1].recorded_at);
                prop_assert_eq!(s.known_since, known);
            }
            let got: std::collections::BTreeSet<(String, String, &'static str, u64)> = report
                .credentials
                .iter()
                .map(|c| (c.identity.clone(), c.credential.clone(), c.finding, c.issued_by))
                .collect();
            let want_creds = oracle::credential_findings(&log, t.as_micros(), r, max_age);
            prop_assert_eq!(&got, &want_creds, "nhi credentials at day {} as of {} (split {})", t_day, r, split);
        }
        // The access review of each resource: holders, since when, the latest decision, flags.
        for resource in RESOURCES {
            let want = oracle::review(&log, resource, t.as_micros(), r);
            for idx in all {
                let review = idx.access_review(resource, t, as_of, &store).unwrap();
                let got: Vec<oracle::ReviewLine> = review
                    .rows
                    .iter()
                    .map(|row| {
                        (
                            row.identity.clone(),
                            Entitlement::new(&row.resource, &row.permission),
                            from_index(&row.via),
                            row.since.as_micros(),
                            row.last_review.as_ref().map(|d| d.position),
                            row.flags.clone(),
                        )
                    })
                    .collect();
                prop_assert_eq!(&got, &want, "review of {} at day {} as of {} (split {})", resource, t_day, r, split);
            }
        }
        // Separation of duties: two sets, over all time and in a window.
        let sets = [vec![ent(0, 0), ent(1, 1)], vec![ent(0, 0), ent(0, 1)]];
        let rules: Vec<tenure::projections::reports::Rule> = sets
            .iter()
            .enumerate()
            .map(|(i, set)| tenure::projections::reports::Rule { name: format!("rule{i}"), entitlements: set.clone() })
            .collect();
        for idx in all {
            for window in [None, Some((t, t2))] {
                let report = idx.sod(&rules, window, as_of).unwrap();
                for (i, set) in sets.iter().enumerate() {
                    let got: Vec<oracle::Overlap> = report
                        .violations
                        .iter()
                        .filter(|v| v.rule == format!("rule{i}"))
                        .map(|v| {
                            let sides = v
                                .sides
                                .iter()
                                .map(|h| (Entitlement::new(&h.resource, &h.permission), from_index(&h.via)))
                                .collect();
                            (
                                v.identity.clone(),
                                v.from.as_micros(),
                                v.to.map(|x| x.as_micros()),
                                sides,
                                v.known_at_start,
                            )
                        })
                        .collect();
                    let mut want: Vec<oracle::Overlap> = oracle::sod(&log, set, r)
                        .into_iter()
                        .filter(|o| {
                            window.is_none_or(|(a, b)| o.1 < b.as_micros() && o.2.is_none_or(|e| a.as_micros() < e))
                        })
                        .collect();
                    want.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
                    prop_assert_eq!(&got, &want, "sod {:?} as of {} in {:?} (split {})", set, r, window, split);
                }
            }
        }
        // As known at a recorded time: the same position either way.
        for idx in all {
            prop_assert_eq!(idx.position_at_recorded(Timestamp::MAX), Position(head));
        }
    }
    Ok(())
}

#[test]
fn index_agrees_with_the_naive_fold() {
    let seed: u64 = std::env::var("TENURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
    });
    println!("equivalence seed {seed} (replay with TENURE_SEED={seed})");
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(96);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let probes = proptest::collection::vec((-2i64..36, 0u64..1000, 0i64..6), 4);
    let result = runner.run(&(stream(), probes), |(s, p)| check(&s, &p));
    if let Err(e) = result {
        panic!("seed {seed}: {e}");
    }
}

/// A time-bound direct grant that ran out while a group kept the access is flagged
/// `held_past_expiry`, and the review still agrees with the naive fold (random streams
/// rarely build this case, so it is built here).
#[test]
fn a_grant_that_ran_out_under_a_group_is_flagged() {
    let stream = vec![
        (Op::Add(0, 1), 4, None),
        (Op::GGrant(0, 0, 0), 4, None),
        (Op::Grant(1, 0, 0, Some(3)), 5, None),
        // A grant that ran out with nothing behind it: no access, no row.
        (Op::Grant(2, 0, 0, Some(2)), 7, None),
        // A grant renewed before it ran out: not flagged.
        (Op::Add(0, 3), 4, None),
        (Op::Grant(3, 0, 0, Some(3)), 5, None),
        (Op::Grant(3, 0, 0, None), 6, None),
    ];
    // Before the expiry, after it, and as known before the grant was recorded.
    let probes = [(6, 1000, 1), (10, 1000, 1), (10, 11, 1)];
    check(&stream, &probes).unwrap();
    let (dir, log) = build(&stream);
    let store = Store::open(dir.path()).unwrap();
    let mut index = AccessIndex::new();
    for e in &log {
        index.apply(e);
    }
    let flagged = |t_day: i64| -> Vec<String> {
        let review = index.access_review("db", day(t_day), AsOf::Head, &store).unwrap();
        review.rows.iter().filter(|r| r.flags.contains(&"held_past_expiry")).map(|r| r.identity.clone()).collect()
    };
    assert_eq!(flagged(6), Vec::<String>::new());
    assert_eq!(flagged(10), vec!["bo".to_string()]);
}

/// A group deleted by an event recorded after R: as known at R its member still holds what
/// it granted after the deletion's date. An index file made as known later (its runs say
/// the access ended) must not answer for that member as known at R: the file's runs are
/// used as of R only for identities nothing recorded since touches (random streams rarely
/// build this case, so it is built here).
#[test]
fn a_group_deleted_after_r_still_grants_as_known_at_r() {
    let stream = vec![(Op::Add(0, 1), 4, None), (Op::GGrant(0, 0, 0), 4, None), (Op::Delete(0), 6, None)];
    let (_dir, log) = build(&stream);
    let r = log.len() as u64 - 1; // just before the deletion was recorded
    check(&stream, &[(10, r, 1), (10, r + 1, 1), (5, r, 1)]).unwrap();
    let mut index = AccessIndex::new();
    for e in &log {
        index.apply(e);
    }
    let frozen = AccessIndex::from_bytes(&index.to_bytes()).unwrap();
    let db_read = Target::Entitlement(ent(0, 0));
    let who = |as_of| -> Vec<String> {
        frozen.holders(&db_read, day(10), as_of).unwrap().into_iter().map(|h| h.identity).collect()
    };
    assert_eq!(who(AsOf::Position(r)), vec!["bo".to_string()]);
    assert_eq!(who(AsOf::Head), Vec::<String>::new());
}
