//! Non-human identities at `T` as known at `R`: services whose owner is not active (since
//! when in the world, since when in the records), services without an owner, and
//! credentials held past their expiry or not rotated within a maximum age.

use super::{end, seconds, ts};
use crate::error::QueryError;
use crate::fold::{fold_identity_with, FoldScope, State};
use crate::index::AccessIndex;
use crate::model::NEVER;
use crate::query::AsOf;
use serde::Serialize;
use tenure_engine::{IdentityKind, Timestamp};

/// A service (active or suspended at `T`) whose owner at `T` is not active, or that has
/// no owner.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceRow {
    pub service: String,
    /// `active` or `suspended`.
    pub state: String,
    pub owner: Option<String>,
    /// `absent`, `suspended` or `left`; `None` when there is no owner.
    pub owner_state: Option<String>,
    /// The effective time from which the owner has been continuously not active up to
    /// `T`; `None` when the owner was never active (or there is none).
    pub orphaned_since: Option<Timestamp>,
    /// The event that ended the owner's activity then, and when it was recorded (later
    /// than `orphaned_since` when recorded late).
    pub ended_by: Option<u64>,
    pub known_since: Option<Timestamp>,
    /// The event behind the service's profile at `T` (its join or last owner change).
    pub profile_since: u64,
}

/// A credential held at `T` that is past its expiry, or not issued or rotated within the
/// maximum age.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CredentialRow {
    pub identity: String,
    pub kind: Option<IdentityKind>,
    pub credential: String,
    /// `expired` or `not_rotated`.
    pub finding: &'static str,
    pub issued_at: Timestamp,
    /// The `credential.issued` behind it.
    pub issued_by: u64,
    pub last_rotated_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    /// Since the last issue or rotation, at `T`.
    pub age_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Nhi {
    pub at: Timestamp,
    pub as_of: u64,
    pub max_age_seconds: f64,
    pub services: Vec<ServiceRow>,
    pub credentials: Vec<CredentialRow>,
    /// Active services with no lifecycle event within the dormancy period before `at`.
    pub dormant: Vec<super::DormantRow>,
}

/// What one identity adds to the report: service rows, credential rows, a dormant row.
type Found = (Vec<ServiceRow>, Vec<CredentialRow>, Vec<super::DormantRow>);

impl AccessIndex {
    /// The non-human identity report at `at` as known at `as_of`; credentials not issued
    /// or rotated within `max_age` (µs) before `at` are listed as `not_rotated`, active
    /// services with no lifecycle event within `dormant_after` (µs) as dormant.
    pub fn nhi(&self, at: Timestamp, as_of: AsOf, max_age: i64, dormant_after: i64) -> Result<Nhi, QueryError> {
        self.check()?;
        let r = self.resolve(as_of);
        let t = at.as_micros();
        let scope = FoldScope { profile: true, until: t };
        // Each identity on any core (its rows of its own), the rows sorted at the end.
        let one = |id: u32| -> Result<Found, QueryError> {
            let (mut services, mut credentials, mut dormant) = (Vec::new(), Vec::new(), Vec::new());
            let fold = fold_identity_with(self, id, r, scope)?;
            let name = || self.identity_name(id).map(str::to_string);
            let state = fold.state_at(t).map(|s| s.state);
            let profile = fold.profile_at(t);
            if let (Some(state @ (State::Active | State::Suspended)), Some(p)) = (state, profile) {
                if p.kind == IdentityKind::Service && state == State::Active {
                    let last =
                        super::last_lifecycle(&fold, t).filter(|(when, _)| *when < t.saturating_sub(dormant_after));
                    if let Some((when, pos)) = last {
                        dormant.push(super::DormantRow { identity: name()?, last_event: pos, last_event_at: ts(when) });
                    }
                }
                if p.kind == IdentityKind::Service {
                    let row = match p.owner {
                        None => Some(ServiceRow {
                            service: name()?,
                            state: state.as_str().into(),
                            owner: None,
                            owner_state: None,
                            orphaned_since: None,
                            ended_by: None,
                            known_since: None,
                            profile_since: p.position,
                        }),
                        Some(o) => {
                            let owner = fold_identity_with(self, o, r, FoldScope::access_at(t))?;
                            let owner_state = owner.state_at(t).map(|s| s.state);
                            if owner_state == Some(State::Active) {
                                None
                            } else {
                                // The last activity ended at or before T (it is not active now).
                                let last = owner.status.iter().rev().find(|s| s.state == State::Active);
                                let ended_by = last.and_then(|s| s.closed_by);
                                Some(ServiceRow {
                                    service: name()?,
                                    state: state.as_str().into(),
                                    owner: Some(self.identity_name(o)?.to_string()),
                                    owner_state: Some(owner_state.map_or("absent", State::as_str).into()),
                                    orphaned_since: last.map(|s| ts(s.to)),
                                    ended_by,
                                    known_since: ended_by.map(|p| ts(self.recorded_micros(p))),
                                    profile_since: p.position,
                                })
                            }
                        }
                    };
                    services.extend(row);
                }
            }
            // Credentials held at T: issued (or renewed) by then, neither revoked nor
            // ended by a leave (the fold reached only the events up to T).
            for c in fold.credentials.iter().filter(|c| c.revoked_at.is_none()) {
                let fresh = c.last_rotated_at.map_or(c.issued_at, |r| r.max(c.issued_at));
                let mut row = |finding| -> Result<(), QueryError> {
                    credentials.push(CredentialRow {
                        identity: name()?,
                        kind: profile.map(|p| p.kind),
                        credential: c.credential.clone(),
                        finding,
                        issued_at: ts(c.issued_at),
                        issued_by: c.issued_by,
                        last_rotated_at: c.last_rotated_at.map(ts),
                        expires_at: end(c.expires),
                        age_seconds: seconds(t - fresh),
                    });
                    Ok(())
                };
                if c.expires != NEVER && c.expires <= t {
                    row("expired")?;
                }
                if fresh < t.saturating_sub(max_age) {
                    row("not_rotated")?;
                }
            }
            Ok((services, credentials, dormant))
        };
        let (mut services, mut credentials, mut dormant) = (Vec::new(), Vec::new(), Vec::new());
        let ids: Vec<u32> = self.ids().collect();
        for chunk in ids.chunks(1 << 16) {
            for found in super::par_map(chunk, || (), |_, &id| one(id)) {
                let (s, c, d) = found?;
                services.extend(s);
                credentials.extend(c);
                dormant.extend(d);
            }
        }
        services.sort_by(|a, b| a.service.cmp(&b.service));
        credentials
            .sort_by(|a, b| (&a.identity, &a.credential, a.finding).cmp(&(&b.identity, &b.credential, b.finding)));
        dormant.sort_by(|a, b| a.identity.cmp(&b.identity));
        Ok(Nhi { at, as_of: r, max_age_seconds: seconds(max_age), services, credentials, dormant })
    }
}
