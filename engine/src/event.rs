//! The event model: what a source says happened, and what the log recorded.
//!
//! [`NewEvent`] is an event as delivered (the JSONL interchange form of docs/events.md);
//! [`Event`] is an event as recorded, with its [`Position`], `recorded_at` and id.
//! The integrity hashes live in the record framing (see `docs/format.md`), not here.

use crate::ids::{CredentialId, GroupId, IdentityId, Position};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

/// What an identity or group is allowed to do: a permission on a resource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entitlement {
    pub resource: String,
    pub permission: String,
}

impl Entitlement {
    pub fn new(resource: &str, permission: &str) -> Self {
        Entitlement { resource: resource.to_string(), permission: permission.to_string() }
    }

    /// Parses the CLI's short form `payroll-db#read`.
    /// `RESOURCE#PERMISSION`, split at the last `#` (resources recorded before `#` was
    /// refused in them can still be asked for).
    pub fn parse_short(text: &str) -> Option<Self> {
        let (resource, permission) = text.rsplit_once('#')?;
        if resource.is_empty() || permission.is_empty() {
            return None;
        }
        Some(Entitlement::new(resource, permission))
    }
}

impl fmt::Display for Entitlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.resource, self.permission)
    }
}

/// A person, or a non-human identity (a service account), which must have an owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    Human,
    Service,
}

pub type Attributes = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Joined {
    pub identity: IdentityId,
    pub kind: IdentityKind,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<IdentityId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moved {
    pub identity: IdentityId,
    pub attributes: Attributes,
}

/// `suspended`, `reactivated` and `left`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub identity: IdentityId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejoined {
    pub identity: IdentityId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Attributes>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerChanged {
    pub identity: IdentityId,
    pub owner: IdentityId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Granted {
    pub identity: IdentityId,
    pub entitlement: Entitlement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoked {
    pub identity: IdentityId,
    pub entitlement: Entitlement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `group.created` and `group.deleted`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupLifecycle {
    pub group: GroupId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The group's id in the directory that sent it (SCIM `externalId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// `group.updated`: what the directory calls the group changed (its display name, its
/// id in the directory); the group keeps its name in the log (`group`), its members and
/// its grants. At least one of the two is given; an empty `external_id` clears it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupUpdated {
    pub group: GroupId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// `group.member_added` and `group.member_removed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub group: GroupId,
    pub identity: IdentityId,
}

/// `group.access_granted` and `group.access_revoked`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupAccess {
    pub group: GroupId,
    pub entitlement: Entitlement,
}

/// `credential.issued`, `credential.rotated` and `credential.revoked`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub identity: IdentityId,
    pub credential: CredentialId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// A review decision of an access review: `reviewer` certified (`keep`) or asked to
/// remove (`revoke`) `identity`'s `entitlement`. It changes no access: a `revoke` is
/// carried out by an `access.revoked` (or the end of a membership).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reviewed {
    pub identity: IdentityId,
    pub entitlement: Entitlement,
    pub reviewer: String,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An access review's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Keep,
    Revoke,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Keep => "keep",
            Decision::Revoke => "revoke",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retracted {
    pub position: Position,
    pub reason: String,
}

/// The event registry: every type of the log, one line each, as
/// `code => "json.name", Variant(Body);`. The code is the type's code on disk (schema
/// version 2, `docs/format.md`: never to be reused or reordered). Everything that lists
/// the types is made from this one table, by handing a macro to it: the [`EventData`]
/// enum and its serde names, [`EVENT_TYPES`], [`EventData::type_code`], the JSON parse
/// dispatch (`crate::json`) and the decode dispatch (`crate::format`). Adding a type is
/// one line here, its body struct, its fields on disk (`crate::format`, which the compiler
/// then asks for), its fold rule, and its docs (ARCHITECTURE.md walks through it).
#[macro_export]
#[doc(hidden)]
macro_rules! for_each_event_type {
    ($m:path) => {
        $m! {
            0 => "identity.joined", IdentityJoined(Joined);
            1 => "identity.moved", IdentityMoved(Moved);
            2 => "identity.suspended", IdentitySuspended(StatusChange);
            3 => "identity.reactivated", IdentityReactivated(StatusChange);
            4 => "identity.left", IdentityLeft(StatusChange);
            5 => "identity.rejoined", IdentityRejoined(Rejoined);
            6 => "identity.owner_changed", IdentityOwnerChanged(OwnerChanged);
            7 => "access.granted", AccessGranted(Granted);
            8 => "access.revoked", AccessRevoked(Revoked);
            9 => "group.created", GroupCreated(GroupLifecycle);
            10 => "group.deleted", GroupDeleted(GroupLifecycle);
            11 => "group.member_added", GroupMemberAdded(Membership);
            12 => "group.member_removed", GroupMemberRemoved(Membership);
            13 => "group.access_granted", GroupAccessGranted(GroupAccess);
            14 => "group.access_revoked", GroupAccessRevoked(GroupAccess);
            15 => "credential.issued", CredentialIssued(Credential);
            16 => "credential.rotated", CredentialRotated(Credential);
            17 => "credential.revoked", CredentialRevoked(Credential);
            18 => "event.retracted", EventRetracted(Retracted);
            19 => "group.updated", GroupUpdated(GroupUpdated);
            20 => "access.reviewed", AccessReviewed(Reviewed);
        }
    };
}

macro_rules! define_event_data {
    ($($code:literal => $name:literal, $variant:ident($body:ty);)*) => {
        /// The body of an event: its `type` and `data` (one variant per entry of
        /// [`for_each_event_type!`]).
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "data")]
        pub enum EventData {
            $(
                #[serde(rename = $name)]
                $variant($body),
            )*
        }

        /// Every `type` the log accepts, in the registry's order; the index of each is its
        /// type code on disk ([`EventData::type_code`]).
        pub const EVENT_TYPES: &[&str] = &[$($name),*];

        impl EventData {
            /// The type code of the on-disk record (schema version 2, `docs/format.md`).
            pub fn type_code(&self) -> u8 {
                match self {
                    $(EventData::$variant(_) => $code,)*
                }
            }
        }

        #[cfg(test)]
        #[test]
        fn type_codes_are_the_indices_of_the_names() {
            $(assert_eq!(EVENT_TYPES[$code], $name);)*
            assert_eq!(EVENT_TYPES.len(), [$($code),*].len());
        }
    };
}

for_each_event_type!(define_event_data);

impl EventData {
    /// The `type` string of the interchange form.
    pub fn type_name(&self) -> &'static str {
        EVENT_TYPES[usize::from(self.type_code())]
    }

    /// The identity this event is about, if any (for `membership` events, the member).
    pub fn identity(&self) -> Option<&IdentityId> {
        use EventData::*;
        match self {
            IdentityJoined(d) => Some(&d.identity),
            IdentityMoved(d) => Some(&d.identity),
            IdentitySuspended(d) | IdentityReactivated(d) | IdentityLeft(d) => Some(&d.identity),
            IdentityRejoined(d) => Some(&d.identity),
            IdentityOwnerChanged(d) => Some(&d.identity),
            AccessGranted(d) => Some(&d.identity),
            AccessRevoked(d) => Some(&d.identity),
            AccessReviewed(d) => Some(&d.identity),
            GroupMemberAdded(d) | GroupMemberRemoved(d) => Some(&d.identity),
            CredentialIssued(d) | CredentialRotated(d) | CredentialRevoked(d) => Some(&d.identity),
            GroupCreated(_) | GroupDeleted(_) | GroupUpdated(_) | GroupAccessGranted(_) | GroupAccessRevoked(_) => None,
            EventRetracted(_) => None,
        }
    }

    /// The group this event is about, if any.
    pub fn group(&self) -> Option<&GroupId> {
        use EventData::*;
        match self {
            GroupCreated(d) | GroupDeleted(d) => Some(&d.group),
            GroupUpdated(d) => Some(&d.group),
            GroupMemberAdded(d) | GroupMemberRemoved(d) => Some(&d.group),
            GroupAccessGranted(d) | GroupAccessRevoked(d) => Some(&d.group),
            _ => None,
        }
    }

    /// Other identities the event refers to, which must exist: the owner of a service.
    pub fn referenced_owner(&self) -> Option<&IdentityId> {
        match self {
            EventData::IdentityJoined(d) => d.owner.as_ref(),
            EventData::IdentityOwnerChanged(d) => Some(&d.owner),
            _ => None,
        }
    }
}

