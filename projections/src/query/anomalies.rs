//! `anomalies`: the events the fold found meaningless.

#[allow(unused_imports)]
use super::*;

impl AccessIndex {
    /// Every event the fold found meaningless, as known at `as_of`, by position.
    pub fn anomalies(&self, as_of: AsOf) -> Result<Vec<Anomaly>, QueryError> {
        self.check()?;
        let r = self.resolve(as_of);
        let mut out = Vec::new();
        for id in 0..self.identity_count() as u32 {
            out.extend(fold_identity(self, id, r)?.anomalies);
        }
        for g in 0..self.group_count() {
            out.extend(fold_group(self, g, r).anomalies);
        }
        out.sort();
        Ok(out)
    }
}
