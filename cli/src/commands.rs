//! The commands: open the store, ask the index, print.

use crate::output::{date, position, until, vias, vias_csv, Rendered, Sink, Table, RENDER_BATCH};
use crate::{Cli, CliError, Command, Format, Known};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use tenure_engine::{Position, Store, Subject};
use tenure_projections::{answers, open_access_index_with, AccessIndex, AsOf, QueryError, Target, ACCESS_INDEX_FILE};

/// Opens an existing store to read it (queries never create one, take no lock, write
/// nothing to the log, and see the acknowledged prefix: see `Store::open_read_only`).
pub fn open_existing(data: &Path) -> Result<Store, CliError> {
    require_store(data)?;
    Ok(Store::open_read_only(data)?)
}

/// Fails unless `data` is the directory of an existing store (commands other than
/// `ingest` and `demo` never create one).
fn require_store(data: &Path) -> Result<(), CliError> {
    refuse_a_file(data)?;
    if !data.join(tenure_engine::store::LOG_FILE).exists() {
        return Err(CliError::input(format!(
            "{}: no Tenure store here (create one with `tenure ingest` or `tenure demo`, or pass --data)",
            data.display()
        )));
    }
    Ok(())
}

/// `--data` names a directory; a regular file there is a mistake worth naming.
pub fn refuse_a_file(data: &Path) -> Result<(), CliError> {
    if data.is_file() {
        return Err(CliError::input(format!(
            "{}: a file, not a store directory (--data names the directory of a store)",
            data.display()
        )));
    }
    Ok(())
}

/// After an ingest: the access index file rewritten when it is
/// [`tenure_projections::REWRITE_AFTER`] events or more behind the log (or absent from a
/// store that large), so that the next query maps it instead of paying for the rewrite.
/// What is stored is stored: a failure here is a note, the next query builds the index.
fn index_up_to_date(store: &Store) {
    let path = store.dir().join(ACCESS_INDEX_FILE);
    let file_head = AccessIndex::open_file(&path).map_or(0, |f| f.head().get());
    if store.head().get().saturating_sub(file_head) < tenure_projections::REWRITE_AFTER {
        return;
    }
    let started = std::time::Instant::now();
    match open_access_index_with(store, &path, false, &mut |n| note(&n)) {
        Ok(index) => note(&format!(
            "access index brought up to date at position {} in {:.1} s",
            index.head().get(),
            started.elapsed().as_secs_f64()
        )),
        Err(e) => note(&format!("access index not brought up to date ({e}); the next query will")),
    }
}

/// Says on stderr what was found and mended on the way (never an error: the answer
/// that follows is right).
pub fn note(message: &str) {
    eprintln!("tenure: note: {}", crate::output::clean(message));
}

/// An identity as an auditor names it: its name in the log, or a `userName` it had (as
/// a SCIM directory gave it: compared without regard to case, a past one too). Says on
/// stderr what a userName resolved to; a name that is neither is left for the query to
/// call unknown.
fn resolve(store: &Store, name: &str, known: impl Fn(&str) -> Result<bool, CliError>) -> Result<String, CliError> {
    if known(name)? {
        return Ok(name.to_string());
    }
    let mut found = std::collections::BTreeSet::new();
    store.scan(Position(1), store.head(), |e| {
        use tenure_engine::EventData::*;
        let attributes = match &e.data {
            IdentityJoined(j) => Some(&j.attributes),
            IdentityMoved(m) => Some(&m.attributes),
            IdentityRejoined(r) => r.attributes.as_ref(),
            _ => None,
        };
        if attributes.and_then(|a| a.get("userName")).is_some_and(|u| u.to_lowercase() == name.to_lowercase()) {
            if let Some(identity) = e.data.identity() {
                found.insert(identity.to_string());
            }
        }
        std::ops::ControlFlow::Continue(())
    })?;
    let mut found = found.into_iter();
    match (found.next(), found.next()) {
        (None, _) => Ok(name.to_string()),
        (Some(identity), None) => {
            note(&format!("'{name}' is a userName of identity '{identity}': answering for '{identity}'"));
            Ok(identity)
        }
        (Some(a), Some(b)) => Err(CliError::input(format!(
            "'{name}' has been the userName of several identities ('{a}', '{b}'{}): name the identity",
            if found.next().is_some() { ", ..." } else { "" }
        ))),
    }
}

