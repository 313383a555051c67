//! `tenure reconcile`: reading a directory snapshot (SCIM JSON as Okta and Entra ID return
//! it, or CSV) into `DirUser`s, and printing the comparison.

use crate::commands::{as_of_line, emit};
use crate::output::{date, JsonStream, Table};
use crate::{CliError, Format, Known};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tenure_engine::Timestamp;
use tenure_projections::reports::{DirUser, DriftRow, Reconciled, Reconciliation};
use tenure_projections::{AccessIndex, QueryError};
use tenure_server::snapshot::{resources, Memberships};

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
/// `groups` (or the CSV's column). Two passes over the files (the memberships first), each
/// a stream (a SCIM document resource by resource, a CSV row by row): memory holds the
/// memberships and a few batches of resources, never a file. In the second pass a
/// thread reads the document while the resources already read become users on every
/// core.
pub fn each_user(files: &[PathBuf], each: &mut dyn FnMut(DirUser) -> Result<(), CliError>) -> Result<(), CliError> {
    let mut members = Memberships::default();
    for file in files {
        let (shown, json, reader) = open_snapshot(file)?;
        if json {
            resources(&shown, reader, &mut |at, r| members.note(at, &r)).map_err(CliError::input)?;
        } else {
            members.known |= read_csv(&shown, reader)?.1;
        }
    }
    for file in files {
        let (shown, json, reader) = open_snapshot(file)?;
        if json {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(String, serde_json::Value)>>(2);
            let read = std::thread::scope(|scope| {
                let shown = &shown;
                let reading = scope.spawn(move || {
                    let mut batch = Vec::new();
                    let read = resources(shown, reader, &mut |at, r| {
                        batch.push((at.to_string(), r));
                        if batch.len() == 1024 {
                            // The users' side stopped: its error is the one told.
                            tx.send(std::mem::take(&mut batch)).map_err(|_| "stopped".to_string())?;
                        }
                        Ok(())
                    });
                    if read.is_ok() {
                        let _ = tx.send(batch);
                    }
                    read
                });
                let mut done = Ok(());
                for batch in rx {
                    let users = tenure_projections::reports::par_map(&batch, || (), |_, (at, r)| members.user(at, r));
                    done = users.into_iter().try_for_each(|user| match user.map_err(CliError::input)? {
                        Some(user) => each(user),
                        None => Ok(()),
                    });
                    if done.is_err() {
                        break;
                    }
                }
                let read = reading.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
                done.and(read.map_err(CliError::input))
            });
            read?;
        } else {
            for user in read_csv(&shown, reader)?.0 {
                let mut user = user?;
                members.complete(&mut user, None);
                each(user)?;
            }
        }
    }
    Ok(())
}

