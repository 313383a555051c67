//! A directory snapshot for reconciliation: SCIM ListResponses of Users and Groups as Okta
//! and Entra ID return them, read into `DirUser`s (users with their groups).

use crate::model::Draft;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use tenure_projections::reports::DirUser;

/// Gathers users and groups from any number of pages, then joins them (all in memory:
/// for a request body; the CLI streams with [`resources`] and [`Memberships`]).
#[derive(Default)]
pub struct Snapshot {
    /// Each user with its directory `id`.
    users: Vec<(DirUser, Option<String>)>,
    members: Memberships,
}

fn is_group(r: &Value) -> bool {
    let schemas: Vec<&str> =
        r["schemas"].as_array().map(|s| s.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    schemas.iter().any(|s| s.ends_with(":Group"))
        || (r.get("userName").is_none() && r.get("displayName").is_some() && r.get("members").is_some())
}

impl Snapshot {
    /// Reads a ListResponse, an array of them, or a single resource from `reader`,
    /// resource by resource: memory holds one resource at a time (and what is kept of
    /// each user), never the document, whatever its size. Errors name the page and
    /// resource after `shown` (a file name), and the line and column.
    pub fn read_json(&mut self, shown: &str, reader: impl std::io::Read) -> Result<(), String> {
        resources(shown, reader, &mut |at, r| self.add_resource(at, &r))
    }

    /// One resource: a group (its name and members' directory ids) or a user.
    fn add_resource(&mut self, at: &str, r: &Value) -> Result<(), String> {
        if let Some((user, id)) = self.members.note(resource_of(at, r)?) {
            self.users.push((user, id));
        }
        Ok(())
    }

    /// A user read otherwise (a CSV row); with `groups`, the snapshot says memberships.
    pub fn add_user(&mut self, user: DirUser) {
        self.members.known |= user.groups.is_some();
        self.users.push((user, None));
    }

    /// The users with their groups: when any part of the snapshot gave memberships, every
    /// user has a (possibly empty) set; otherwise memberships are not compared.
    pub fn finish(self) -> Vec<DirUser> {
        let members = self.members;
        self.users
            .into_iter()
            .map(|(mut user, id)| {
                members.complete(&mut user, id.as_deref());
                user
            })
            .collect()
    }
}

/// Calls `each` with every resource of a JSON snapshot read from `reader` (a
/// ListResponse, an array of them, or a single resource) and where it stands (`resource
/// 3 of page 1`), one at a time: memory holds one resource, never the document. Errors
/// name `shown` (a file name), the page and resource, and the line and column.
pub fn resources(
    shown: &str,
    reader: impl std::io::Read,
    each: &mut dyn FnMut(&str, Value) -> Result<(), String>,
) -> Result<(), String> {
    read_items(shown, reader, each)
}

/// [`resources`], each resource handed out as its text (checked to be JSON, not parsed
/// into a tree): what lets a reader thread cut the document while other cores make the
/// resources of what it cut ([`Resource::read`]).
pub fn raw_resources(shown: &str, reader: impl std::io::Read, each: &mut EachRaw<'_>) -> Result<(), String> {
    read_items(shown, reader, each)
}

fn read_items<T: Item>(
    shown: &str,
    reader: impl std::io::Read,
    each: &mut dyn FnMut(&str, T) -> Result<(), String>,
) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 16, reader));
    serde::de::DeserializeSeed::deserialize(Top { each }, &mut de).map_err(|e| format!("{shown}: {e}"))?;
    de.end().map_err(|e| format!("{shown}: {e}"))
}

/// What a resource is handed out as: a tree, or its text.
trait Item: serde::de::DeserializeOwned {
    /// A page without `Resources`, itself the resource, as an item.
    fn of_object(map: serde_json::Map<String, Value>) -> Result<Self, serde_json::Error>;
}

impl Item for Value {
    fn of_object(map: serde_json::Map<String, Value>) -> Result<Self, serde_json::Error> {
        Ok(Value::Object(map))
    }
}

impl Item for Box<RawValue> {
    fn of_object(map: serde_json::Map<String, Value>) -> Result<Self, serde_json::Error> {
        RawValue::from_string(serde_json::to_string(&map)?)
    }
}

/// Reads every resource of a JSON snapshot one at a time, as [`resources`] does, and
/// tells the first that is not a group or a user, naming `shown`, the page, the resource,
/// and the line and column where its reading stopped: what a reader that cut the document
/// before reading its resources ([`raw_resources`]) asks once it found one bad.
pub fn check(shown: &str, reader: impl std::io::Read) -> Result<(), String> {
    resources(shown, reader, &mut |at, r| resource_of(at, &r).map(|_| ()))
}

/// What is handed each resource's text, with where it stands.
pub type EachRaw<'a> = dyn FnMut(&str, Box<RawValue>) -> Result<(), String> + 'a;

/// What one resource of a snapshot says: a group's name and its members' directory ids,
/// or a user with its directory id and whether it lists its own groups.
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    Group { name: String, members: Vec<String> },
    User { user: DirUser, id: Option<String>, lists_groups: bool },
}

