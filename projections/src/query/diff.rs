//! `diff`: access gained and lost between T1 and T2.

#[allow(unused_imports)]
use super::*;

/// How many identities are compared at a time (on every core) before their changes are
/// handed out: what bounds the memory of [`AccessIndex::diff_each`].
const CHUNK: usize = 4096;

impl AccessIndex {
    /// Access gained and lost between `from` and `to`, for one identity or everyone.
    pub fn diff(
        &self,
        identity: Option<&str>,
        from: Timestamp,
        to: Timestamp,
        as_of: AsOf,
    ) -> Result<Diff, QueryError> {
        let mut diff = Diff::default();
        self.diff_each(
            identity,
            (from, to),
            as_of,
            |change| change,
            |gained, change| {
                match gained {
                    true => diff.gained.push(change),
                    false => diff.lost.push(change),
                }
                Ok::<_, QueryError>(())
            },
        )?;
        Ok(diff)
    }

    /// [`Self::diff`], each change passed through `render` on the thread that found it
    /// (identities are compared on every core) and handed to `each` with whether it is a
    /// gain, identity by identity in id order: the gains of [`Diff::gained`] in their
    /// order, and the losses of [`Diff::lost`] in theirs. Memory holds a few thousand
    /// identities' changes whatever the size of the answer.
    pub fn diff_each<T: Send, E: From<QueryError>>(
        &self,
        identity: Option<&str>,
        (from, to): (Timestamp, Timestamp),
        as_of: AsOf,
        render: impl Fn(Change) -> T + Sync,
        mut each: impl FnMut(bool, T) -> Result<(), E>,
    ) -> Result<(), E> {
        let ids: Vec<u32> = match identity {
            Some(name) => vec![self.id_of(name)?],
            None => {
                self.check().map_err(QueryError::from)?;
                (0..self.identity_count() as u32).collect()
            }
        };
        let r = self.resolve(as_of);
        for chunk in ids.chunks(CHUNK) {
            let changes = crate::par::par_map(
                chunk,
                || Groups::new(self, r),
                |groups, &id| -> Result<(Vec<T>, Vec<T>), QueryError> {
                    let fold = fold_identity_with(self, id, r, FoldScope::ACCESS)?;
                    let before = self.access_of(&fold, from.as_micros(), groups, None);
                    let after = self.access_of(&fold, to.as_micros(), groups, None);
                    let name = self.identity_name(id)?;
                    let change = |ent: u32, via: &Vec<Via>| {
                        let e = self.ents.get(ent);
                        render(Change {
                            identity: name.to_string(),
                            resource: e.resource.to_string(),
                            permission: e.permission.to_string(),
                            via: via.clone(),
                        })
                    };
                    let gained = after.iter().filter(|(ent, _)| !before.contains_key(ent));
                    let lost = before.iter().filter(|(ent, _)| !after.contains_key(ent));
                    Ok((gained.map(|(e, v)| change(*e, v)).collect(), lost.map(|(e, v)| change(*e, v)).collect()))
                },
            );
            for result in changes {
                let (gained, lost) = result?;
                for c in gained {
                    each(true, c)?;
                }
                for c in lost {
                    each(false, c)?;
                }
            }
        }
        Ok(())
    }
}
