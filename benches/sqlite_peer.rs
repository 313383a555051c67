//! The peer a team would build instead of Tenure: the same events in SQLite, one row per
//! event, and access and holders at `T` answered by SQL over them.
//!
//! The obvious schema and settings: one table, the event's JSON kept as its body, the
//! fields a query needs in columns, indexes on the identity and on the effective time (and
//! on the group and the entitlement; each with the type, so that a query reads the rows
//! of the types it asks for and no others: a group's membership rows are thousands), the
//! idempotency key unique (`INSERT OR IGNORE`), WAL with `synchronous=FULL`, one
//! transaction per batch. A retraction marks the event it retracts. It answers from
//! current knowledge only (no "as known at R": that needs every query rewritten over
//! positions) and checks nothing at append (no references, no chain).
//!
//! The SQL follows DESIGN.md's rules the way a careful team would write them: an
//! identity's state is its latest lifecycle event, a grant or membership holds when its
//! latest start or end event is a start, not expired, and later than the identity's last
//! leave and the group's creation. What it does not model (a start event while the
//! identity or group is absent, an out-of-order transition) is where its answers can
//! differ from the fold's: the harness counts those.

use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeSet;
use std::path::Path;
use tenure::engine::{EventData, NewEvent};

pub struct Peer {
    conn: Connection,
}

/// (effective time in µs, position): the order of the fold.
type Point = (i64, i64);
const BEFORE_ALL: Point = (i64::MIN, 0);

/// The latest start-or-end event per key among the rows a `WHERE` selects, kept when it
/// is a start (`?` placeholders are the caller's).
fn latest_start(key: &str, filter: &str, start: &str, end: &str) -> String {
    format!(
        "SELECT {key}, expires_at, effective_at, position FROM (
           SELECT {key}, type, expires_at, effective_at, position,
                  ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY effective_at DESC, position DESC) AS rn
           FROM events WHERE {filter} AND retracted = 0 AND type IN ('{start}', '{end}'))
         WHERE rn = 1 AND type = '{start}'"
    )
}

