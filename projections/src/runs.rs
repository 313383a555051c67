//! The runs of effective access as of the head, per entitlement: the access computation
//! (a fold of every identity) whose result the index file stores, so that holders at the
//! head are read without folding anyone. Computed here, before the file writer runs.

use crate::error::CorruptIndex;
use crate::index::AccessIndex;
use crate::model::RunVia;

/// Identities folded per round: each round is folded on every core, then encoded in
/// order on this thread, so memory holds one round's runs at most.
const ROUND: u32 = 1 << 15;

/// One run of an identity's access: entitlement, from, to, reasons.
type IdRun = (u32, i64, i64, Vec<RunVia>);

/// Per entitlement, its runs encoded by `crate::codec::encode_run`, identities ascending.
pub(crate) fn build_runs(index: &AccessIndex) -> Result<Vec<Vec<u8>>, CorruptIndex> {
    let mut out = vec![Vec::new(); index.ents.len()];
    let mut last_id = vec![0u32; index.ents.len()];
    let r = index.head;
    let end = index.identities.end();
    let mut start = 0u32;
    while start < end {
        let ids: Vec<u32> = (start..end.min(start.saturating_add(ROUND))).collect();
        let folded = crate::par::par_map(
            &ids,
            || crate::query::Groups::new(index, r),
            |groups, &id| runs_of(index, id, r, groups),
        );
        for (&id, runs) in ids.iter().zip(folded) {
            for (ent, from, to, via) in runs? {
                let e = ent as usize;
                crate::codec::encode_run(last_id[e], id, from, to, &via, &mut out[e]);
                last_id[e] = id;
            }
        }
        start = start.saturating_add(ROUND);
    }
    Ok(out)
}

/// The runs of identity `id` as known at `r`.
fn runs_of(
    index: &AccessIndex,
    id: u32,
    r: u64,
    groups: &mut crate::query::Groups<'_>,
) -> Result<Vec<IdRun>, CorruptIndex> {
    let fold = crate::fold::fold_identity_with(index, id, r, crate::fold::FoldScope::ACCESS)?;
    let mut out = Vec::new();
    for run in index.access_runs(&fold, groups) {
        let mut via = Vec::with_capacity(run.via.len());
        for v in &run.via {
            via.push(match v {
                crate::query::Via::Direct { grant } => RunVia::Direct { grant: *grant },
                crate::query::Via::Group { group, membership, grant } => RunVia::Group {
                    group: index.groups.get(group).ok_or_else(|| CorruptIndex {
                        path: index.frozen.as_ref().map_or("(in memory)", crate::frozen::Frozen::origin).to_string(),
                        reason: format!("group '{group}' has no id"),
                    })?,
                    membership: *membership,
                    grant: *grant,
                },
            });
        }
        out.push((run.ent, run.from, run.to, via));
    }
    Ok(out)
}
