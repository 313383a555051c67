//! The runs of effective access as of the head, per entitlement: the access computation
//! (a fold of every identity) whose result the index file stores, so that holders at the
//! head are read without folding anyone. Computed here, before the file writer runs.

use crate::error::CorruptIndex;
use crate::index::AccessIndex;
use crate::model::RunVia;

/// Per entitlement, its runs encoded by `crate::codec::encode_run`, identities ascending.
pub(crate) fn build_runs(index: &AccessIndex) -> Result<Vec<Vec<u8>>, CorruptIndex> {
    let mut out = vec![Vec::new(); index.ents.len()];
    let mut last_id = vec![0u32; index.ents.len()];
    let r = index.head;
    let mut groups = crate::query::Groups::new(index, r);
    let mut via = Vec::new();
    for id in 0..index.identities.end() {
        let fold = crate::fold::fold_identity_with(index, id, r, crate::fold::FoldScope::ACCESS)?;
        for run in index.access_runs(&fold, &mut groups) {
            via.clear();
            for v in &run.via {
                via.push(match v {
                    crate::query::Via::Direct { grant } => RunVia::Direct { grant: *grant },
                    crate::query::Via::Group { group, membership, grant } => RunVia::Group {
                        group: index.groups.get(group).ok_or_else(|| CorruptIndex {
                            path: index
                                .frozen
                                .as_ref()
                                .map_or("(in memory)", crate::frozen::Frozen::origin)
                                .to_string(),
                            reason: format!("group '{group}' has no id"),
                        })?,
                        membership: *membership,
                        grant: *grant,
                    },
                });
            }
            let e = run.ent as usize;
            crate::codec::encode_run(last_id[e], id, run.from, run.to, &via, &mut out[e]);
            last_id[e] = id;
        }
    }
    Ok(out)
}
