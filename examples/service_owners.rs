//! A user-written projection: active service accounts per owner.
//!
//! ```text
//! cargo run --example service_owners                 # builds a small demo store first
//! cargo run --example service_owners -- tenure-demo  # or reads an existing store
//! ```
//!
//! It implements `Projection`, and the `Runner` feeds it from its checkpoint: run it twice
//! and the second run applies only what was appended in between.

use std::collections::{BTreeMap, BTreeSet};
use tenure::engine::{Event, EventData, IdentityKind, Position, Store};
use tenure::projections::{Checkpoints, Projection, Runner};

/// Owner → the active services they own; plus each service's owner and whether it is active.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct ServiceOwners {
    owner_of: BTreeMap<String, String>,
    active: BTreeSet<String>,
    applied: u64,
}

impl ServiceOwners {
    fn by_owner(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (service, owner) in &self.owner_of {
            if self.active.contains(service) {
                out.entry(owner.as_str()).or_default().push(service.as_str());
            }
        }
        out
    }
}

impl Projection for ServiceOwners {
    fn name(&self) -> &str {
        "example-service-owners"
    }

    // Note: this simple read model follows the log in recording order; it does not apply
    // the effective-time fold of docs/semantics.md (the built-in AccessIndex does).
    fn apply(&mut self, event: &Event) {
        self.applied += 1;
        match &event.data {
            EventData::IdentityJoined(j) if j.kind == IdentityKind::Service => {
                if let Some(owner) = &j.owner {
                    self.owner_of.insert(j.identity.0.clone(), owner.0.clone());
                    self.active.insert(j.identity.0.clone());
                }
            }
            EventData::IdentityOwnerChanged(o) => {
                self.owner_of.insert(o.identity.0.clone(), o.owner.0.clone());
            }
            EventData::IdentityLeft(l) => {
                self.active.remove(l.identity.as_str());
            }
            EventData::IdentityRejoined(r) if self.owner_of.contains_key(r.identity.as_str()) => {
                self.active.insert(r.identity.0.clone());
            }
            _ => {}
        }
    }

    fn save(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    type LoadError = serde_json::Error;

    fn load(&mut self, bytes: &[u8]) -> Result<(), serde_json::Error> {
        *self = serde_json::from_slice(bytes)?;
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "tenure-example".to_string());
    let store = Store::open(&dir)?;
    if store.head() == Position::ZERO {
        println!("{dir} is empty: appending a synthetic organisation of 2,000 identities");
        let mut events = vec![];
        tenure_gen::generate(&tenure_gen::OrgConfig::new(2000, 3, 7), |e| events.push(e));
        for chunk in events.chunks(10_000) {
            store.append(chunk.to_vec())?;
        }
    }
    let checkpoints = Checkpoints::open(std::path::Path::new(&dir).join("projections"))?;
    let mut runner = Runner::new(&store, &checkpoints, ServiceOwners::default())?;
    let from = runner.position();
    runner.catch_up()?;
    println!("applied positions {}..{} (checkpoint was {from})", from.next(), runner.position());
    let owners = runner.projection().by_owner();
    let mut top: Vec<_> = owners.iter().collect();
    top.sort_by_key(|(o, s)| (std::cmp::Reverse(s.len()), *o));
    println!("{} owners of active service accounts; the busiest:", owners.len());
    for (owner, services) in top.iter().take(5) {
        println!("  {owner:<10} {}", services.join(", "));
    }
    Ok(())
}
