//! `tenure reconcile`: reading a directory snapshot (SCIM JSON as Okta and Entra ID return
//! it, or CSV) into `DirUser`s, and printing the comparison.

use crate::commands::as_of_line;
use crate::output::{date, Rendered, Sink, Table, RENDER_BATCH};
use crate::{CliError, Format, Known};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tenure_engine::Timestamp;
use tenure_projections::reports::{DirUser, DriftRow, Reconciled};
use tenure_projections::{AccessIndex, QueryError};
use tenure_server::snapshot::{check, raw_resources, Memberships, Resource};

/// A snapshot file opened past a byte-order mark and blanks: whether it is JSON (a SCIM
/// document; otherwise CSV), and its reader.
fn open_snapshot(file: &Path) -> Result<(String, bool, std::io::BufReader<std::fs::File>), CliError> {
    use std::io::BufRead;
    let shown = file.display().to_string();
    let open = std::fs::File::open(file).map_err(|e| CliError::input(format!("{shown}: {e}")))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, open);
    let mut first = None;
    while first.is_none() {
        let buf = reader.fill_buf().map_err(|e| CliError::input(format!("{shown}: {e}")))?;
        if buf.is_empty() {
            break;
        }
        let skip = if buf.starts_with("\u{feff}".as_bytes()) { 3 } else { 0 };
        let blank = buf[skip..].iter().take_while(|b| b.is_ascii_whitespace()).count();
        first = buf.get(skip + blank).copied();
        reader.consume(skip + blank);
    }
    Ok((shown, matches!(first, Some(b'{' | b'[')), reader))
}

/// Hands `each` every user of the snapshot files with its groups: users from the Users,
/// memberships from the Groups (by the members' directory ids) and from each user's own
/// `groups` (or the CSV's column). Two passes: the first reads the files (a SCIM document
/// resource by resource, cut by one thread and made into users on every core; a CSV row
/// by row), notes the memberships and keeps each user in a temporary file, so that a bad
/// resource anywhere is told before anything is compared; the second reads the users
/// back (on a thread of its own) and hands them out with their groups. Memory holds the
/// memberships and a few batches of users, never a file.
pub fn each_user(files: &[PathBuf], each: &mut dyn FnMut(DirUser) -> Result<(), CliError>) -> Result<(), CliError> {
    let temporary = |e: std::io::Error| CliError::failure(format!("a temporary file: {e}"));
    let mut members = Memberships::default();
    let mut spill = std::io::BufWriter::new(tempfile::tempfile().map_err(temporary)?);
    let mut keep = |user: &(DirUser, Option<String>)| -> Result<(), CliError> {
        serde_json::to_writer(&mut spill, user)?;
        spill.write_all(b"\n").map_err(temporary)
    };
    for file in files {
        let (shown, json, reader) = open_snapshot(file)?;
        if json {
            let cut = |send: &mut dyn FnMut((String, Box<RawValue>)) -> Result<(), CliError>| {
                raw_resources(&shown, reader, &mut |at, raw| send((at.to_string(), raw)).map_err(|e| e.message))
                    .map_err(CliError::input)
            };
            let read = pipelined(cut, |batch| {
                let read = tenure_projections::reports::par_map(&batch, || (), |_, (at, raw)| Resource::read(at, raw));
                for resource in read {
                    if let Some(user) = members.note(resource.map_err(CliError::input)?) {
                        keep(&user)?;
                    }
                }
                Ok(())
            });
            if let Err(e) = read {
                // Read again one resource at a time, for the line of the bad one.
                let (shown, _, reader) = open_snapshot(file)?;
                check(&shown, reader).map_err(CliError::input)?;
                return Err(e);
            }
        } else {
            let (users, lists_groups) = read_csv(&shown, reader)?;
            members.known |= lists_groups;
            for user in users {
                keep(&(user?, None))?;
            }
        }
    }
    let spill = spill.into_inner().map_err(|e| temporary(e.into_error()))?;
    let mut lines = std::io::BufReader::new(spill);
    std::io::Seek::rewind(&mut lines).map_err(temporary)?;
    let members = &members;
    let read_back = |send: &mut dyn FnMut(DirUser) -> Result<(), CliError>| {
        for line in std::io::BufRead::lines(lines) {
            let (mut user, id): (DirUser, Option<String>) = serde_json::from_str(&line.map_err(temporary)?)?;
            members.complete(&mut user, id.as_deref());
            send(user)?;
        }
        Ok(())
    };
    pipelined(read_back, |users| users.into_iter().try_for_each(&mut *each))
}