impl Resource {
    /// The resource whose text is `raw`, at `at` (`resource 3 of page 1`).
    pub fn read(at: &str, raw: &RawValue) -> Result<Resource, String> {
        let value: Value = serde_json::from_str(raw.get()).map_err(|e| format!("{at}: {e}"))?;
        resource_of(at, &value)
    }
}

fn resource_of(at: &str, r: &Value) -> Result<Resource, String> {
    Ok(match group_of(at, r)? {
        Some((name, members)) => Resource::Group { name, members },
        None => Resource::User {
            user: user_of(at, r)?,
            id: r["id"].as_str().map(str::to_string),
            lists_groups: r["groups"].is_array(),
        },
    })
}

/// A group resource's name and its members' directory ids; none for a user.
fn group_of(at: &str, r: &Value) -> Result<Option<(String, Vec<String>)>, String> {
    if !is_group(r) {
        return Ok(None);
    }
    let name = r["displayName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{at}: a group without displayName"))?;
    let members = r["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["value"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    Ok(Some((name.to_string(), members)))
}

/// A user resource as a `DirUser` (flattened by the SCIM server's own mapping), with the
/// groups it lists itself.
fn user_of(at: &str, r: &Value) -> Result<DirUser, String> {
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
    let own: Option<BTreeSet<String>> = r["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(|g| g["display"].as_str().or(g["value"].as_str()).map(str::to_string)).collect());
    let mut attributes = draft.attrs.clone();
    attributes.remove("externalId");
    let user_name = draft.attrs.get("userName").cloned();
    Ok(DirUser { keys, user_name, active: draft.active, attributes, groups: own })
}

/// The memberships of a snapshot read in a first pass, so that a second pass can hand
/// out each user, with its groups, as soon as it is read: per member directory id its
/// groups, and whether any part of the snapshot says memberships at all.
#[derive(Default)]
pub struct Memberships {
    of: BTreeMap<String, Vec<String>>,
    pub known: bool,
}

impl Memberships {
    /// Notes what a resource says of memberships (a first pass over the snapshot); hands
    /// back the user, with its directory id, when the resource is one.
    pub fn note(&mut self, resource: Resource) -> Option<(DirUser, Option<String>)> {
        match resource {
            Resource::Group { name, members } => {
                self.known = true;
                for m in members {
                    self.of.entry(m).or_default().push(name.clone());
                }
                None
            }
            Resource::User { user, id, lists_groups } => {
                self.known |= lists_groups;
                Some((user, id))
            }
        }
    }

    /// Gives `user` (with directory id `id`) the groups the snapshot's groups list it in;
    /// when any part of the snapshot says memberships, every user has a set.
    pub fn complete(&self, user: &mut DirUser, id: Option<&str>) {
        if self.known {
            let groups = user.groups.get_or_insert_with(BTreeSet::new);
            groups.extend(id.and_then(|id| self.of.get(id)).into_iter().flatten().cloned());
        }
    }
}

/// The document: a page (an object) or an array of pages.
struct Top<'a, T> {
    each: &'a mut dyn FnMut(&str, T) -> Result<(), String>,
}

impl<'de, T: Item> serde::de::DeserializeSeed<'de> for Top<'_, T> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de, T: Item> serde::de::Visitor<'de> for Top<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a SCIM ListResponse, an array of them, or a resource")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Page { each: self.each, page: 1 }.visit_map(map)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut page = 1;
        while seq.next_element_seed(Page { each: &mut *self.each, page })?.is_some() {
            page += 1;
        }
        Ok(())
    }
}

/// One page: its `Resources` read one by one; without them, the object is a resource.
struct Page<'a, T> {
    each: &'a mut dyn FnMut(&str, T) -> Result<(), String>,
    page: usize,
}

impl<'de, T: Item> serde::de::DeserializeSeed<'de> for Page<'_, T> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de, T: Item> serde::de::Visitor<'de> for Page<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "page {}: an object", self.page)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut rest = serde_json::Map::new();
        let mut listed = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "Resources" {
                listed = true;
                map.next_value_seed(Resources { each: &mut *self.each, page: self.page })?;
            } else {
                rest.insert(key, map.next_value()?);
            }
        }
        if !listed {
            let at = format!("resource 1 of page {}", self.page);
            let item = T::of_object(rest).map_err(serde::de::Error::custom)?;
            (self.each)(&at, item).map_err(serde::de::Error::custom)?;
        }
        Ok(())
    }
}

/// A page's `Resources`, each handed to the snapshot as soon as it is read.
struct Resources<'a, T> {
    each: &'a mut dyn FnMut(&str, T) -> Result<(), String>,
    page: usize,
}

impl<'de, T: Item> serde::de::DeserializeSeed<'de> for Resources<'_, T> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de, T: Item> serde::de::Visitor<'de> for Resources<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "page {}: Resources as a list", self.page)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 1;
        while let Some(r) = seq.next_element::<T>()? {
            let at = format!("resource {i} of page {}", self.page);
            (self.each)(&at, r).map_err(serde::de::Error::custom)?;
            i += 1;
        }
        Ok(())
    }
}
