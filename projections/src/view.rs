//! What a fold reads of an index ([`IndexView`]): a subject's filed events, the groups an
//! identity has membership events in, and what is visible as known at a position. The
//! fold (`crate::fold`) is written against this view, not against [`crate::AccessIndex`],
//! so that any index of the same vocabulary can be folded.

use crate::error::CorruptIndex;
use crate::model::{Filed, GroupOp, IdOp};
use std::borrow::Cow;

/// The read view of an index that the fold uses.
pub trait IndexView {
    /// An identity's filed events, in `(effective_at, position)` order; with `lite`, what
    /// only profiles read may be left out.
    fn id_events(&self, id: u32, lite: bool) -> Result<Cow<'_, [Filed<IdOp>]>, CorruptIndex>;
    /// The groups an identity has membership events in.
    fn groups_of(&self, id: u32) -> Result<Cow<'_, [u32]>, CorruptIndex>;
    /// A group's filed events, in `(effective_at, position)` order (empty for an unknown id).
    fn group_events(&self, g: u32) -> &[Filed<GroupOp>];
    /// Whether position `pos` is part of the log as known at `r`: recorded by then and not
    /// retracted by then.
    fn visible(&self, pos: u64, r: u64) -> bool;
}