/// An event as a source delivers it, before the log records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    #[serde(flatten)]
    pub data: EventData,
    pub effective_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What the source sent, as received (a SCIM request, a webhook delivery): evidence
    /// kept beside the normalised data, any JSON. Not part of the event's content for
    /// [`NewEvent::same_content`] (a retried delivery differs in its envelope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

impl NewEvent {
    pub fn new(effective_at: Timestamp, data: EventData) -> Self {
        NewEvent { data, effective_at, id: None, source: None, source_event_id: None, actor: None, raw: None }
    }

    /// Whether `stored` says what this event says (its time, actor and data): a
    /// re-delivery of the same `(source, source_event_id)` that does not is a conflict,
    /// which a source that reuses ids with other content gives rise to.
    pub fn same_content(&self, stored: &Event) -> bool {
        self.effective_at == stored.effective_at && self.actor == stored.actor && self.data == stored.data
    }

    pub fn with_source(mut self, source: &str, source_event_id: &str) -> Self {
        self.source = Some(source.to_string());
        self.source_event_id = Some(source_event_id.to_string());
        self
    }

    /// The idempotency key, when the event has both parts of it.
    pub fn idempotency_key(&self) -> Option<(&str, &str)> {
        Some((self.source.as_deref()?, self.source_event_id.as_deref()?))
    }
}

/// An event as recorded: its place in the log and the engine's record time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub position: Position,
    pub id: Uuid,
    pub recorded_at: Timestamp,
    pub effective_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What the source sent, as received (see [`NewEvent::raw`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
    #[serde(flatten)]
    pub data: EventData,
}

impl Event {
    /// The idempotency key, when the event has both parts of it.
    pub fn idempotency_key(&self) -> Option<(&str, &str)> {
        Some((self.source.as_deref()?, self.source_event_id.as_deref()?))
    }
}

/// A field of an event that did not parse or validate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct FieldError {
    /// Dotted path of the field (`effective_at`, `data.entitlement.resource`); `-` for the
    /// line as a whole.
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: reason.into() }
    }
}
