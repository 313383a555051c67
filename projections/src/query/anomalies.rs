//! `anomalies`: the events the fold found meaningless.

#[allow(unused_imports)]
use super::*;

impl AccessIndex {
    /// Every event the fold found meaningless, as known at `as_of`, by position.
    pub fn anomalies(&self, as_of: AsOf) -> Result<Vec<Anomaly>, QueryError> {
        self.check()?;
        let r = self.resolve(as_of);
        let mut out = Vec::new();
        // The identities folded on every core (sorted at the end, so the order of the
        // rounds does not matter).
        let ids: Vec<u32> = (0..self.identity_count() as u32).collect();
        for chunk in ids.chunks(1 << 16) {
            for found in crate::par::par_map(chunk, || (), |_, &id| fold_identity(self, id, r).map(|f| f.anomalies)) {
                out.extend(found?);
            }
        }
        for g in 0..self.group_count() {
            out.extend(fold_group(self, g, r).anomalies);
        }
        out.sort();
        Ok(out)
    }
}