impl Peer {
    pub fn create(path: &Path) -> rusqlite::Result<Peer> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE events (
               position INTEGER PRIMARY KEY,
               type TEXT NOT NULL,
               effective_at INTEGER NOT NULL,
               identity TEXT,
               grp TEXT,
               resource TEXT,
               permission TEXT,
               expires_at INTEGER,
               source TEXT,
               source_event_id TEXT,
               retracted INTEGER NOT NULL DEFAULT 0,
               body TEXT NOT NULL,
               UNIQUE (source, source_event_id));
             CREATE INDEX events_identity ON events (identity, type, effective_at);
             CREATE INDEX events_effective ON events (effective_at);
             CREATE INDEX events_group ON events (grp, type, effective_at);
             CREATE INDEX events_entitlement ON events (resource, permission, type, effective_at);",
        )?;
        Ok(Peer { conn })
    }

    /// One batch, one transaction, synced at commit. Returns how many were new.
    pub fn append(&mut self, batch: &[NewEvent]) -> rusqlite::Result<usize> {
        let tx = self.conn.transaction()?;
        let mut stored = 0;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO events
                   (type, effective_at, identity, grp, resource, permission, expires_at, source, source_event_id, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            let mut retract = tx.prepare_cached("UPDATE events SET retracted = 1 WHERE position = ?1")?;
            for e in batch {
                let (entitlement, expires) = match &e.data {
                    EventData::AccessGranted(g) => (Some(&g.entitlement), g.expires_at.map(|t| t.as_micros())),
                    EventData::AccessRevoked(r) => (Some(&r.entitlement), None),
                    EventData::GroupAccessGranted(g) | EventData::GroupAccessRevoked(g) => (Some(&g.entitlement), None),
                    _ => (None, None),
                };
                let n = insert.execute(params![
                    e.data.type_name(),
                    e.effective_at.as_micros(),
                    e.data.identity().map(|i| i.as_str()),
                    e.data.group().map(|g| g.as_str()),
                    entitlement.map(|x| x.resource.as_str()),
                    entitlement.map(|x| x.permission.as_str()),
                    expires,
                    e.source.as_deref(),
                    e.source_event_id.as_deref(),
                    e.to_json(),
                ])?;
                stored += n;
                if let (1, EventData::EventRetracted(r)) = (n, &e.data) {
                    retract.execute([r.position.get() as i64])?;
                }
            }
        }
        tx.commit()?;
        Ok(stored)
    }

    /// Whether the identity is active at `t`, and its last leave at or before `t`.
    fn standing(&self, identity: &str, t: i64) -> rusqlite::Result<(bool, Point)> {
        let mut q = self.conn.prepare_cached(
            "SELECT type, effective_at, position FROM events
             WHERE identity = ?1 AND effective_at <= ?2 AND retracted = 0
               AND type IN ('identity.joined', 'identity.suspended', 'identity.reactivated', 'identity.left', 'identity.rejoined')
             ORDER BY effective_at DESC, position DESC",
        )?;
        let mut rows = q.query(params![identity, t])?;
        let mut active = None;
        while let Some(row) = rows.next()? {
            let kind: String = row.get(0)?;
            active.get_or_insert(matches!(
                kind.as_str(),
                "identity.joined" | "identity.reactivated" | "identity.rejoined"
            ));
            if kind == "identity.left" {
                return Ok((active.unwrap_or(false), (row.get(1)?, row.get(2)?)));
            }
        }
        Ok((active.unwrap_or(false), BEFORE_ALL))
    }

    /// The group's creation point when it exists at `t`.
    fn created(&self, group: &str, t: i64) -> rusqlite::Result<Option<Point>> {
        let mut q = self.conn.prepare_cached(
            "SELECT type, effective_at, position FROM events
             WHERE grp = ?1 AND effective_at <= ?2 AND retracted = 0 AND type IN ('group.created', 'group.deleted')
             ORDER BY effective_at DESC, position DESC LIMIT 1",
        )?;
        let row = q
            .query_row(params![group, t], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
            .optional()?;
        Ok(row.filter(|(kind, _, _)| kind == "group.created").map(|(_, at, p)| (at, p)))
    }

    /// The entitlements `identity` has at `t`.
    pub fn access(&self, identity: &str, t: i64) -> rusqlite::Result<BTreeSet<(String, String)>> {
        let mut out = BTreeSet::new();
        let (active, left) = self.standing(identity, t)?;
        if !active {
            return Ok(out);
        }
        let after = |at: i64, p: i64, since: Point| (at, p) > since;
        let direct = latest_start(
            "resource, permission",
            "identity = ?1 AND effective_at <= ?2",
            "access.granted",
            "access.revoked",
        );
        let mut q = self.conn.prepare_cached(&direct)?;
        let mut rows = q.query(params![identity, t])?;
        while let Some(row) = rows.next()? {
            let expires: Option<i64> = row.get(2)?;
            if expires.is_none_or(|x| x > t) && after(row.get(3)?, row.get(4)?, left) {
                out.insert((row.get(0)?, row.get(1)?));
            }
        }
        let memberships =
            latest_start("grp", "identity = ?1 AND effective_at <= ?2", "group.member_added", "group.member_removed");
        let mut groups = Vec::new();
        {
            let mut q = self.conn.prepare_cached(&memberships)?;
            let mut rows = q.query(params![identity, t])?;
            while let Some(row) = rows.next()? {
                groups.push((row.get::<_, String>(0)?, (row.get::<_, i64>(2)?, row.get::<_, i64>(3)?)));
            }
        }
        let grants = latest_start(
            "resource, permission",
            "grp = ?1 AND effective_at <= ?2",
            "group.access_granted",
            "group.access_revoked",
        );
        for (group, added) in groups {
            let Some(created) = self.created(&group, t)? else { continue };
            if added <= left || added <= created {
                continue;
            }
            let mut q = self.conn.prepare_cached(&grants)?;
            let mut rows = q.query(params![group, t])?;
            while let Some(row) = rows.next()? {
                if after(row.get(3)?, row.get(4)?, created) {
                    out.insert((row.get(0)?, row.get(1)?));
                }
            }
        }
        Ok(out)
    }

    /// Who has `resource#permission` at `t`.
    pub fn holders(&self, resource: &str, permission: &str, t: i64) -> rusqlite::Result<BTreeSet<String>> {
        // Candidates and the point their holding started; each is checked for standing.
        let mut candidates: Vec<(String, Point)> = Vec::new();
        let direct = latest_start(
            "identity",
            "resource = ?1 AND permission = ?2 AND effective_at <= ?3 AND identity IS NOT NULL",
            "access.granted",
            "access.revoked",
        );
        {
            let mut q = self.conn.prepare_cached(&direct)?;
            let mut rows = q.query(params![resource, permission, t])?;
            while let Some(row) = rows.next()? {
                let expires: Option<i64> = row.get(1)?;
                if expires.is_none_or(|x| x > t) {
                    candidates.push((row.get(0)?, (row.get(2)?, row.get(3)?)));
                }
            }
        }
        let granted = latest_start(
            "grp",
            "resource = ?1 AND permission = ?2 AND effective_at <= ?3 AND grp IS NOT NULL",
            "group.access_granted",
            "group.access_revoked",
        );
        let mut groups = Vec::new();
        {
            let mut q = self.conn.prepare_cached(&granted)?;
            let mut rows = q.query(params![resource, permission, t])?;
            while let Some(row) = rows.next()? {
                groups.push((row.get::<_, String>(0)?, (row.get::<_, i64>(2)?, row.get::<_, i64>(3)?)));
            }
        }
        let members =
            latest_start("identity", "grp = ?1 AND effective_at <= ?2", "group.member_added", "group.member_removed");
        for (group, grant) in groups {
            let Some(created) = self.created(&group, t)? else { continue };
            if grant <= created {
                continue;
            }
            let mut q = self.conn.prepare_cached(&members)?;
            let mut rows = q.query(params![group, t])?;
            while let Some(row) = rows.next()? {
                let added = (row.get::<_, i64>(2)?, row.get::<_, i64>(3)?);
                if added > created {
                    candidates.push((row.get(0)?, added));
                }
            }
        }
        let mut out = BTreeSet::new();
        for (identity, since) in candidates {
            if out.contains(&identity) {
                continue;
            }
            let (active, left) = self.standing(&identity, t)?;
            if active && since > left {
                out.insert(identity);
            }
        }
        Ok(out)
    }
}
