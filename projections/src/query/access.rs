//! `access`: what an identity could access at T, and why, as known at R.

#[allow(unused_imports)]
use super::*;

impl AccessIndex {
    /// What `identity` could access at `at`, as known at `as_of`, and why.
    pub fn access(&self, identity: &str, at: Timestamp, as_of: AsOf) -> Result<Vec<Held>, QueryError> {
        let id = self.id_of(identity)?;
        let r = self.resolve(as_of);
        let fold = fold_identity_with(self, id, r, FoldScope::access_at(at.as_micros()))?;
        let mut groups = Groups::new(self, r);
        Ok(self.held(self.access_of(&fold, at.as_micros(), &mut groups, None)))
    }
}
