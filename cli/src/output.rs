//! Human output: aligned tables, dates with a relative hint, and CSV.

use std::io::Write;
use tenure_engine::Timestamp;
use tenure_projections::Via;

/// `2024-02-15 09:00:00Z (9 months ago)`; the time is left out at midnight.
pub fn date(t: Timestamp) -> String {
    let mut out = String::new();
    push_date(&mut out, t);
    out
}

/// [`date`], appended to `out`.
pub fn push_date(out: &mut String, t: Timestamp) {
    // Written digit by digit from the day count (a report writes millions of dates; chrono
    // and a format string cost more than the rest of a row), as `%Y-%m-%d[ %H:%M:%SZ]`
    // writes them; years outside 0..=9999 go through chrono.
    let tenure_engine::time::Civil { year: y, month: m, day: d, second_of_day: of_day, .. } = t.civil();
    if !(0..=9999).contains(&y) {
        use std::fmt::Write;
        let Some(dt) = t.to_datetime() else { return out.push_str(&t.to_rfc3339()) };
        let _ = match of_day {
            0 => write!(out, "{}", dt.format("%Y-%m-%d")),
            _ => write!(out, "{}", dt.format("%Y-%m-%d %H:%M:%SZ")),
        };
    } else {
        let two = |out: &mut String, n: i64| {
            out.push(char::from(b'0' + (n / 10) as u8));
            out.push(char::from(b'0' + (n % 10) as u8));
        };
        two(out, y / 100);
        two(out, y % 100);
        out.push('-');
        two(out, m);
        out.push('-');
        two(out, d);
        if of_day != 0 {
            out.push(' ');
            two(out, of_day / 3_600);
            out.push(':');
            two(out, of_day % 3_600 / 60);
            out.push(':');
            two(out, of_day % 60);
            out.push('Z');
        }
    }
    out.push_str(" (");
    push_relative(out, t, now());
    out.push(')');
}

/// The time this process first asked: every relative date of one command's output is
/// relative to the same instant (and a report's millions of dates read the clock once).
fn now() -> Timestamp {
    static NOW: std::sync::OnceLock<Timestamp> = std::sync::OnceLock::new();
    *NOW.get_or_init(Timestamp::now)
}

/// `3 days ago`, `in 2 months`, `today`.
#[cfg(test)]
fn relative(t: Timestamp, now: Timestamp) -> String {
    let mut out = String::new();
    push_relative(&mut out, t, now);
    out
}

/// [`relative`], appended to `out`.
fn push_relative(out: &mut String, t: Timestamp, now: Timestamp) {
    let days = (now.as_micros() - t.as_micros()) / 86_400_000_000;
    let (n, future) = (days.unsigned_abs(), days < 0);
    if n == 0 {
        return out.push_str("today");
    }
    if future {
        out.push_str("in ");
    }
    let (count, unit) = match n {
        1 => (1, " day"),
        2..=60 => (n, " days"),
        61..=729 => (n / 30, " months"),
        _ => (n / 365, " years"),
    };
    push_int(out, count);
    out.push_str(unit);
    if !future {
        out.push_str(" ago");
    }
}

pub fn until(t: Option<Timestamp>) -> String {
    t.map(date).unwrap_or_else(|| "-".to_string())
}

pub fn position(p: Option<u64>) -> String {
    p.map(|p| format!("@{p}")).unwrap_or_else(|| "-".to_string())
}

pub fn vias(v: &[Via]) -> String {
    let mut out = String::new();
    push_vias(&mut out, v, false);
    out
}

/// The compact form used in CSV: `direct:5`, `group:fin:4:3` (membership, grant).
pub fn vias_csv(v: &[Via]) -> String {
    let mut out = String::new();
    push_vias(&mut out, v, true);
    out
}

/// [`vias`] (or [`vias_csv`] when `csv`), appended to `out`.
pub fn push_vias(out: &mut String, v: &[Via], csv: bool) {
    // Pushed piece by piece rather than formatted: a report writes millions of these.
    for (i, v) in v.iter().enumerate() {
        if i > 0 {
            out.push_str(if csv { ";" } else { "; " });
        }
        match (csv, v) {
            (false, Via::Direct { grant }) => {
                out.push_str("direct grant @");
                push_int(out, *grant);
            }
            (false, Via::Group { group, membership, grant }) => {
                out.push_str("group ");
                out.push_str(group);
                out.push_str(" (member @");
                push_int(out, *membership);
                out.push_str(", grant @");
                push_int(out, *grant);
                out.push(')');
            }
            (true, Via::Direct { grant }) => {
                out.push_str("direct:");
                push_int(out, *grant);
            }
            (true, Via::Group { group, membership, grant }) => {
                out.push_str("group:");
                out.push_str(group);
                out.push(':');
                push_int(out, *membership);
                out.push(':');
                push_int(out, *grant);
            }
        }
    }
}

