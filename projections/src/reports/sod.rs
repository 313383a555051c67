//! Separation of duties over history: for each rule (a set of entitlements no one may
//! hold together), every maximal interval in which an identity held all of them at once,
//! as known at `R`, with the reasons behind each side and whether the records showed it
//! when it began.

use super::{end, ts};
use crate::error::QueryError;
use crate::fold::{fold_identity_with, FoldScope};
use crate::index::AccessIndex;
use crate::model::NEVER;
use crate::query::{AsOf, Groups, Held, Run, Via};
use serde::Serialize;
use tenure_engine::{Entitlement, Timestamp};

/// A toxic combination: entitlements no one may hold together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub name: String,
    pub entitlements: Vec<Entitlement>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    pub rule: String,
    pub identity: String,
    /// The overlap: every entitlement of the rule held throughout `[from, to)`.
    pub from: Timestamp,
    pub to: Option<Timestamp>,
    /// Per entitlement of the rule, every reason it was held during the overlap.
    pub sides: Vec<Held>,
    /// Whether the records, as they stood when the overlap began (the last position
    /// recorded by `from`), already showed all of it held at `from`.
    pub known_at_start: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sod {
    pub as_of: u64,
    pub rules: Vec<Rule>,
    pub violations: Vec<Violation>,
}

/// The maximal intervals of `ent`'s holding from its runs (runs that touch are merged).
fn holdings(runs: &[Run], ent: u32) -> Vec<(i64, i64)> {
    let mut mine: Vec<(i64, i64)> = runs.iter().filter(|r| r.ent == ent).map(|r| (r.from, r.to)).collect();
    mine.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (from, to) in mine {
        match out.last_mut() {
            Some(last) if last.1 == from => last.1 = to,
            _ => out.push((from, to)),
        }
    }
    out
}

/// The intersection of two sorted lists of disjoint intervals.
fn intersect(a: &[(i64, i64)], b: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let (from, to) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
        if from < to {
            out.push((from, to));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

impl AccessIndex {
    /// Every violation of `rules` overlapping `[from, to)` (all time without a window), as
    /// known at `as_of`.
    pub fn sod(&self, rules: &[Rule], window: Option<(Timestamp, Timestamp)>, as_of: AsOf) -> Result<Sod, QueryError> {
        self.check()?;
        let r = self.resolve(as_of);
        let (lo, hi) = window.map_or((i64::MIN, NEVER), |(a, b)| (a.as_micros(), b.as_micros()));
        let mut violations = Vec::new();
        let mut groups = Groups::new(self, r);
        for rule in rules {
            let Some(ents) = rule.entitlements.iter().map(|e| self.ent_id(e)).collect::<Option<Vec<u32>>>() else {
                continue; // an entitlement no event names: no one ever held it
            };
            if ents.is_empty() {
                continue;
            }
            // Those who could hold every one: the candidates of each, intersected.
            let mut who = self.candidates(&ents[..1])?;
            for e in &ents[1..] {
                let other = self.candidates(std::slice::from_ref(e))?;
                who.retain(|id| other.binary_search(id).is_ok());
            }
            for id in who {
                let fold = fold_identity_with(self, id, r, FoldScope::ACCESS)?;
                let runs = self.access_runs(&fold, &mut groups);
                let mut overlap = holdings(&runs, ents[0]);
                for &e in &ents[1..] {
                    overlap = intersect(&overlap, &holdings(&runs, e));
                }
                for (from, to) in overlap.into_iter().filter(|&(from, to)| from < hi && lo < to) {
                    let sides = ents
                        .iter()
                        .map(|&e| {
                            let mut via: Vec<Via> = runs
                                .iter()
                                .filter(|run| run.ent == e && run.from < to && from < run.to)
                                .flat_map(|run| run.via.iter().cloned())
                                .collect();
                            via.sort();
                            via.dedup();
                            let ent = self.ents.get(e);
                            Held { resource: ent.resource.to_string(), permission: ent.permission.to_string(), via }
                        })
                        .collect();
                    // As the records stood when it began.
                    let then = self.position_at_recorded_micros(from).min(r);
                    let fold_then = fold_identity_with(self, id, then, FoldScope::access_at(from))?;
                    let held_then = self.access_of(&fold_then, from, &mut Groups::new(self, then), Some(&ents));
                    violations.push(Violation {
                        rule: rule.name.clone(),
                        identity: self.identity_name(id)?.to_string(),
                        from: ts(from),
                        to: end(to),
                        sides,
                        known_at_start: held_then.len() == ents.len(),
                    });
                }
            }
        }
        violations.sort_by(|a, b| (&a.rule, a.from, &a.identity).cmp(&(&b.rule, b.from, &b.identity)));
        Ok(Sod { as_of: r, rules: rules.to_vec(), violations })
    }
}
