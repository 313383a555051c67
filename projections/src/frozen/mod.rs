//! The frozen part of the access index: an immutable file, memory-mapped, read lazily.
//!
//! A store of 10M events has about 1M identities; a query reads one of them (or the few
//! hundred thousand holders of one entitlement). Loading the whole index to answer it
//! would cost seconds and gigabytes, so the index persists itself as a file whose parts
//! are found by offset tables: opening it reads a header and the small tables (groups,
//! entitlements, retractions); an identity's events are read and decoded only when a
//! query asks for them. The file is written once, to a temporary name, synced and
//! renamed; it is never changed in place. Its head position is in its header, so the
//! state and its checkpoint are one atomic unit.
//!
//! Layout (all integers little-endian; `docs/format.md` has the table):
//!
//! ```text
//! header   magic "TENUIDX\0", version u32, reserved u32, head u64, identities u64,
//!          groups u64, entitlements u64, SECTIONS x (offset u64, length u64),
//!          SECTIONS x CRC-32 of the section (u32), CRC-32 of all of the above (u32),
//!          zero padding to HEADER_LEN. A section's CRC is checked the first time a
//!          process reads from it (the per-item CRCs of the events and runs lists, and
//!          the recorded_at blocks' own, checked at open, cover those sections), so that
//!          no byte a query reads is believed unchecked.
//! sections recorded_at per position (blocks of 64: first time + varint deltas, with a
//!          CRC); identity names (offsets + UTF-8);
//!          identity ids sorted by name (u32); per identity its filed events
//!          (offsets + [CRC-32 u32, `crate::codec` list]); per identity its groups, the
//!          services it owned (offsets + u32 lists); per entitlement its direct
//!          holders; per group its members (offsets + u32 lists); the small part
//!          (CRC-32 + MessagePack: group names and events, entitlements, group
//!          holders, retractions); per entitlement the runs of effective access as of
//!          the head (offsets + [CRC-32, runs]), which answer holders at the head
//!          without folding anyone); per identity the position of its last event
//!          that bears on access (u64), which says whose runs hold as known earlier)
//! offsets  count + 1 entries, u32 (u64 when the list section passes 4 GiB: the
//!          section's length tells)
//! ```

use crate::error::{CorruptIndex, WriteError};
use crate::model::{Filed, GroupOp, IdOp};
use crate::recorded::{RecordedTimes, RecordedWriter};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

mod reader;
mod small;
mod writer;

pub(crate) use self::reader::*;
pub(crate) use self::writer::*;

const MAGIC: &[u8; 8] = b"TENUIDX\0";
const VERSION: u32 = 7;
const SECTIONS: usize = 19;
/// Bytes per checked block: every section carries a CRC-32 per block of this many bytes
/// (in the `Blocks` section), so that a query checks only the blocks it reads.
const BLOCK: usize = 1 << 16;
const TABLE_AT: usize = 48;
const HEADER_LEN: usize = 4096;

/// The sections, in file order.
#[derive(Clone, Copy)]
#[repr(usize)]
pub(crate) enum S {
    Recorded,
    IdNamesOff,
    IdNames,
    IdSorted,
    IdEventsOff,
    IdEvents,
    GroupsOfOff,
    GroupsOf,
    OwnedOff,
    Owned,
    DirectOff,
    Direct,
    MembersOff,
    Members,
    Small,
    RunsOff,
    Runs,
    IdLast,
    Blocks,
}

const SECTION_NAMES: [&str; SECTIONS] = [
    "recorded-at",
    "identity-name offsets",
    "identity-names",
    "sorted-ids",
    "identity-events offsets",
    "identity-events",
    "groups-of-identity offsets",
    "groups-of-identity",
    "services-owned offsets",
    "services-owned",
    "direct-holders offsets",
    "direct-holders",
    "members offsets",
    "members",
    "group and entitlement tables",
    "access-runs offsets",
    "access-runs",
    "last access positions",
    "block checksums",
];

/// What a frozen index file holds besides the per-subject lists: small enough to load
/// whole at open.
#[derive(Default, Debug)]
pub(crate) struct Small {
    pub groups: Vec<String>,
    pub group_events: Vec<Vec<Filed<GroupOp>>>,
    pub ents: crate::ents::EntTable,
    pub group_holders: Vec<Vec<u32>>,
    /// Per entitlement, the identities with a review decision of it.
    pub reviewed: Vec<Vec<u32>>,
    pub retracted: Vec<(u64, u64)>,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// What [`write`] needs of an index: every list, merged (frozen part and tail).
pub(crate) trait Source {
    fn head(&self) -> u64;
    fn identities(&self) -> u32;
    fn groups(&self) -> u32;
    fn ents(&self) -> u32;
    /// Calls `visit` with the `recorded_at` of positions 1 ..= head, in order.
    fn for_each_recorded(&self, visit: &mut dyn FnMut(i64));
    fn identity_name(&self, id: u32) -> Result<&str, CorruptIndex>;
    fn id_events(&self, id: u32) -> Result<Vec<Filed<IdOp>>, CorruptIndex>;
    /// When no event of identity `id` came since the file being rewritten: its events as
    /// that file holds them (checked), to be copied as they are, and the position of the
    /// last that bears on access.
    fn id_events_filed(&self, id: u32) -> Result<Option<(&[u8], u64)>, CorruptIndex>;
    fn groups_of(&self, id: u32) -> Result<Vec<u32>, CorruptIndex>;
    fn owned(&self, id: u32) -> Result<Vec<u32>, CorruptIndex>;
    fn direct_holders(&self, ent: u32) -> Result<Vec<u32>, CorruptIndex>;
    fn members(&self, g: u32) -> Result<Vec<u32>, CorruptIndex>;
    fn small(&self) -> Small;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccessIndex;
    use tenure_engine::event::*;
    use tenure_engine::{Event, Position, Timestamp};

