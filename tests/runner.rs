//! The projection runner: checkpoints stored with state, resume without re-applying,
//! follow the live log, refuse a checkpoint past the head, snapshot = rebuild.

mod common;

use std::sync::Arc;
use tenure::engine::{Event, NewEvent, Store};
use tenure::projections::{AccessIndex, AsOf, Checkpoints, Projection, ProjectionError, Runner, Target};

/// Counts events and remembers every position it saw, to catch doubles and gaps.
#[derive(Default)]
struct Seen(Vec<u64>);

impl Projection for Seen {
    fn name(&self) -> &str {
        "seen"
    }
    fn apply(&mut self, e: &Event) {
        self.0.push(e.position.get());
    }
    fn save(&self) -> Vec<u8> {
        self.0.iter().flat_map(|p| p.to_le_bytes()).collect()
    }
    fn load(&mut self, bytes: &[u8]) -> Result<(), String> {
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
        assert_eq!(r.position(), 500);
    }
    store.append(events(300, 500)).unwrap();
    // A "crash": a runner that applies events but dies before saving. Its work is lost
    // and redone, never doubled.
    {
        let mut r = Runner::new(&store, &cps, Seen::default()).unwrap();
        r.save_every = u64::MAX;
        let _ = r.projection();
    }
    let mut r = Runner::new(&store, &cps, Seen::default()).unwrap();
    assert_eq!(r.position(), 500);
    r.catch_up().unwrap();
    assert_eq!(r.projection().0, (1..=800).collect::<Vec<_>>());
    assert_eq!(cps.position("seen").unwrap(), 800);
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
    assert!(matches!(err, ProjectionError::CheckpointAhead { checkpoint: 50, head: 10, .. }), "{err}");
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
    let mut r = Runner::new(&store, &cps, Seen::default()).unwrap();
    let end = r.follow(Some(300)).await.unwrap();
    writer.await.unwrap();
    assert_eq!(end, 300);
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
        for as_of in [AsOf::Head, AsOf::Position(first / 2)] {
            assert_eq!(resumed.holders(&target, t, as_of), rebuilt.holders(&target, t, as_of));
        }
    }
    for i in (0..400).step_by(13) {
        for name in [format!("u{i:07}"), format!("svc-{i:07}")] {
            assert_eq!(resumed.access(&name, t, AsOf::Head).ok(), rebuilt.access(&name, t, AsOf::Head).ok());
            assert_eq!(resumed.timeline(&name, AsOf::Head).ok(), rebuilt.timeline(&name, AsOf::Head).ok());
        }
    }
    assert_eq!(resumed.anomalies(AsOf::Head), rebuilt.anomalies(AsOf::Head));
}
