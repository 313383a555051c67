//! Writing the index: the access runs computed first (`crate::runs`), then the file
//! written from the index and them (`crate::frozen`). Apart from the index itself, so that
//! the index never calls the layers that fold and query it.

use crate::error::WriteError;
use crate::frozen;
use crate::index::AccessIndex;
use std::path::Path;

impl AccessIndex {
    /// Encodes the index (the frozen file format, in memory) for a snapshot.
    pub fn to_bytes(&self) -> Vec<u8> {
        let Ok(runs) = crate::runs::build_runs(self) else { return Vec::new() };
        match frozen::write(self, &runs, std::io::Cursor::new(Vec::new())) {
            Ok(cursor) => cursor.into_inner(),
            // Writing to memory fails only when the frozen part is corrupt; an empty
            // snapshot then makes the next load rebuild from the log.
            Err(_) => Vec::new(),
        }
    }

    /// Writes the whole index (frozen part and tail) to `path`, atomically.
    pub fn write_file(&self, path: &Path) -> Result<(), WriteError> {
        self.check()?;
        let runs = crate::runs::build_runs(self)?;
        frozen::write_file(self, &runs, path)
    }
}
