//! Record payloads: an event as MessagePack, schema version 2 (written) and 1 (read).

use crate::event::{
    Attributes, Credential, Decision, Entitlement, Event, EventData, Granted, GroupAccess, GroupLifecycle,
    IdentityKind, Joined, Membership, Moved, OwnerChanged, Rejoined, Retracted, Reviewed, Revoked, StatusChange,
    EVENT_TYPES,
};
use crate::ids::{CredentialId, GroupId, IdentityId, Position};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Version of the payload schema that this release writes. Version 1 (0.1) nested the
/// event body under `d` with its JSON names; version 2 (0.2) flattens it into the record's
/// map with short names and a type code. Both are read; a later release adds fields with
/// defaults and keeps reading both.
pub const SCHEMA_VERSION: u8 = 2;

/// A schema version 1 record (written by 0.1), as decoded: the body nested under `d` as
/// `{"type": .., "data": {..}}` with the JSON field names. Read only.
#[derive(Deserialize)]
struct DiskEventV1 {
    p: u64,
    #[serde(deserialize_with = "uuid_bytes::deserialize")]
    id: Uuid,
    r: i64,
    e: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<String>,
    d: EventData,
}

mod uuid_bytes {
    use serde::{Deserializer, Serializer};
    use uuid::Uuid;
    pub fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(id.as_bytes())
    }
    /// Reads the 16 bytes without an intermediate allocation.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Uuid;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("16 bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Uuid, E> {
                Uuid::from_slice(v).map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Uuid, A::Error> {
                let mut out = [0u8; 16];
                let mut n = 0;
                while let Some(b) = seq.next_element::<u8>()? {
                    if n == 16 {
                        return Err(serde::de::Error::invalid_length(17, &self));
                    }
                    out[n] = b;
                    n += 1;
                }
                if n != 16 {
                    return Err(serde::de::Error::invalid_length(n, &self));
                }
                Ok(Uuid::from_bytes(out))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// The parts of a recorded event, borrowed: what [`encode_parts`] writes.
pub struct EventParts<'a> {
    pub position: u64,
    pub id: &'a Uuid,
    pub recorded_at: Timestamp,
    pub effective_at: Timestamp,
    pub source: Option<&'a str>,
    pub source_event_id: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub raw: Option<&'a serde_json::Value>,
    pub data: &'a EventData,
}

/// Encodes an event as its MessagePack payload.
pub fn encode_event(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    encode_parts(
        &EventParts {
            position: event.position.get(),
            id: &event.id,
            recorded_at: event.recorded_at,
            effective_at: event.effective_at,
            source: event.source.as_deref(),
            source_event_id: event.source_event_id.as_deref(),
            actor: event.actor.as_deref(),
            raw: event.raw.as_ref(),
            data: &event.data,
        },
        &mut out,
    );
    out
}

/// A schema version 2 record: one flat MessagePack map with named fields, short names
/// (they are repeated on every record) and the event type as a code; absent fields are
/// left out, and fields a reader does not know are skipped, so that a later version may
/// add some. `docs/format.md` lists the names. Generic over how it holds strings and
/// attributes: borrowed from the event when encoding (`Record<&str, &Attributes>`), owned
/// when decoding (`Record<String, Attributes>`).
#[derive(Serialize, Deserialize)]
struct Record<S, A> {
    v: u8,
    p: u64,
    #[serde(serialize_with = "uuid_bytes::serialize", deserialize_with = "uuid_bytes::deserialize")]
    id: Uuid,
    r: i64,
    e: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<S>,
    t: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    o: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<A>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    j: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    y: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    g: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dn: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cr: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<u64>,
    /// `data.external_id` of the group events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    xi: Option<S>,
    /// The envelope's `raw`, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rw: Option<S>,
    /// `access.reviewed`: the reviewer, the decision (0 keep, 1 revoke), the comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rv: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dc: Option<u8>,
}

/// A record as decoded.
type Decoded = Record<String, Attributes>;

const KIND_CODES: [IdentityKind; 2] = [IdentityKind::Human, IdentityKind::Service];

fn kind_code(kind: IdentityKind) -> u8 {
    match kind {
        IdentityKind::Human => 0,
        IdentityKind::Service => 1,
    }
}

