//! A directory snapshot for reconciliation: SCIM ListResponses of Users and Groups as Okta
//! and Entra ID return them, read into `DirUser`s (users with their groups).

use crate::model::Draft;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use tenure_projections::reports::DirUser;

/// Gathers users and groups from any number of pages, then joins them.
#[derive(Default)]
pub struct Snapshot {
    users: Vec<DirUser>,
    /// A user's index by its directory `id`.
    ids: BTreeMap<String, usize>,
    /// (group name, member directory ids)
    groups: Vec<(String, Vec<String>)>,
    groups_known: bool,
}

fn is_group(r: &Value) -> bool {
    let schemas: Vec<&str> =
        r["schemas"].as_array().map(|s| s.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    schemas.iter().any(|s| s.ends_with(":Group"))
        || (r.get("userName").is_none() && r.get("displayName").is_some() && r.get("members").is_some())
}

impl Snapshot {
    /// Takes a ListResponse, an array of them, or a single resource. Errors name the page
    /// and resource, after `shown` (a file name).
    pub fn add_json(&mut self, shown: &str, value: &Value) -> Result<(), String> {
        let pages = match value {
            Value::Array(pages) => pages.clone(),
            page => vec![page.clone()],
        };
        for (p, page) in pages.iter().enumerate() {
            let resources = match page.get("Resources") {
                Some(Value::Array(r)) => r.clone(),
                Some(_) => return Err(format!("{shown}: page {}: Resources is not a list", p + 1)),
                None => vec![page.clone()],
            };
            for (i, r) in resources.iter().enumerate() {
                let at = format!("{shown}: resource {} of page {}", i + 1, p + 1);
                if is_group(r) {
                    self.groups_known = true;
                    let name = r["displayName"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .ok_or_else(|| format!("{at}: a group without displayName"))?;
                    let members = r["members"]
                        .as_array()
                        .map(|m| m.iter().filter_map(|m| m["value"].as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    self.groups.push((name.to_string(), members));
                    continue;
                }
                let draft = Draft::from_resource(r, true).map_err(|e| format!("{at}: {}", e.detail))?;
                let mut keys = Vec::new();
                let candidates = [
                    draft.attrs.get("userName").cloned(),
                    draft.attrs.get("externalId").cloned(),
                    r["id"].as_str().map(str::to_string),
                ];
                for k in candidates.into_iter().flatten() {
                    if !k.is_empty() && !keys.contains(&k) {
                        keys.push(k);
                    }
                }
                let own: Option<BTreeSet<String>> = r["groups"].as_array().map(|g| {
                    g.iter().filter_map(|g| g["display"].as_str().or(g["value"].as_str()).map(str::to_string)).collect()
                });
                if let Some(id) = r["id"].as_str() {
                    self.ids.insert(id.to_string(), self.users.len());
                }
                let mut attributes = draft.attrs.clone();
                attributes.remove("externalId");
                let user_name = draft.attrs.get("userName").cloned();
                self.add_user(DirUser { keys, user_name, active: draft.active, attributes, groups: own });
            }
        }
        Ok(())
    }

    /// A user read otherwise (a CSV row); with `groups`, the snapshot says memberships.
    pub fn add_user(&mut self, user: DirUser) {
        self.groups_known |= user.groups.is_some();
        self.users.push(user);
    }

    /// The users with their groups: when any part of the snapshot gave memberships, every
    /// user has a (possibly empty) set; otherwise memberships are not compared.
    pub fn finish(mut self) -> Vec<DirUser> {
        if self.groups_known {
            for u in &mut self.users {
                u.groups.get_or_insert_with(BTreeSet::new);
            }
            for (name, members) in self.groups {
                for m in members {
                    if let Some(&i) = self.ids.get(&m) {
                        self.users[i].groups.get_or_insert_with(BTreeSet::new).insert(name.clone());
                    }
                }
            }
        }
        self.users
    }
}
