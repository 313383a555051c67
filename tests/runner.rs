//! The projection runner: checkpoints stored with state, resume without re-applying,
//! follow the live log, refuse a checkpoint past the head, snapshot = rebuild.

mod common;

use std::sync::Arc;
use tenure::engine::{Event, NewEvent, Position, Store};
use tenure::projections::{AccessIndex, AsOf, Checkpoints, Projection, ProjectionError, Runner, Target};

/// The position at which `Seen` dies (a panic, as a crash mid catch-up): 0 for never.
static CRASH_AT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts events and remembers every position it saw, to catch doubles and gaps.
#[derive(Default)]
struct Seen(Vec<u64>);

impl Projection for Seen {
    fn name(&self) -> &str {
        "seen"
    }
    fn apply(&mut self, e: &Event) {
        self.0.push(e.position.get());
        if CRASH_AT.load(std::sync::atomic::Ordering::SeqCst) == e.position.get() {
            panic!("simulated crash at position {}", e.position);
        }
    }
    fn save(&self) -> Vec<u8> {
        self.0.iter().flat_map(|p| p.to_le_bytes()).collect()
    }
    type LoadError = std::convert::Infallible;
    fn load(&mut self, bytes: &[u8]) -> Result<(), Self::LoadError> {
        self.0 = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        Ok(())
    }
}

fn events(n: usize, offset: usize) -> Vec<NewEvent> {
    let mut out = vec![];
    tenure_gen::generate(&tenure_gen::OrgConfig::new(200, 2, 3), |e| out.push(e));
    // Unique keys, so that every event is stored (the generator re-delivers some).
    out.into_iter()
        .enumerate()
        .skip(offset)
        .take(n)
        .map(|(i, mut e)| {
            e.source_event_id = Some(format!("r{i}"));
            e
        })
        .collect()
}

#[test]
fn resume_applies_each_event_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("log")).unwrap();
    let cps = Checkpoints::open(dir.path().join("cp")).unwrap();
    store.append(events(500, 0)).unwrap();
    {
        let mut r = Runner::new(&store, &cps, Seen::default()).unwrap();
        r.save_every = 64;
        r.catch_up().unwrap();
        assert_eq!(r.position(), Position(500));
    }
    store.append(events(300, 500)).unwrap();
    // A crash: a runner applies 200 of the new events and dies before saving. Its work
    // is lost and redone, never doubled.
    {
        let mut r = Runner::new(&store, &cps, Seen::default()).unwrap();
        r.save_every = u64::MAX;
        CRASH_AT.store(700, std::sync::atomic::Ordering::SeqCst);
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.catch_up()));
        CRASH_AT.store(0, std::sync::atomic::Ordering::SeqCst);
        assert!(died.is_err(), "the runner was to die at position 700");
        assert_eq!(r.projection().0.len(), 500 + 200, "it had applied up to 700 when it died");
    }
    let mut r = Runner::new(&store, &cps, Seen::default()).unwrap();
    assert_eq!(r.position(), Position(500));
    r.catch_up().unwrap();
    assert_eq!(r.projection().0, (1..=800).collect::<Vec<_>>());
    assert_eq!(cps.position("seen").unwrap(), Position(800));
}

#[test]
fn a_checkpoint_past_the_head_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cps = Checkpoints::open(dir.path().join("cp")).unwrap();
    {
        let store = Store::open(dir.path().join("log")).unwrap();
        store.append(events(50, 0)).unwrap();
        Runner::new(&store, &cps, Seen::default()).unwrap().catch_up().unwrap();
    }
    let other = Store::open(dir.path().join("other")).unwrap();
    other.append(events(10, 0)).unwrap();
    let err = Runner::new(&other, &cps, Seen::default()).err().unwrap();
    assert!(
        matches!(err, ProjectionError::CheckpointAhead { checkpoint: Position(50), head: Position(10), .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_picks_up_live_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("log")).unwrap());
    store.append(events(100, 0)).unwrap();
    let writer = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            for chunk in events(200, 100).chunks(20) {
                store.append(chunk.to_vec()).unwrap();
            }
        })
    };
    let cps = Checkpoints::open(dir.path().join("cp")).unwrap();
    let mut r = Runner::new(store.as_ref(), &cps, Seen::default()).unwrap();
    let end = r.follow(Some(Position(300))).await.unwrap();
    writer.await.unwrap();
    assert_eq!(end, Position(300));
    assert_eq!(r.projection().0, (1..=300).collect::<Vec<_>>());
}