/// Runs `produce` on a thread of its own, its items handed to `consume` on this one in
/// batches of 1,024 (two batches in flight at most), so that reading and the work on
/// what was read go on at once. The first error stops both; `consume`'s is the one told.
fn pipelined<T: Send>(
    produce: impl FnOnce(&mut dyn FnMut(T) -> Result<(), CliError>) -> Result<(), CliError> + Send,
    mut consume: impl FnMut(Vec<T>) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<T>>(2);
    std::thread::scope(|scope| {
        let producing = scope.spawn(move || {
            let mut batch = Vec::new();
            let made = produce(&mut |item| {
                batch.push(item);
                if batch.len() == 1024 {
                    tx.send(std::mem::take(&mut batch)).map_err(|_| CliError::failure("stopped"))?;
                }
                Ok(())
            });
            if made.is_ok() {
                let _ = tx.send(batch);
            }
            made
        });
        let mut done = Ok(());
        for batch in rx {
            done = consume(batch);
            if done.is_err() {
                break;
            }
        }
        let made = producing.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        done.and(made)
    })
}

const COLUMNS: [&str; 7] = ["DRIFT", "IDENTITY", "DIRECTORY", "FIELD", "HERE", "THERE", "POSITIONS"];

fn cells(row: &DriftRow) -> Vec<String> {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let positions: Vec<String> = row.positions.iter().map(u64::to_string).collect();
    vec![
        row.kind.to_string(),
        dash(&row.identity),
        dash(&row.directory),
        dash(&row.field),
        dash(&row.here),
        dash(&row.there),
        if positions.is_empty() { "-".into() } else { positions.join(" ") },
    ]
}

/// `tenure reconcile`: the snapshot's users handed to the reconciler as they are read,
/// the rows written as they are made (a table, JSON or CSV: memory holds a batch of rows
/// whatever the drift; only `--html` keeps every row, for its page), the corrections
/// written to `--emit-corrections` as they are made (and, for `--json`, kept in a
/// temporary file until the rows are out). The totals come after the rows.
#[allow(clippy::too_many_arguments)]
pub fn run(
    store: &tenure_engine::Store,
    mut index: &'static AccessIndex,
    files: &[PathBuf],
    (at, services, dormant_after): (Timestamp, bool, i64),
    (known, format, page): (Known, Format, &crate::Page),
    corrections: Option<&Path>,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let as_of = crate::commands::as_of(known);
    let mut rec = match index.reconciler(at, as_of, services, dormant_after) {
        Err(QueryError::Corrupt(e)) => {
            crate::commands::note(&format!("{e}; rebuilt from the log"));
            index = crate::commands::load_index_with(store, true)?;
            index.reconciler(at, as_of, services, dormant_after)?
        }
        other => other?,
    };
    // The corrections are made only for a file to write them to, or for `--json`.
    if corrections.is_none() && !format.json {
        rec = rec.without_corrections();
    }
    let r = index.resolve(as_of);
    let failed = |path: &Path, e: std::io::Error| CliError::failure(format!("{}: {e}", path.display()));
    let temporary = |e: std::io::Error| CliError::failure(format!("a temporary file: {e}"));
    // The corrections go to a temporary file beside the one asked for, renamed to it
    // only once every user was compared: a snapshot found bad half-way leaves no half
    // list of corrections that a person could ingest.
    let mut fixes_file = match corrections {
        Some(path) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let file = tempfile::NamedTempFile::new_in(dir).map_err(|e| failed(path, e))?;
            Some(std::io::BufWriter::new(file))
        }
        None => None,
    };
    let mut spill = match format.json {
        true => Some(std::io::BufWriter::new(tempfile::tempfile().map_err(temporary)?)),
        false => None,
    };
    let head = vec![("at", serde_json::to_value(at)?), ("as_of", r.into())];
    let mut sink = Sink::new(&mut *out, format, head, "rows", COLUMNS.to_vec())?;
    let mut all = page.html.is_some().then(|| Table::new(COLUMNS.to_vec()));
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut batch, mut fixes) = (Vec::new(), 0usize);
    let mut take = |item: Reconciled| -> Result<(), CliError> {
        match item {
            Reconciled::Row(row) => {
                *by_kind.entry(row.kind).or_default() += 1;
                if let Some(all) = all.as_mut() {
                    all.row(cells(&row));
                }
                batch.push(Rendered::of(&row, format, |_| cells(&row)));
                if batch.len() == RENDER_BATCH {
                    sink.rows(std::mem::take(&mut batch))?;
                }
            }
            Reconciled::Fix(e) => {
                fixes += 1;
                let line = e.to_json();
                if let (Some(file), Some(path)) = (&mut fixes_file, corrections) {
                    writeln!(file, "{line}").map_err(|e| failed(path, e))?;
                }
                if let Some(spill) = &mut spill {
                    writeln!(spill, "{line}").map_err(temporary)?;
                }
            }
        }
        Ok(())
    };
    // The users are compared on a thread of their own (and on every core) while this one
    // writes what they gave, a few batches behind.
    let mut end = None;
    pipelined(
        |hand| {
            each_user(files, &mut |user| rec.user(user, &mut *hand))?;
            end = Some(rec.finish(hand)?);
            Ok(())
        },
        |items| items.into_iter().try_for_each(&mut take),
    )?;
    let end = end.ok_or_else(|| CliError::failure("the comparison ended without its totals"))?;
    sink.rows(batch)?;
    if let (Some(file), Some(path)) = (fixes_file, corrections) {
        let file = file.into_inner().map_err(|e| failed(path, e.into_error()))?;
        file.persist(path).map_err(|e| failed(path, e.error))?;
    }
    let summary = format!("drift {} at {}, {}", end.drift, date(at), as_of_line(index, known));
    if let Some(table) = &all {
        let chart: Vec<(String, f64)> = by_kind.iter().map(|(k, n)| (k.to_string(), *n as f64)).collect();
        let svg = (!chart.is_empty()).then(|| crate::picture::bars_svg("drift by kind", "", &chart));
        let lines = vec![summary.clone(), format!("{} dormant accounts", end.dormant.len())];
        crate::report::write_page(page, "Reconciliation with the directory", &lines, svg, table)?;
    }
    // JSON: the drift, then the dormant accounts and the corrections as arrays written
    // item by item (at 10M events there are hundreds of thousands of each).
    let mut sink = sink.then(vec![("drift", end.drift.into())], "dormant")?;
    if format.json {
        for chunk in end.dormant.chunks(RENDER_BATCH) {
            sink.rows(chunk.iter().map(|d| Rendered::of(d, format, |_| Vec::new())).collect())?;
        }
    }
    let mut sink = sink.then(vec![], "corrections")?;
    if let Some(spill) = spill {
        let spill = spill.into_inner().map_err(|e| temporary(e.into_error()))?;
        let mut lines = std::io::BufReader::new(spill);
        std::io::Seek::rewind(&mut lines)?;
        let mut batch = Vec::new();
        for line in std::io::BufRead::lines(lines) {
            let value: serde_json::Value = serde_json::from_str(&line?)?;
            batch.push(Rendered::of(&value, format, |_| Vec::new()));
            if batch.len() == RENDER_BATCH {
                sink.rows(std::mem::take(&mut batch))?;
            }
        }
        sink.rows(batch)?;
    }
    if let Some(out) = sink.finish(vec![])? {
        writeln!(out, "{summary}")?;
        if !end.dormant.is_empty() {
            writeln!(out, "dormant (active, no lifecycle event since):")?;
            for d in &end.dormant {
                writeln!(out, "  {} since {} (@{})", d.identity, date(d.last_event_at), d.last_event)?;
            }
        }
        if let Some(path) = corrections {
            writeln!(out, "{fixes} corrections written to {}", path.display())?;
        }
    }
    Ok(0)
}

