//! `shared/scenarios/` (copied to `tests/scenarios/`): each query of each scenario,
//! answered by the index and by the naive fold, against the expected answer.

mod common;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use tenure::engine::{Event, Position, Store, Timestamp};
use tenure::projections::{AsOf, Target};

fn canonical_vias(v: &Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|x| x.to_string()).collect()
}

/// Entitlements or holders as a set of (identity?, resource, permission, via-set) strings,
/// so that order does not matter.
fn canonical(items: &Value, with_identity: bool) -> BTreeSet<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let id = if with_identity { i["identity"].as_str().unwrap().to_string() } else { String::new() };
            format!("{id}|{}|{}|{:?}", i["resource"], i["permission"], canonical_vias(&i["via"]))
        })
        .collect()
}

struct Query {
    command: String,
    subject: String,
    at: Timestamp,
    as_of: AsOf,
}

fn parse_query(q: &str) -> Query {
    let words: Vec<&str> = q.split_whitespace().collect();
    assert_eq!(words[0], "tenure");
    let mut at = None;
    let mut as_of = AsOf::Head;
    let mut i = 3;
    while i < words.len() {
        match words[i] {
            "--at" => {
                at = Some(Timestamp::parse_lenient(words[i + 1]).unwrap());
                i += 2;
            }
            "--as-of" => {
                as_of = AsOf::Position(words[i + 1].parse().unwrap());
                i += 2;
            }
            "--json" => i += 1,
            other => panic!("unexpected word {other} in {q}"),
        }
    }
    Query { command: words[1].to_string(), subject: words[2].to_string(), at: at.unwrap(), as_of }
}

fn oracle_answer(log: &[Event], q: &Query, r: u64) -> Value {
    use common::oracle::{self, OVia};
    let via_json = |v: &Vec<OVia>| -> Vec<Value> {
        v.iter()
            .map(|x| match x {
                OVia::Direct(g) => json!({"kind": "direct", "grant": g}),
                OVia::Group(g, m, gr) => json!({"kind": "group", "group": g, "membership": m, "grant": gr}),
            })
            .collect()
    };
    let t = q.at.as_micros();
    match q.command.as_str() {
        "access" => {
            let ents: Vec<Value> = oracle::access(log, &q.subject, t, r)
                .iter()
                .map(|(e, v)| json!({"resource": e.resource, "permission": e.permission, "via": via_json(v)}))
                .collect();
            json!({"identity": q.subject, "entitlements": ents})
        }
        "who" => {
            let target = Target::parse(&q.subject).unwrap();
            let pred = |e: &tenure::Entitlement| match &target {
                Target::Entitlement(x) => x == e,
                Target::Resource(r) => &e.resource == r,
            };
            let holders: Vec<Value> = oracle::holders(log, pred, t, r)
                .iter()
                .map(|((id, e), v)| {
                    json!({"identity": id, "resource": e.resource, "permission": e.permission, "via": via_json(v)})
                })
                .collect();
            json!({"resource": q.subject, "holders": holders})
        }
        other => panic!("unknown command {other}"),
    }
}

fn run(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/");
    let events = std::fs::read_to_string(format!("{root}{name}.jsonl")).unwrap();
    common::ingest_jsonl(&store, &events);
    let index = common::build_index(&store);
    let log = store.read_range(Position(1), store.head()).unwrap();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{root}{name}.expected.json")).unwrap()).unwrap();
    for case in expected.as_array().unwrap() {
        let text = case["query"].as_str().unwrap();
        let q = parse_query(text);
        let want = &case["answer"];
        let r = index.resolve(q.as_of);
        let (got, key, with_id) = match q.command.as_str() {
            "access" => {
                let held = index.access(&q.subject, q.at, q.as_of).unwrap();
                (serde_json::to_value(held).unwrap(), "entitlements", false)
            }
            "who" => {
                let target = Target::parse(&q.subject).unwrap();
                (serde_json::to_value(index.holders(&target, q.at, q.as_of).unwrap()).unwrap(), "holders", true)
            }
            other => panic!("unknown command {other}"),
        };
        assert_eq!(canonical(&got, with_id), canonical(&want[key], with_id), "{name}: index answer to `{text}`");
        let naive = oracle_answer(&log, &q, r);
        assert_eq!(canonical(&naive[key], with_id), canonical(&want[key], with_id), "{name}: naive fold for `{text}`");
    }
}

#[test]
fn scenario_01_group_and_expiry() {
    run("01-group-and-expiry");
}

#[test]
fn scenario_02_backdated_leave_and_retraction() {
    run("02-backdated-leave-and-retraction");
}

#[test]
fn scenario_03_renewal_group_deletion_service() {
    run("03-renewal-group-deletion-service");
}

#[test]
fn scenario_03_flags_the_grant_to_a_leaver_and_stores_the_redelivery_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/");
    common::ingest_jsonl(
        &store,
        &std::fs::read_to_string(format!("{root}03-renewal-group-deletion-service.jsonl")).unwrap(),
    );
    assert_eq!(store.head(), Position(13), "the re-delivered it/7 is stored once");
    let index = common::build_index(&store);
    let anomalies = index.anomalies(AsOf::Head).unwrap();
    assert!(anomalies.iter().any(|a| a.position == 13 && a.kind == tenure::projections::AnomalyKind::NotJoined));
    // The service keeps its owner on record after the owner leaves.
    let profile = index.profile("ci-bot", Timestamp::parse_lenient("2024-03-20").unwrap(), AsOf::Head).unwrap();
    assert_eq!(profile.owner.as_deref(), Some("dan"));
    let dan = index.profile("dan", Timestamp::parse_lenient("2024-03-20").unwrap(), AsOf::Head).unwrap();
    assert_eq!(dan.state, "left");
    assert_eq!(dan.owns.len(), 1);
}
