//! `tenure ingest`: JSONL files into the log, whole files or nothing.

use crate::CliError;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use tenure_engine::store::MAX_BATCH_EVENTS;
use tenure_engine::{NewEvent, Outcome, Store};

/// What an ingest did.
#[derive(Default, Debug, Clone, Copy)]
pub struct Summary {
    pub appended: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub first: Option<u64>,
    pub last: Option<u64>,
}

impl Summary {
    fn count(&mut self, outcomes: &[Outcome]) {
        for o in outcomes {
            match o {
                Outcome::Stored(p) => {
                    self.appended += 1;
                    self.first.get_or_insert(p.get());
                    self.last = Some(p.get());
                }
                Outcome::Duplicate(_) => self.duplicates += 1,
            }
        }
    }

    pub fn describe(&self, name: &str) -> String {
        let positions = match (self.first, self.last) {
            (Some(a), Some(b)) if a == b => format!(" (position {a})"),
            (Some(a), Some(b)) => format!(" (positions {a}..{b})"),
            _ => String::new(),
        };
        let plural = |n: u64, one: &str, many: &str| if n == 1 { one.to_string() } else { many.to_string() };
        let mut text = format!(
            "{name}: {} appended{positions}, {} {} skipped",
            self.appended,
            self.duplicates,
            plural(self.duplicates, "duplicate", "duplicates")
        );
        if self.rejected > 0 {
            text.push_str(&format!(", {} rejected", self.rejected));
        }
        text
    }
}

/// A line that will not go in, with where it came from.
struct Reject {
    line: usize,
    error: String,
    raw: String,
}

fn progress(total_bytes: Option<u64>) -> ProgressBar {
    let large = total_bytes.is_some_and(|b| b > 8 << 20);
    if !std::io::stderr().is_terminal() || !large {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_bytes.unwrap_or(0));
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Ingests one file (or standard input for `-`).
pub fn ingest_file(store: &Store, path: &Path, rejects: Option<&mut dyn Write>) -> Result<Summary, CliError> {
    let name = path.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).map_err(|e| CliError::input(format!("{name}: {e}")))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, file))
    };
    let size = if name == "-" { None } else { std::fs::metadata(path).ok().map(|m| m.len()) };
    let bar = progress(size);
    bar.set_message(format!("reading {name}"));

    // Parse everything first: a bad line stops the ingest before anything is stored.
    let mut events: Vec<NewEvent> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    let mut bad: Vec<Reject> = Vec::new();
    let skipping = rejects.is_some();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| CliError::input(format!("{name}:{n}: {e}")))?;
        bar.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        match NewEvent::from_json(&line) {
            Ok(e) => {
                events.push(e);
                lines.push(n);
            }
            Err(e) if skipping => bad.push(Reject { line: n, error: e.to_string(), raw: line }),
            Err(e) => return Err(CliError::input(format!("{name}:{n}: {e}"))),
        }
    }
    bar.set_message(format!("storing {name}"));

    let mut summary = Summary::default();
    let mut start = 0;
    while start < events.len() {
        let end = (start + MAX_BATCH_EVENTS).min(events.len());
        let mut part: Vec<NewEvent> = events[start..end].to_vec();
        let mut part_lines: Vec<usize> = lines[start..end].to_vec();
        // One part and no skipping: the append validates the part whole by itself.
        // Otherwise validate first (so no part is stored before a later one is refused),
        // dropping the refused events one by one when skipping.
        let single = start == 0 && end == events.len();
        loop {
            if single && !skipping {
                break;
            }
            match store.check(part.clone()) {
                Ok(_) => break,
                Err(tenure_engine::Error::Rejected { index, error }) => {
                    let n = part_lines[index];
                    if !skipping {
                        return Err(CliError::input(format!("{name}:{n}: {error}")));
                    }
                    let raw = part[index].to_json();
                    bad.push(Reject { line: n, error: error.to_string(), raw });
                    part.remove(index);
                    part_lines.remove(index);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let outcomes = match store.append(part) {
            Ok(outcomes) => outcomes,
            Err(tenure_engine::Error::Rejected { index, error }) => {
                return Err(CliError::input(format!("{name}:{}: {error}", part_lines[index])));
            }
            Err(e) => return Err(e.into()),
        };
        summary.count(&outcomes);
        start = end;
    }
    bar.finish_and_clear();
    summary.rejected = bad.len() as u64;
    if let Some(out) = rejects {
        bad.sort_by_key(|r| r.line);
        for r in bad {
            let event: serde_json::Value = serde_json::from_str(&r.raw).unwrap_or(serde_json::Value::String(r.raw));
            let line = serde_json::json!({"file": name, "line": r.line, "error": r.error, "event": event});
            writeln!(out, "{line}")?;
        }
    }
    Ok(summary)
}
