//! The bytes of the log file, by their former single path: the framing and scanner
//! (`crate::record`), the payload codec (`crate::payload`) and the hash chain
//! (`crate::chain`). `docs/format.md` draws the same thing; keep them in step.

pub use crate::chain::*;
pub use crate::payload::*;
pub use crate::record::*;