/// [`resolve`] against the index (a damaged part of it met on the way is rebuilt, as for
/// any query).
fn resolve_in(store: &Store, index: &mut &'static AccessIndex, name: &str) -> Result<String, CliError> {
    let known = ask(store, index, |i| Ok(i.has_identity(name)?))?;
    resolve(store, name, |_| Ok(known))
}

/// Loads the access index from its snapshot and brings it up to the head of the log;
/// `fresh` builds it from the log, believing no file.
///
/// The index lives until the process exits: a one-shot query does not pay for freeing
/// millions of small allocations that the OS reclaims at once.
pub fn load_index_with(store: &Store, fresh: bool) -> Result<&'static AccessIndex, CliError> {
    let index = open_access_index_with(store, &store.dir().join(ACCESS_INDEX_FILE), fresh, &mut |n| note(&n))?;
    for n in store.take_notices() {
        note(&n);
    }
    Ok(Box::leak(Box::new(index)))
}

pub fn load_index(store: &Store) -> Result<&'static AccessIndex, CliError> {
    load_index_with(store, false)
}

/// Asks `query` of the index. A part of the index file found damaged on the way (every
/// part is checked before it is believed) is never believed: the index is rebuilt from
/// the log, said on stderr, and the query asked again.
pub(crate) fn ask<T>(
    store: &Store,
    index: &mut &'static AccessIndex,
    query: impl Fn(&AccessIndex) -> Result<T, QueryError>,
) -> Result<T, CliError> {
    match query(index) {
        Err(QueryError::Corrupt(e)) => {
            note(&format!("{e}; rebuilt from the log"));
            *index = load_index_with(store, true)?;
            Ok(query(index)?)
        }
        other => Ok(other?),
    }
}

