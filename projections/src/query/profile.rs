//! `profile` (what the records said of an identity at T) and `states_at` (everyone's state).

#[allow(unused_imports)]
use super::*;

impl AccessIndex {
    /// What an identity's records said at `at`: state, kind, attributes, owner, and the
    /// services it owned then.
    pub fn profile(&self, identity: &str, at: Timestamp, as_of: AsOf) -> Result<Profile, QueryError> {
        let id = self.id_of(identity)?;
        let r = self.resolve(as_of);
        let t = at.as_micros();
        let fold = fold_identity(self, id, r)?;
        let state = fold.state_at(t);
        let version = fold.profile_at(t);
        let mut owns = Vec::new();
        for &s in self.owned(id)?.iter() {
            let sf = fold_identity(self, s, r)?;
            if sf.profile_at(t).and_then(|p| p.owner) == Some(id) {
                let st = sf.state_at(t).map(|s| s.state.as_str()).unwrap_or("absent");
                owns.push(OwnedService { identity: self.identity_name(s)?.to_string(), state: st.to_string() });
            }
        }
        owns.sort_by(|a, b| a.identity.cmp(&b.identity));
        Ok(Profile {
            identity: identity.to_string(),
            state: state.map(|s| s.state.as_str()).unwrap_or("absent").to_string(),
            kind: version.map(|v| v.kind),
            attributes: version.map(|v| v.attributes.clone()).unwrap_or_default(),
            owner: match version.and_then(|v| v.owner) {
                Some(o) => Some(self.identity_name(o)?.to_string()),
                None => None,
            },
            owns,
            state_since: state.map(|s| s.opened_by),
            profile_since: version.map(|v| v.position),
        })
    }

    /// The state of every identity at `at` (for reports): name, state, kind.
    pub fn states_at(&self, at: Timestamp, as_of: AsOf) -> Result<Vec<(String, Option<State>)>, QueryError> {
        self.check()?;
        let r = self.resolve(as_of);
        (0..self.identity_count() as u32)
            .map(|id| {
                let fold = fold_identity(self, id, r)?;
                Ok((self.identity_name(id)?.to_string(), fold.state_at(at.as_micros()).map(|s| s.state)))
            })
            .collect()
    }
}