/// `n` in decimal, appended to `out` (without the formatting machinery).
pub fn push_int(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Text from the log made safe for a terminal: control characters (a newline that would
/// forge a table row, an ANSI escape that would recolour or rewrite the screen) are
/// shown escaped, as `\n`, `\u{1b}`. JSON and CSV output keep the text as recorded.
pub fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    // A control character is a byte below 0x20, 0x7f, or U+0080-U+009F (0xc2 then a
    // byte): a scan of bytes (which the compiler vectorises) rules most cells out.
    let suspect = s.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2);
    if !suspect || !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A table printed with aligned columns; every cell passes through [`clean`].
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Self {
        Table { headers, rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    pub fn headers(&self) -> Vec<String> {
        self.headers.iter().map(|h| h.to_string()).collect()
    }

    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut stream = TableStream::new(self.headers.clone());
        stream.rows(out, &self.rows)?;
        stream.finish(out)
    }

    /// RFC 4180 CSV, written by the `csv` crate (fields holding `,`, `"`, `\n` or `\r`
    /// quoted).
    pub fn print_csv(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(&self.headers)?;
        for row in &self.rows {
            w.write_record(row)?;
        }
        w.flush()
    }
}

/// A [`Table`] printed while its rows are made, batch by batch, in memory bounded by a
/// batch: the columns are as wide as the headers and the first batch; a later cell wider
/// than its column widens it from there on (rows already printed stay as they were).
pub struct TableStream {
    headers: Vec<&'static str>,
    widths: Option<Vec<usize>>,
}

/// What a table's cells are padded with, a slice at a time.
const SPACES: &str = "                                                                ";

impl TableStream {
    pub fn new(headers: Vec<&'static str>) -> Self {
        TableStream { headers, widths: None }
    }

    /// Prints `rows` (the headers first, with the first batch); every cell passes through
    /// [`clean`].
    pub fn rows(&mut self, out: &mut (impl Write + ?Sized), rows: &[Vec<String>]) -> std::io::Result<()> {
        // Each cell cleaned and its width counted once.
        let rows: Vec<Vec<(std::borrow::Cow<'_, str>, usize)>> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|c| {
                        let c = clean(c);
                        let width = if c.is_ascii() { c.len() } else { c.chars().count() };
                        (c, width)
                    })
                    .collect()
            })
            .collect();
        let first = self.widths.is_none();
        let widths = self.widths.get_or_insert_with(|| self.headers.iter().map(|h| h.chars().count()).collect());
        for row in &rows {
            for (w, (_, width)) in widths.iter_mut().zip(row) {
                *w = (*w).max(*width);
            }
        }
        let mut line = String::new();
        let mut write_line = |cells: &mut dyn Iterator<Item = (&str, usize)>| -> std::io::Result<()> {
            line.clear();
            let mut cells = cells.peekable();
            let mut i = 0;
            while let Some((c, width)) = cells.next() {
                line.push_str(c);
                if cells.peek().is_some() {
                    let mut pad = widths[i].saturating_sub(width) + 2;
                    while pad > 0 {
                        let n = pad.min(SPACES.len());
                        line.push_str(&SPACES[..n]);
                        pad -= n;
                    }
                }
                i += 1;
            }
            line.push('\n');
            out.write_all(line.as_bytes())
        };
        if first {
            write_line(&mut self.headers.iter().map(|h| (*h, h.chars().count())))?;
        }
        for row in &rows {
            write_line(&mut row.iter().map(|(c, width)| (c.as_ref(), *width)))?;
        }
        Ok(())
    }

    /// Prints the headers if no row came.
    pub fn finish(&mut self, out: &mut (impl Write + ?Sized)) -> std::io::Result<()> {
        if self.widths.is_none() {
            self.rows(out, &[])?;
        }
        Ok(())
    }
}