/// Appends the payload of an event given by its parts to `out`, copying nothing else.
pub fn encode_parts<'a>(parts: &EventParts<'a>, out: &mut Vec<u8>) {
    use EventData::*;
    let data = parts.data;
    let mut r: Record<&str, &Attributes> = Record {
        v: SCHEMA_VERSION,
        p: parts.position,
        id: *parts.id,
        r: parts.recorded_at.as_micros(),
        e: parts.effective_at.as_micros(),
        s: parts.source,
        k: parts.source_event_id,
        a: parts.actor,
        t: data.type_code(),
        i: None,
        c: None,
        o: None,
        at: None,
        w: None,
        n: None,
        m: None,
        x: None,
        j: None,
        y: None,
        g: None,
        dn: None,
        cr: None,
        q: None,
        xi: None,
        rw: None,
        rv: None,
        dc: None,
    };
    let raw_text = parts.raw.map(|v| v.to_string());
    r.rw = raw_text.as_deref();
    let micros = |t: &Option<Timestamp>| t.map(Timestamp::as_micros);
    let names = |e: &'a Entitlement| (Some(e.resource.as_str()), Some(e.permission.as_str()));
    match data {
        IdentityJoined(d) => {
            r.i = Some(d.identity.as_str());
            r.c = Some(kind_code(d.kind));
            r.o = d.owner.as_ref().map(IdentityId::as_str);
            r.at = Some(&d.attributes).filter(|a| !a.is_empty());
        }
        IdentityMoved(d) => {
            r.i = Some(d.identity.as_str());
            r.at = Some(&d.attributes);
        }
        IdentitySuspended(d) | IdentityReactivated(d) | IdentityLeft(d) => {
            r.i = Some(d.identity.as_str());
            r.w = d.reason.as_deref();
        }
        IdentityRejoined(d) => {
            r.i = Some(d.identity.as_str());
            r.at = d.attributes.as_ref();
        }
        IdentityOwnerChanged(d) => {
            r.i = Some(d.identity.as_str());
            r.o = Some(d.owner.as_str());
        }
        AccessGranted(d) => {
            r.i = Some(d.identity.as_str());
            (r.n, r.m) = names(&d.entitlement);
            r.x = micros(&d.expires_at);
            (r.j, r.y) = (d.justification.as_deref(), d.approver.as_deref());
        }
        AccessRevoked(d) => {
            r.i = Some(d.identity.as_str());
            (r.n, r.m) = names(&d.entitlement);
            r.w = d.reason.as_deref();
        }
        GroupCreated(d) | GroupDeleted(d) => {
            r.g = Some(d.group.as_str());
            r.dn = d.display_name.as_deref();
            r.xi = d.external_id.as_deref();
        }
        GroupUpdated(d) => {
            r.g = Some(d.group.as_str());
            r.dn = d.display_name.as_deref();
            r.xi = d.external_id.as_deref();
        }
        GroupMemberAdded(d) | GroupMemberRemoved(d) => {
            (r.g, r.i) = (Some(d.group.as_str()), Some(d.identity.as_str()));
        }
        GroupAccessGranted(d) | GroupAccessRevoked(d) => {
            r.g = Some(d.group.as_str());
            (r.n, r.m) = names(&d.entitlement);
        }
        CredentialIssued(d) | CredentialRotated(d) | CredentialRevoked(d) => {
            (r.i, r.cr) = (Some(d.identity.as_str()), Some(d.credential.as_str()));
            r.x = micros(&d.expires_at);
        }
        EventRetracted(d) => {
            r.q = Some(d.position.get());
            r.w = Some(&d.reason);
        }
        AccessReviewed(d) => {
            r.i = Some(d.identity.as_str());
            (r.n, r.m) = names(&d.entitlement);
            r.rv = Some(&d.reviewer);
            r.dc = Some(match d.decision {
                Decision::Keep => 0,
                Decision::Revoke => 1,
            });
            r.w = d.comment.as_deref();
        }
    }
    // Plain data with string keys always encodes.
    rmp_serde::encode::write_named(out, &r).expect("a record is plain data");
}

/// The schema version of a payload, read from its first field without decoding the rest:
/// every version writes a map whose first key is `v`, a small unsigned integer.
fn schema_version(payload: &[u8]) -> Option<u8> {
    let key_at = match *payload.first()? {
        0x80..=0x8f => 1,
        0xde => 3,
        0xdf => 5,
        _ => return None,
    };
    match payload.get(key_at..key_at + 3)? {
        [0xa1, b'v', v @ 0..=0x7f] => Some(*v),
        _ => None,
    }
}

/// What a record says of an event besides its body: the fields a scan over the whole log
/// for lags or for one type needs, read without building the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub position: u64,
    pub type_code: u8,
    pub recorded_at: Timestamp,
    pub effective_at: Timestamp,
    pub source: Option<String>,
}

impl Head {
    /// The head of an event already decoded.
    pub fn of(e: &Event) -> Head {
        Head {
            position: e.position.get(),
            type_code: e.data.type_code(),
            recorded_at: e.recorded_at,
            effective_at: e.effective_at,
            source: e.source.clone(),
        }
    }
}