    fn event(p: u64, data: EventData) -> Event {
        Event {
            position: Position(p),
            id: tenure_engine::Uuid::nil(),
            recorded_at: Timestamp::from_micros(1_000 + p as i64 / 2),
            effective_at: Timestamp::from_micros(1_700_000_000_000_000 + p as i64 * 1_500_000),
            source: None,
            source_event_id: None,
            actor: None,
            raw: None,
            data,
        }
    }

    /// The index file's bytes, pinned: the same log gives the same file, byte for byte.
    /// A change here is a change of format: bump `VERSION` (older files are then rebuilt
    /// from the log), update `docs/format.md`, then this length and CRC.
    #[test]
    fn the_file_format_is_pinned() {
        let ent = Entitlement::new("db", "read");
        let mut index = AccessIndex::new();
        let events = [
            EventData::IdentityJoined(Joined {
                identity: "alice".into(),
                kind: IdentityKind::Human,
                attributes: [("team".to_string(), "a".to_string())].into(),
                owner: None,
            }),
            EventData::IdentityJoined(Joined {
                identity: "bot".into(),
                kind: IdentityKind::Service,
                attributes: Default::default(),
                owner: Some("alice".into()),
            }),
            EventData::GroupCreated(GroupLifecycle {
                group: "eng".into(),
                display_name: Some("Engineering".into()),
                external_id: None,
            }),
            EventData::GroupMemberAdded(Membership { group: "eng".into(), identity: "bot".into() }),
            EventData::GroupAccessGranted(GroupAccess { group: "eng".into(), entitlement: ent.clone() }),
            EventData::AccessGranted(Granted {
                identity: "alice".into(),
                entitlement: ent.clone(),
                expires_at: Some(Timestamp::from_micros(1_800_000_000_000_000)),
                justification: Some("on call".into()),
                approver: Some("carol".into()),
            }),
            EventData::IdentitySuspended(StatusChange { identity: "alice".into(), reason: None }),
            EventData::IdentityReactivated(StatusChange { identity: "alice".into(), reason: None }),
            EventData::CredentialIssued(Credential {
                identity: "bot".into(),
                credential: "key-1".into(),
                expires_at: None,
            }),
            EventData::AccessReviewed(Reviewed {
                identity: "alice".into(),
                entitlement: ent.clone(),
                reviewer: "carol".into(),
                decision: Decision::Revoke,
                comment: None,
            }),
            EventData::AccessRevoked(Revoked { identity: "alice".into(), entitlement: ent, reason: None }),
            EventData::EventRetracted(Retracted { position: Position(7), reason: "entered in error".into() }),
            EventData::IdentityLeft(StatusChange { identity: "alice".into(), reason: None }),
        ];
        for (i, data) in events.into_iter().enumerate() {
            index.apply(&event(i as u64 + 1, data));
        }
        let bytes = index.to_bytes();
        assert_eq!((bytes.len(), crc32fast::hash(&bytes)), (4526, 987231546), "the index file format changed");
    }

    /// A file whose offset tables are `u64` (the form of a list section past 4 GiB) reads
    /// exactly like one with `u32` tables: written again from what it reads, it gives the
    /// same bytes.
    #[test]
    fn wide_offset_tables_read_like_narrow_ones() {
        let ent = Entitlement::new("db", "read");
        let joined = |id: &str, kind, owner: Option<&str>| {
            EventData::IdentityJoined(Joined {
                identity: id.into(),
                kind,
                attributes: [("team".to_string(), "a".to_string())].into(),
                owner: owner.map(Into::into),
            })
        };
        let mut index = AccessIndex::new();
        let events = [
            joined("alice", IdentityKind::Human, None),
            joined("bot", IdentityKind::Service, Some("alice")),
            EventData::GroupCreated(GroupLifecycle { group: "eng".into(), display_name: None, external_id: None }),
            EventData::GroupMemberAdded(Membership { group: "eng".into(), identity: "bot".into() }),
            EventData::GroupAccessGranted(GroupAccess { group: "eng".into(), entitlement: ent.clone() }),
            EventData::AccessGranted(Granted {
                identity: "alice".into(),
                entitlement: ent,
                expires_at: None,
                justification: None,
                approver: None,
            }),
        ];
        for (i, data) in events.into_iter().enumerate() {
            index.apply(&event(i as u64 + 1, data));
        }
        let narrow = index.to_bytes();
        let runs = crate::runs::build_runs(&index).unwrap();
        let wide = write_with(&index, &runs, std::io::Cursor::new(Vec::new()), true).unwrap().into_inner();
        assert!(wide.len() > narrow.len());
        let from_wide = AccessIndex::from_bytes(&wide).unwrap();
        assert_eq!(from_wide.to_bytes(), narrow);
    }
}
