//! Validation, the writer's first pass over a batch: its references to identities and
//! groups created at earlier positions, its retractions, its idempotency keys (as 128-bit
//! fingerprints), against the log's state plus the earlier parts of a check session.

#[allow(unused_imports)]
use super::*;

/// Validation state, owned by the writer thread.
pub(crate) struct State {
    pub(crate) head: u64,
    pub(crate) chain: Hash,
    pub(crate) last_recorded: Timestamp,
    /// Idempotency keys, by their [`Fingerprints`], and the first position of each.
    pub(crate) dedup: Map<u128, u64>,
    pub(crate) fingerprints: Fingerprints,
    pub(crate) identities: Set<Box<str>>,
    pub(crate) groups: Set<Box<str>>,
    pub(crate) retractions: Set<u64>,
    /// The state as of an earlier head, from `writer.state` (see `saved`): the maps
    /// above hold only what was taken in after it.
    pub(crate) saved: Option<Box<Saved>>,
}

impl State {
    pub(crate) fn new() -> Self {
        State {
            head: 0,
            chain: GENESIS,
            last_recorded: Timestamp::MIN,
            dedup: Map::default(),
            fingerprints: Fingerprints::new(),
            identities: Set::default(),
            groups: Set::default(),
            retractions: Set::default(),
            saved: None,
        }
    }

    /// The state of a `writer.state` file, to which the events after its head are added.
    pub(crate) fn from_saved(saved: Saved) -> Self {
        State {
            head: saved.head,
            chain: saved.chain,
            last_recorded: saved.last_recorded,
            fingerprints: Fingerprints::with_seeds(saved.seeds),
            saved: Some(Box::new(saved)),
            ..State::new()
        }
    }

    /// How many events were taken in past the saved file (all of them without one).
    pub(crate) fn unsaved(&self) -> u64 {
        self.head - self.saved.as_ref().map_or(0, |s| s.head)
    }

    /// The first position of an idempotency key, by its fingerprint.
    pub(crate) fn key(&self, fingerprint: u128) -> Option<u64> {
        self.dedup.get(&fingerprint).copied().or_else(|| self.saved.as_ref().and_then(|s| s.key(fingerprint)))
    }

    pub(crate) fn has_identity(&self, name: &str) -> bool {
        self.identities.contains(name) || self.saved.as_ref().is_some_and(|s| s.has_identity(name))
    }

    pub(crate) fn has_group(&self, name: &str) -> bool {
        self.groups.contains(name) || self.saved.as_ref().is_some_and(|s| s.has_group(name))
    }

    pub(crate) fn is_retraction(&self, position: u64) -> bool {
        self.retractions.contains(&position) || self.saved.as_ref().is_some_and(|s| s.is_retraction(position))
    }

    /// Takes a recorded event into the validation state.
    pub(crate) fn apply(&mut self, event: &Event) {
        let key = event.idempotency_key().map(|(s, k)| self.fingerprints.of(s, k));
        self.take(event.position.get(), event.recorded_at, key, &event.data);
    }

    /// Takes an event, given by its parts (its idempotency key as [`Fingerprints::of`]
    /// made it), into the validation state.
    pub(crate) fn take(&mut self, position: u64, recorded_at: Timestamp, key: Option<u128>, data: &EventData) {
        // No lookup in the saved file: a stored event's key passed validation (it is in
        // neither part), and a name in both parts is merged as one when the file is saved.
        if let Some(key) = key {
            self.dedup.entry(key).or_insert(position);
        }
        match data {
            EventData::IdentityJoined(j) => {
                self.identities.insert(j.identity.as_str().into());
            }
            EventData::GroupCreated(g) => {
                self.groups.insert(g.group.as_str().into());
            }
            EventData::EventRetracted(_) => {
                self.retractions.insert(position);
            }
            _ => {}
        }
        self.head = position;
        self.last_recorded = self.last_recorded.max(recorded_at);
    }
}

/// The events of a file checked part by part with [`Store::check_in`], as the validation
/// of the next part must see them: as if stored after the log's head.
#[derive(Default)]
pub struct CheckSession {
    /// How many of them would be stored.
    stored: u64,
    keys: Map<u128, u64>,
    identities: Set<Box<str>>,
    groups: Set<Box<str>>,
    retractions: Set<u64>,
}

impl CheckSession {
    /// A new session, shared with the writer thread while a part is checked.
    pub fn new() -> Arc<Mutex<CheckSession>> {
        Arc::new(Mutex::new(CheckSession::default()))
    }

    /// How many events of the session's parts would be stored (the rest are duplicates).
    pub fn stored(&self) -> u64 {
        self.stored
    }

    /// Takes a part that passed validation into the session.
    pub(crate) fn take(&mut self, events: &[NewEvent], v: &Validated) {
        for ((event, outcome), key) in events.iter().zip(&v.outcomes).zip(&v.keys) {
            let Outcome::Stored(position) = *outcome else { continue };
            if let Some(key) = key {
                self.keys.entry(*key).or_insert(position.get());
            }
            match &event.data {
                EventData::IdentityJoined(j) => {
                    self.identities.insert(j.identity.as_str().into());
                }
                EventData::GroupCreated(g) => {
                    self.groups.insert(g.group.as_str().into());
                }
                EventData::EventRetracted(_) => {
                    self.retractions.insert(position.get());
                }
                _ => {}
            }
            self.stored += 1;
        }
    }
}