/// Decodes a payload's [`Head`] only (the body's fields are skipped, not built): several
/// times cheaper than [`decode_event`] for a scan that needs no more.
pub fn decode_head(payload: &[u8]) -> Result<Head, DecodeError> {
    #[derive(Deserialize)]
    struct Fields {
        p: u64,
        r: i64,
        e: i64,
        #[serde(default)]
        s: Option<String>,
        t: u8,
    }
    match schema_version(payload) {
        Some(2) => {
            let f: Fields = rmp_serde::from_slice(payload).map_err(|e| DecodeError(e.to_string()))?;
            Ok(Head {
                position: f.p,
                type_code: f.t,
                recorded_at: Timestamp::from_micros(f.r),
                effective_at: Timestamp::from_micros(f.e),
                source: f.s,
            })
        }
        _ => Ok(Head::of(&decode_event(payload)?)),
    }
}

/// Decodes a payload; an error when the bytes are not an event of a known schema version.
pub fn decode_event(payload: &[u8]) -> Result<Event, DecodeError> {
    decode_any(payload).map_err(DecodeError)
}

/// A payload that does not decode as an event, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

fn decode_any(payload: &[u8]) -> Result<Event, String> {
    match schema_version(payload) {
        Some(2) => decode_v2(payload),
        Some(1) => decode_v1(payload),
        Some(v) => Err(format!("unknown schema version {v}")),
        None => Err("not an event record (no schema version first)".into()),
    }
}

fn decode_v1(payload: &[u8]) -> Result<Event, String> {
    let disk: DiskEventV1 = rmp_serde::from_slice(payload).map_err(|e| e.to_string())?;
    Ok(Event {
        position: Position(disk.p),
        id: disk.id,
        recorded_at: Timestamp::from_micros(disk.r),
        effective_at: Timestamp::from_micros(disk.e),
        source: disk.s,
        source_event_id: disk.k,
        actor: disk.a,
        raw: None,
        data: disk.d,
    })
}

