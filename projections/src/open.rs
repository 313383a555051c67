//! The access index of a store, kept in its data directory: [`open_access_index`] maps the
//! file, applies the events after it, and rewrites it when they are many.

use crate::error::ProjectionError;
use crate::runner::replay;
use std::path::Path;
use tenure_engine::EventLog;

/// Where [`open_access_index`] keeps the index of a store, inside its data directory.
pub const ACCESS_INDEX_FILE: &str = "access.index";

/// The access index is rewritten when this many events were applied since its file.
pub const REWRITE_AFTER: u64 = 50_000;

/// The access index of `store`, kept in the file at `path`: maps the file, applies the
/// events recorded since it was written, and rewrites it (atomically) when those are
/// `REWRITE_AFTER` or more, so that the next process starts from a short tail.
///
/// The file is derived data: one that does not read back (a torn or altered file) is
/// rebuilt from the log. One that is ahead of the log is an error, as for checkpoints.
pub fn open_access_index(store: &dyn EventLog, path: &Path) -> Result<crate::AccessIndex, ProjectionError> {
    open_access_index_with(store, path, false, &mut |_| {})
}

/// [`open_access_index`], telling `note` what a user should hear of: a damaged index
/// file rebuilt from the log, or a rebuilt index that could not be written (read-only
/// media: the answer then comes from memory). With `fresh`, the file is not believed
/// at all (a query found part of it damaged) and the index is built from the log.
///
/// Several processes may do this at once: each writes a file of its own and renames it
/// into place, so every reader maps a whole file, older or newer.
pub fn open_access_index_with(
    store: &dyn EventLog,
    path: &Path,
    fresh: bool,
    note: &mut dyn FnMut(String),
) -> Result<crate::AccessIndex, ProjectionError> {
    open_and_write(store, path, fresh, (REWRITE_AFTER, false), note)
}

/// [`open_access_index_with`], the file rewritten once `rewrite_after` events or more came
/// after it (a file that cannot be written is an error here): what `tenure serve` runs
/// in the background once its own index's tail is long. A file another process wrote
/// since is mapped and caught up, not written again.
pub fn rewrite_access_index(
    store: &dyn EventLog,
    path: &Path,
    rewrite_after: u64,
    note: &mut dyn FnMut(String),
) -> Result<crate::AccessIndex, ProjectionError> {
    open_and_write(store, path, false, (rewrite_after, true), note)
}

fn open_and_write(
    store: &dyn EventLog,
    path: &Path,
    fresh: bool,
    (rewrite_after, strict): (u64, bool),
    note: &mut dyn FnMut(String),
) -> Result<crate::AccessIndex, ProjectionError> {
    let mut rebuilt = fresh;
    let mut index = if fresh {
        crate::AccessIndex::new()
    } else {
        match crate::AccessIndex::open_file(path) {
            Ok(index) => index,
            Err(e) if path.exists() => {
                note(format!("{e}; rebuilt from the log"));
                rebuilt = true;
                crate::AccessIndex::new()
            }
            Err(_) => crate::AccessIndex::new(),
        }
    };
    let mut head = store.head();
    if index.head() > head {
        // Written by a process that saw more of the log than this one's view of it.
        head = store.refresh()?;
    }
    if index.head() > head {
        return Err(ProjectionError::CheckpointAhead {
            name: path.display().to_string(),
            checkpoint: index.head(),
            head,
        });
    }
    index.reserve(head.get() - index.head().get());
    replay(store, index.head().next(), head, |event| index.apply(event))?;
    if rebuilt || index.tail_len() >= rewrite_after {
        match index.write_file(path) {
            Ok(()) => {
                // Another process may have renamed its own file in since: map whichever
                // is there, and bring it to this head; keep the one in memory if that
                // file is ahead of this view of the log or does not read back.
                if let Ok(mut mapped) = crate::AccessIndex::open_file(path) {
                    if mapped.head() <= head {
                        replay(store, mapped.head().next(), head, |event| mapped.apply(event))?;
                        index = mapped;
                    }
                }
            }
            // A derived file that cannot be written (read-only media, a full disk) is
            // only a cost for the next process.
            Err(e) if rebuilt => {
                note(format!("{}: not rewritten ({e}); this answer comes from memory", path.display()))
            }
            // Asked for a rewrite: the caller hears why there is none.
            Err(e) if strict => return Err(e.into()),
            Err(_) => {}
        }
    }
    Ok(index)
}
