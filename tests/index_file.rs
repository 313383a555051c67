//! The access index file: a frozen index plus a tail answers like a rebuild; a damaged
//! file is rebuilt or reported, never a panic; a file ahead of its log is refused.

mod common;

use tenure::engine::{NewEvent, Store};
use tenure::projections::{open_access_index, AccessIndex, AsOf, ProjectionError, QueryError, Target};

fn org(seed: u64) -> Vec<NewEvent> {
    let mut all = vec![];
    tenure_gen::generate(&tenure_gen::OrgConfig::new(400, 3, seed), |e| all.push(e));
    all
}

fn names() -> Vec<String> {
    (0..400).flat_map(|i| [format!("u{i:07}"), format!("svc-{i:07}")]).collect()
}

fn assert_same(a: &AccessIndex, b: &AccessIndex) {
    let t = tenure::Timestamp::parse_lenient("2021-06-01").unwrap();
    for e in ["app-0000#read", "app-0001#write", "app-0002#admin", "app-0003"] {
        let target = Target::parse(e).unwrap();
        for as_of in [AsOf::Head, AsOf::Position(a.head().get() / 2)] {
            assert_eq!(a.holders(&target, t, as_of), b.holders(&target, t, as_of), "who {e}");
        }
    }
    for name in names() {
        assert_eq!(a.access(&name, t, AsOf::Head), b.access(&name, t, AsOf::Head), "access {name}");
        assert_eq!(a.timeline(&name, AsOf::Head), b.timeline(&name, AsOf::Head), "timeline {name}");
        assert_eq!(a.profile(&name, t, AsOf::Head), b.profile(&name, t, AsOf::Head), "profile {name}");
    }
    assert_eq!(a.anomalies(AsOf::Head), b.anomalies(AsOf::Head));
}

/// A store of the organisation of `seed`, and its index written to `access.index`.
fn store_with_index_file(seed: u64) -> (tempfile::TempDir, Store, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("log")).unwrap();
    store.append(org(seed)).unwrap();
    let path = dir.path().join("access.index");
    common::build_index(&store).write_file(&path).unwrap();
    (dir, store, path)
}

#[test]
fn a_frozen_file_and_a_tail_answer_like_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("log")).unwrap();
    let path = dir.path().join("access.index");
    let all = org(11);
    let half = all.len() / 2;
    store.append(all[..half].to_vec()).unwrap();
    common::build_index(&store).write_file(&path).unwrap();
    let frozen_at = store.head();
    store.append(all[half..].to_vec()).unwrap();
    let reopened = open_access_index(&store, &path).unwrap();
    assert_eq!(reopened.frozen_head(), frozen_at);
    assert_eq!(reopened.head(), store.head());
    assert_same(&reopened, &common::build_index(&store));
    // Written again from the mixed index, it still answers the same.
    reopened.write_file(&path).unwrap();
    let again = open_access_index(&store, &path).unwrap();
    assert_eq!((again.frozen_head(), again.tail_len()), (store.head(), 0));
    assert_same(&again, &common::build_index(&store));
}

#[test]
fn a_damaged_header_or_a_torn_file_is_rebuilt_from_the_log() {
    let (_dir, store, path) = store_with_index_file(5);
    let good = std::fs::read(&path).unwrap();
    let rebuilt = common::build_index(&store);

    let mut flipped = good.clone();
    flipped[20] ^= 0x40; // inside the header's head position
    std::fs::write(&path, &flipped).unwrap();
    let err = AccessIndex::open_file(&path).err().expect("a damaged header is detected");
    assert!(err.to_string().contains("access.index"), "{err}");
    assert_same(&open_access_index(&store, &path).unwrap(), &rebuilt);

    std::fs::write(&path, &good[..good.len() / 3]).unwrap();
    assert!(AccessIndex::open_file(&path).is_err(), "a torn file is detected");
    assert_same(&open_access_index(&store, &path).unwrap(), &rebuilt);
}