/// A CSV snapshot: `identity`, `active`, then any attributes, `groups` (`;`-separated);
/// its users one row at a time.
/// Also says whether the file has a `groups` column.
#[allow(clippy::type_complexity)]
fn read_csv<'a>(
    shown: &'a str,
    input: impl std::io::Read + 'a,
) -> Result<(impl Iterator<Item = Result<DirUser, CliError>> + 'a, bool), CliError> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
    let headers = reader.headers().map_err(|e| CliError::input(format!("{shown}: {e}")))?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let identity = col("identity").ok_or_else(|| CliError::input(format!("{shown}: line 1: no `identity` column")))?;
    let active_col = col("active").ok_or_else(|| CliError::input(format!("{shown}: line 1: no `active` column")))?;
    let groups = col("groups");
    let users = reader.into_records().enumerate().map(move |(n, record)| {
        let line = n + 2;
        let record = record.map_err(|e| CliError::input(format!("{shown}: line {line}: {e}")))?;
        let name = record.get(identity).unwrap_or_default().to_string();
        if name.is_empty() {
            return Err(CliError::input(format!("{shown}: line {line}: identity: must not be empty")));
        }
        let flag = record.get(active_col).unwrap_or_default().to_ascii_lowercase();
        let active = match flag.as_str() {
            "true" | "yes" | "1" | "active" => true,
            "false" | "no" | "0" | "inactive" | "suspended" | "disabled" => false,
            other => {
                return Err(CliError::input(format!("{shown}: line {line}: active: '{other}' is not true or false")))
            }
        };
        let mut attributes = BTreeMap::new();
        for (i, h) in headers.iter().enumerate() {
            if i != identity && i != active_col && Some(i) != groups {
                if let Some(v) = record.get(i).filter(|v| !v.is_empty()) {
                    attributes.insert(h.to_string(), v.to_string());
                }
            }
        }
        let groups = groups.map(|g| {
            record
                .get(g)
                .unwrap_or_default()
                .split(';')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect()
        });
        Ok(DirUser { keys: vec![name.clone()], user_name: None, active, attributes, groups })
    });
    Ok((users, groups.is_some()))
}
