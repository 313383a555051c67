//! The index's in-memory lists: names interned to dense ids ([`Interner`]) and lists per id
//! for the events after the frozen file ([`Tail`]).

/// Dense ids for names, so the index stores `u32`s instead of strings. Ids start at
/// `first`: the names before it live in the frozen file.
#[derive(Default)]
pub struct Interner {
    first: u32,
    names: Vec<String>,
    ids: tenure_engine::maps::Map<String, u32>,
}

impl Interner {
    pub(crate) fn starting_at(first: u32) -> Self {
        Interner { first, ..Interner::default() }
    }

    pub(crate) fn from_names(names: Vec<String>) -> Self {
        let ids = names.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect();
        Interner { first: 0, names, ids }
    }

    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.first + u32::try_from(self.names.len()).expect("fewer than 2^32 names");
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name of `id`, which must be at least `first`.
    pub fn name(&self, id: u32) -> &str {
        &self.names[(id - self.first) as usize]
    }

    /// One past the last id.
    pub fn end(&self) -> u32 {
        self.first + self.names.len() as u32
    }
}

/// Lists per id, for the events after the frozen file: dense for ids past it, sparse for
/// the frozen ids that have new events (few, after a reopen).
pub(crate) struct Tail<T> {
    first: u32,
    dense: Vec<Vec<T>>,
    sparse: tenure_engine::maps::Map<u32, Vec<T>>,
}

impl<T> Default for Tail<T> {
    fn default() -> Self {
        Tail::starting_at(0)
    }
}

impl<T> Tail<T> {
    pub(crate) fn starting_at(first: u32) -> Self {
        Tail { first, dense: Vec::new(), sparse: Default::default() }
    }

    pub(crate) fn get(&self, id: u32) -> &[T] {
        if id >= self.first {
            self.dense.get((id - self.first) as usize).map(Vec::as_slice).unwrap_or(&[])
        } else {
            self.sparse.get(&id).map(Vec::as_slice).unwrap_or(&[])
        }
    }

    /// The ids before `first` that have lists here.
    pub(crate) fn touched_frozen_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.sparse.keys().copied()
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> &mut Vec<T> {
        if id >= self.first {
            let i = (id - self.first) as usize;
            if i >= self.dense.len() {
                self.dense.resize_with(i + 1, Vec::new);
            }
            &mut self.dense[i]
        } else {
            self.sparse.entry(id).or_default()
        }
    }
}
