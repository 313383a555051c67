//! The small part of an index file (`docs/format.md`, "small tables"): read whole at open.

use super::Small;
use crate::codec::{put_str, put_time, Malformed, Reader};
use crate::model::{Filed, GroupOp};
use tenure_engine::varint::put as put_varint;

/// Appends the index file's small part (`docs/format.md`, "small"): group names, each
/// group's events, entitlement names, each entitlement's group holders and reviewed
/// identities, the retractions. Varints and length-prefixed strings throughout, so that
/// opening a file reads it in one pass with one allocation per name.
pub(crate) fn encode_small(small: &Small, out: &mut Vec<u8>) -> std::io::Result<()> {
    // Lists per entitlement, most of them empty: how many there are, how many are not
    // empty, then each of those as its index, length and ids.
    let ids = |out: &mut Vec<u8>, lists: &[Vec<u32>]| {
        put_varint(out, lists.len() as u64);
        put_varint(out, lists.iter().filter(|l| !l.is_empty()).count() as u64);
        for (i, list) in lists.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
            put_varint(out, i as u64);
            put_varint(out, list.len() as u64);
            for &id in list {
                put_varint(out, u64::from(id));
            }
        }
    };
    put_varint(out, small.groups.len() as u64);
    for g in &small.groups {
        put_str(out, g);
    }
    put_varint(out, small.group_events.len() as u64);
    for events in &small.group_events {
        put_varint(out, events.len() as u64);
        for e in events {
            put_varint(out, e.pos);
            put_time(out, e.eff);
            match e.op {
                GroupOp::Created => put_varint(out, 0),
                GroupOp::Deleted => put_varint(out, 1),
                GroupOp::Granted(ent) => put_varint(out, 2 + 2 * u64::from(ent)),
                GroupOp::Revoked(ent) => put_varint(out, 3 + 2 * u64::from(ent)),
            }
        }
    }
    // The names as one text, then the length of each part: read back with one UTF-8
    // check and one copy, whatever their number.
    put_varint(out, small.ents.len() as u64);
    let text_len: usize = small.ents.iter().map(|e| e.resource.len() + e.permission.len()).sum();
    if u32::try_from(text_len).is_err() {
        return Err(std::io::Error::other("the entitlements' names pass 4 GiB"));
    }
    put_varint(out, text_len as u64);
    for e in small.ents.iter() {
        out.extend_from_slice(e.resource.as_bytes());
        out.extend_from_slice(e.permission.as_bytes());
    }
    // Where each resource and each permission ends in the text, u32 each: no varint to
    // decode per name (the text is under 4 GiB: checked above).
    let mut end = 0u32;
    for e in small.ents.iter() {
        for part in [e.resource, e.permission] {
            end = end.wrapping_add(part.len() as u32);
            out.extend_from_slice(&end.to_le_bytes());
        }
    }
    ids(out, &small.group_holders);
    ids(out, &small.reviewed);
    put_varint(out, small.retracted.len() as u64);
    for &(a, b) in &small.retracted {
        put_varint(out, a);
        put_varint(out, b);
    }
    Ok(())
}