/// Where `reconcile`'s rows and corrections go: gathered for the table (and `--html`),
/// or streamed as JSON (the corrections kept in a temporary file until the rows are out)
/// or CSV.
enum Sink<'a> {
    Gather(Vec<DriftRow>, Vec<tenure_engine::NewEvent>, &'a mut dyn Write),
    Json(JsonStream<'a>, std::io::BufWriter<std::fs::File>),
    Csv(Box<csv::Writer<&'a mut dyn Write>>),
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
/// the rows written as they are made (`--json`, `--csv`; the table gathers them), the
/// corrections written to `--emit-corrections` as they are made.
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
    let r = index.resolve(as_of);
    let failed = |path: &Path, e: std::io::Error| CliError::failure(format!("{}: {e}", path.display()));
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
    let streamed = page.html.is_none() && (format.json || format.csv);
    let mut sink = match (streamed, format.json) {
        (false, _) => Sink::Gather(Vec::new(), Vec::new(), out),
        (true, true) => {
            let spill = tempfile::tempfile().map_err(|e| CliError::failure(format!("a temporary file: {e}")))?;
            let head = vec![("at", serde_json::to_value(at)?), ("as_of", r.into())];
            Sink::Json(JsonStream::new(&mut *out, head, "rows"), std::io::BufWriter::new(spill))
        }
        (true, false) => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(COLUMNS)?;
            Sink::Csv(Box::new(w))
        }
    };
    let mut count = 0usize;
    let mut take = |item: Reconciled| -> Result<(), CliError> {
        match item {
            Reconciled::Row(row) => match &mut sink {
                Sink::Gather(rows, ..) => rows.push(row),
                Sink::Json(json, _) => json.item_text(&JsonStream::render(&row)?)?,
                Sink::Csv(w) => w.write_record(cells(&row))?,
            },
            Reconciled::Fix(e) => {
                count += 1;
                let line = e.to_json();
                if let (Some(file), Some(path)) = (&mut fixes_file, corrections) {
                    writeln!(file, "{line}").map_err(|e| failed(path, e))?;
                }
                match &mut sink {
                    Sink::Gather(_, fixes, _) => fixes.push(e),
                    Sink::Json(_, spill) => writeln!(spill, "{line}")?,
                    Sink::Csv(_) => {}
                }
            }
        }
        Ok(())
    };
    each_user(files, &mut |user| rec.user(user, &mut take))?;
    let end = rec.finish(&mut take)?;
    if let (Some(file), Some(path)) = (fixes_file, corrections) {
        let file = file.into_inner().map_err(|e| failed(path, e.into_error()))?;
        file.persist(path).map_err(|e| failed(path, e.error))?;
    }
    match sink {
        Sink::Gather(rows, fixes, out) => {
            let report =
                Reconciliation { at, as_of: r, drift: end.drift, rows, dormant: end.dormant, corrections: fixes };
            print(&report, index, (known, format, page), corrections, out)
        }
        Sink::Json(json, spill) => {
            let fields = vec![("drift", end.drift.into()), ("dormant", serde_json::to_value(&end.dormant)?)];
            let mut json = json.then(fields, "corrections")?;
            let spill = spill.into_inner().map_err(|e| CliError::failure(format!("a temporary file: {e}")))?;
            let mut lines = std::io::BufReader::new(spill);
            std::io::Seek::rewind(&mut lines)?;
            for line in std::io::BufRead::lines(lines) {
                let value: serde_json::Value = serde_json::from_str(&line?)?;
                json.item_text(&JsonStream::render(&value)?)?;
            }
            json.finish(vec![])?;
            Ok(0)
        }
        Sink::Csv(mut w) => {
            w.flush()?;
            Ok(0)
        }
    }
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

fn print(
    report: &Reconciliation,
    index: &AccessIndex,
    (known, format, page): (Known, Format, &crate::Page),
    corrections: Option<&Path>,
    mut out: &mut dyn Write,
) -> Result<i32, CliError> {
    if let Some(path) = corrections {
        let mut text = String::new();
        for e in &report.corrections {
            text.push_str(&e.to_json());
            text.push('\n');
        }
        std::fs::write(path, text).map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
    }
    let mut table = Table::new(COLUMNS.to_vec());
    for row in &report.rows {
        table.row(cells(row));
    }
    let json = tenure_projections::answers::reconcile(report);
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &report.rows {
        *by_kind.entry(row.kind).or_default() += 1;
    }
    let chart: Vec<(String, f64)> = by_kind.iter().map(|(k, n)| (k.to_string(), *n as f64)).collect();
    let svg = (!chart.is_empty()).then(|| crate::picture::bars_svg("drift by kind", "", &chart));
    let summary = vec![
        format!("drift {} at {}, {}", report.drift, date(report.at), as_of_line(index, known)),
        format!("{} dormant accounts", report.dormant.len()),
    ];
    crate::report::write_page(page, "Reconciliation with the directory", &summary, svg, &table)?;
    if !format.json && !format.csv {
        writeln!(out, "drift {} at {}, {}:", report.drift, date(report.at), as_of_line(index, known))?;
    }
    if !(table.is_empty() && !format.json && !format.csv) {
        emit(&mut out, format, json, table)?;
    }
    if !format.json && !format.csv {
        if !report.dormant.is_empty() {
            writeln!(out, "dormant (active, no lifecycle event since):")?;
            for d in &report.dormant {
                writeln!(out, "  {} since {} (@{})", d.identity, date(d.last_event_at), d.last_event)?;
            }
        }
        if let Some(path) = corrections {
            writeln!(out, "{} corrections written to {}", report.corrections.len(), path.display())?;
        }
    }
    Ok(0)
}
