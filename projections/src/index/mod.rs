//! The access index: every event of the log, compacted and filed under the identity or
//! group it concerns, each list kept in effective order `(effective_at, position)`.
//!
//! Why this shape: a query about one identity needs only that identity's events and the
//! events of the groups it was ever a member of. Filing them per subject means that
//! - a backdated event is inserted in place into one short list (no replay);
//! - a retraction is one entry in `retracted` (no replay);
//! - "as known at R" is a filter on positions while folding the short list;
//! - the cost of a query does not depend on the history of unrelated identities, and
//!   grows linearly (not worse) with corrections to the same facts.
//!
//! [`crate::fold`] turns a subject's list into half-open intervals `[from, to)` with the
//! positions that opened and closed them.

use crate::error::CorruptIndex;
use crate::frozen::{self, Frozen, Small};
pub use crate::lists::Interner;
use crate::lists::Tail;

mod apply;
use crate::ents::EntTable;
use crate::model::{CredentialAction, CredentialOp, Filed, GroupOp, IdOp, JoinedOp, PackedAttrs, NEVER};
use std::borrow::Cow;
use std::path::Path;
use tenure_engine::{Entitlement, Event, EventData, Position, Timestamp};

/// `frozen` then `tail`, sorted, without repeats.
fn union(mut frozen: Vec<u32>, tail: &[u32]) -> Vec<u32> {
    frozen.extend_from_slice(tail);
    frozen.sort_unstable();
    frozen.dedup();
    frozen
}

/// The index itself. Built by [`AccessIndex::apply`], one event at a time, in position
/// order; queried through [`crate::query`].
///
/// It has two parts: an optional frozen file ([`crate::frozen`]), memory-mapped and read
/// lazily, holding positions up to its head; and the tail, in memory, holding the events
/// applied since. Without a file the tail is the whole index. Every list a query reads is
/// the frozen list followed by (merged with) the tail's.
#[derive(Default)]
pub struct AccessIndex {
    /// The last position applied.
    pub(crate) head: u64,
    pub(crate) frozen: Option<Frozen>,
    /// A frozen file found corrupt while applying; every query reports it.
    pub(crate) poisoned: Option<CorruptIndex>,
    /// `recorded[p - frozen head - 1]`: the `recorded_at` of tail position `p`, µs.
    pub(crate) recorded: Vec<i64>,
    /// Names of the identities that are not in the frozen file.
    pub(crate) identities: Interner,
    pub(crate) groups: Interner,
    pub(crate) ents: EntTable,
    /// Entitlement and resource names → ids, made from `ents` when first asked for: a
    /// one-shot query about an identity never needs them (30,000 entitlements at 10M
    /// events cost a few ms to hash).
    pub(crate) ent_names: std::sync::OnceLock<EntNames>,
    pub(crate) id_events: Tail<Filed<IdOp>>,
    /// Per group: created / deleted / access granted / access revoked (all of them).
    pub(crate) group_events: Vec<Vec<Filed<GroupOp>>>,
    /// Retracted position → the position of its (first) retraction.
    pub(crate) retracted: tenure_engine::maps::Map<u64, u64>,
    /// Entitlement → identities with a direct grant event of it (with repeats; see `push_cheap`).
    pub(crate) direct_holders: Tail<u32>,
    /// Entitlement → groups with a group grant event of it (all of them).
    pub(crate) group_holders: Vec<Vec<u32>>,
    /// Entitlement → identities with an `access.reviewed` decision of it (with repeats).
    /// Reviews are decisions people make, few beside the events: kept whole in memory
    /// and in the index file's small part.
    pub(crate) reviewed: Vec<Vec<u32>>,
    /// Group → identities with a membership event in it (with repeats; see `push_cheap`).
    pub(crate) members: Tail<u32>,
    /// Identity → groups it has membership events in.
    pub(crate) groups_of: Tail<u32>,
    /// Owner → services that named it as owner at some point.
    pub(crate) owned: Tail<u32>,
}

/// Names of entitlements and resources → ids (see [`AccessIndex::ent_names`]).
#[derive(Default)]
pub(crate) struct EntNames {
    ids: tenure_engine::maps::Map<Entitlement, u32>,
    /// Resource → its entitlements.
    pub(crate) by_resource: tenure_engine::maps::Map<String, Vec<u32>>,
}