fn decode_v2(payload: &[u8]) -> Result<Event, String> {
    use EventData::*;
    let mut r: Decoded = rmp_serde::from_slice(payload).map_err(|e| e.to_string())?;
    let type_name = *EVENT_TYPES.get(usize::from(r.t)).ok_or_else(|| format!("unknown type code {}", r.t))?;
    let missing = |field: &str| format!("{type_name} record without field `{field}`");
    let identity = |i: &mut Option<String>| i.take().map(IdentityId).ok_or_else(|| missing("i"));
    let group = |g: &mut Option<String>| g.take().map(GroupId).ok_or_else(|| missing("g"));
    let entitlement = |r: &mut Decoded| match (r.n.take(), r.m.take()) {
        (Some(resource), Some(permission)) => Ok(Entitlement { resource, permission }),
        _ => Err(missing("n/m")),
    };
    let micros = |x: Option<i64>| x.map(Timestamp::from_micros);
    let status = |r: &mut Decoded| Ok::<_, String>(StatusChange { identity: identity(&mut r.i)?, reason: r.w.take() });
    let credential = |r: &mut Decoded| {
        Ok::<_, String>(Credential {
            identity: identity(&mut r.i)?,
            credential: r.cr.take().map(CredentialId).ok_or_else(|| missing("cr"))?,
            expires_at: micros(r.x),
        })
    };
    let lifecycle = |r: &mut Decoded| {
        Ok::<_, String>(GroupLifecycle { group: group(&mut r.g)?, display_name: r.dn.take(), external_id: r.xi.take() })
    };
    let membership =
        |r: &mut Decoded| Ok::<_, String>(Membership { group: group(&mut r.g)?, identity: identity(&mut r.i)? });
    let access =
        |r: &mut Decoded| Ok::<_, String>(GroupAccess { group: group(&mut r.g)?, entitlement: entitlement(r)? });
    let raw = match r.rw.take() {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| format!("raw is not JSON: {e}"))?),
        None => None,
    };
    let data = match r.t {
        0 => IdentityJoined(Joined {
            identity: identity(&mut r.i)?,
            kind: *r.c.and_then(|c| KIND_CODES.get(usize::from(c))).ok_or_else(|| missing("c"))?,
            attributes: r.at.take().unwrap_or_default(),
            owner: r.o.take().map(IdentityId),
        }),
        1 => IdentityMoved(Moved {
            identity: identity(&mut r.i)?,
            attributes: r.at.take().ok_or_else(|| missing("at"))?,
        }),
        2 => IdentitySuspended(status(&mut r)?),
        3 => IdentityReactivated(status(&mut r)?),
        4 => IdentityLeft(status(&mut r)?),
        5 => IdentityRejoined(Rejoined { identity: identity(&mut r.i)?, attributes: r.at.take() }),
        6 => IdentityOwnerChanged(OwnerChanged {
            identity: identity(&mut r.i)?,
            owner: r.o.take().map(IdentityId).ok_or_else(|| missing("o"))?,
        }),
        7 => AccessGranted(Granted {
            identity: identity(&mut r.i)?,
            entitlement: entitlement(&mut r)?,
            expires_at: micros(r.x),
            justification: r.j.take(),
            approver: r.y.take(),
        }),
        8 => AccessRevoked(Revoked {
            identity: identity(&mut r.i)?,
            entitlement: entitlement(&mut r)?,
            reason: r.w.take(),
        }),
        9 => GroupCreated(lifecycle(&mut r)?),
        10 => GroupDeleted(lifecycle(&mut r)?),
        11 => GroupMemberAdded(membership(&mut r)?),
        12 => GroupMemberRemoved(membership(&mut r)?),
        13 => GroupAccessGranted(access(&mut r)?),
        14 => GroupAccessRevoked(access(&mut r)?),
        15 => CredentialIssued(credential(&mut r)?),
        16 => CredentialRotated(credential(&mut r)?),
        17 => CredentialRevoked(credential(&mut r)?),
        18 => EventRetracted(Retracted {
            position: Position(r.q.ok_or_else(|| missing("q"))?),
            reason: r.w.take().ok_or_else(|| missing("w"))?,
        }),
        19 => GroupUpdated(crate::event::GroupUpdated {
            group: group(&mut r.g)?,
            display_name: r.dn.take(),
            external_id: r.xi.take(),
        }),
        20 => AccessReviewed(Reviewed {
            identity: identity(&mut r.i)?,
            entitlement: entitlement(&mut r)?,
            reviewer: r.rv.take().ok_or_else(|| missing("rv"))?,
            decision: match r.dc {
                Some(0) => Decision::Keep,
                Some(1) => Decision::Revoke,
                _ => return Err(missing("dc")),
            },
            comment: r.w.take(),
        }),
        code => return Err(format!("unknown type code {code}")),
    };
    Ok(Event {
        position: Position(r.p),
        id: r.id,
        recorded_at: Timestamp::from_micros(r.r),
        effective_at: Timestamp::from_micros(r.e),
        source: r.s,
        source_event_id: r.k,
        actor: r.a,
        raw,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventData, StatusChange};

    #[test]
    fn encode_decode_round_trip() {
        let e = Event {
            position: Position(7),
            id: Uuid::now_v7(),
            recorded_at: Timestamp::from_micros(1),
            effective_at: Timestamp::from_micros(2),
            source: Some("hr".into()),
            source_event_id: None,
            actor: None,
            raw: Some(serde_json::json!({"method": "DELETE", "path": "/Users/bob", "body": null})),
            data: EventData::IdentityLeft(StatusChange { identity: "bob".into(), reason: None }),
        };
        assert_eq!(decode_event(&encode_event(&e)).unwrap(), e);
    }

    #[test]
    fn fields_a_later_version_adds_are_skipped_and_unknown_versions_refused() {
        #[derive(Serialize)]
        struct Later<'a> {
            v: u8,
            p: u64,
            #[serde(serialize_with = "uuid_bytes::serialize")]
            id: Uuid,
            r: i64,
            e: i64,
            t: u8,
            i: &'a str,
            zz: &'a str,
        }
        let id = Uuid::now_v7();
        let later = Later { v: 2, p: 3, id, r: 5, e: 4, t: 4, i: "bob", zz: "new" };
        let e = decode_event(&rmp_serde::to_vec_named(&later).unwrap()).unwrap();
        assert_eq!(e.data, EventData::IdentityLeft(StatusChange { identity: "bob".into(), reason: None }));
        let newer = Later { v: 3, ..later };
        assert_eq!(
            decode_event(&rmp_serde::to_vec_named(&newer).unwrap()).unwrap_err().to_string(),
            "unknown schema version 3"
        );
        let unknown = crate::event::EVENT_TYPES.len() as u8;
        let bad_type = Later { t: unknown, ..later };
        let err = decode_event(&rmp_serde::to_vec_named(&bad_type).unwrap()).unwrap_err().0;
        assert!(err.contains(&format!("type code {unknown}")), "{err}");
        assert!(decode_event(&[0x91, 0x01]).is_err());
        assert!(decode_event(&[]).is_err());
    }
}
