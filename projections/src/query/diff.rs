//! `diff`: access gained and lost between T1 and T2.

#[allow(unused_imports)]
use super::*;

impl AccessIndex {
    /// Access gained and lost between `from` and `to`, for one identity or everyone.
    pub fn diff(
        &self,
        identity: Option<&str>,
        from: Timestamp,
        to: Timestamp,
        as_of: AsOf,
    ) -> Result<Diff, QueryError> {
        let ids: Vec<u32> = match identity {
            Some(name) => vec![self.id_of(name)?],
            None => {
                self.check()?;
                (0..self.identity_count() as u32).collect()
            }
        };
        let r = self.resolve(as_of);
        let mut groups = Groups::new(self, r);
        let mut diff = Diff::default();
        for id in ids {
            let fold = fold_identity_with(self, id, r, FoldScope::ACCESS)?;
            let before = self.access_of(&fold, from.as_micros(), &mut groups, None);
            let after = self.access_of(&fold, to.as_micros(), &mut groups, None);
            let name = self.identity_name(id)?;
            let change = |ent: u32, via: &Vec<Via>| {
                let e = &self.ents[ent as usize];
                Change {
                    identity: name.to_string(),
                    resource: e.resource.clone(),
                    permission: e.permission.clone(),
                    via: via.clone(),
                }
            };
            for (ent, via) in &after {
                if !before.contains_key(ent) {
                    diff.gained.push(change(*ent, via));
                }
            }
            for (ent, via) in &before {
                if !after.contains_key(ent) {
                    diff.lost.push(change(*ent, via));
                }
            }
        }
        Ok(diff)
    }
}
