//! The fold of one identity: its status, grants, memberships, profile and credentials as
//! intervals, with the positions that opened and closed them, and its anomalies.

#[allow(unused_imports)]
use super::*;
use crate::model::Filed;

/// Folds identity `id` as known at position `r`.
pub fn fold_identity(index: &(impl IndexView + ?Sized), id: u32, r: u64) -> Result<IdentityFold, CorruptIndex> {
    fold_identity_with(index, id, r, FoldScope::ALL)
}

/// As [`fold_identity`], limited to `scope`.
pub fn fold_identity_with(
    index: &(impl IndexView + ?Sized),
    id: u32,
    r: u64,
    scope: FoldScope,
) -> Result<IdentityFold, CorruptIndex> {
    let own = index.id_events(id, !scope.profile)?;
    let groups = index.groups_of(id)?;
    fold_identity_events(index, (&own, &groups), r, scope)
}

/// As [`fold_identity_with`], over an identity's events and groups already read (`own`
/// as [`IndexView::id_events`] gives them, lite unless `scope` has the profile): for a
/// caller folding one identity as known at several positions.
pub fn fold_identity_events(
    index: &(impl IndexView + ?Sized),
    (own, groups): (&[Filed<IdOp>], &[u32]),
    r: u64,
    scope: FoldScope,
) -> Result<IdentityFold, CorruptIndex> {
    let with_profile = scope.profile;
    let mut items: Vec<(i64, u64, Item<'_>)> = Vec::with_capacity(own.len());
    for e in own.iter() {
        if e.eff > scope.until {
            break;
        }
        if index.visible(e.pos, r) {
            items.push((e.eff, e.pos, Item::Id(&e.op)));
        }
    }
    for &g in groups {
        for e in index.group_events(g) {
            let created = match e.op {
                GroupOp::Created => true,
                GroupOp::Deleted => false,
                _ => continue,
            };
            if e.eff <= scope.until && index.visible(e.pos, r) {
                items.push((e.eff, e.pos, Item::GroupLife(g, created)));
            }
        }
    }
    if !groups.is_empty() {
        items.sort_unstable_by_key(|(eff, pos, _)| (*eff, *pos));
    }

    let mut fold = IdentityFold::default();
    let mut state: Option<(State, i64, u64)> = None; // (state, since, opened_by)
    let mut grants = Open { items: Vec::new() };
    let mut members = Open { items: Vec::new() };
    let mut exists: Vec<(u32, bool)> = groups.iter().map(|&g| (g, false)).collect();
    let mut profile: Option<ProfileVersion> = None;

    let set_state = |fold: &mut IdentityFold, state: &mut Option<(State, i64, u64)>, to: State, t: i64, pos: u64| {
        if let Some((s, from, by)) = *state {
            if from < t {
                fold.status.push(StatusSpan { state: s, from, to: t, opened_by: by, closed_by: Some(pos) });
            }
        }
        *state = Some((to, t, pos));
    };

    for (t, pos, item) in items {
        grants.expire(&mut fold.grants, t);
        let anomaly = |fold: &mut IdentityFold, kind| fold.anomalies.push(Anomaly { position: pos, kind });
        let current = state.map(|s| s.0);
        let joined = matches!(current, Some(State::Active | State::Suspended));
        match item {
            Item::GroupLife(g, created) => {
                let Some(slot) = exists.iter_mut().find(|(k, _)| *k == g) else { continue };
                if created {
                    slot.1 = true;
                } else if slot.1 {
                    slot.1 = false;
                    members.end_where(&mut fold.memberships, t, pos, |k| k == g);
                }
            }
            Item::Id(op) => match op {
                IdOp::Joined(j) => {
                    if current.is_none() {
                        set_state(&mut fold, &mut state, State::Active, t, pos);
                        let v = ProfileVersion {
                            from: t,
                            position: pos,
                            kind: j.kind,
                            attributes: if with_profile { j.attributes.unpack() } else { Attributes::new() },
                            owner: j.owner,
                        };
                        if with_profile {
                            fold.profile.push(v.clone());
                        }
                        profile = Some(v);
                    } else {
                        anomaly(&mut fold, AnomalyKind::Transition);
                    }
                }
                IdOp::Suspended => {
                    if current == Some(State::Active) {
                        set_state(&mut fold, &mut state, State::Suspended, t, pos);
                    } else {
                        anomaly(&mut fold, AnomalyKind::Transition);
                    }
                }
                IdOp::Reactivated => {
                    if current == Some(State::Suspended) {
                        set_state(&mut fold, &mut state, State::Active, t, pos);
                    } else {
                        anomaly(&mut fold, AnomalyKind::Transition);
                    }
                }
                IdOp::Left => {
                    if joined {
                        set_state(&mut fold, &mut state, State::Left, t, pos);
                        fold.leaves.push((t, pos));
                        grants.end_where(&mut fold.grants, t, pos, |_| true);
                        members.end_where(&mut fold.memberships, t, pos, |_| true);
                        // A leave ends the credentials too (a rehire starts with none).
                        for c in fold.credentials.iter_mut().filter(|c| c.revoked_at.is_none()) {
                            c.revoked_at = Some(t);
                        }
                    } else {
                        anomaly(&mut fold, AnomalyKind::Transition);
                    }
                }
                IdOp::Rejoined(attrs) => {
                    if current == Some(State::Left) {
                        set_state(&mut fold, &mut state, State::Active, t, pos);
                        if let (Some(attrs), Some(p), true) = (attrs, profile.as_mut(), with_profile) {
                            attrs.unpack_into(&mut p.attributes);
                            p.from = t;
                            p.position = pos;
                            if with_profile {
                                fold.profile.push(p.clone());
                            }
                        }
                    } else {
                        anomaly(&mut fold, AnomalyKind::Transition);
                    }
                }
                IdOp::Moved(attrs) => match profile.as_mut() {
                    Some(p) if !with_profile => p.position = pos,
                    Some(p) => {
                        attrs.unpack_into(&mut p.attributes);
                        p.from = t;
                        p.position = pos;
                        fold.profile.push(p.clone());
                    }
                    None => anomaly(&mut fold, AnomalyKind::Transition),
                },
                IdOp::OwnerChanged(owner) => match profile.as_mut() {
                    Some(p) if !with_profile => p.position = pos,
                    Some(p) => {
                        p.owner = Some(*owner);
                        p.from = t;
                        p.position = pos;
                        fold.profile.push(p.clone());
                    }
                    None => anomaly(&mut fold, AnomalyKind::Transition),
                },
                IdOp::Granted { ent, expires } => {
                    if joined {
                        if *expires <= t {
                            anomaly(&mut fold, AnomalyKind::ExpiredAtStart);
                        }
                        grants.start(&mut fold.grants, *ent, t, pos, *expires);
                    } else {
                        anomaly(&mut fold, AnomalyKind::NotJoined);
                    }
                }
                IdOp::Revoked(ent) => {
                    if !grants.end(&mut fold.grants, *ent, t, pos) {
                        anomaly(&mut fold, AnomalyKind::NotHeld);
                    }
                }
                IdOp::MemberAdded(g) => {
                    let group_exists = exists.iter().any(|&(k, e)| k == *g && e);
                    if !joined {
                        anomaly(&mut fold, AnomalyKind::NotJoined);
                    } else if !group_exists {
                        anomaly(&mut fold, AnomalyKind::NoGroup);
                    } else {
                        members.start(&mut fold.memberships, *g, t, pos, NEVER);
                    }
                }
                IdOp::MemberRemoved(g) => {
                    if !members.end(&mut fold.memberships, *g, t, pos) {
                        anomaly(&mut fold, AnomalyKind::NotHeld);
                    }
                }
                // A review decision changes nothing the fold keeps.
                IdOp::Reviewed(_) => {}
                IdOp::Credential(_) if !with_profile => {}
                IdOp::Credential(c) => {
                    let live = fold
                        .credentials
                        .iter_mut()
                        .rev()
                        .find(|s| s.credential == c.credential && s.revoked_at.is_none());
                    match (c.action, live) {
                        (CredentialAction::Issued, _) if !joined => anomaly(&mut fold, AnomalyKind::NotJoined),
                        (CredentialAction::Issued, Some(s)) => {
                            // Re-issuing a live credential renews it.
                            s.issued_at = t;
                            s.issued_by = pos;
                            s.expires = c.expires;
                        }
                        (CredentialAction::Issued, None) => fold.credentials.push(CredentialState {
                            credential: c.credential.clone(),
                            issued_at: t,
                            issued_by: pos,
                            last_rotated_at: None,
                            expires: c.expires,
                            revoked_at: None,
                        }),
                        (CredentialAction::Rotated, Some(s)) => {
                            s.last_rotated_at = Some(t);
                            if c.expires != NEVER {
                                s.expires = c.expires;
                            }
                        }
                        (CredentialAction::Revoked, Some(s)) => s.revoked_at = Some(t),
                        (_, None) => anomaly(&mut fold, AnomalyKind::NotHeld),
                    }
                }
            },
        }
    }
    if let Some((s, from, by)) = state {
        fold.status.push(StatusSpan { state: s, from, to: NEVER, opened_by: by, closed_by: None });
    }
    grants.finish(&mut fold.grants);
    members.finish(&mut fold.memberships);
    fold.grants.sort_unstable_by_key(|s| (s.from, s.opened_by));
    fold.memberships.sort_unstable_by_key(|s| (s.from, s.opened_by));
    Ok(fold)
}
