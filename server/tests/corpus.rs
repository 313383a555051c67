//! The request bodies Okta and Entra ID send, as their documentation shows them, and the
//! little Google Workspace's client is documented to send
//! (`tests/corpus/*.json`), replayed in order against a live server: each answers with the
//! status its step expects and appends exactly the events it names.

mod common;
use common::Server;
use serde_json::Value;
use std::collections::BTreeMap;

fn fill(text: &str, ids: &BTreeMap<String, String>) -> String {
    ids.iter().fold(text.to_string(), |t, (k, v)| t.replace(&format!("{{{k}}}"), v))
}

fn replay(file: &str, min_steps: usize) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(file);
    let corpus: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let vendor = corpus["vendor"].as_str().unwrap();
    let s = Server::start();
    let mut ids = BTreeMap::new();
    let steps = corpus["steps"].as_array().unwrap();
    for step in steps {
        let name = step["name"].as_str().unwrap();
        let method = step["method"].as_str().unwrap();
        let target = fill(step["path"].as_str().unwrap(), &ids);
        let body = step.get("body").map(|b| serde_json::from_str::<Value>(&fill(&b.to_string(), &ids)).unwrap());
        let before = s.log().len();
        let r = s.call(method, &target, body);
        assert_eq!(r.status as u64, step["status"].as_u64().unwrap(), "{vendor}: {name}: {}", r.text);
        let appended: Vec<&str> = s.log()[before..].iter().map(|e| e.data.type_name()).collect::<Vec<_>>();
        let want: Vec<&str> = step["events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
        assert_eq!(appended, want, "{vendor}: {name}");
        for (k, v) in step.get("expect").and_then(Value::as_object).into_iter().flatten() {
            assert_eq!(&r.json[k], v, "{vendor}: {name}: {k} in {}", r.text);
        }
        if let Some(key) = step.get("capture").and_then(Value::as_str) {
            ids.insert(key.to_string(), r.json["id"].as_str().unwrap().to_string());
        }
    }
    assert!(steps.len() >= min_steps, "{vendor}: the corpus has {} steps", steps.len());
    // A password sent (Okta sends one on create) never reaches the log.
    for e in s.log() {
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("1mz050nq"), "{vendor}: a password is in the log: {text}");
    }
    // Every event the corpus wrote carries the request it came from, or shares its key.
    for e in s.log() {
        let key = e.source_event_id.clone().unwrap();
        assert!(e.raw.is_some() || !key.ends_with(":0"), "{vendor}: {key} has no raw request");
    }
}

#[test]
fn okta_corpus() {
    replay("okta.json", 15);
}

#[test]
fn entra_corpus() {
    replay("entra.json", 15);
}

/// Google publishes no request bodies of its client; its documented probe is replayed.
#[test]
fn google_workspace_probe() {
    replay("google.json", 3);
}
