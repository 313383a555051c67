//! The fold of one group: its existence and grants as intervals, and its anomalies.

#[allow(unused_imports)]
use super::*;

/// Folds group `g` as known at position `r`.
pub fn fold_group(index: &(impl IndexView + ?Sized), g: u32, r: u64) -> GroupFold {
    let mut fold = GroupFold::default();
    let mut exists: Option<(i64, u64)> = None;
    let mut grants = Open { items: Vec::new() };
    for e in index.group_events(g) {
        if !index.visible(e.pos, r) {
            continue;
        }
        let (t, pos) = (e.eff, e.pos);
        let anomaly = |fold: &mut GroupFold, kind| fold.anomalies.push(Anomaly { position: pos, kind });
        match e.op {
            GroupOp::Created => match exists {
                Some(_) => anomaly(&mut fold, AnomalyKind::GroupExists),
                None => exists = Some((t, pos)),
            },
            GroupOp::Deleted => match exists.take() {
                Some((from, by)) => {
                    close(&mut fold.exists, 0, from, by, t, Some(pos));
                    grants.end_where(&mut fold.grants, t, pos, |_| true);
                }
                None => anomaly(&mut fold, AnomalyKind::NoGroup),
            },
            GroupOp::Granted(ent) => {
                if exists.is_some() {
                    grants.start(&mut fold.grants, ent, t, pos, NEVER);
                } else {
                    anomaly(&mut fold, AnomalyKind::NoGroup);
                }
            }
            GroupOp::Revoked(ent) => {
                if !grants.end(&mut fold.grants, ent, t, pos) {
                    anomaly(&mut fold, AnomalyKind::NotHeld);
                }
            }
        }
    }
    if let Some((from, by)) = exists {
        close(&mut fold.exists, 0, from, by, NEVER, None);
    }
    grants.finish(&mut fold.grants);
    fold.grants.sort_unstable_by_key(|s| (s.from, s.opened_by));
    fold
}
