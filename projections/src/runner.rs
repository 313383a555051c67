//! Feeding projections from the log: [`replay`] (a range, decoding on a second thread) and
//! the [`Runner`] (from a checkpoint: catch up, then follow the subscription).

use crate::error::ProjectionError;
use crate::projection::{Checkpoints, Projection};
use futures_util::StreamExt;
use tenure_engine::{Event, EventLog, Position};

/// Feeds `apply` the events `from..=to` in position order. Long ranges are decoded on a
/// second thread, in batches, so that decoding and applying overlap: an index build runs
/// at the pace of the slower of the two rather than of their sum. `apply` may take parts
/// out of each event (the event is dropped afterwards, on the decoding thread).
pub fn replay(
    store: &dyn EventLog,
    from: Position,
    to: Position,
    mut apply: impl FnMut(&mut Event),
) -> Result<(), ProjectionError> {
    use std::ops::ControlFlow::{Break, Continue};
    const BATCH: usize = 4096;
    if to < from {
        return Ok(());
    }
    if to.get() - from.get() < 4 * BATCH as u64 {
        store.scan_events(from, to, &mut |mut event| {
            apply(&mut event);
            Continue(())
        })?;
        return Ok(());
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Event>>(8);
    // Applied batches go back to the decoding thread, which drops their events: freeing
    // memory on the thread that allocated it is cheaper, and it is off the applying one.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Vec<Event>>();
    std::thread::scope(|scope| {
        let decode = move || {
            let mut batch = Vec::with_capacity(BATCH);
            let result = store.scan_events(from, to, &mut |event| {
                batch.push(event);
                if batch.len() == BATCH {
                    let next = match done_rx.try_recv() {
                        Ok(mut spent) => {
                            spent.clear();
                            spent
                        }
                        Err(_) => Vec::with_capacity(BATCH),
                    };
                    if tx.send(std::mem::replace(&mut batch, next)).is_err() {
                        return Break(());
                    }
                }
                Continue(())
            });
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
            result
        };
        let decoder = std::thread::Builder::new()
            .name("tenure-decode".into())
            .spawn_scoped(scope, decode)
            .map_err(|e| tenure_engine::Error::Io { path: store.location().into(), source: e })?;
        for mut batch in rx {
            for event in &mut batch {
                apply(event);
            }
            let _ = done_tx.send(batch);
        }
        match decoder.join() {
            Ok(result) => result.map_err(ProjectionError::from),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Feeds a projection from its checkpoint: catch up from the log, then follow it.
pub struct Runner<'a, P: Projection> {
    store: &'a dyn EventLog,
    checkpoints: &'a Checkpoints,
    projection: P,
    position: Position,
    /// Save after this many events (and at the end of each catch-up).
    pub save_every: u64,
}

impl<'a, P: Projection> Runner<'a, P> {
    /// Loads the projection's saved state, if any, and checks its checkpoint against the log.
    pub fn new(
        store: &'a dyn EventLog,
        checkpoints: &'a Checkpoints,
        mut projection: P,
    ) -> Result<Self, ProjectionError> {
        let position = checkpoints.load(&mut projection)?;
        let head = store.head();
        if position > head {
            return Err(ProjectionError::CheckpointAhead {
                name: projection.name().to_string(),
                checkpoint: position,
                head,
            });
        }
        Ok(Runner { store, checkpoints, projection, position, save_every: 1_000_000 })
    }

    /// The last position the projection reflects.
    pub fn position(&self) -> Position {
        self.position
    }

    pub fn projection(&self) -> &P {
        &self.projection
    }

    pub fn into_projection(self) -> P {
        self.projection
    }

    /// Applies every event after the checkpoint up to the head, saving as it goes and at
    /// the end (when anything was applied). Returns the new position.
    pub fn catch_up(&mut self) -> Result<Position, ProjectionError> {
        let head = self.store.head();
        let start = self.position;
        let mut since_save = 0u64;
        let mut failure = None;
        let (projection, position, checkpoints, save_every) =
            (&mut self.projection, &mut self.position, self.checkpoints, self.save_every);
        self.store.scan_events(start.next(), head, &mut |event| {
            debug_assert_eq!(event.position, position.next());
            projection.apply(&event);
            *position = event.position;
            since_save += 1;
            if since_save >= save_every {
                since_save = 0;
                if let Err(e) = checkpoints.save(projection, *position) {
                    failure = Some(e);
                    return std::ops::ControlFlow::Break(());
                }
            }
            std::ops::ControlFlow::Continue(())
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if self.position > start {
            self.checkpoints.save(&self.projection, self.position)?;
        }
        Ok(self.position)
    }

    /// Catches up, then follows the live subscription until the log reaches `until`
    /// (or forever with `None`), saving every `save_every` events and at the end.
    pub async fn follow(&mut self, until: Option<Position>) -> Result<Position, ProjectionError> {
        self.catch_up()?;
        let mut stream = self.store.subscribe_events(self.position);
        let mut since_save = 0;
        while until.is_none_or(|u| self.position < u) {
            let Some(event) = stream.next().await else { break };
            let event = event?;
            self.projection.apply(&event);
            self.position = event.position;
            since_save += 1;
            if since_save >= self.save_every {
                since_save = 0;
                self.checkpoints.save(&self.projection, self.position)?;
            }
        }
        self.checkpoints.save(&self.projection, self.position)?;
        Ok(self.position)
    }
}