/// A JSON object written while it is made, laid out as `serde_json::to_writer_pretty` lays
/// it out: some fields, then a large array whose items come one at a time (then perhaps
/// more fields and another array), then the fields known only at the end. Memory holds
/// one item, whatever the length of the arrays.
pub struct JsonStream<'a> {
    out: &'a mut dyn Write,
    head: Option<Vec<(&'static str, serde_json::Value)>>,
    array: &'static str,
    items: usize,
}

/// `value` pretty-printed, its inner lines indented by `depth` levels: the text of
/// `serde_json::to_string_pretty` with two spaces per level after each newline, written
/// in one pass (at 10M events `report leavers --json` writes 1.5 GB of it).
/// Written into a buffer kept by the thread, then copied out at its size.
fn pretty_at(value: &impl serde::Serialize, depth: usize) -> Result<Vec<u8>, serde_json::Error> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.clear();
        let mut formatter = serde_json::Serializer::with_formatter(&mut *scratch, Indented { depth, has_value: false });
        value.serialize(&mut formatter)?;
        Ok(scratch.to_vec())
    })
}

/// serde_json's `PrettyFormatter` (two spaces) starting at `depth` levels in.
struct Indented {
    depth: usize,
    has_value: bool,
}

impl Indented {
    fn newline(&self, w: &mut (impl Write + ?Sized), text: &[u8]) -> std::io::Result<()> {
        const SPACES: &[u8] = &[b' '; 64];
        w.write_all(text)?;
        let mut left = 2 * self.depth;
        while left > 0 {
            let n = left.min(SPACES.len());
            w.write_all(&SPACES[..n])?;
            left -= n;
        }
        Ok(())
    }

    fn open(&mut self, w: &mut (impl Write + ?Sized), bracket: &[u8]) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close(&mut self, w: &mut (impl Write + ?Sized), bracket: &[u8]) -> std::io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.newline(w, b"\n")?;
        }
        w.write_all(bracket)
    }
}

impl serde_json::ser::Formatter for Indented {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.newline(w, if first { b"\n" } else { b",\n" })
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.newline(w, if first { b"\n" } else { b",\n" })
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

impl<'a> JsonStream<'a> {
    pub fn new(out: &'a mut dyn Write, head: Vec<(&'static str, serde_json::Value)>, array: &'static str) -> Self {
        JsonStream { out, head: Some(head), array, items: 0 }
    }

    /// Writes what comes before the first array's first item (once).
    fn open(&mut self) -> std::io::Result<()> {
        let Some(head) = self.head.take() else { return Ok(()) };
        writeln!(self.out, "{{")?;
        for (key, value) in head {
            write!(self.out, "  {}: ", serde_json::Value::from(key))?;
            self.out.write_all(&pretty_at(&value, 1)?)?;
            writeln!(self.out, ",")?;
        }
        write!(self.out, "  {}: [", serde_json::Value::from(self.array))
    }

    /// An item as [`Self::item_text`] wants it (made on any thread).
    pub fn render(item: &impl serde::Serialize) -> Result<Vec<u8>, serde_json::Error> {
        pretty_at(item, 2)
    }

    /// An item already rendered by [`Self::render`].
    pub fn item_text(&mut self, text: &[u8]) -> std::io::Result<()> {
        self.open()?;
        self.items += 1;
        self.out.write_all(if self.items == 1 { b"\n    " } else { b",\n    " })?;
        self.out.write_all(text)
    }

    fn close_array(&mut self) -> std::io::Result<()> {
        self.open()?;
        write!(self.out, "{}]", if self.items == 0 { "" } else { "\n  " })
    }