/// `--as-of` a position past the head is a mistake, not the head: say so.
pub(crate) fn check_known(index: &AccessIndex, known: Known) -> Result<(), CliError> {
    match known.as_of {
        Some(AsOf::Position(p)) if p > index.head().get() => Err(CliError::input(format!(
            "--as-of {p}: the log has {} positions (as known at a position, it must be one of them)",
            index.head()
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn as_of(known: Known) -> AsOf {
    known.as_of.unwrap_or(AsOf::Head)
}

fn print_json(out: &mut impl Write, value: &serde_json::Value) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(CliError::from)?;
    writeln!(out)?;
    Ok(())
}

pub(crate) fn emit(
    out: &mut impl Write,
    format: Format,
    json: serde_json::Value,
    table: Table,
) -> Result<(), CliError> {
    if format.json {
        print_json(out, &json)
    } else if format.csv {
        Ok(table.print_csv(out)?)
    } else {
        Ok(table.print(out)?)
    }
}

pub(crate) fn as_of_line(index: &AccessIndex, known: Known) -> String {
    let r = index.resolve(as_of(known));
    if r == index.head().get() {
        format!("as known at position {r} (the head)")
    } else {
        format!("as known at position {r} of {}", index.head())
    }
}

/// `tenure diff`: every change rendered on the worker that found it (identities compared on
/// every core) and spilled to two temporary files, gains and losses, so that memory holds
/// a few thousand identities' changes whatever the size of the answer; then the counts,
/// the gains and the losses are written as `Diff` lays them out. A damaged index is
/// rebuilt and the query asked again, as [`ask`] does (nothing is written before the end).
fn diff_streamed(
    store: &Store,
    mut index: &'static AccessIndex,
    (identity, from, to): (Option<&str>, tenure_engine::Timestamp, tenure_engine::Timestamp),
    known: crate::Known,
    format: crate::Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let spill = || -> Result<std::io::BufWriter<std::fs::File>, CliError> {
        let file =
            tempfile::tempfile().map_err(|e| CliError::failure(format!("a temporary file for the answer: {e}")))?;
        Ok(std::io::BufWriter::with_capacity(1 << 16, file))
    };
    let (mut gained, mut lost) = (spill()?, spill()?);
    let (mut n_gained, mut n_lost) = (0usize, 0usize);
    let render = |c: tenure_projections::Change| {
        Rendered::of(&c, format, |csv| {
            let why = if csv { vias_csv(&c.via) } else { vias(&c.via) };
            // The change column is set when the row is written.
            vec![String::new(), c.identity.clone(), c.resource.clone(), c.permission.clone(), why]
        })
    };
    enum Stop {
        Query(QueryError),
        Spill(CliError),
    }
    impl From<QueryError> for Stop {
        fn from(e: QueryError) -> Self {
            Stop::Query(e)
        }
    }
    let each = |gain: bool, row: Rendered| -> Result<(), Stop> {
        let (count, file) = if gain { (&mut n_gained, &mut gained) } else { (&mut n_lost, &mut lost) };
        *count += 1;
        row.spill(file).map_err(Stop::Spill)
    };
    match index.diff_each(identity, (from, to), as_of(known), render, each) {
        Err(Stop::Query(QueryError::Corrupt(e))) => {
            note(&format!("{e}; rebuilt from the log"));
            index = load_index_with(store, true)?;
            return diff_streamed(store, index, (identity, from, to), known, format, out);
        }
        Err(Stop::Query(e)) => return Err(e.into()),
        Err(Stop::Spill(e)) => return Err(e),
        Ok(()) => {}
    }
    if !format.json && !format.csv {
        writeln!(
            out,
            "access {} between {} and {}: {n_gained} gained, {n_lost} lost",
            identity.map(|i| format!("of {i}")).unwrap_or_else(|| "of everyone".into()),
            date(from),
            date(to),
        )?;
        if n_gained + n_lost == 0 {
            return Ok(());
        }
    }
    let head = vec![
        ("from", serde_json::to_value(from)?),
        ("to", serde_json::to_value(to)?),
        ("identity", serde_json::to_value(identity)?),
        ("as_of", index.resolve(as_of(known)).into()),
    ];
    let mut sink = Sink::new(out, format, head, "gained", vec!["CHANGE", "IDENTITY", "RESOURCE", "PERMISSION", "WHY"])?;
    for (sign, spill, last) in [("+", gained, false), ("-", lost, true)] {
        let file = spill.into_inner().map_err(|e| CliError::from(e.into_error()))?;
        let mut read = std::io::BufReader::with_capacity(1 << 16, file);
        std::io::Seek::rewind(&mut read)?;
        let mut batch = Vec::with_capacity(RENDER_BATCH);
        loop {
            let row = Rendered::read(&mut read)?;
            let end = row.is_none();
            batch.extend(row.map(|r| r.with_change(sign)));
            if batch.len() == RENDER_BATCH || (end && !batch.is_empty()) {
                sink.rows(std::mem::take(&mut batch))?;
            }
            if end {
                break;
            }
        }
        if !last {
            sink = sink.then(Vec::new(), "lost")?;
        }
    }
    sink.finish(Vec::new()).map(|_| ())
}

/// Runs a command; returns the exit code.
pub fn run(cli: Cli) -> Result<i32, CliError> {
    // Buffered: a holders list of 100k lines must not cost 100k write calls.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let data = |default: &str| cli.data.clone().unwrap_or_else(|| PathBuf::from(default));
    let result = match cli.command {
        Command::Ingest { files, skip_invalid, from_line, json } => {
            refuse_a_file(&data("tenure-data"))?;
            let store = Store::open(data("tenure-data"))?;
            let mut rejects = match &skip_invalid {
                Some(p) => {
                    Some(std::fs::File::create(p).map_err(|e| CliError::input(format!("{}: {e}", p.display())))?)
                }
                None => None,
            };
            for file in &files {
                let w = rejects.as_mut().map(|f| f as &mut dyn Write);
                let summary = crate::ingest::ingest_file(&store, file, from_line, w)?;
                if json {
                    serde_json::to_writer(&mut out, &summary.to_json(&file.display().to_string()))?;
                    writeln!(out)?;
                } else {
                    writeln!(out, "{}", summary.describe(&file.display().to_string()))?;
                }
                // Each file's line goes out as it is done, also into a file or a pipe: a
                // killed ingest leaves the record of what it stored.
                out.flush()?;
                if summary.rejected > 0 && !json {
                    if let Some(p) = &skip_invalid {
                        writeln!(out, "rejected lines written to {}", p.display())?;
                    }
                }
            }
            index_up_to_date(&store);
            Ok(0)
        }
        Command::Access { identity, at, known, format } => {
            let store = open_existing(&data("tenure-data"))?;
            let mut index = load_index(&store)?;
            check_known(index, known)?;
            let identity = resolve_in(&store, &mut index, &identity)?;
            let held = ask(&store, &mut index, |i| i.access(&identity, at, as_of(known)))?;
            let mut table = Table::new(vec!["RESOURCE", "PERMISSION", "WHY"]);
            for h in &held {
                let why = if format.csv { vias_csv(&h.via) } else { vias(&h.via) };
                table.row(vec![h.resource.clone(), h.permission.clone(), why]);
            }
            let json = answers::access(&identity, at, index.resolve(as_of(known)), &held);
            if !format.json && !format.csv {
                writeln!(out, "{identity} at {}, {}:", date(at), as_of_line(index, known))?;
                if table.is_empty() {
                    writeln!(out, "no access")?;
                    return Ok(0);
                }
            }
            emit(&mut out, format, json, table).map(|()| 0)
        }
        Command::Who { target, at, during, known, format } => {
            let parsed = Target::parse(&target)
                .ok_or_else(|| CliError::input(format!("'{target}' is not RESOURCE or RESOURCE#PERMISSION")))?;
            let store = open_existing(&data("tenure-data"))?;
            let mut index = load_index(&store)?;
            check_known(index, known)?;
            let (holders, when, when_text) = match (at, during) {
                (Some(at), _) => (
                    ask(&store, &mut index, |i| i.holders(&parsed, at, as_of(known)))?,
                    answers::When::At(at),
                    format!("at {}", date(at)),
                ),
                (None, Some((from, to))) => (
                    ask(&store, &mut index, |i| i.holders_during(&parsed, from, to, as_of(known)))?,
                    answers::When::During(from, to),
                    format!("at some time in [{}, {})", date(from), date(to)),
                ),
                (None, None) => return Err(CliError::input("give --at T or --during T1..T2")),
            };
            if !format.json && !format.csv {
                writeln!(out, "holders of {target} {when_text}, {}:", as_of_line(index, known))?;
                if holders.is_empty() {
                    writeln!(out, "nobody")?;
                    return Ok(0);
                }
            }
            // Written a batch at a time, rendered on every core (a popular entitlement has
            // hundreds of thousands of holders).
            let mut head = vec![("resource", target.as_str().into()), ("as_of", index.resolve(as_of(known)).into())];
            head.push(match when {
                answers::When::At(at) => ("at", serde_json::to_value(at)?),
                answers::When::During(from, to) => ("during", serde_json::json!({"from": from, "to": to})),
            });
            let mut sink =
                Sink::new(&mut out, format, head, "holders", vec!["IDENTITY", "RESOURCE", "PERMISSION", "WHY"])?;
            for batch in holders.chunks(RENDER_BATCH) {
                sink.rows(Rendered::all(batch, |h| {
                    Rendered::of(h, format, |csv| {
                        let why = if csv { vias_csv(&h.via) } else { vias(&h.via) };
                        vec![h.identity.clone(), h.resource.clone(), h.permission.clone(), why]
                    })
                }))?;
            }
            sink.finish(Vec::new()).map(|_| 0)
        }
        Command::Timeline { identity, svg, known, format, page } => {
            let store = open_existing(&data("tenure-data"))?;
            let mut index = load_index(&store)?;
            check_known(index, known)?;
            let identity = resolve_in(&store, &mut index, &identity)?;
            let timeline = ask(&store, &mut index, |i| i.timeline(&identity, as_of(known)))?;
            let mut table = Table::new(vec!["KIND", "WHAT", "FROM", "TO", "OPENED", "CLOSED", "WHY"]);
            let sections = [
                ("status", &timeline.status),
                ("grant", &timeline.grants),
                ("membership", &timeline.memberships),
                ("access", &timeline.access),
            ];
            for (kind, spans) in sections {
                for s in spans {
                    let (from, to) = if format.csv {
                        (s.from.to_rfc3339(), s.to.map(|t| t.to_rfc3339()).unwrap_or_default())
                    } else {
                        (date(s.from), until(s.to))
                    };
                    let why = if format.csv { vias_csv(&s.via) } else { vias(&s.via) };
                    table.row(vec![
                        kind.to_string(),
                        s.what.clone(),
                        from,
                        to,
                        position(Some(s.opened_by)),
                        position(s.closed_by),
                        why,
                    ]);
                }
            }
            let json = answers::timeline(&timeline, index.resolve(as_of(known)));
            if svg.is_some() || page.html.is_some() {
                let marks = ask(&store, &mut index, |i| i.marks(&identity, as_of(known)))?;
                let picture = crate::picture::timeline_svg(&timeline, &marks);
                if let Some(path) = &svg {
                    std::fs::write(path, &picture)
                        .map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
                }
                let summary = vec![
                    as_of_line(index, known),
                    format!(
                        "{} windows recorded late, {} retracted",
                        marks.iter().filter(|m| m.kind == "late").count(),
                        marks.iter().filter(|m| m.kind == "retracted").count()
                    ),
                ];
                crate::report::write_page(&page, &format!("Timeline of {identity}"), &summary, Some(picture), &table)?;
            }
            if !format.json && !format.csv {
                writeln!(out, "timeline of {identity}, {}:", as_of_line(index, known))?;
            }
            emit(&mut out, format, json, table).map(|()| 0)
        }
        Command::Show { identity, at, known, format } => {
            let store = open_existing(&data("tenure-data"))?;
            let mut index = load_index(&store)?;
            check_known(index, known)?;
            let identity = resolve_in(&store, &mut index, &identity)?;
            let profile = ask(&store, &mut index, |i| i.profile(&identity, at, as_of(known)))?;
            let mut table = Table::new(vec!["FIELD", "VALUE"]);
            table.row(vec!["state".into(), format!("{} {}", profile.state, position(profile.state_since))]);
            let kind = profile.kind.map(|k| format!("{k:?}").to_lowercase()).unwrap_or_else(|| "-".into());
            table.row(vec!["kind".into(), kind]);
            if let Some(owner) = &profile.owner {
                table.row(vec!["owner".into(), owner.clone()]);
            }
            for (k, v) in &profile.attributes {
                table.row(vec![format!("attribute {k}"), v.clone()]);
            }
            for s in &profile.owns {
                table.row(vec!["owns".into(), format!("{} ({})", s.identity, s.state)]);
            }
            let json = answers::profile(&profile, at, index.resolve(as_of(known)));
            if !format.json && !format.csv {
                writeln!(out, "{identity} at {}, {}:", date(at), as_of_line(index, known))?;
            }
            emit(&mut out, format, json, table).map(|()| 0)
        }
        Command::Diff { from, to, identity, known, format } => {
            let store = open_existing(&data("tenure-data"))?;
            let mut index = load_index(&store)?;
            check_known(index, known)?;
            let identity = identity.map(|i| resolve_in(&store, &mut index, &i)).transpose()?;
            diff_streamed(&store, index, (identity.as_deref(), from, to), known, format, &mut out).map(|()| 0)
        }
        Command::Log { identity, group, from, limit, json: _ } => {
            let store = open_existing(&data("tenure-data"))?;
            let from = Position(from);
            let limit = limit.unwrap_or(u64::MAX);
            if limit == 0 {
                return Ok(0);
            }
            let mut written = 0u64;
            let mut write_event = |out: &mut dyn Write, e: &tenure_engine::Event| -> Result<bool, CliError> {
                serde_json::to_writer(&mut *out, e).map_err(CliError::from)?;
                writeln!(out)?;
                written += 1;
                Ok(written < limit)
            };
            let identity = match identity {
                Some(i) => Some(resolve(&store, &i, |n| {
                    Ok(!store.positions_of(&Subject::Identity(n.to_string()))?.is_empty())
                })?),
                None => None,
            };
            let subject = match (identity, group) {
                (Some(i), _) => Some(Subject::Identity(i)),
                (None, Some(g)) => Some(Subject::Group(g)),
                (None, None) => None,
            };
            match subject {
                Some(s) => {
                    let positions = store.positions_of(&s)?;
                    if positions.is_empty() {
                        let (what, name) = match &s {
                            Subject::Identity(n) => ("identity", n),
                            Subject::Group(n) => ("group", n),
                        };
                        return Err(CliError::input(format!("unknown {what} '{name}': no event names it")));
                    }
                    for p in positions.into_iter().filter(|&p| p >= from) {
                        if !write_event(&mut out, &store.read(p)?)? {
                            break;
                        }
                    }
                }
                None => {
                    let mut failure = None;
                    store.scan(from, store.head(), |e| match write_event(&mut out, &e) {
                        Ok(true) => std::ops::ControlFlow::Continue(()),
                        Ok(false) => std::ops::ControlFlow::Break(()),
                        Err(err) => {
                            failure = Some(err);
                            std::ops::ControlFlow::Break(())
                        }
                    })?;
                    if let Some(e) = failure {
                        return Err(e);
                    }
                }
            }
            Ok(0)
        }
        Command::Reconcile {
            directory,
            at,
            include_services,
            dormant_after,
            emit_corrections,
            known,
            format,
            page,
        } => {
            let store = open_existing(&data("tenure-data"))?;
            let index = load_index(&store)?;
            check_known(index, known)?;
            let at = at.unwrap_or_else(tenure_engine::Timestamp::now);
            crate::reconcile::run(
                &store,
                index,
                &directory,
                (at, include_services, dormant_after),
                (known, format, &page),
                emit_corrections.as_deref(),
                &mut out,
            )
        }
        Command::Review { action } => {
            let dir = data("tenure-data");
            require_store(&dir)?;
            let store = Store::open(&dir)?;
            let index = load_index(&store)?;
            crate::report::record_review(action, &store, index, &mut out)
        }
        Command::Report { report } => {
            let store = open_existing(&data("tenure-data"))?;
            let index = load_index(&store)?;
            crate::report::run(report, &store, index, &mut out)
        }
        Command::Anomalies { known, format } => {
            let store = open_existing(&data("tenure-data"))?;
            let mut index = load_index(&store)?;
            check_known(index, known)?;
            let anomalies = ask(&store, &mut index, |i| i.anomalies(as_of(known)))?;
            let mut table = Table::new(vec!["POSITION", "TYPE", "WHY"]);
            let mut rows = Vec::new();
            for a in &anomalies {
                let kind = store.read(Position(a.position))?.data.type_name();
                table.row(vec![a.position.to_string(), kind.to_string(), a.kind.to_string()]);
                rows.push((*a, kind));
            }
            let json = answers::anomalies(index.resolve(as_of(known)), &rows);
            if !format.json && !format.csv {
                writeln!(out, "{} anomalies, {}:", anomalies.len(), as_of_line(index, known))?;
            }
            emit(&mut out, format, json, table).map(|()| 0)
        }
        Command::Verify { json } => {
            let dir = data("tenure-data");
            require_store(&dir)?;
            let report = tenure_engine::verify(&dir)?;
            // The derived files, once the log is whole: each is checked byte for byte, and
            // one that does not read back is rebuilt (as a new file renamed into place).
            let mut derived = if report.first_bad.is_none() { check_derived(&dir)? } else { Vec::new() };
            if let Some(status) = &report.subjects_file {
                let mut status = status.clone();
                if report.subjects_stale {
                    // Rebuild it now: a read by subject loads the index from the log and
                    // writes a new snapshot (renamed into place) when the log is large
                    // enough to want one.
                    let before = tenure_engine::subjects::check_snapshot_file(&dir);
                    open_existing(&dir)?.positions_of(&Subject::Identity(String::new()))?;
                    let after = tenure_engine::subjects::check_snapshot_file(&dir);
                    if after != before && after.is_ok_and(|s| s.is_some()) {
                        status.push_str("; rebuilt from the log");
                    }
                }
                derived.insert(0, (tenure_engine::subjects::SUBJECTS_FILE.to_string(), status));
            }
            if let Some(status) = &report.offsets_file {
                derived.insert(0, (tenure_engine::store::INDEX_FILE.to_string(), status.clone()));
            }
            if json {
                print_json(&mut out, &answers::verify(&report, &derived))?;
            }
            match &report.first_bad {
                None => {
                    if !json {
                        writeln!(out, "intact: {} events, head hash {}", report.intact, report.head_hash)?;
                        match (report.acknowledged, report.marker_damaged) {
                            (Some(_), _) => {}
                            (None, true) => writeln!(
                                out,
                                "the head marker (events.head) is damaged: the next `tenure ingest` writes it anew"
                            )?,
                            (None, false) => writeln!(
                                out,
                                "no head marker (events.head): a store written before head markers existed; the next `tenure ingest` \
                                 writes one"
                            )?,
                        }
                        if let Some(t) = &report.torn_tail {
                            writeln!(
                                out,
                                "unacknowledged torn tail: {} bytes from byte {} (position {}: {}); never acknowledged, \
                                 so not evidence: the next `tenure ingest` moves it to quarantine/",
                                t.bytes, t.from_byte, t.position, t.reason
                            )?;
                        }
                        for (file, status) in &derived {
                            writeln!(out, "{file}: {status}")?;
                        }
                    }
                    Ok(0)
                }
                Some((p, reason)) => {
                    out.flush()?;
                    eprintln!(
                        "tenure: position {p}: {reason} (positions 1..{} are intact, their head hash is {}; \
                         `tenure repair` shows what it would move to the quarantine)",
                        report.intact, report.head_hash
                    );
                    Ok(3)
                }
            }
        }
        Command::Repair { apply, json } => {
            let dir = data("tenure-data");
            require_store(&dir)?;
            let r = tenure_engine::repair(&dir, apply)?;
            let to_cut = r.log_len - r.cut_from;
            if json {
                let bad = r.first_bad.as_ref().map(|(p, why)| json!({"position": p, "reason": why}));
                print_json(
                    &mut out,
                    &json!({
                        "first_bad": bad, "acknowledged": r.acknowledged, "keep_head": r.keep_head,
                        "keep_hash": r.keep_hash, "cut_from_byte": r.cut_from, "cut_bytes": to_cut,
                        "applied": r.applied, "quarantined": r.quarantined,
                    }),
                )?;
            }
            let Some((p, why)) = &r.first_bad else {
                if !json {
                    writeln!(out, "nothing to repair: the log verifies whole ({} events)", r.keep_head)?;
                    if r.applied {
                        writeln!(out, "the head marker was rewritten to name position {}", r.keep_head)?;
                    }
                }
                return Ok(0);
            };
            if !json {
                writeln!(out, "first damaged position: {p} ({why})")?;
                writeln!(
                    out,
                    "{} {to_cut} bytes from byte {} (everything after position {}) to quarantine/; the log keeps \
                     positions 1..{}, head hash {}",
                    if r.applied { "moved" } else { "would move" },
                    r.cut_from,
                    r.keep_head,
                    r.keep_head,
                    r.keep_hash
                )?;
                if let Some(q) = &r.quarantined {
                    writeln!(out, "the cut bytes are in {}; quarantine/repairs.log records the repair", q.display())?;
                }
            }
            if r.applied {
                Ok(0)
            } else {
                if !json {
                    writeln!(out, "nothing was changed: run `tenure repair --apply` to carry it out")?;
                }
                Ok(3)
            }
        }
        Command::Demo { identities } => crate::demo::run(&data("tenure-demo"), identities, &mut out).map(|()| 0),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut crate::Cli::command(), "tenure", &mut out);
            Ok(0)
        }
        Command::Serve { listen, token_file, base_url, webhooks, sync_from, sync_interval, subscribers } => {
            let sync = sync_from.map(|url| (url, sync_interval));
            let serving = crate::serve::Serving { token_file, base_url, webhooks, sync, subscribers };
            crate::serve::run(&data("tenure-data"), &listen, serving)
        }
        Command::Sync { follow, action } => crate::sync::run(&data("tenure-data"), follow, action, &mut out),
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(crate::Cli::command()).render(&mut out)?;
            Ok(0)
        }
        Command::Generate { identities, years, seed, out: path } => {
            let config = tenure_gen::OrgConfig::new(identities, years, seed);
            let mut sink: Box<dyn Write> = match &path {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p).map_err(|e| CliError::input(format!("{}: {e}", p.display())))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut failure = None;
            let n = tenure_gen::generate(&config, |e| {
                if failure.is_none() {
                    if let Err(err) = writeln!(sink, "{}", e.to_json()) {
                        failure = Some(err);
                    }
                }
            });
            if let Some(e) = failure {
                return Err(e.into());
            }
            sink.flush()?;
            if let Some(p) = path {
                eprintln!("wrote {n} events to {}", p.display());
            }
            Ok(0)
        }
    };
    let result = result.and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    // A closed pipe (`tenure log | head`) is not an error: `From<io::Error>` made it exit 0.
    result
}

/// Checks each derived file of the store in `dir` byte for byte, rebuilding one that
/// does not read back; returns what was found, per file.
fn check_derived(dir: &Path) -> Result<Vec<(String, String)>, CliError> {
    let mut found = Vec::new();
    let path = dir.join(ACCESS_INDEX_FILE);
    if path.exists() {
        let status = match AccessIndex::open_file(&path).and_then(|i| i.check_file().map(|()| i.head())) {
            Ok(head) => format!("intact (built at position {head})"),
            Err(e) => {
                let store = open_existing(dir)?;
                load_index_with(&store, true)?;
                format!("damaged ({}); rebuilt from the log", e.reason)
            }
        };
        found.push((ACCESS_INDEX_FILE.to_string(), status));
    }
    Ok(found)
}