impl EntNames {
    fn of(ents: &EntTable) -> Self {
        let mut names = EntNames::default();
        for (i, e) in ents.iter().enumerate() {
            names.add(e.to_entitlement(), i as u32);
        }
        names
    }

    fn add(&mut self, e: Entitlement, id: u32) {
        self.by_resource.entry(e.resource.clone()).or_default().push(id);
        self.ids.insert(e, id);
    }
}

impl AccessIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last position applied.
    pub fn head(&self) -> Position {
        Position(self.head)
    }

    /// Makes room for `events` more events (a build from the log knows how many).
    pub fn reserve(&mut self, events: u64) {
        self.recorded.reserve(usize::try_from(events).unwrap_or(0));
    }

    /// The position the frozen file reflects (0 without one).
    pub fn frozen_head(&self) -> Position {
        Position(self.frozen.as_ref().map_or(0, |f| f.head))
    }

    /// Events applied since the frozen file (all of them without one).
    pub fn tail_len(&self) -> u64 {
        self.head - self.frozen_head().get()
    }

    pub fn identity_count(&self) -> usize {
        self.identities.end() as usize
    }

    pub(crate) fn group_count(&self) -> u32 {
        self.groups.end()
    }

    fn frozen_identity(&mut self, name: &str) -> Option<u32> {
        let frozen = self.frozen.as_ref()?;
        match frozen.identity_id(name) {
            Ok(id) => id,
            Err(e) => {
                self.poisoned.get_or_insert(e);
                None
            }
        }
    }

    fn identity(&mut self, name: &str) -> u32 {
        if let Some(id) = self.identities.get(name) {
            return id;
        }
        if let Some(id) = self.frozen_identity(name) {
            return id;
        }
        self.identities.intern(name)
    }

    fn group(&mut self, name: &str) -> u32 {
        let id = self.groups.intern(name);
        if id as usize == self.group_events.len() {
            self.group_events.push(Vec::new());
        }
        id
    }

    fn ent(&mut self, e: &Entitlement) -> u32 {
        if let Some(id) = self.ent_id(e) {
            return id;
        }
        let id = u32::try_from(self.ents.len()).expect("fewer than 2^32 entitlements");
        self.ents.push(e.clone());
        self.group_holders.push(Vec::new());
        self.reviewed.push(Vec::new());
        // `ent_id` above made the names.
        if let Some(names) = self.ent_names.get_mut() {
            names.add(e.clone(), id);
        }
        id
    }

    /// The names of the entitlements, made on first use.
    pub(crate) fn ent_names(&self) -> &EntNames {
        self.ent_names.get_or_init(|| EntNames::of(&self.ents))
    }

    pub(crate) fn ent_id(&self, e: &Entitlement) -> Option<u32> {
        self.ent_names().ids.get(e).copied()
    }

    /// Whether position `pos` is part of the log as known at `r`: recorded by then and not
    /// retracted by then.
    #[inline]
    pub(crate) fn visible(&self, pos: u64, r: u64) -> bool {
        pos <= r && (self.retracted.is_empty() || self.retracted.get(&pos).is_none_or(|&by| by > r))
    }

    /// The position known at recorded time `t` (µs): the last one recorded at or before it.
    pub fn position_at_recorded(&self, t: Timestamp) -> Position {
        Position(self.position_at_recorded_micros(t.as_micros()))
    }

    pub(crate) fn position_at_recorded_micros(&self, t: i64) -> u64 {
        let frozen = self.frozen.as_ref().map_or(0, |f| f.recorded_count(t));
        if frozen < self.frozen_head().get() {
            return frozen;
        }
        frozen + self.recorded.partition_point(|&r| r <= t) as u64
    }

    /// Fails when a frozen file was found corrupt while applying events.
    pub(crate) fn check(&self) -> Result<(), CorruptIndex> {
        match &self.poisoned {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Whether an event named this identity.
    pub fn has_identity(&self, name: &str) -> Result<bool, CorruptIndex> {
        self.identity_id(name).map(|id| id.is_some())
    }

    /// The id of an identity's name.
    pub(crate) fn identity_id(&self, name: &str) -> Result<Option<u32>, CorruptIndex> {
        if let Some(id) = self.identities.get(name) {
            return Ok(Some(id));
        }
        match &self.frozen {
            Some(f) => f.identity_id(name),
            None => Ok(None),
        }
    }

    pub(crate) fn identity_name(&self, id: u32) -> Result<&str, CorruptIndex> {
        match &self.frozen {
            Some(f) if id < f.identities => f.identity_name(id),
            _ => Ok(self.identities.name(id)),
        }
    }

    pub(crate) fn group_name(&self, g: u32) -> &str {
        self.groups.name(g)
    }

    /// An identity's filed events, in `(effective_at, position)` order. With `lite`, the
    /// frozen part may leave out what only profiles read (see [`crate::codec::decode`]).
    pub(crate) fn id_events(&self, id: u32, lite: bool) -> Result<Cow<'_, [Filed<IdOp>]>, CorruptIndex> {
        let tail = self.id_events.get(id);
        let Some(f) = self.frozen.as_ref().filter(|f| id < f.identities) else {
            return Ok(Cow::Borrowed(tail));
        };
        let mut list = f.id_events(id, lite)?;
        if !tail.is_empty() {
            // Tail positions are all later, but a backdated one may sort earlier.
            list.extend_from_slice(tail);
            list.sort_by_key(|e| (e.eff, e.pos));
        }
        Ok(Cow::Owned(list))
    }

    /// List `i` of a reverse map: the frozen file's (when it has an item `i`: `i` is below
    /// `frozen_len` of it) and the tail's, merged.
    fn merged<'a>(
        &'a self,
        tail: &'a Tail<u32>,
        i: u32,
        frozen_len: fn(&Frozen) -> u32,
        frozen_list: fn(&Frozen, u32, &mut Vec<u32>) -> Result<(), CorruptIndex>,
    ) -> Result<Cow<'a, [u32]>, CorruptIndex> {
        match &self.frozen {
            None => Ok(Cow::Borrowed(tail.get(i))),
            Some(f) => {
                let mut list = Vec::new();
                if i < frozen_len(f) {
                    frozen_list(f, i, &mut list)?;
                }
                Ok(Cow::Owned(union(list, tail.get(i))))
            }
        }
    }

    /// The groups an identity has membership events in.
    pub(crate) fn groups_of(&self, id: u32) -> Result<Cow<'_, [u32]>, CorruptIndex> {
        self.merged(&self.groups_of, id, |f| f.identities, Frozen::groups_of)
    }

    /// The services that named `id` as their owner at some point.
    pub(crate) fn owned(&self, id: u32) -> Result<Cow<'_, [u32]>, CorruptIndex> {
        self.merged(&self.owned, id, |f| f.identities, Frozen::owned)
    }

    /// The identities with a direct grant event of `ent` (possibly repeated).
    pub(crate) fn direct_holders(&self, ent: u32) -> Result<Cow<'_, [u32]>, CorruptIndex> {
        self.merged(&self.direct_holders, ent, |f| f.ents, Frozen::direct_holders)
    }

    /// The identities with a membership event in `g` (possibly repeated).
    pub(crate) fn members(&self, g: u32) -> Result<Cow<'_, [u32]>, CorruptIndex> {
        self.merged(&self.members, g, |f| f.groups, Frozen::members)
    }

    /// Decodes a snapshot made by [`AccessIndex::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CorruptIndex> {
        Self::from_frozen(Frozen::from_vec(bytes.to_vec())?)
    }

    /// Opens the index file at `path` (written by [`AccessIndex::write_file`]).
    pub fn open_file(path: &Path) -> Result<Self, CorruptIndex> {
        Self::from_frozen(Frozen::open(path)?)
    }

    /// Checks every byte of the index file this index maps (nothing when it maps none).
    pub fn check_file(&self) -> Result<(), CorruptIndex> {
        self.frozen.as_ref().map_or(Ok(()), Frozen::check_all)
    }

    fn from_frozen(frozen: Frozen) -> Result<Self, CorruptIndex> {
        let small = frozen.small()?;
        let (groups, ents) = (small.groups.len() as u32, small.ents.len() as u32);
        let ops_in_range = small.group_events.iter().flatten().all(|e| match e.op {
            GroupOp::Granted(ent) | GroupOp::Revoked(ent) => ent < ents,
            GroupOp::Created | GroupOp::Deleted => true,
        });
        if small.groups.len() != frozen.groups as usize
            || small.group_events.len() != small.groups.len()
            || small.ents.len() != frozen.ents as usize
            || small.group_holders.len() != small.ents.len()
            || small.reviewed.len() != small.ents.len()
            || small.reviewed.iter().flatten().any(|&id| id >= frozen.identities)
            || !ops_in_range
            || small.group_holders.iter().flatten().any(|&g| g >= groups)
        {
            return Err(frozen.corrupt("its group and entitlement tables disagree with its header"));
        }
        Ok(AccessIndex {
            head: frozen.head,
            poisoned: None,
            recorded: Vec::new(),
            identities: Interner::starting_at(frozen.identities),
            groups: Interner::from_names(small.groups),
            ent_names: Default::default(),
            ents: small.ents,
            id_events: Tail::starting_at(frozen.identities),
            group_events: small.group_events,
            retracted: small.retracted.into_iter().collect(),
            direct_holders: Tail::starting_at(frozen.ents),
            group_holders: small.group_holders,
            reviewed: small.reviewed,
            members: Tail::starting_at(frozen.groups),
            groups_of: Tail::starting_at(frozen.identities),
            owned: Tail::starting_at(frozen.identities),
            frozen: Some(frozen),
        })
    }
}

