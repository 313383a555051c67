//! The integrity chain: each record's RFC 9162 leaf hash chained to its predecessor.
//!
//! ```text
//! leaf   := SHA-256(0x00 ++ payload)               (RFC 9162 leaf hash)
//! chain  := SHA-256(previous chain ++ leaf)         (previous of position 1: 32 zero bytes)
//! ```
//!
//! `crate::log::verify` recomputes it over a whole log.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];
/// The chain hash before position 1.
pub const GENESIS: Hash = [0u8; 32];

/// The RFC 9162 leaf hash of a payload: SHA-256(0x00 ++ payload).
pub fn leaf_hash(payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(payload);
    h.finalize().into()
}

/// The chain hash of a record: SHA-256(previous chain ++ leaf hash).
pub fn chain_hash(previous: &Hash, leaf: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(previous);
    h.update(leaf);
    h.finalize().into()
}

pub fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
