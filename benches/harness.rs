//! Tenure's benchmark harness: a synthetic organisation, the figures that matter, and
//! each beside its baseline measured in the same run.
//!
//! ```text
//! cargo bench --bench harness -- --events 1000000          # one scale
//! cargo bench --bench harness -- --events 100000 --quick   # the CI smoke run
//! cargo bench --bench harness -- --scales 100000,1000000,10000000
//! ```
//!
//! Baselines: raw sled (one key per event, `apply_batch` of 1,000 then `flush`) for
//! ingest, scan and bytes on disk; the disk's own sequential write rate (1 MiB writes,
//! one fdatasync each); the naive fold of the tests for queries; and a peer, what a team
//! would build instead: the same events in SQLite, access and holders at T by SQL
//! (`sqlite_peer.rs`), its answers compared with Tenure's. Results go to stdout as
//! a table and to `target/bench-results/harness-<events>.json`.

#[path = "../tests/common/oracle.rs"]
mod oracle;
mod sqlite_peer;

/// The allocator of the `tenure` binary, so that the harness measures what it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenure::engine::{Event, NewEvent, Position, Store, Subject, Timestamp};
use tenure::projections::{AccessIndex, AsOf, Target};

/// The harness's flags (`cargo bench --bench harness -- --help`).
#[derive(clap::Parser)]
#[command(
    name = "harness",
    about = "Tenure's benchmark harness: each figure beside its baseline, measured in the same run"
)]
struct Args {
    /// One scale: the number of events of the synthetic store.
    #[arg(long, value_name = "N", conflicts_with = "scales")]
    events: Option<usize>,
    /// Several scales, comma-separated (default: 100000).
    #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
    scales: Vec<usize>,
    /// Add a run at 100M events.
    #[arg(long)]
    large: bool,
    /// Load the SQLite peer (and time its queries) up to this many events: at 10M its
    /// load alone takes many minutes.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    peer_max: usize,
    /// The CI smoke run: fewer samples and shorter budgets.
    #[arg(long)]
    quick: bool,
    /// Where to put the stores (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<String>,
    /// Keep the stores afterwards.
    #[arg(long)]
    keep: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_args() -> Args {
    use clap::Parser;
    let mut args = Args::parse();
    if let Some(n) = args.events {
        args.scales = vec![n];
    }
    if args.scales.is_empty() {
        args.scales = vec![100_000];
    }
    if args.large {
        args.scales.push(100_000_000);
    }
    args
}

/// Percentiles of a sample of durations, in microseconds.
fn percentiles(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99), at(0.999))
}