/// Flips a byte in every 97 of section `section` of the index file at `path` (its
/// offset and length in the header's table at byte 48).
fn flip_section(path: &std::path::Path, section: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = 48 + section * 16;
    let offset = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let len = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize;
    for i in (offset..offset + len).step_by(97) {
        bytes[i] ^= 0x5a;
    }
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn damaged_lists_are_reported_by_the_queries_that_read_them() {
    let (_dir, _store, path) = store_with_index_file(9);
    flip_section(&path, 5); // the identities' events
    let index = AccessIndex::open_file(&path).expect("the header is intact");
    let t = tenure::Timestamp::parse_lenient("2021-06-01").unwrap();
    let mut corrupt = 0;
    for name in names() {
        match index.access(&name, t, AsOf::Head) {
            Err(QueryError::Corrupt(e)) => {
                assert!(e.to_string().contains("checksum"), "{e}");
                corrupt += 1;
            }
            Err(QueryError::UnknownIdentity(_)) | Ok(_) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert!(corrupt > 0, "damaged lists go unnoticed");
}

/// A rewrite carries the runs of untouched identities over from the old file; runs there
/// that fail their checksum are not carried: the file written is the one a build from
/// the log writes.
#[test]
fn a_rewrite_over_damaged_runs_folds_everyone_and_writes_a_whole_file() {
    let (dir, store, path) = store_with_index_file(9);
    flip_section(&path, 16); // the runs
    let late = NewEvent::from_json(
        r#"{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","data":{"identity":"late-joiner","kind":"human"}}"#,
    )
    .unwrap();
    store.append(vec![late]).unwrap();
    let mut index = AccessIndex::open_file(&path).unwrap();
    let from = index.head().get() + 1;
    store
        .scan(tenure::engine::Position(from), store.head(), |e| {
            index.apply(&e);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let rewritten = dir.path().join("rewritten");
    index.write_file(&rewritten).unwrap();
    let built = dir.path().join("built");
    common::build_index(&store).write_file(&built).unwrap();
    assert!(std::fs::read(&rewritten).unwrap() == std::fs::read(&built).unwrap());
}

#[test]
fn an_index_file_ahead_of_its_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = Store::open(dir.path().join("big")).unwrap();
    big.append(org(3)).unwrap();
    let path = dir.path().join("access.index");
    common::build_index(&big).write_file(&path).unwrap();
    let small = Store::open(dir.path().join("small")).unwrap();
    small.append(org(3)[..10].to_vec()).unwrap();
    match open_access_index(&small, &path) {
        Err(ProjectionError::CheckpointAhead { checkpoint, head, .. }) => {
            assert_eq!((checkpoint, head), (big.head(), small.head()))
        }
        other => panic!("expected a refusal, got {:?}", other.map(|i| i.head())),
    }
}

/// A byte flipped anywhere in a section that queries read in part (offset tables, names,
/// member and holder lists) is caught by the checksum of the block it lies in: every
/// query that reads it reports the damage, and no query answers otherwise than the sound
/// file does.
#[test]
fn a_flipped_byte_in_any_section_is_reported_never_believed() {
    let (_dir, _store, path) = store_with_index_file(13);
    let good = std::fs::read(&path).unwrap();
    let sound = AccessIndex::open_file(&path).unwrap();
    let t = tenure::Timestamp::parse_lenient("2021-06-01").unwrap();
    let targets: Vec<Target> = (0..40).map(|i| Target::parse(&format!("app-{i:04}")).unwrap()).collect();
    // Sections 1..=13 of the header's table at byte 48: name offsets, names, sorted ids,
    // events offsets, events, groups-of offsets and lists, owned, direct holders, members.
    for section in 1..=13usize {
        let at = 48 + section * 16;
        let offset = u64::from_le_bytes(good[at..at + 8].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(good[at + 8..at + 16].try_into().unwrap()) as usize;
        if len == 0 {
            continue;
        }
        let mut bytes = good.clone();
        bytes[offset + len / 2] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let index = AccessIndex::open_file(&path).expect("the header is intact");
        let mut reported = 0;
        for name in names() {
            match index.access(&name, t, AsOf::Head) {
                Err(QueryError::Corrupt(e)) => {
                    assert!(e.to_string().contains("checksum"), "section {section}: {e}");
                    reported += 1;
                }
                answer => assert_eq!(answer, sound.access(&name, t, AsOf::Head), "section {section}, {name}"),
            }
            match index.profile(&name, t, AsOf::Head) {
                Err(QueryError::Corrupt(_)) => reported += 1,
                answer => assert_eq!(answer, sound.profile(&name, t, AsOf::Head), "section {section}, {name}"),
            }
        }
        for target in &targets {
            for as_of in [AsOf::Head, AsOf::Position(sound.head().get() / 2)] {
                match index.holders(target, t, as_of) {
                    Err(QueryError::Corrupt(_)) => reported += 1,
                    answer => assert_eq!(answer, sound.holders(target, t, as_of), "section {section}"),
                }
            }
        }
        assert!(reported > 0, "section {section}: the flipped byte went unnoticed");
    }
}

/// The fuzz target's seed (`fuzz/seeds/index_file/scenario-03`, the index of scenario 03)
/// is a file of the current format: a seed of an older format is refused at its version,
/// and the fuzzer would never reach the sections. `TENURE_WRITE_SEEDS=1` writes it anew.
#[test]
fn the_index_fuzz_seed_is_of_the_current_format() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let seed = root.join("fuzz/seeds/index_file/scenario-03");
    if std::env::var("TENURE_WRITE_SEEDS").is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lines =
            std::fs::read_to_string(root.join("tests/scenarios/03-renewal-group-deletion-service.jsonl")).unwrap();
        let events: Vec<NewEvent> = lines.lines().map(|l| NewEvent::from_json(l).unwrap()).collect();
        store.append(events).unwrap();
        std::fs::write(&seed, common::build_index(&store).to_bytes()).unwrap();
    }
    let bytes = std::fs::read(&seed).unwrap();
    let index = AccessIndex::from_bytes(&bytes).expect("the seed opens with this format");
    index.check_file().expect("every byte of the seed checks");
}
