//! The runs of effective access as of the head, per entitlement: the access computation
//! (a fold of every identity) whose result the index file stores, so that holders at the
//! head are read without folding anyone. Computed here, before the file writer runs.

use crate::error::CorruptIndex;
use crate::frozen::Frozen;
use crate::index::AccessIndex;
use crate::model::RunVia;
use crate::query::Touched;
use std::borrow::Cow;

/// Identities folded per round: each round is folded on every core, then encoded in
/// order on this thread, so memory holds one round's runs at most.
const ROUND: u32 = 1 << 15;

/// Per entitlement, its runs encoded by `crate::codec::encode_run`, identities ascending:
/// made anew, or borrowed from the mapped file being rewritten where they are the same
/// (copied from it as the new file is written, never held in memory).
///
/// Folding every identity is most of a rewrite's cost (about 20 µs an identity at 10M
/// events). So when the index has a file, only the identities whose access as known at
/// the head may differ from the file's runs are folded (those
/// [`AccessIndex::touched_where`] finds, as to every entitlement, and those new since the
/// file); everyone else's runs are carried over from the file as they are. The bytes are
/// the same either way (`tests/equivalence.rs` compares them).
pub(crate) fn build_runs(index: &AccessIndex) -> Result<Vec<Cow<'_, [u8]>>, CorruptIndex> {
    let end = index.identities.end();
    let everyone = || Ok(fold_runs(index, 0..end)?.into_iter().map(Cow::Owned).collect());
    let carried = match &index.frozen {
        Some(f) => index.touched_where(index.head, |_| true)?.map(|touched| (f, touched)),
        None => None,
    };
    let Some((f, touched)) = carried else { return everyone() };
    let carried = fold_runs(index, (0..end).filter(|&id| id >= f.identities || touched.contains(id)))
        .and_then(|folded| carry_over(f, (&touched, &dirty_ents(index, f, &touched)?), folded));
    // Runs of the old file that fail their checksum are not carried over: everyone is
    // folded, as for a build from the log, and the new file is whole.
    carried.or_else(|_| everyone())
}

/// The runs of `ids` (ascending), per entitlement, folded on every core a round at a time.
fn fold_runs(index: &AccessIndex, ids: impl Iterator<Item = u32>) -> Result<Vec<Vec<u8>>, CorruptIndex> {
    let mut out = vec![Vec::new(); index.ents.len()];
    let mut last_id = vec![0u32; index.ents.len()];
    let r = index.head;
    let mut ids = ids.peekable();
    while ids.peek().is_some() {
        let round: Vec<u32> = ids.by_ref().take(ROUND as usize).collect();
        let folded = crate::par::par_map(
            &round,
            || crate::query::Groups::new(index, r),
            |groups, &id| runs_of(index, id, r, groups),
        );
        for (&id, runs) in round.iter().zip(folded) {
            for run in runs? {
                let e = run.ent as usize;
                crate::codec::encode_run(last_id[e], id, run.from, run.to, &run.via, &mut out[e]);
                last_id[e] = id;
            }
        }
    }
    Ok(out)
}

/// The entitlements of the file in which a `touched` identity may have runs: those it
/// was ever granted directly, and those ever granted to a group it was ever a member of.
/// The runs of every other entitlement are the file's, byte for byte.
fn dirty_ents(index: &AccessIndex, f: &Frozen, touched: &Touched) -> Result<Vec<bool>, CorruptIndex> {
    let mut dirty = vec![false; f.ents as usize];
    let mut mark = |ent: u32| {
        if let Some(d) = dirty.get_mut(ent as usize) {
            *d = true;
        }
    };
    let mut groups = vec![false; index.group_events.len()];
    for id in (0..f.identities).filter(|&id| touched.contains(id)) {
        for e in index.id_events(id, true)?.iter() {
            if let crate::model::IdOp::Granted { ent, .. } = e.op {
                mark(ent);
            }
        }
        for &g in index.groups_of(id)?.iter() {
            if let Some(seen) = groups.get_mut(g as usize) {
                *seen = true;
            }
        }
    }
    for (g, events) in index.group_events.iter().enumerate() {
        if groups[g] {
            for e in events {
                if let crate::model::GroupOp::Granted(ent) = e.op {
                    mark(ent);
                }
            }
        }
    }
    Ok(dirty)
}

/// Per entitlement, the file's runs of the identities not `touched` merged, in identity
/// order, with the `folded` runs of the others (and of entitlements new since the file);
/// an entitlement no touched identity can have runs in (not `dirty`) and none folded is
/// the file's as it is (its checksum checked here).
fn carry_over<'a>(
    f: &'a Frozen,
    (touched, dirty): (&Touched, &[bool]),
    folded: Vec<Vec<u8>>,
) -> Result<Vec<Cow<'a, [u8]>>, CorruptIndex> {
    let ents: Vec<u32> = (0..f.ents.min(folded.len() as u32)).collect();
    let merged = crate::par::par_map(
        &ents,
        || (),
        |_, &ent| -> Result<Cow<'a, [u8]>, CorruptIndex> {
            if !dirty[ent as usize] && folded[ent as usize].is_empty() {
                return Ok(Cow::Borrowed(f.runs_filed(ent)?));
            }
            let mut fresh: Vec<(u32, i64, i64, Vec<RunVia>)> = Vec::new(); // identity, from, to, reasons
            crate::codec::runs_each(&folded[ent as usize], |id, from, to, via| {
                fresh.push((id, from, to, via.to_vec()))
            })
            .map_err(|_| f.corrupt(&format!("the runs of entitlement #{ent} just folded do not decode")))?;
            let mut fresh = fresh.into_iter().peekable();
            let (mut out, mut prev) = (Vec::new(), 0u32);
            let mut put = |id: u32, from: i64, to: i64, via: &[RunVia]| {
                crate::codec::encode_run(prev, id, from, to, via, &mut out);
                prev = id;
            };
            f.runs_each(ent, |id, from, to, via| {
                if touched.contains(id) {
                    return;
                }
                while let Some((fid, ffrom, fto, fvia)) = fresh.next_if(|run| run.0 < id) {
                    put(fid, ffrom, fto, &fvia);
                }
                put(id, from, to, via);
            })?;
            for (id, from, to, via) in fresh {
                put(id, from, to, &via);
            }
            Ok(Cow::Owned(out))
        },
    );
    let mut lists = merged.into_iter().collect::<Result<Vec<_>, _>>()?;
    // Entitlements new since the file: the folded runs are all of them.
    lists.extend(folded.into_iter().skip(ents.len()).map(Cow::Owned));
    Ok(lists)
}

/// The runs of identity `id` as known at `r`.
fn runs_of(
    index: &AccessIndex,
    id: u32,
    r: u64,
    groups: &mut crate::query::Groups<'_>,
) -> Result<Vec<crate::query::Run<RunVia>>, CorruptIndex> {
    let fold = crate::fold::fold_identity_with(index, id, r, crate::fold::FoldScope::ACCESS)?;
    Ok(index.access_run_ids(&fold, groups, i64::MIN, crate::model::NEVER))
}
