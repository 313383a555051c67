//! The entitlements' names by id: those of the index file kept as one string with the
//! ends of each name, read at open without an allocation per name (30,000 at 10M events,
//! which a one-shot query about one identity mostly never names), then those added since.

use std::fmt;
use tenure_engine::Entitlement;

/// An entitlement's name, borrowed from the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntName<'a> {
    pub resource: &'a str,
    pub permission: &'a str,
}

impl EntName<'_> {
    pub fn to_entitlement(self) -> Entitlement {
        Entitlement { resource: self.resource.to_string(), permission: self.permission.to_string() }
    }
}

impl fmt::Display for EntName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.resource, self.permission)
    }
}

#[derive(Default, Clone, Debug)]
pub(crate) struct EntTable {
    /// The file's names, resource then permission, one after the other.
    text: String,
    /// Per name of `text`: where its resource ends and where its permission ends (it
    /// starts where the one before ends).
    ends: Vec<(usize, usize)>,
    /// Those added since.
    added: Vec<Entitlement>,
}

impl EntTable {
    pub fn len(&self) -> usize {
        self.ends.len() + self.added.len()
    }

    /// Entitlement `id` (below [`EntTable::len`]).
    pub fn get(&self, id: u32) -> EntName<'_> {
        let i = id as usize;
        match self.ends.get(i) {
            Some(&(mid, end)) => {
                let start = if i == 0 { 0 } else { self.ends[i - 1].1 };
                EntName { resource: &self.text[start..mid], permission: &self.text[mid..end] }
            }
            None => {
                let e = &self.added[i - self.ends.len()];
                EntName { resource: &e.resource, permission: &e.permission }
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = EntName<'_>> {
        (0..self.len() as u32).map(|i| self.get(i))
    }

    /// The table of an index file: the names' text and, per name, where its resource
    /// and its permission end in it (`u32`, little-endian); `None` unless they cut the
    /// text in order, at character boundaries, to its end.
    pub fn read(text: &str, table: &[u8]) -> Option<EntTable> {
        let mut ends = Vec::with_capacity(table.len() / 8);
        let mut at = 0usize;
        let mut cut = |b: &[u8]| -> Option<usize> {
            let end = u32::from_le_bytes(b.try_into().ok()?) as usize;
            if end < at || end > text.len() || !text.is_char_boundary(end) {
                return None;
            }
            at = end;
            Some(end)
        };
        for pair in table.chunks(8) {
            let (resource, permission) = pair.split_at_checked(4)?;
            ends.push((cut(resource)?, cut(permission)?));
        }
        (at == text.len()).then(|| EntTable { text: text.to_string(), ends, added: Vec::new() })
    }

    pub fn push(&mut self, e: Entitlement) {
        self.added.push(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_in_order_whatever_their_origin() {
        let table = |ends: &[u32]| ends.iter().flat_map(|e| e.to_le_bytes()).collect::<Vec<u8>>();
        let mut t = EntTable::read("payroll-dbreadéwrïte", &table(&[10, 14, 14, 14, 16, 22])).unwrap();
        t.push(Entitlement::new("crm", "admin"));
        let names: Vec<String> = t.iter().map(|e| e.to_string()).collect();
        assert_eq!(names, ["payroll-db#read", "#", "é#wrïte", "crm#admin"]);
        assert_eq!(t.get(2).to_entitlement(), Entitlement::new("é", "wrïte"));
        assert_eq!(t.len(), 4);
        // Lengths that do not cut the text exactly, or cut a character, are refused.
        assert!(EntTable::read("dbread", &table(&[2, 5])).is_none());
        assert!(EntTable::read("dbread", &table(&[2, 7])).is_none());
        assert!(EntTable::read("dbread", &table(&[4, 2])).is_none());
        assert!(EntTable::read("é", &table(&[1, 2])).is_none());
        assert!(EntTable::read("ab", &table(&[2])).is_none());
    }
}