    fn fields(&mut self, fields: Vec<(&'static str, serde_json::Value)>) -> std::io::Result<()> {
        for (key, value) in fields {
            write!(self.out, ",\n  {}: ", serde_json::Value::from(key))?;
            self.out.write_all(&pretty_at(&value, 1)?)?;
        }
        Ok(())
    }

    /// Ends the array, writes `fields`, and starts the next array, `array`.
    pub fn then(
        mut self,
        fields: Vec<(&'static str, serde_json::Value)>,
        array: &'static str,
    ) -> std::io::Result<Self> {
        self.close_array()?;
        self.fields(fields)?;
        write!(self.out, ",\n  {}: [", serde_json::Value::from(array))?;
        Ok(JsonStream { out: self.out, head: None, array, items: 0 })
    }

    pub fn finish(mut self, tail: Vec<(&'static str, serde_json::Value)>) -> std::io::Result<()> {
        self.close_array()?;
        self.fields(tail)?;
        writeln!(self.out, "\n}}")
    }
}

/// How many rows go to the writer at once.
pub const RENDER_BATCH: usize = 4096;

/// Where a streamed answer's rows go: a JSON object (the audit API's shape, its fields
/// known only at the end after the rows), CSV, or the table. Rows come [`Rendered`] (by
/// the workers that made them, on every core: at 10M events an answer can be hundreds of
/// megabytes); the sink only writes, so memory holds a batch whatever the answer's size.
pub enum Sink<'a> {
    Json(JsonStream<'a>),
    Csv(Box<csv::Writer<&'a mut dyn Write>>),
    Table { out: &'a mut dyn Write, table: TableStream },
}

/// A row as its [`Sink`] writes it, and as an `--html` page shows it (when asked).
pub struct Rendered {
    out: Result<Out, serde_json::Error>,
    pub page: Option<Vec<String>>,
}

enum Out {
    Json(Vec<u8>),
    Cells(Vec<String>),
}

impl Rendered {
    /// `row` as `format` writes it: its JSON, or `cells(csv)`.
    pub fn of(row: &impl serde::Serialize, format: crate::Format, cells: impl FnOnce(bool) -> Vec<String>) -> Rendered {
        let out = if format.json { JsonStream::render(row).map(Out::Json) } else { Ok(Out::Cells(cells(format.csv))) };
        Rendered { out, page: None }
    }

    /// The row with its first cell set to `first` (JSON rows are left as they are).
    pub fn with_change(mut self, first: &str) -> Rendered {
        if let Ok(Out::Cells(cells)) = &mut self.out {
            if let Some(c) = cells.first_mut() {
                *c = first.to_string();
            }
        }
        self
    }

    pub fn with_page(self, page: Option<Vec<String>>) -> Rendered {
        Rendered { page, ..self }
    }

    /// `rows` rendered on every core, in order.
    pub fn all<R: Sync>(rows: &[R], render: impl Fn(&R) -> Rendered + Sync) -> Vec<Rendered> {
        let parts: Vec<&[R]> = rows.chunks(256).collect();
        tenure_projections::reports::par_map(&parts, || (), |_, part| part.iter().map(&render).collect::<Vec<_>>())
            .into_iter()
            .flatten()
            .collect()
    }

    /// Writes the row to `spill` (a length-prefixed record) to be read back by
    /// [`Rendered::read`].
    pub fn spill(self, spill: &mut impl Write) -> Result<(), crate::CliError> {
        let put = |spill: &mut dyn Write, bytes: &[u8]| -> std::io::Result<()> {
            spill.write_all(&(bytes.len() as u64).to_le_bytes())?;
            spill.write_all(bytes)
        };
        match self.out? {
            Out::Json(text) => {
                spill.write_all(&[0])?;
                put(spill, &text)?;
            }
            Out::Cells(cells) => {
                spill.write_all(&[1])?;
                spill.write_all(&(cells.len() as u64).to_le_bytes())?;
                for c in &cells {
                    put(spill, c.as_bytes())?;
                }
            }
        }
        Ok(())
    }

    /// The next row [`Rendered::spill`] wrote to `spill`, none at its end.
    pub fn read(spill: &mut impl std::io::Read) -> Result<Option<Rendered>, crate::CliError> {
        let mut tag = [0u8];
        if spill.read(&mut tag)? == 0 {
            return Ok(None);
        }
        let word = |spill: &mut dyn std::io::Read| -> std::io::Result<u64> {
            let mut b = [0u8; 8];
            spill.read_exact(&mut b)?;
            Ok(u64::from_le_bytes(b))
        };
        let bytes = |spill: &mut dyn std::io::Read| -> std::io::Result<Vec<u8>> {
            let mut b = vec![0u8; word(spill)? as usize];
            spill.read_exact(&mut b)?;
            Ok(b)
        };
        let text = |spill: &mut dyn std::io::Read| -> Result<String, crate::CliError> {
            String::from_utf8(bytes(spill)?).map_err(|e| crate::CliError::failure(format!("a spilled row: {e}")))
        };
        let out = match tag[0] {
            0 => Out::Json(bytes(spill)?),
            _ => {
                let n = word(spill)? as usize;
                Out::Cells((0..n).map(|_| text(spill)).collect::<Result<_, _>>()?)
            }
        };
        Ok(Some(Rendered { out: Ok(out), page: None }))
    }
}

impl<'a> Sink<'a> {
    /// A sink writing to `out` as `format` says: a JSON object opening with `head` and the
    /// array `array`, CSV or a table of `headers`.
    pub fn new(
        out: &'a mut dyn Write,
        format: crate::Format,
        head: Vec<(&'static str, serde_json::Value)>,
        array: &'static str,
        headers: Vec<&'static str>,
    ) -> Result<Sink<'a>, crate::CliError> {
        Ok(if format.csv {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(&headers)?;
            Sink::Csv(Box::new(w))
        } else if format.json {
            Sink::Json(JsonStream::new(out, head, array))
        } else {
            Sink::Table { out, table: TableStream::new(headers) }
        })
    }

    pub fn rows(&mut self, rows: Vec<Rendered>) -> Result<(), crate::CliError> {
        let mut cells = Vec::new();
        for row in rows {
            match (&mut *self, row.out?) {
                (Sink::Json(json), Out::Json(text)) => json.item_text(&text)?,
                (Sink::Csv(w), Out::Cells(row)) => w.write_record(&row)?,
                (Sink::Table { .. }, Out::Cells(row)) => cells.push(row),
                _ => return Err(crate::CliError::failure("a row rendered for another format")),
            }
        }
        if let Sink::Table { out, table } = self {
            table.rows(&mut **out, &cells)?;
        }
        Ok(())
    }

    /// Ends the JSON object's array with `fields` and opens the array `array` (the table
    /// and CSV go on with the same columns).
    pub fn then(self, fields: Vec<(&'static str, serde_json::Value)>, array: &'static str) -> std::io::Result<Self> {
        match self {
            Sink::Json(json) => Ok(Sink::Json(json.then(fields, array)?)),
            other => Ok(other),
        }
    }

    /// Ends the answer (the JSON object with `tail`); a table's output is handed back for
    /// what follows it.
    pub fn finish(
        self,
        tail: Vec<(&'static str, serde_json::Value)>,
    ) -> Result<Option<&'a mut dyn Write>, crate::CliError> {
        match self {
            Sink::Json(json) => json.finish(tail).map(|()| None).map_err(Into::into),
            Sink::Csv(mut w) => w.flush().map(|()| None).map_err(Into::into),
            Sink::Table { out, mut table } => {
                table.finish(&mut *out)?;
                Ok(Some(out))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        for (text, shown) in [
            ("a\u{1b}[31mb", "a\\u{1b}[31mb"),
            ("x\ny", "x\\ny"),
            ("del\u{7f}", "del\\u{7f}"),
            ("nel\u{85}", "nel\\u{85}"),
            ("csi\u{9b}", "csi\\u{9b}"),
        ] {
            assert_eq!(clean(text), shown, "{text:?}");
        }
        // Characters that share a first byte with the C1 controls, and others, pass as they are.
        for text in ["§ 3 °C ± ¼", "café", "ü", "plain", ""] {
            assert!(matches!(clean(text), std::borrow::Cow::Borrowed(t) if t == text), "{text:?}");
        }
    }

    #[test]
    fn relative_dates() {
        let now = Timestamp::parse_lenient("2025-01-01").unwrap();
        let t = |s| Timestamp::parse_lenient(s).unwrap();
        assert_eq!(relative(t("2025-01-01"), now), "today");
        assert_eq!(relative(t("2024-12-29"), now), "3 days ago");
        assert_eq!(relative(t("2025-03-15"), now), "in 2 months");
        assert_eq!(relative(t("2022-01-01"), now), "3 years ago");
    }

    #[test]
    fn dates_read_as_their_format_strings_write_them() {
        let day = 86_400_000_000i64;
        for micros in [0, 1, day - 1, day, 1_700_000_000_123_456, -62_135_596_800_000_000, -70_000_000_000_000_000]
            .into_iter()
            .chain((0..500).map(|i| i * 7_777_777_777_777 - 2_000_000_000_000_000))
            // Every day around two leap days and a century's end, at varying times.
            .chain((0..3_000).map(|i| 946_000_000_000_000 + i * (day + 3_600_000_001)))
            .chain((0..1_500).map(|i| -2_209_000_000_000_000 + i * (day - 1)))
        {
            let t = Timestamp::from_micros(micros);
            let dt = t.to_datetime().unwrap();
            let text = if dt.format("%H:%M:%S").to_string() == "00:00:00" {
                dt.format("%Y-%m-%d").to_string()
            } else {
                dt.format("%Y-%m-%d %H:%M:%SZ").to_string()
            };
            assert_eq!(date(t), format!("{text} ({})", relative(t, Timestamp::now())), "{micros}");
        }
    }

    #[test]
    fn a_streamed_table_is_aligned_by_its_first_batch_and_widens_after() {
        let cells = |r: &[&str]| r.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let mut out = Vec::new();
        let mut t = TableStream::new(vec!["NAME", "N", "NOTE"]);
        t.rows(&mut out, &[cells(&["ann", "1", "a"]), cells(&["bo", "22", "b\nc"])]).unwrap();
        t.rows(&mut out, &[cells(&["cassandra", "3", "d"]), cells(&["di", "4", "e"])]).unwrap();
        t.finish(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let want = "NAME  N   NOTE\nann   1   a\nbo    22  b\\nc\ncassandra  3   d\ndi         4   e\n";
        assert_eq!(text, want);
        // One batch prints as the whole table does; no row, the headers.
        let mut whole = Table::new(vec!["NAME", "N", "NOTE"]);
        whole.row(cells(&["ann", "1", "a"]));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        whole.print(&mut a).unwrap();
        let mut t = TableStream::new(vec!["NAME", "N", "NOTE"]);
        t.rows(&mut b, &[cells(&["ann", "1", "a"])]).unwrap();
        assert_eq!(a, b);
        let mut empty = Vec::new();
        TableStream::new(vec!["A", "B"]).finish(&mut empty).unwrap();
        assert_eq!(empty, b"A  B\n");
    }

    #[test]
    fn a_streamed_object_reads_as_the_whole_one() {
        let item =
            serde_json::json!({"a": [1, {"b": "x\ny"}], "c": null, "e": [], "o": {}, "n": [[], [{}], {"d": []}]});
        for n in [0, 1, 3] {
            let mut out = Vec::new();
            let mut s = JsonStream::new(&mut out, vec![("as_of", 7.into())], "rows");
            for _ in 0..n {
                s.item_text(&JsonStream::render(&item).unwrap()).unwrap();
            }
            let mut s = s.then(vec![("s1", 1.into())], "s2").unwrap();
            for _ in 0..(3 - n) {
                s.item_text(&JsonStream::render(&item).unwrap()).unwrap();
            }
            s.finish(vec![("summary", serde_json::json!({"k": [1, 2]}))]).unwrap();
            let whole = serde_json::json!({"as_of": 7, "rows": vec![item.clone(); n], "s1": 1,
                "s2": vec![item.clone(); 3 - n], "summary": {"k": [1, 2]}});
            let text = String::from_utf8(out).unwrap();
            assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), whole, "{text}");
            // Laid out as the pretty printer lays out the same fields in the same order.
            assert_eq!(text, format!("{}\n", serde_json::to_string_pretty(&whole).unwrap()), "{n} items");
        }
    }

    #[test]
    fn tables_align_and_csv_escapes() {
        let mut t = Table::new(vec!["a", "bb"]);
        t.row(vec!["xxx".into(), "y,z".into()]);
        let mut out = vec![];
        t.print(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a    bb\nxxx  y,z\n");
        let mut out = vec![];
        t.print_csv(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a,bb\nxxx,\"y,z\"\n");
        let mut t = Table::new(vec!["a"]);
        t.row(vec!["carriage\rreturn".into()]);
        let mut out = vec![];
        t.print_csv(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\n\"carriage\rreturn\"\n");
    }

    #[test]
    fn control_characters_never_reach_the_terminal_raw() {
        let mut t = Table::new(vec!["a", "b"]);
        t.row(vec!["eve\nroot  db  read".into(), "\u{1b}[31mred".into()]);
        let mut out = vec![];
        t.print(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\u{1b}') && text.contains("eve\\nroot") && text.contains("\\u{1b}[31mred"), "{text}");
    }
}