#[test]
fn resuming_the_index_from_a_snapshot_answers_like_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("log")).unwrap();
    let mut all = vec![];
    tenure_gen::generate(&tenure_gen::OrgConfig::new(400, 3, 11), |e| all.push(e));
    let half = all.len() / 2;
    store.append(all[..half].to_vec()).unwrap();
    let cps = Checkpoints::open(dir.path().join("cp")).unwrap();
    Runner::new(&store, &cps, AccessIndex::new()).unwrap().catch_up().unwrap();
    let first = store.head();
    store.append(all[half..].to_vec()).unwrap();
    let mut resumed = Runner::new(&store, &cps, AccessIndex::new()).unwrap();
    assert_eq!(resumed.position(), first);
    resumed.catch_up().unwrap();
    let resumed = resumed.into_projection();
    let rebuilt = common::build_index(&store);
    let t = tenure::Timestamp::parse_lenient("2021-06-01").unwrap();
    for e in ["app-0000#read", "app-0001#write", "app-0002#admin"] {
        let target = Target::parse(e).unwrap();
        for as_of in [AsOf::Head, AsOf::Position(first.get() / 2)] {
            assert_eq!(resumed.holders(&target, t, as_of), rebuilt.holders(&target, t, as_of));
        }
    }
    // Errors compare too (an unknown name must be unknown to both), and most names are known.
    let mut known = 0;
    for i in (0..400).step_by(13) {
        for name in [format!("u{i:07}"), format!("svc-{i:07}")] {
            let access = resumed.access(&name, t, AsOf::Head).map_err(|e| e.to_string());
            assert_eq!(access, rebuilt.access(&name, t, AsOf::Head).map_err(|e| e.to_string()));
            let timeline = resumed.timeline(&name, AsOf::Head).map_err(|e| e.to_string());
            assert_eq!(timeline, rebuilt.timeline(&name, AsOf::Head).map_err(|e| e.to_string()));
            known += usize::from(access.is_ok());
        }
    }
    assert!(known >= 20, "only {known} of the names probed exist: the comparison says little");
    assert_eq!(resumed.anomalies(AsOf::Head), rebuilt.anomalies(AsOf::Head));
}

/// A read-only log kept in memory: a second `EventLog` backend, to show that the runner
/// and the index need nothing of `Store` but the trait.
struct MemoryLog(Vec<Event>);

impl tenure::engine::EventLog for MemoryLog {
    fn head(&self) -> Position {
        Position(self.0.len() as u64)
    }
    fn head_hash(&self) -> String {
        String::new()
    }
    fn append(&self, _: Vec<NewEvent>) -> tenure::engine::Result<Vec<tenure::engine::Outcome>> {
        Err(tenure::engine::Error::Closed)
    }
    fn append_expecting(&self, _: Vec<NewEvent>, _: Position) -> tenure::engine::Result<Vec<tenure::engine::Outcome>> {
        Err(tenure::engine::Error::Closed)
    }
    fn check(&self, _: Vec<NewEvent>) -> tenure::engine::Result<Vec<tenure::engine::Outcome>> {
        Err(tenure::engine::Error::Closed)
    }
    fn scan_events(
        &self,
        from: Position,
        to: Position,
        visit: &mut dyn FnMut(Event) -> std::ops::ControlFlow<()>,
    ) -> tenure::engine::Result<()> {
        let (from, to) = (from.get(), to.get());
        for e in self.0.iter().skip(from.saturating_sub(1) as usize).take((to + 1).saturating_sub(from) as usize) {
            if visit(e.clone()).is_break() {
                break;
            }
        }
        Ok(())
    }
    fn positions_of(&self, _: &tenure::engine::Subject) -> tenure::engine::Result<Vec<Position>> {
        Ok(Vec::new())
    }
    fn position_at_recorded(&self, t: tenure::Timestamp) -> tenure::engine::Result<Position> {
        Ok(Position(self.0.iter().filter(|e| e.recorded_at <= t).count() as u64))
    }
    fn subscribe_events(&self, after: Position) -> tenure::engine::EventStream {
        let rest: Vec<_> = self.0.iter().skip(after.get() as usize).cloned().map(Ok).collect();
        Box::pin(futures_util::stream::iter(rest))
    }
    fn location(&self) -> String {
        "(memory)".into()
    }
}

#[test]
fn the_runner_and_the_index_need_only_the_event_log_trait() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("log")).unwrap();
    store.append(events(700, 0)).unwrap();
    let memory = MemoryLog(store.read_range(Position(1), store.head()).unwrap());
    let cps = Checkpoints::open(dir.path().join("cp")).unwrap();
    let mut runner = Runner::new(&memory, &cps, AccessIndex::new()).unwrap();
    assert_eq!(runner.catch_up().unwrap(), Position(700));
    let from_memory = runner.into_projection();
    let from_store = tenure::projections::open_access_index(&store, &dir.path().join("access.index")).unwrap();
    let t = tenure::Timestamp::parse_lenient("2021-06-01").unwrap();
    let target = Target::parse("app-0000#read").unwrap();
    assert_eq!(from_memory.holders(&target, t, AsOf::Head), from_store.holders(&target, t, AsOf::Head));
    let mut known = 0;
    for i in 0..200 {
        let name = format!("u{i:07}");
        let access = from_memory.access(&name, t, AsOf::Head).map_err(|e| e.to_string());
        assert_eq!(access, from_store.access(&name, t, AsOf::Head).map_err(|e| e.to_string()));
        known += usize::from(access.is_ok());
    }
    assert!(known >= 50, "only {known} of the names probed exist");
}