/// Decodes what [`encode_small`] wrote, all of it and nothing more.
pub(crate) fn decode_small(b: &[u8]) -> Result<Small, Malformed> {
    let mut r = Reader { b, at: 0 };
    // A count is at most the bytes left: a damaged count cannot ask for a huge vector.
    let count = |r: &mut Reader<'_>| -> Result<usize, Malformed> {
        let n = usize::try_from(r.varint()?).map_err(|_| Malformed)?;
        if n > r.b.len().saturating_sub(r.at) {
            return Err(Malformed);
        }
        Ok(n)
    };
    // One list per entitlement: their count must be the entitlements' (so that a damaged
    // count cannot ask for a huge vector either).
    let ids = |r: &mut Reader<'_>, ents: usize| -> Result<Vec<Vec<u32>>, Malformed> {
        let n = usize::try_from(r.varint()?).map_err(|_| Malformed)?;
        if n != ents {
            return Err(Malformed);
        }
        let mut lists = vec![Vec::new(); n];
        let filled = count(r)?;
        let mut last = None;
        for _ in 0..filled {
            let i = usize::try_from(r.varint()?).map_err(|_| Malformed)?;
            // In increasing order, each once, within the count.
            if i >= n || last.is_some_and(|l| i <= l) {
                return Err(Malformed);
            }
            last = Some(i);
            let k = count(r)?;
            if k == 0 {
                return Err(Malformed);
            }
            let mut list = Vec::with_capacity(k);
            for _ in 0..k {
                list.push(r.u32()?);
            }
            lists[i] = list;
        }
        Ok(lists)
    };
    let n = count(&mut r)?;
    let mut groups = Vec::with_capacity(n);
    for _ in 0..n {
        groups.push(r.str()?.to_string());
    }
    let n = count(&mut r)?;
    let mut group_events = Vec::with_capacity(n);
    for _ in 0..n {
        let k = count(&mut r)?;
        let mut events = Vec::with_capacity(k);
        for _ in 0..k {
            let pos = r.varint()?;
            let eff = r.time()?;
            let op = match r.varint()? {
                0 => GroupOp::Created,
                1 => GroupOp::Deleted,
                x => {
                    let ent = u32::try_from((x - 2) / 2).map_err(|_| Malformed)?;
                    if x % 2 == 0 {
                        GroupOp::Granted(ent)
                    } else {
                        GroupOp::Revoked(ent)
                    }
                }
            };
            events.push(Filed { pos, eff, op });
        }
        group_events.push(events);
    }
    let n = count(&mut r)?;
    let text = r.str()?;
    let table = n.checked_mul(8).and_then(|len| r.b.get(r.at..r.at.checked_add(len)?)).ok_or(Malformed)?;
    r.at += table.len();
    let ents = crate::ents::EntTable::read(text, table).ok_or(Malformed)?;
    let group_holders = ids(&mut r, ents.len())?;
    let reviewed = ids(&mut r, ents.len())?;
    let n = count(&mut r)?;
    let mut retracted = Vec::with_capacity(n);
    for _ in 0..n {
        retracted.push((r.varint()?, r.varint()?));
    }
    if r.at != b.len() {
        return Err(Malformed);
    }
    Ok(Small { groups, group_events, ents, group_holders, reviewed, retracted })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NEVER;

    #[test]
    fn the_small_part_reads_back_and_refuses_any_cut() {
        let small = Small {
            groups: vec!["dept-eng".into(), "admins".into(), String::new()],
            group_events: vec![
                vec![
                    Filed { pos: 1, eff: -5_000_000, op: GroupOp::Created },
                    Filed { pos: 7, eff: 1_700_000_000_123_456, op: GroupOp::Granted(3) },
                    Filed { pos: 9, eff: NEVER - 1, op: GroupOp::Revoked(u32::MAX) },
                ],
                vec![Filed { pos: u64::MAX, eff: i64::MIN + 1, op: GroupOp::Deleted }],
                vec![],
            ],
            ents: crate::ents::EntTable::read("payroll-dbreadé", &[10u32, 14, 16, 16].map(u32::to_le_bytes).concat())
                .unwrap(),
            group_holders: vec![vec![0, 2], vec![]],
            reviewed: vec![vec![], vec![u32::MAX]],
            retracted: vec![(3, 4), (u64::MAX, 1)],
        };
        let mut bytes = Vec::new();
        encode_small(&small, &mut bytes).unwrap();
        let back = decode_small(&bytes).unwrap();
        assert_eq!(format!("{back:?}"), format!("{small:?}"));
        for cut in 0..bytes.len() {
            assert!(decode_small(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_small(&longer).is_err());
        assert_eq!(
            format!(
                "{:?}",
                decode_small(&{
                    let mut b = Vec::new();
                    encode_small(&Small::default(), &mut b).unwrap();
                    b
                })
                .unwrap()
            ),
            format!("{:?}", Small::default())
        );
    }
}