fn dir_bytes(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = match e.metadata() {
                Ok(m) => m,
                Err(_) => continue,
            };
            total += if m.is_dir() { dir_bytes(&e.path()) } else { m.len() };
        }
    }
    total
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Passes of each sequential scan (ours and sled's); the median is reported. At 100k
/// events a pass takes ~50 ms, short enough for a neighbour's burst to halve it.
const SCAN_PASSES: usize = 3;

fn median_of(passes: usize, mut pass: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..passes.max(1)).map(|_| pass()).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One sample asked of Tenure and of the SQLite peer: each one's time, and what differed.
type PeerSample = (Duration, Duration, Option<String>);

struct Report {
    rows: Vec<(String, String, String, String)>,
    json: BTreeMap<String, serde_json::Value>,
}

impl Report {
    fn add(
        &mut self,
        key: &str,
        what: &str,
        value: String,
        baseline: String,
        ratio: Option<f64>,
        extra: serde_json::Value,
    ) {
        let ratio_text = ratio.map(|r| format!("{r:.2}x")).unwrap_or_default();
        println!("  {what:<46} {value:>22}  {baseline:>26}  {ratio_text}");
        self.rows.push((what.to_string(), value, baseline, ratio_text));
        self.json.insert(key.to_string(), extra);
    }
}

/// Generates the first `events` events of the organisation and hands them over in batches
/// of 1,000, so that no scale needs the whole stream in memory. Deterministic: every call
/// yields the same events.
fn for_each_batch(events: usize, mut f: impl FnMut(Vec<NewEvent>)) {
    // About 9 events per identity over 4 years of history.
    let identities = (events / 9).max(50);
    let config = tenure_gen::OrgConfig::new(identities, 4, 2026);
    let mut batch = Vec::with_capacity(1000);
    let mut sent = 0usize;
    tenure_gen::generate(&config, |e| {
        if sent + batch.len() >= events {
            return;
        }
        batch.push(e);
        if batch.len() == 1000 {
            sent += batch.len();
            f(std::mem::replace(&mut batch, Vec::with_capacity(1000)));
        }
    });
    if !batch.is_empty() {
        f(batch);
    }
}

fn main() {
    let args = parse_args();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("machine: {cpu}, {cores} cores");
    for &n in &args.scales {
        run_scale(n, &args, &cpu, cores);
    }
}

fn run_scale(n: usize, args: &Args, cpu: &str, cores: usize) {
    let base = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).ok();
            tempfile::tempdir_in(d).expect("bench dir")
        }
        None => tempfile::tempdir().expect("bench dir"),
    };
    println!("\n== {n} events ({}), data in {}", if args.quick { "quick" } else { "full" }, base.path().display());
    let t = Instant::now();
    let (mut generated, mut json_bytes, mut sampled) = (0usize, 0usize, 0usize);
    for_each_batch(n, |batch| {
        generated += batch.len();
        if sampled < 10_000 {
            json_bytes += batch.iter().map(|e| e.to_json().len() + 1).sum::<usize>();
            sampled += batch.len();
        }
    });
    let avg_json = json_bytes as f64 / sampled.max(1) as f64;
    let n = generated;
    println!("  generated {n} events in {:.1}s (avg {avg_json:.0} bytes as JSON)", t.elapsed().as_secs_f64());
    let mut report = Report { rows: vec![], json: BTreeMap::new() };
    println!("  {:<46} {:>22}  {:>26}  ratio", "figure", "tenure", "baseline (same run)");

    // --- Baseline: the disk's sequential write rate, 1 MiB writes, fdatasync each.
    let disk_rate = {
        let path = base.path().join("disk-baseline");
        let mut f = std::fs::File::create(&path).expect("file");
        let chunk = vec![0xA5u8; 1 << 20];
        let total: usize = ((n as f64 * avg_json) as usize).clamp(64 << 20, 1 << 30);
        let t = Instant::now();
        let mut written = 0;
        while written < total {
            f.write_all(&chunk).expect("write");
            f.sync_data().expect("sync");
            written += chunk.len();
        }
        let secs = t.elapsed().as_secs_f64();
        std::fs::remove_file(&path).ok();
        written as f64 / secs
    };

    // --- Baseline: raw sled, one key per event, apply_batch of 1000 then flush.
    let sled_dir = base.path().join("sled-baseline");
    let (sled_rate, sled_bytes, sled_scan_rate) = {
        let db = sled::Config::new().path(&sled_dir).open().expect("sled");
        let mut spent = Duration::ZERO;
        let mut next = 1u64;
        for_each_batch(n, |batch| {
            // Encoding is the baseline's own work too, but the obvious way: untimed, so
            // that only sled's part is compared.
            let encoded: Vec<Vec<u8>> = batch
                .into_iter()
                .map(|e| {
                    let ev = Event {
                        position: tenure::Position(next),
                        id: uuid::Uuid::now_v7(),
                        recorded_at: Timestamp::now(),
                        effective_at: e.effective_at,
                        source: e.source,
                        source_event_id: e.source_event_id,
                        actor: e.actor,
                        raw: e.raw,
                        data: e.data,
                    };
                    next += 1;
                    rmp_serde::to_vec_named(&ev).expect("encode")
                })
                .collect();
            let first = next - encoded.len() as u64;
            let t = Instant::now();
            let mut b = sled::Batch::default();
            for (i, v) in encoded.iter().enumerate() {
                b.insert(&(first + i as u64).to_be_bytes(), v.as_slice());
            }
            db.apply_batch(b).expect("batch");
            db.flush().expect("flush");
            spent += t.elapsed();
        });
        let rate = n as f64 / spent.as_secs_f64();
        drop(db);
        let bytes = dir_bytes(&sled_dir) as f64 / n as f64;
        let db = sled::Config::new().path(&sled_dir).open().expect("sled");
        let scan = median_of(SCAN_PASSES, || {
            let t = Instant::now();
            let mut count = 0u64;
            for kv in db.iter() {
                let (_, v) = kv.expect("read");
                let e: Event = rmp_serde::from_slice(&v).expect("decode");
                std::hint::black_box(&e);
                count += 1;
            }
            count as f64 / t.elapsed().as_secs_f64()
        });
        drop(db);
        std::fs::remove_dir_all(&sled_dir).ok();
        (rate, bytes, scan)
    };

    // --- Tenure: durable ingest, validated, deduplicated, indexed, chained, synced.
    let data = base.path().join("tenure");
    let store = Store::open(&data).expect("store");
    let _ = std::process::Command::new("sync").status();
    let mut spent = Duration::ZERO;
    let mut stored = 0u64;
    for_each_batch(n, |batch| {
        let t = Instant::now();
        let out = store.append(batch).expect("append");
        spent += t.elapsed();
        stored += out.iter().filter(|o| matches!(o, tenure::Outcome::Stored(_))).count() as u64;
    });
    let ingest_secs = spent.as_secs_f64();
    let ingest_rate = n as f64 / ingest_secs;
    report.add(
        "ingest_rate",
        "durable ingest, batches of 1000 (events/s)",
        format!("{ingest_rate:.0}"),
        format!("sled {sled_rate:.0}"),
        Some(ingest_rate / sled_rate),
        serde_json::json!({"tenure": ingest_rate, "sled": sled_rate, "disk_bytes_per_s": disk_rate, "stored": stored}),
    );
    let disk_events = disk_rate / avg_json;
    report.add(
        "disk_limit",
        "  disk: 1 MiB writes + fdatasync (events/s eq.)",
        format!("{ingest_rate:.0}"),
        format!("disk {disk_events:.0}"),
        Some(ingest_rate / disk_events),
        serde_json::json!({"disk_events_per_s": disk_events}),
    );

    // Bytes on disk per event (log only; the index snapshot is reported below).
    let log_bytes = store.disk_bytes() as f64 / stored.max(1) as f64;
    report.add(
        "bytes_per_event",
        "bytes on disk per event (log)",
        format!("{log_bytes:.0}"),
        format!("sled {sled_bytes:.0}"),
        Some(log_bytes / sled_bytes),
        serde_json::json!({"tenure": log_bytes, "sled": sled_bytes, "json": avg_json}),
    );

    // Sequential read + decode.
    let scan_rate = median_of(SCAN_PASSES, || {
        let t = Instant::now();
        let mut count = 0u64;
        store
            .scan(Position(1), store.head(), |e| {
                std::hint::black_box(&e);
                count += 1;
                ControlFlow::Continue(())
            })
            .expect("scan");
        count as f64 / t.elapsed().as_secs_f64()
    });
    report.add(
        "scan_rate",
        "sequential read + decode (events/s)",
        format!("{scan_rate:.0}"),
        format!("sled {sled_scan_rate:.0}"),
        Some(scan_rate / sled_scan_rate),
        serde_json::json!({"tenure": scan_rate, "sled": sled_scan_rate}),
    );

    // Verify.
    let t = Instant::now();
    let v = tenure::engine::verify(&data).expect("verify");
    assert!(v.first_bad.is_none());
    let verify_rate = v.intact as f64 / t.elapsed().as_secs_f64();
    report.add(
        "verify_rate",
        "verify whole chain (events/s)",
        format!("{verify_rate:.0}"),
        format!("scan {scan_rate:.0}"),
        Some(verify_rate / scan_rate),
        serde_json::json!({"tenure": verify_rate}),
    );

    // Group commit: 64 tokio tasks appending single events vs one appender. Write back
    // the earlier phases' dirty pages first: a journal commit behind them slows every sync.
    let _ = std::process::Command::new("sync").status();
    {
        let gc_dir = base.path().join("group-commit");
        let store = Arc::new(Store::open(&gc_dir).expect("store"));
        // Self-contained events (each joins a new identity), so any interleaving is valid.
        let joined = |k: usize| {
            let line = format!(
                r#"{{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","source":"gc","source_event_id":"{k}","data":{{"identity":"gc-{k}","kind":"human","attributes":{{"department":"engineering","title":"engineer"}}}}}}"#
            );
            NewEvent::from_json(&line).expect("valid event")
        };
        let single: Vec<NewEvent> = (0..if args.quick { 300 } else { 2000 }).map(joined).collect();
        let t = Instant::now();
        for e in &single {
            store.append(vec![e.clone()]).expect("append");
        }
        let one = single.len() as f64 / t.elapsed().as_secs_f64();
        let more: Vec<NewEvent> =
            (single.len()..single.len() + if args.quick { 6400 } else { 64_000 }).map(joined).collect();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
        let t = Instant::now();
        rt.block_on(async {
            let per = more.len() / 64;
            let mut tasks = vec![];
            for k in 0..64 {
                let store = store.clone();
                let mine: Vec<NewEvent> = more[k * per..(k + 1) * per].to_vec();
                tasks.push(tokio::spawn(async move {
                    for e in mine {
                        store.append_async(vec![e], None).await.expect("append");
                    }
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
        });
        let many = (more.len() / 64 * 64) as f64 / t.elapsed().as_secs_f64();
        report.add(
            "group_commit",
            "64 concurrent single-event appenders (ev/s)",
            format!("{many:.0}"),
            format!("1 appender {one:.0}"),
            Some(many / one),
            serde_json::json!({"many": many, "one": one}),
        );
    }

    // --- Index build from the log, in the state of a query process: the store reopened
    // for reading (the ingest's validation state, which only a writer builds, let go).
    store.close();
    drop(store);
    let store = Store::open(&data).expect("reopen store");
    let t = Instant::now();
    let mut index = AccessIndex::new();
    index.reserve(store.head().get());
    tenure::projections::replay(&store, Position(1), store.head(), |e| index.apply(e)).expect("replay");
    let build_rate = store.head().get() as f64 / t.elapsed().as_secs_f64();
    report.add(
        "index_build",
        "index build from the log (events/s)",
        format!("{build_rate:.0}"),
        format!("scan {scan_rate:.0}"),
        Some(build_rate / scan_rate),
        serde_json::json!({"tenure": build_rate}),
    );
    // Snapshot (the index file) and reopen with / without it.
    let index_path = data.join(tenure::projections::ACCESS_INDEX_FILE);
    let t = Instant::now();
    index.write_file(&index_path).expect("write index");
    let save_secs = t.elapsed().as_secs_f64();
    let snapshot_bytes =
        std::fs::metadata(&index_path).map(|m| m.len()).unwrap_or(0) as f64 / store.head().get() as f64;
    drop(index);
    let t = Instant::now();
    let index = tenure::projections::open_access_index(&store, &index_path).expect("reopen");
    assert_eq!(index.head(), store.head());
    let reopen_snap = t.elapsed().as_secs_f64();
    let t = Instant::now();
    {
        let mut fresh = AccessIndex::new();
        tenure::projections::replay(&store, Position(1), store.head(), |e| fresh.apply(e)).expect("replay");
    }
    let reopen_replay = t.elapsed().as_secs_f64();
    report.add(
        "reopen",
        "index reopen: snapshot vs full replay (s)",
        format!("{reopen_snap:.3}"),
        format!("replay {reopen_replay:.3}"),
        Some(reopen_replay / reopen_snap),
        serde_json::json!({"snapshot_s": reopen_snap, "replay_s": reopen_replay, "save_s": save_secs, "snapshot_bytes_per_event": snapshot_bytes}),
    );
    // Reads by identity in a process that appended nothing: the first loads the subject
    // index (reads the log once and, past 50,000 events, writes its snapshot); a new
    // process then loads the snapshot; later reads are a lookup and a read per event.
    let subjects: Vec<Subject> = {
        let mut rng = Rng(0x5B7);
        (0..200)
            .filter_map(|_| {
                let e = store.read(Position(1 + rng.below(store.head().get()))).ok()?;
                Some(Subject::Identity(e.data.identity()?.as_str().to_string()))
            })
            .collect()
    };
    let t = Instant::now();
    store.positions_of(&subjects[0]).expect("subject index");
    let first_scan = t.elapsed().as_secs_f64();
    store.close();
    drop(store);
    let store = Store::open(&data).expect("reopen store");
    let t = Instant::now();
    store.positions_of(&subjects[0]).expect("subject index");
    let first_snapshot = t.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(subjects.len());
    let mut read = 0usize;
    for s in &subjects {
        let t = Instant::now();
        read += std::hint::black_box(store.read_subject(s, Position::ZERO).expect("read subject")).len();
        lat.push(t.elapsed());
    }
    let (p50, p99, _) = percentiles(lat);
    report.add(
        "subject_reads",
        "events of an identity: p50 µs (first read: s)",
        format!("{p50:.1} (first {first_snapshot:.3})"),
        format!("scan {first_scan:.3}"),
        Some(first_scan / first_snapshot),
        serde_json::json!({"p50_us": p50, "p99_us": p99, "events_per_read": read as f64 / subjects.len() as f64, "first_from_snapshot_s": first_snapshot, "first_from_scan_s": first_scan}),
    );
    let subjects_bytes =
        std::fs::metadata(data.join("subjects.idx")).map(|m| m.len()).unwrap_or(0) as f64 / store.head().get() as f64;

    // Everything in the data directory: the log, its offsets file, the index files.
    let all_bytes = dir_bytes(&data) as f64 / store.head().get() as f64;
    report.add(
        "bytes_per_event_all",
        "bytes on disk per event, all files (log, offsets, indexes)",
        format!("{all_bytes:.0}"),
        format!("sled {sled_bytes:.0}"),
        Some(all_bytes / sled_bytes),
        serde_json::json!({"tenure": all_bytes, "index_file": snapshot_bytes, "subjects_file": subjects_bytes}),
    );

    // --- Queries: index vs naive fold.
    let log: Vec<Event> = if args.quick || n <= 1_000_000 {
        store.read_range(Position(1), store.head()).expect("read")
    } else {
        Vec::new()
    };
    let names: Vec<String> = {
        let mut v = vec![];
        store
            .scan(Position(1), Position(200_000), |e| {
                if let tenure::EventData::IdentityJoined(j) = &e.data {
                    v.push(j.identity.0.clone());
                }
                ControlFlow::Continue(())
            })
            .expect("scan");
        v
    };
    let t0 = Timestamp::parse_lenient("2020-01-01").expect("date").as_micros();
    let span = 4 * 365 * 86_400_000_000i64;
    let mut rng = Rng(0x5EED);
    let samples = if args.quick { 2000 } else { 20_000 };
    let head = store.head().get();
    let pick = |rng: &mut Rng| {
        let id = names[rng.below(names.len() as u64) as usize].clone();
        let t = Timestamp::from_micros(t0 + rng.below(span as u64) as i64);
        (id, t)
    };
    // Entitlements: the most common (Zipf head) and a rare one.
    let ents = ["app-0000#read", "app-0000#write", "app-0001#read", "app-0005#admin", "app-0020#read"];
    let naive_samples = if log.is_empty() {
        0
    } else if args.quick {
        20
    } else {
        5
    };

    let time_budget = Duration::from_secs(if args.quick { 2 } else { 8 });
    let mut query = |key: &str,
                     what: &str,
                     f: &mut dyn FnMut(&mut Rng) -> usize,
                     naive: Option<&mut dyn FnMut(&mut Rng)>| {
        // At most `samples` queries and at most a few seconds of them, at least 50.
        let mut lat = Vec::with_capacity(samples);
        let mut returned = 0usize;
        let budget = Instant::now();
        while lat.len() < samples && (lat.len() < 50 || budget.elapsed() < time_budget) {
            let t = Instant::now();
            returned += f(&mut rng);
            lat.push(t.elapsed());
        }
        let done = lat.len();
        let (p50, p99, p999) = percentiles(lat);
        let mut nl = Vec::new();
        if let Some(naive) = naive {
            for _ in 0..naive_samples {
                let t = Instant::now();
                naive(&mut rng);
                nl.push(t.elapsed());
            }
        }
        let naive_p50 = if nl.is_empty() { f64::NAN } else { percentiles(nl).0 };
        report.add(
            key,
            what,
            format!("p50 {p50:.1} p99 {p99:.1} p99.9 {p999:.1} µs"),
            if naive_p50.is_nan() { "naive: skipped".into() } else { format!("naive p50 {naive_p50:.0} µs") },
            (!naive_p50.is_nan()).then(|| naive_p50 / p50),
            serde_json::json!({"p50_us": p50, "p99_us": p99, "p999_us": p999, "naive_p50_us": naive_p50, "samples": done, "avg_returned": returned as f64 / done as f64}),
        );
    };

    query(
        "access",
        "access of identity at T",
        &mut |rng| {
            let (id, t) = pick(rng);
            index.access(&id, t, AsOf::Head).map(|v| v.len()).unwrap_or(0)
        },
        Some(&mut |rng| {
            let (id, t) = pick(rng);
            std::hint::black_box(oracle::access(&log, &id, t.as_micros(), head));
        }),
    );
    query(
        "access_as_of",
        "access of identity at T, as known at random R",
        &mut |rng| {
            let (id, t) = pick(rng);
            let r = rng.below(head) + 1;
            index.access(&id, t, AsOf::Position(r)).map(|v| v.len()).unwrap_or(0)
        },
        Some(&mut |rng| {
            let (id, t) = pick(rng);
            let r = rng.below(head) + 1;
            std::hint::black_box(oracle::access(&log, &id, t.as_micros(), r));
        }),
    );
    let mut holder_count = 0usize;
    let mut holder_time = Duration::ZERO;
    query(
        "holders",
        "holders of an entitlement at T",
        &mut |rng| {
            let e = Target::parse(ents[rng.below(ents.len() as u64) as usize]).expect("target");
            let (_, t) = pick(rng);
            let s = Instant::now();
            let h = index.holders(&e, t, AsOf::Head).expect("holders").len();
            holder_time += s.elapsed();
            holder_count += h;
            h
        },
        Some(&mut |rng| {
            let e = tenure::Entitlement::parse_short(ents[rng.below(ents.len() as u64) as usize]).expect("ent");
            let (_, t) = pick(rng);
            std::hint::black_box(oracle::holders(&log, |x| x == &e, t.as_micros(), head));
        }),
    );
    query(
        "holders_during",
        "holders during a 30-day window",
        &mut |rng| {
            let e = Target::parse(ents[rng.below(ents.len() as u64) as usize]).expect("target");
            let (_, t) = pick(rng);
            let t2 = Timestamp::from_micros(t.as_micros() + 30 * 86_400_000_000);
            index.holders_during(&e, t, t2, AsOf::Head).map(|h| h.len()).unwrap_or(0)
        },
        None,
    );
    query(
        "timeline",
        "timeline of identity",
        &mut |rng| {
            let (id, _) = pick(rng);
            index.timeline(&id, AsOf::Head).map(|t| t.access.len()).unwrap_or(0)
        },
        None,
    );
    query(
        "diff",
        "diff of one identity between T1 and T2",
        &mut |rng| {
            let (id, t) = pick(rng);
            let t2 = Timestamp::from_micros(t.as_micros() + 90 * 86_400_000_000);
            index.diff(Some(&id), t, t2, AsOf::Head).map(|d| d.gained.len() + d.lost.len()).unwrap_or(0)
        },
        None,
    );
    // The same queries "as known at" a random earlier position.
    query(
        "holders_as_of",
        "holders of an entitlement at T, as of random R",
        &mut |rng| {
            let e = Target::parse(ents[rng.below(ents.len() as u64) as usize]).expect("target");
            let (_, t) = pick(rng);
            index.holders(&e, t, AsOf::Position(rng.below(head) + 1)).expect("holders").len()
        },
        None,
    );
    // As of a recent R (the last 1% of the log): the runs answer for everyone nothing
    // recorded since touched.
    query(
        "holders_as_of_recent",
        "holders of an entitlement at T, as of R in the last 1% of the log",
        &mut |rng| {
            let e = Target::parse(ents[rng.below(ents.len() as u64) as usize]).expect("target");
            let (_, t) = pick(rng);
            let r = head.saturating_sub(rng.below(head / 100 + 1)).max(1);
            index.holders(&e, t, AsOf::Position(r)).expect("holders").len()
        },
        None,
    );
    query(
        "holders_during_as_of",
        "holders during 30 days, as of random R",
        &mut |rng| {
            let e = Target::parse(ents[rng.below(ents.len() as u64) as usize]).expect("target");
            let (_, t) = pick(rng);
            let t2 = Timestamp::from_micros(t.as_micros() + 30 * 86_400_000_000);
            index.holders_during(&e, t, t2, AsOf::Position(rng.below(head) + 1)).map(|h| h.len()).unwrap_or(0)
        },
        None,
    );
    query(
        "timeline_as_of",
        "timeline of identity, as of random R",
        &mut |rng| {
            let (id, _) = pick(rng);
            index.timeline(&id, AsOf::Position(rng.below(head) + 1)).map(|t| t.access.len()).unwrap_or(0)
        },
        None,
    );
    query(
        "diff_as_of",
        "diff of one identity, as of random R",
        &mut |rng| {
            let (id, t) = pick(rng);
            let t2 = Timestamp::from_micros(t.as_micros() + 90 * 86_400_000_000);
            let r = AsOf::Position(rng.below(head) + 1);
            index.diff(Some(&id), t, t2, r).map(|d| d.gained.len() + d.lost.len()).unwrap_or(0)
        },
        None,
    );
    let per_holder = holder_time.as_secs_f64() * 1e9 / holder_count.max(1) as f64;
    report.add(
        "holders_per_returned",
        "holders: time per holder returned (ns)",
        format!("{per_holder:.0}"),
        String::new(),
        None,
        serde_json::json!({"ns_per_holder": per_holder, "holders": holder_count}),
    );
    drop(log);

    // --- The peer: the same events in SQLite, the same questions by SQL, in this run.
    if n <= args.peer_max {
        let path = base.path().join("sqlite-peer.db");
        let mut peer = sqlite_peer::Peer::create(&path).expect("sqlite");
        let mut spent = Duration::ZERO;
        for_each_batch(n, |batch| {
            let t = Instant::now();
            peer.append(&batch).expect("sqlite append");
            spent += t.elapsed();
        });
        let peer_rate = n as f64 / spent.as_secs_f64();
        report.add(
            "sqlite_ingest",
            "durable ingest vs SQLite, batches of 1000 (events/s)",
            format!("{ingest_rate:.0}"),
            format!("sqlite {peer_rate:.0}"),
            Some(ingest_rate / peer_rate),
            serde_json::json!({"tenure": ingest_rate, "sqlite": peer_rate}),
        );
        let peer_bytes = ["", "-wal", "-shm"]
            .iter()
            .map(|x| std::fs::metadata(format!("{}{x}", path.display())).map(|m| m.len()).unwrap_or(0))
            .sum::<u64>() as f64
            / n as f64;
        report.add(
            "sqlite_bytes",
            "bytes on disk per event, all files, vs SQLite",
            format!("{all_bytes:.0}"),
            format!("sqlite {peer_bytes:.0}"),
            Some(all_bytes / peer_bytes),
            serde_json::json!({"tenure": all_bytes, "sqlite": peer_bytes}),
        );
        // The same samples to both, answers compared (entitlements, holders; no
        // provenance): `ask` times both and describes a difference; the first is shown.
        let mut paired = |key: &str, what: &str, samples: usize, ask: &mut dyn FnMut(&mut Rng) -> PeerSample| {
            let (mut ours, mut theirs, mut differ) = (Vec::new(), Vec::new(), 0usize);
            let budget = Instant::now();
            while ours.len() < samples && (ours.len() < 20 || budget.elapsed() < time_budget) {
                let (a, b, difference) = ask(&mut rng);
                ours.push(a);
                theirs.push(b);
                if let Some(d) = difference {
                    if differ == 0 {
                        println!("    (first difference: {d})");
                    }
                    differ += 1;
                }
            }
            let done = ours.len();
            let ((p50, p99, _), (sp50, sp99, _)) = (percentiles(ours), percentiles(theirs));
            report.add(
                key,
                what,
                format!("p50 {p50:.1} p99 {p99:.1} µs"),
                format!("sqlite p50 {sp50:.0} µs, {differ}/{done} differ"),
                Some(sp50 / p50),
                serde_json::json!({"p50_us": p50, "p99_us": p99, "sqlite_p50_us": sp50, "sqlite_p99_us": sp99, "samples": done, "answers_differ": differ}),
            );
        };
        paired("sqlite_access", "access of identity at T vs SQLite", samples, &mut |rng| {
            let (id, t) = pick(rng);
            let s = Instant::now();
            let ours: BTreeSet<(String, String)> = index
                .access(&id, t, AsOf::Head)
                .map(|v| v.into_iter().map(|h| (h.resource, h.permission)).collect())
                .unwrap_or_default();
            let a = s.elapsed();
            let s = Instant::now();
            let theirs = peer.access(&id, t.as_micros()).expect("sqlite access");
            let b = s.elapsed();
            (a, b, (ours != theirs).then(|| format!("access of {id} at {t}: Tenure {ours:?}, SQLite {theirs:?}")))
        });
        paired("sqlite_holders", "holders of an entitlement at T vs SQLite", samples / 10, &mut |rng| {
            let name = ents[rng.below(ents.len() as u64) as usize];
            let e = Target::parse(name).expect("target");
            let (resource, permission) = name.split_once('#').expect("short form");
            let (_, t) = pick(rng);
            let s = Instant::now();
            let ours: BTreeSet<String> =
                index.holders(&e, t, AsOf::Head).expect("holders").into_iter().map(|h| h.identity).collect();
            let a = s.elapsed();
            let s = Instant::now();
            let theirs = peer.holders(resource, permission, t.as_micros()).expect("sqlite holders");
            let b = s.elapsed();
            let only =
                |x: &BTreeSet<String>, y: &BTreeSet<String>| x.difference(y).take(3).cloned().collect::<Vec<_>>();
            let difference = (ours != theirs).then(|| {
                format!("{name} at {t}: only Tenure {:?}, only SQLite {:?}", only(&ours, &theirs), only(&theirs, &ours))
            });
            (a, b, difference)
        });
        drop(peer);
        if !args.keep {
            std::fs::remove_file(&path).ok();
        }
    }

    // --- What a user feels: a one-shot `tenure access` process on this store.
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/tenure");
    if bin.exists() {
        store.close();
        drop(store);
        let mut walls = vec![];
        let mut peak_kib = 0u64;
        let time_bin = Path::new("/usr/bin/time");
        for i in 0..5 {
            let id = &names[(i * 7919) % names.len()];
            let args = ["--data", data.to_str().unwrap_or("."), "access", id, "--at", "2022-06-01", "--json"];
            let t = Instant::now();
            let o = std::process::Command::new(&bin).args(args).output().expect("run tenure");
            walls.push(t.elapsed());
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            // Peak resident memory of the same process, via time(1) when it is there.
            if time_bin.exists() {
                let o = std::process::Command::new(time_bin)
                    .arg("-f")
                    .arg("%M")
                    .arg(&bin)
                    .args(args)
                    .output()
                    .expect("time");
                let text = String::from_utf8_lossy(&o.stderr);
                if let Some(kib) = text.lines().last().and_then(|l| l.trim().parse::<u64>().ok()) {
                    peak_kib = peak_kib.max(kib);
                }
            }
        }
        let (p50, _, _) = percentiles(walls);
        // And a one-shot `tenure who` of the most common entitlement of the run.
        let who_args = ["--data", data.to_str().unwrap_or("."), "who", ents[0], "--at", "2022-06-01", "--json"];
        let t = Instant::now();
        let o = std::process::Command::new(&bin).args(who_args).output().expect("run tenure");
        let who_ms = t.elapsed().as_secs_f64() * 1000.0;
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let who_count = serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .ok()
            .and_then(|v| v["holders"].as_array().map(|a| a.len()))
            .unwrap_or(0);
        report.add(
            "one_shot_who",
            "one-shot `tenure who` process, wall (ms)",
            format!("{who_ms:.1}"),
            format!("{who_count} holders"),
            None,
            serde_json::json!({"ms": who_ms, "holders": who_count}),
        );
        report.add(
            "one_shot_cli",
            "one-shot `tenure access` process, wall (ms)",
            format!("{:.1}", p50 / 1000.0),
            String::new(),
            None,
            serde_json::json!({"p50_ms": p50 / 1000.0, "peak_rss_mib": peak_kib as f64 / 1024.0}),
        );
        report.add(
            "one_shot_rss",
            "  its peak resident memory: the index (MiB)",
            format!("{:.0}", peak_kib as f64 / 1024.0),
            String::new(),
            None,
            serde_json::json!({"mib": peak_kib as f64 / 1024.0}),
        );
    } else {
        println!("  (build `cargo build --release -p tenure-cli` to time the one-shot CLI)");
    }

    report.add(
        "peak_rss",
        "peak resident memory of the harness (MiB)",
        format!("{:.0}", peak_rss_mib()),
        String::new(),
        None,
        serde_json::json!({"mib": peak_rss_mib()}),
    );

    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results");
    std::fs::create_dir_all(&out_dir).ok();
    let result = serde_json::json!({
        "events": n,
        "machine": {"cpu": cpu, "cores": cores},
        "quick": args.quick,
        "figures": report.json,
    });
    let path = out_dir.join(format!("harness-{n}.json"));
    if std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap_or_default()).is_ok() {
        println!("  results: {}", path.display());
    }
    if args.keep {
        let kept = base.keep();
        println!("  kept data in {}", kept.display());
    }
}
