//! `tenure ingest`: JSONL files into the log, whole files or nothing, in bounded memory.
//!
//! Two passes over the input, each streaming it in parts of [`PART_EVENTS`] events:
//! the first parses and validates every part after the ones before it (a
//! `CheckSession` holds what the parts create: names and idempotency fingerprints), so a
//! bad line anywhere stops the ingest before anything is stored; the second parses again
//! and appends part by part. Standard input is copied to a temporary file during the
//! first pass. Memory: one part of events, one line of at most `MAX_EVENT_JSON_BYTES`,
//! and the session (about 16 bytes per event plus the names the file creates).

use crate::CliError;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::Path;
use tenure_engine::json::MAX_EVENT_JSON_BYTES;
use tenure_engine::{CheckSession, NewEvent, Outcome, Store};

/// Events per part: validated, then appended, as one batch.
pub const PART_EVENTS: usize = 1 << 16;
/// A line with no end within this many bytes is not JSONL: the ingest stops.
pub const MAX_SKIPPED_LINE_BYTES: usize = 64 << 20;
/// Conflicting re-deliveries printed one by one (the rest are counted).
const CONFLICTS_SHOWN: usize = 20;

/// What an ingest did.
#[derive(Default, Debug, Clone, Copy)]
pub struct Summary {
    pub appended: u64,
    pub duplicates: u64,
    /// Duplicates whose body differs from the event first stored under their key.
    pub conflicts: u64,
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

    fn positions(&self) -> String {
        match (self.first, self.last) {
            (Some(a), Some(b)) if a == b => format!(" (position {a})"),
            (Some(a), Some(b)) => format!(" (positions {a}..{b})"),
            _ => String::new(),
        }
    }

    /// The summary as `ingest --json` prints it.
    pub fn to_json(self, name: &str) -> serde_json::Value {
        serde_json::json!({
            "file": name,
            "appended": self.appended,
            "first": self.first,
            "last": self.last,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "rejected": self.rejected,
        })
    }

    pub fn describe(&self, name: &str) -> String {
        let plural = |n: u64, one: &str, many: &str| if n == 1 { one.to_string() } else { many.to_string() };
        let mut text = format!(
            "{name}: {} appended{}, {} {} skipped",
            self.appended,
            self.positions(),
            self.duplicates,
            plural(self.duplicates, "duplicate", "duplicates")
        );
        if self.conflicts > 0 {
            text.push_str(&format!(
                " ({} with a body that differs from the event first stored under the same source and id)",
                self.conflicts
            ));
        }
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

/// One line of the input, as [`Lines`] reads it.
enum Line<'a> {
    Text(&'a str),
    /// Longer than an event may be: its bytes were skipped, not kept.
    TooLong,
    NotUtf8(usize),
}

/// Reads lines holding at most [`MAX_EVENT_JSON_BYTES`] of any of them: the rest of an
/// overlong line is read past, not kept, up to [`MAX_SKIPPED_LINE_BYTES`].
struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    number: usize,
}

impl<R: BufRead> Lines<R> {
    fn new(reader: R) -> Self {
        Lines { reader, buf: Vec::with_capacity(4096), number: 0 }
    }