impl frozen::Source for AccessIndex {
    fn head(&self) -> u64 {
        self.head
    }
    fn identities(&self) -> u32 {
        self.identities.end()
    }
    fn groups(&self) -> u32 {
        self.groups.end()
    }
    fn ents(&self) -> u32 {
        self.ents.len() as u32
    }
    fn for_each_recorded(&self, visit: &mut dyn FnMut(i64)) {
        if let Some(f) = &self.frozen {
            f.for_each_recorded(&mut *visit);
        }
        self.recorded.iter().for_each(|&t| visit(t));
    }
    fn identity_name(&self, id: u32) -> Result<&str, CorruptIndex> {
        AccessIndex::identity_name(self, id)
    }
    fn id_events(&self, id: u32) -> Result<Vec<Filed<IdOp>>, CorruptIndex> {
        AccessIndex::id_events(self, id, false).map(Cow::into_owned)
    }
    fn id_events_filed(&self, id: u32) -> Result<Option<(&[u8], u64)>, CorruptIndex> {
        match &self.frozen {
            Some(f) if id < f.identities && self.id_events.get(id).is_empty() => {
                Ok(Some((f.id_events_filed(id)?, f.last_access_position(id)?)))
            }
            _ => Ok(None),
        }
    }
    fn groups_of(&self, id: u32) -> Result<Vec<u32>, CorruptIndex> {
        AccessIndex::groups_of(self, id).map(Cow::into_owned)
    }
    fn owned(&self, id: u32) -> Result<Vec<u32>, CorruptIndex> {
        AccessIndex::owned(self, id).map(Cow::into_owned)
    }
    fn direct_holders(&self, ent: u32) -> Result<Vec<u32>, CorruptIndex> {
        AccessIndex::direct_holders(self, ent).map(|l| union(Vec::new(), &l))
    }
    fn members(&self, g: u32) -> Result<Vec<u32>, CorruptIndex> {
        AccessIndex::members(self, g).map(|l| union(Vec::new(), &l))
    }
    fn small(&self) -> Small {
        let mut retracted: Vec<(u64, u64)> = self.retracted.iter().map(|(&a, &b)| (a, b)).collect();
        retracted.sort_unstable();
        Small {
            groups: (0..self.groups.end()).map(|g| self.groups.name(g).to_string()).collect(),
            group_events: self.group_events.clone(),
            ents: self.ents.clone(),
            group_holders: self.group_holders.clone(),
            reviewed: self.reviewed.iter().map(|l| union(Vec::new(), l)).collect(),
            retracted,
        }
    }
}

impl crate::view::IndexView for AccessIndex {
    fn id_events(&self, id: u32, lite: bool) -> Result<Cow<'_, [Filed<IdOp>]>, CorruptIndex> {
        AccessIndex::id_events(self, id, lite)
    }
    fn groups_of(&self, id: u32) -> Result<Cow<'_, [u32]>, CorruptIndex> {
        AccessIndex::groups_of(self, id)
    }
    fn group_events(&self, g: u32) -> &[Filed<GroupOp>] {
        self.group_events.get(g as usize).map_or(&[], Vec::as_slice)
    }
    fn visible(&self, pos: u64, r: u64) -> bool {
        AccessIndex::visible(self, pos, r)
    }
}