/// Idempotency keys `(source, source_event_id)` as 128-bit fingerprints: two SipHash-1-3
/// with independent secret keys, over the length of the source, the source and the event
/// id. The validation state keeps 16 bytes per key instead of a string (a heap allocation
/// and a pointer to follow on every lookup of 10M keys), and a key is hashed once per
/// event. The keys are drawn from the operating system's randomness when a state is built
/// from the log, and kept in `writer.state` with the fingerprints they made (a file of the
/// data directory, which a source cannot read): a source cannot aim at a collision, and
/// the chance of one by accident among 10M keys is about 10^-25, far below that of an
/// undetected disk error (docs/decisions.md).
pub(crate) struct Fingerprints {
    pub(crate) seeds: [u64; 4],
}

impl Fingerprints {
    pub(crate) fn new() -> Self {
        use std::hash::BuildHasher;
        // Each `RandomState` carries keys from the OS; hashing a counter under them gives
        // a seed no one outside this process can predict.
        let mut seeds = [0u64; 4];
        for (i, s) in seeds.iter_mut().enumerate() {
            *s = std::collections::hash_map::RandomState::new().hash_one(i);
        }
        Fingerprints { seeds }
    }

    pub(crate) fn with_seeds(seeds: [u64; 4]) -> Self {
        Fingerprints { seeds }
    }

    pub(crate) fn of(&self, source: &str, source_event_id: &str) -> u128 {
        use std::hash::Hasher;
        let half = |k0: u64, k1: u64| {
            let mut h = siphasher::sip::SipHasher13::new_with_keys(k0, k1);
            h.write_usize(source.len());
            h.write(source.as_bytes());
            h.write(source_event_id.as_bytes());
            h.finish()
        };
        let [a, b, c, d] = self.seeds;
        (u128::from(half(a, b)) << 64) | u128::from(half(c, d))
    }
}

/// What validation found of a batch: per event, its outcome and its idempotency key's
/// fingerprint (computed once, for the lookup and then for the state).
pub(crate) struct Validated {
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) keys: Vec<Option<u128>>,
}

impl Writer {
    /// Pass 1: validates a batch against the state plus what the batch itself creates
    /// before each event. Changes nothing.
    pub(crate) fn validate(&self, events: &[NewEvent], session: Option<&CheckSession>) -> Result<Validated> {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut keys = Vec::with_capacity(events.len());
        let mut batch_keys: Map<u128, u64> = Map::default();
        let mut batch_identities: Set<&str> = Set::default();
        let mut batch_groups: Set<&str> = Set::default();
        let mut batch_retractions: Set<u64> = Set::default();
        let empty = CheckSession::default();
        let session = session.unwrap_or(&empty);
        let mut next = self.state.head + 1 + session.stored;
        for (index, event) in events.iter().enumerate() {
            let reject = |field: &str, reason: String| Error::Rejected { index, error: FieldError::new(field, reason) };
            crate::json::validate_data(&event.data).map_err(|error| Error::Rejected { index, error })?;
            let key = event.idempotency_key().map(|(s, k)| self.state.fingerprints.of(s, k));
            keys.push(key);
            if let Some(key) = key {
                let earlier = self.state.key(key).or_else(|| session.keys.get(&key).copied());
                if let Some(p) = earlier.or_else(|| batch_keys.get(&key).copied()) {
                    outcomes.push(Outcome::Duplicate(Position(p)));
                    continue;
                }
            }
            let known_identity = |id: &str| {
                self.state.has_identity(id) || session.identities.contains(id) || batch_identities.contains(id)
            };
            match &event.data {
                EventData::IdentityJoined(_) => {}
                data => {
                    if let Some(id) = data.identity() {
                        if !known_identity(id.as_str()) {
                            return Err(reject(
                                "data.identity",
                                format!("unknown identity '{id}': no earlier event joined it"),
                            ));
                        }
                    }
                }
            }
            if let Some(owner) = event.data.referenced_owner() {
                if !known_identity(owner.as_str()) {
                    return Err(reject(
                        "data.owner",
                        format!("unknown identity '{owner}': no earlier event joined it"),
                    ));
                }
            }
            if let Some(group) = event.data.group() {
                let created = matches!(event.data, EventData::GroupCreated(_));
                let known = self.state.has_group(group.as_str())
                    || session.groups.contains(group.as_str())
                    || batch_groups.contains(group.as_str());
                if !created && !known {
                    return Err(reject("data.group", format!("unknown group '{group}': no earlier event created it")));
                }
            }
            if let EventData::EventRetracted(r) = &event.data {
                let target = r.position.get();
                if target >= next {
                    return Err(reject("data.position", format!("position {target} does not exist")));
                }
                if self.state.is_retraction(target)
                    || session.retractions.contains(&target)
                    || batch_retractions.contains(&target)
                {
                    return Err(reject("data.position", format!("position {target} is itself a retraction")));
                }
                batch_retractions.insert(next);
            }
            if let EventData::IdentityJoined(j) = &event.data {
                batch_identities.insert(j.identity.as_str());
            }
            if let EventData::GroupCreated(g) = &event.data {
                batch_groups.insert(g.group.as_str());
            }
            if let Some(key) = key {
                batch_keys.insert(key, next);
            }
            outcomes.push(Outcome::Stored(Position(next)));
            next += 1;
        }

        Ok(Validated { outcomes, keys })
    }
}
