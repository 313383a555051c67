//! `tenure ingest`: JSONL files into the log, whole files or nothing, in bounded memory.
//!
//! Two passes over the input, each streaming it in parts of [`PART_EVENTS`] events:
//! the first parses and validates every part after the ones before it (a
//! `CheckSession` holds what the parts create: names and idempotency fingerprints), so a
//! bad line anywhere stops the ingest before anything is stored; the second parses again
//! and appends part by part. In both passes a reader thread reads the next part and
//! parses it on every core while the part before is checked or appended (parsing JSON
//! is most of an ingest's work). Standard input is copied to a temporary file during
//! the first pass. Memory: three parts of events of about `PART_BYTES` of text at most
//! (the one being checked or appended, one waiting, one being read), and the session (about 16 bytes per event plus the
//! names the file creates).

use crate::CliError;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::Path;
use tenure_engine::json::MAX_EVENT_JSON_BYTES;
use tenure_engine::{CheckSession, NewEvent, Outcome, Store};

/// Events per part: validated, then appended, as one batch.
pub const PART_EVENTS: usize = 1 << 16;
/// A part also ends once its lines hold this many bytes, so that a file of long lines
/// (up to `MAX_EVENT_JSON_BYTES` each) keeps parts as small in memory as ordinary ones.
pub const PART_BYTES: usize = 32 << 20;
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
            let (take, done) = match memchr::memchr(b'\n', chunk) {
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

/// How a line failed to become an event.
enum Bad {
    /// Not JSON, or not an event: the reason and the line's text.
    Parse(String, String),
    /// Longer than an event may be, or not UTF-8: the reason.
    Unreadable(String),
}

/// A part of the input: its lines' numbers, each parsed into an event or why not.
type Part = Vec<(usize, Result<NewEvent, Bad>)>;

/// Reads the input's lines from `from_line` on, but those in `skip` and the blank ones,
/// a part of [`PART_EVENTS`] lines (or about [`PART_BYTES`]) at a time, parses each part
/// on every core and sends it on.
/// Runs beside the check or the append of the part before, so that parsing (most of an
/// ingest's work) overlaps the writer's. Stops early when the receiver is gone.
fn read_parts(
    input: Box<dyn Read + Send>,
    name: &str,
    from_line: usize,
    skip: &BTreeSet<usize>,
    bar: &ProgressBar,
    parts: std::sync::mpsc::SyncSender<Result<Part, CliError>>,
) {
    let mut lines = Lines::new(std::io::BufReader::with_capacity(1 << 20, input));
    // The part's text, one string, and each line's number and span in it (or why it
    // has no text): parsed after the whole part is read.
    let mut text = String::new();
    let mut spans: Vec<(usize, Result<std::ops::Range<usize>, String>)> = Vec::with_capacity(PART_EVENTS);
    let parse = |text: &str, spans: &mut Vec<(usize, Result<std::ops::Range<usize>, String>)>| -> Part {
        let parsed = tenure_projections::reports::par_map(
            spans,
            || (),
            |_, (n, span)| {
                let event = match span {
                    Ok(range) => {
                        let line = &text[range.clone()];
                        NewEvent::from_json(line).map_err(|e| Bad::Parse(e.to_string(), line.to_string()))
                    }
                    Err(why) => Err(Bad::Unreadable(why.clone())),
                };
                (*n, event)
            },
        );
        spans.clear();
        parsed
    };
    loop {
        let next = match lines.next_line(name) {
            Ok(next) => next,
            Err(e) => {
                let _ = parts.send(Err(e));
                return;
            }
        };
        let Some((n, line)) = next else { break };
        if n < from_line || skip.contains(&n) {
            continue;
        }
        match line {
            Line::Text(t) if t.trim().is_empty() => continue,
            Line::Text(t) => {
                bar.inc(t.len() as u64 + 1);
                let at = text.len();
                text.push_str(t);
                spans.push((n, Ok(at..text.len())));
            }
            Line::TooLong => spans.push((n, Err(format!("line longer than {MAX_EVENT_JSON_BYTES} bytes")))),
            Line::NotUtf8(at) => spans.push((n, Err(format!("not UTF-8 (byte {} of the line)", at + 1)))),
        }
        if spans.len() == PART_EVENTS || text.len() >= PART_BYTES {
            let part = parse(&text, &mut spans);
            text.clear();
            if parts.send(Ok(part)).is_err() {
                return;
            }
        }
    }
    if !spans.is_empty() {
        let part = parse(&text, &mut spans);
        let _ = parts.send(Ok(part));
    }
}

/// A part's events and their line numbers; each line that is no event goes to `bad`,
/// which stops the split with its error or lets it go on.
fn split(
    parsed: Part,
    mut bad: impl FnMut(usize, Bad) -> Result<(), CliError>,
) -> Result<(Vec<NewEvent>, Vec<usize>), CliError> {
    let mut events = Vec::with_capacity(parsed.len());
    let mut lines = Vec::with_capacity(parsed.len());
    for (n, event) in parsed {
        match event {
            Ok(e) => {
                events.push(e);
                lines.push(n);
            }
            Err(why) => bad(n, why)?,
        }
    }
    Ok((events, lines))
}

/// Runs `consume` on each part of the input as [`read_parts`] reads and parses it on
/// other threads.
fn each_part(
    input: Box<dyn Read + Send>,
    name: &str,
    from_line: usize,
    skip: &BTreeSet<usize>,
    bar: &ProgressBar,
    mut consume: impl FnMut(Part) -> Result<(), CliError>,
) -> Result<(), CliError> {
    std::thread::scope(|scope| {
        // One part waits while the one before is checked or appended: memory holds three.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let reader = scope.spawn(move || read_parts(input, name, from_line, skip, bar, tx));
        let mut outcome = Ok(());
        for part in rx.iter() {
            outcome = part.and_then(&mut consume);
            if outcome.is_err() {
                break;
            }
        }
        // Dropping the receiver (on an error) stops the reader at its next part.
        drop(rx);
        if let Err(panic) = reader.join() {
            std::panic::resume_unwind(panic);
        }
        outcome
    })
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
    let (first_pass, input): (Box<dyn Read + Send>, Input) = if name == "-" {
        let spool = tempfile::tempfile().map_err(|e| CliError::failure(format!("a temporary file: {e}")))?;
        let copy = spool.try_clone().map_err(|e| CliError::failure(format!("a temporary file: {e}")))?;
        let tee = Tee { inner: std::io::stdin(), copy: Some(std::io::BufWriter::new(copy)) };
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
    let check = |parsed: Part,
                 bad: &mut Vec<Reject>,
                 skip_lines: &mut BTreeSet<usize>,
                 dup_lines: &mut BTreeSet<usize>|
     -> Result<(), CliError> {
        let (part, part_lines) = split(parsed, |n, why| match why {
            Bad::Parse(error, raw) if skipping => {
                bad.push(Reject { line: n, error, raw });
                skip_lines.insert(n);
                Ok(())
            }
            Bad::Unreadable(error) if skipping => {
                bad.push(Reject { line: n, error, raw: String::new() });
                skip_lines.insert(n);
                Ok(())
            }
            Bad::Parse(error, _) | Bad::Unreadable(error) => Err(CliError::input(format!("{name}:{n}: {error}"))),
        })?;
        // The part is shared with the writer, not copied. A rejected event (when skipping)
        // is set aside and the check goes on after it: the events before it passed, so
        // they are checked again alone and join the session. Each event is checked at
        // most twice: linear in the part, whatever the number of rejections.
        let events = std::sync::Arc::new(part);
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
        Ok(())
    };
    let none = BTreeSet::new();
    each_part(first_pass, &name, from_line, &none, &bar, |part| {
        check(part, &mut bad, &mut skip_lines, &mut dup_lines)
    })?;

    // What pass 1 learned is in `skip_lines` and `dup_lines`; the session's fingerprints
    // and names (tens of bytes per event) go before the writer builds its own.
    drop(session);

    // Pass 2: the same lines again, appended part by part.
    bar.set_message(format!("storing {name}"));
    let second: Box<dyn Read + Send> = match input {
        Input::File(f) => Box::new(f),
        Input::Spooled(mut f) => {
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(0)).map_err(|e| CliError::failure(format!("a temporary file: {e}")))?;
            Box::new(f)
        }
    };
    let mut summary = Summary::default();
    let mut conflicts: Vec<String> = Vec::new();
    let mut last_line_stored = from_line.saturating_sub(1);
    let mut append = |parsed: Part, summary: &mut Summary, conflicts: &mut Vec<String>| -> Result<(), CliError> {
        let (part, part_lines) = split(parsed, |n, why| {
            Err(CliError::input(match why {
                Bad::Parse(e, _) => format!("{name}:{n}: {e} (the file changed?)"),
                Bad::Unreadable(_) => format!("{name}:{n}: the file changed between the check and the append"),
            }))
        })?;
        // Events first delivered before: kept to compare with what was stored.
        let redelivered: Vec<(usize, usize, NewEvent)> = part_lines
            .iter()
            .enumerate()
            .filter(|(_, n)| dup_lines.contains(n))
            .map(|(i, &n)| (i, n, part[i].clone()))
            .collect();
        let outcomes = match store.append(part) {
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
        Ok(())
    };
    each_part(second, &name, from_line, &skip_lines, &bar, |part| append(part, &mut summary, &mut conflicts))?;
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