    /// The next line and its number, `None` at the end.
    fn next_line(&mut self, name: &str) -> Result<Option<(usize, Line<'_>)>, CliError> {
        self.buf.clear();
        let mut seen = 0usize;
        let mut any = false;
        loop {
            let chunk = self.reader.fill_buf().map_err(|e| CliError::input(format!("{name}: {e}")))?;
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (take, done) = match memchr(chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let keep = take - usize::from(done);
            if seen + keep <= MAX_EVENT_JSON_BYTES {
                self.buf.extend_from_slice(&chunk[..keep]);
            }
            seen += keep;
            self.reader.consume(take);
            if done {
                break;
            }
            if seen > MAX_SKIPPED_LINE_BYTES {
                return Err(CliError::input(format!(
                    "{name}:{}: no end of line within {MAX_SKIPPED_LINE_BYTES} bytes: not a JSONL file",
                    self.number + 1
                )));
            }
        }
        if !any {
            return Ok(None);
        }
        self.number += 1;
        if seen > MAX_EVENT_JSON_BYTES {
            return Ok(Some((self.number, Line::TooLong)));
        }
        let mut bytes = &self.buf[..];
        if self.number == 1 {
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
                return Err(CliError::input(format!(
                    "{name}:1: UTF-16 text (it starts with a UTF-16 byte order mark); Tenure reads UTF-8 JSONL: \
                     convert it first, e.g. `iconv -f UTF-16 -t UTF-8 {name}`"
                )));
            }
        }
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some((self.number, Line::Text(text)))),
            Err(e) => Ok(Some((self.number, Line::NotUtf8(e.valid_up_to())))),
        }
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// Where the input comes from in each pass.
enum Input {
    File(std::fs::File),
    /// Standard input, copied to this temporary file during the first pass.
    Spooled(std::fs::File),
}

/// Reads `r` through, copying what it reads into `copy` when there is one.
struct Tee<R, W> {
    inner: R,
    copy: Option<W>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(w) = &mut self.copy {
            w.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// Ingests one file (or standard input for `-`), from line `from_line` on.
pub fn ingest_file(
    store: &Store,
    path: &Path,
    from_line: usize,
    mut rejects: Option<&mut dyn Write>,
) -> Result<Summary, CliError> {
    let name = path.display().to_string();
    let skipping = rejects.is_some();
    let (first_pass, input): (Box<dyn Read>, Input) = if name == "-" {
        let spool = tempfile::tempfile().map_err(|e| CliError::failure(format!("a temporary file: {e}")))?;
        let copy = spool.try_clone().map_err(|e| CliError::failure(format!("a temporary file: {e}")))?;
        let tee = Tee { inner: std::io::stdin().lock(), copy: Some(std::io::BufWriter::new(copy)) };
        (Box::new(tee), Input::Spooled(spool))
    } else {
        let open = || std::fs::File::open(path).map_err(|e| CliError::input(format!("{name}: {e}")));
        let meta = std::fs::metadata(path).map_err(|e| CliError::input(format!("{name}: {e}")))?;
        if meta.is_dir() {
            return Err(CliError::input(format!("{name}: a directory, not a JSONL file")));
        }
        (Box::new(open()?), Input::File(open()?))
    };
    let size = if name == "-" { None } else { std::fs::metadata(path).ok().map(|m| m.len()) };
    let bar = progress(size.map(|s| s * 2));
    bar.set_message(format!("checking {name}"));

    // Pass 1: parse and validate every part after the ones before it. Nothing is stored.
    let session = CheckSession::new();
    let mut bad: Vec<Reject> = Vec::new();
    let mut skip_lines: BTreeSet<usize> = BTreeSet::new();
    let mut dup_lines: BTreeSet<usize> = BTreeSet::new();
    let mut part: Vec<NewEvent> = Vec::with_capacity(PART_EVENTS);
    let mut part_lines: Vec<usize> = Vec::with_capacity(PART_EVENTS);
    let check = |part: &mut Vec<NewEvent>,
                 part_lines: &mut Vec<usize>,
                 bad: &mut Vec<Reject>,
                 skip_lines: &mut BTreeSet<usize>,
                 dup_lines: &mut BTreeSet<usize>|
     -> Result<(), CliError> {
        // The part is shared with the writer, not copied. A rejected event (when skipping)
        // is set aside and the check goes on after it: the events before it passed, so
        // they are checked again alone and join the session. Each event is checked at
        // most twice: linear in the part, whatever the number of rejections.
        let events = std::sync::Arc::new(std::mem::take(part));
        let mut from = 0;
        let mut note_duplicates = |outcomes: &[Outcome], start: usize| {
            for (o, &line) in outcomes.iter().zip(&part_lines[start..]) {
                if matches!(o, Outcome::Duplicate(_)) {
                    dup_lines.insert(line);
                }
            }
        };
        while from < events.len() {
            match store.check_range_in(&session, &events, from..events.len()) {
                Ok(outcomes) => {
                    note_duplicates(&outcomes, from);
                    break;
                }
                Err(tenure_engine::Error::Rejected { index, error }) => {
                    let at = from + index;
                    let n = part_lines[at];
                    if !skipping {
                        return Err(CliError::input(format!("{name}:{n}: {error}")));
                    }
                    if at > from {
                        let outcomes = store.check_range_in(&session, &events, from..at)?;
                        note_duplicates(&outcomes, from);
                    }
                    bad.push(Reject { line: n, error: error.to_string(), raw: events[at].to_json() });
                    skip_lines.insert(n);
                    from = at + 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        part_lines.clear();
        Ok(())
    };
    {
        let mut lines = Lines::new(std::io::BufReader::with_capacity(1 << 20, first_pass));
        while let Some((n, line)) = lines.next_line(&name)? {
            if n < from_line {
                continue;
            }
            let parsed = match line {
                Line::Text(t) if t.trim().is_empty() => continue,
                Line::Text(t) => {
                    bar.inc(t.len() as u64 + 1);
                    NewEvent::from_json(t).map_err(|e| (e.to_string(), t.to_string()))
                }
                Line::TooLong => Err((format!("line longer than {MAX_EVENT_JSON_BYTES} bytes"), String::new())),
                Line::NotUtf8(at) => Err((format!("not UTF-8 (byte {} of the line)", at + 1), String::new())),
            };
            match parsed {
                Ok(e) => {
                    part.push(e);
                    part_lines.push(n);
                    if part.len() == PART_EVENTS {
                        check(&mut part, &mut part_lines, &mut bad, &mut skip_lines, &mut dup_lines)?;
                    }
                }
                Err((error, raw)) if skipping => {
                    bad.push(Reject { line: n, error, raw });
                    skip_lines.insert(n);
                }
                Err((error, _)) => return Err(CliError::input(format!("{name}:{n}: {error}"))),
            }
        }
        if !part.is_empty() {
            check(&mut part, &mut part_lines, &mut bad, &mut skip_lines, &mut dup_lines)?;
        }
    }

    // Pass 2: the same lines again, appended part by part.
    bar.set_message(format!("storing {name}"));
    let second: Box<dyn Read> = match input {
        Input::File(f) => Box::new(f),
        Input::Spooled(mut f) => {
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(0)).map_err(|e| CliError::failure(format!("a temporary file: {e}")))?;
            Box::new(f)
        }
    };
    let mut summary = Summary::default();
    let mut conflicts: Vec<String> = Vec::new();
    let mut lines = Lines::new(std::io::BufReader::with_capacity(1 << 20, second));
    let mut last_line_stored = from_line.saturating_sub(1);
    let mut append = |part: &mut Vec<NewEvent>,
                      part_lines: &mut Vec<usize>,
                      summary: &mut Summary,
                      conflicts: &mut Vec<String>|
     -> Result<(), CliError> {
        // Events first delivered before: kept to compare with what was stored.
        let redelivered: Vec<(usize, usize, NewEvent)> = part_lines
            .iter()
            .enumerate()
            .filter(|(_, n)| dup_lines.contains(n))
            .map(|(i, &n)| (i, n, part[i].clone()))
            .collect();
        let outcomes = match store.append(std::mem::take(part)) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let stored = match summary.appended {
                    0 => "nothing of it was stored".to_string(),
                    _ => format!(
                        "lines up to {last_line_stored} were stored{}; resume with `tenure ingest --from-line {} {name}`",
                        summary.positions(),
                        last_line_stored + 1
                    ),
                };
                let (at, e) = match e {
                    tenure_engine::Error::Rejected { index, error } => (
                        format!("{name}:{}: ", part_lines.get(index).unwrap_or(&0)),
                        CliError::input(error.to_string()),
                    ),
                    other => (format!("{name}: "), CliError::from(other)),
                };
                return Err(CliError {
                    message: format!(
                        "{at}{} (refused at the append after the check passed: the file changed, or another writer \
                         appended meanwhile); {stored}",
                        e.message
                    ),
                    code: e.code,
                });
            }
        };
        summary.count(&outcomes);
        for (i, n, event) in redelivered {
            let Some(Outcome::Duplicate(p)) = outcomes.get(i) else { continue };
            if !event.same_content(&store.read(*p)?) {
                summary.conflicts += 1;
                if conflicts.len() < CONFLICTS_SHOWN {
                    conflicts.push(format!(
                        "{name}:{n}: source '{}' id '{}' was first stored at position {} with a different body; \
                         this delivery was skipped",
                        event.source.as_deref().unwrap_or(""),
                        event.source_event_id.as_deref().unwrap_or(""),
                        p.get()
                    ));
                }
            }
        }
        last_line_stored = *part_lines.last().unwrap_or(&last_line_stored);
        part_lines.clear();
        Ok(())
    };
    while let Some((n, line)) = lines.next_line(&name)? {
        if n < from_line || skip_lines.contains(&n) {
            continue;
        }
        let Line::Text(t) = line else {
            return Err(CliError::input(format!("{name}:{n}: the file changed between the check and the append")));
        };
        bar.inc(t.len() as u64 + 1);
        if t.trim().is_empty() {
            continue;
        }
        let event =
            NewEvent::from_json(t).map_err(|e| CliError::input(format!("{name}:{n}: {e} (the file changed?)")))?;
        part.push(event);
        part_lines.push(n);
        if part.len() == PART_EVENTS {
            append(&mut part, &mut part_lines, &mut summary, &mut conflicts)?;
        }
    }
    if !part.is_empty() {
        append(&mut part, &mut part_lines, &mut summary, &mut conflicts)?;
    }
    bar.finish_and_clear();
    for c in &conflicts {
        eprintln!("tenure: warning: {}", crate::output::clean(c));
    }
    if summary.conflicts as usize > conflicts.len() {
        eprintln!("tenure: warning: {} more conflicting re-deliveries", summary.conflicts as usize - conflicts.len());
    }
    summary.rejected = bad.len() as u64;
    if let Some(out) = rejects.as_mut() {
        bad.sort_by_key(|r| r.line);
        for r in bad {
            let event: serde_json::Value = serde_json::from_str(&r.raw).unwrap_or(serde_json::Value::String(r.raw));
            let line = serde_json::json!({"file": name, "line": r.line, "error": r.error, "event": event});
            writeln!(out, "{line}")?;
        }
    }
    Ok(summary)
}
