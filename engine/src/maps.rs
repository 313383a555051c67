//! Hash maps with a fast, randomly seeded hasher (foldhash): the engine hashes names and
//! idempotency keys of every event, and SipHash was its largest single cost. The seed is
//! random per process, so keys chosen by a source cannot be made to collide on purpose.

pub type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type Set<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
