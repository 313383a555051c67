//! Human output: aligned tables, dates with a relative hint, and CSV.

use std::io::Write;
use tenure_engine::Timestamp;
use tenure_projections::Via;

/// `2024-02-15 09:00:00Z (9 months ago)`; the time is left out at midnight.
pub fn date(t: Timestamp) -> String {
    let Some(dt) = t.to_datetime() else { return t.to_rfc3339() };
    let text = if dt.format("%H:%M:%S").to_string() == "00:00:00" {
        dt.format("%Y-%m-%d").to_string()
    } else {
        dt.format("%Y-%m-%d %H:%M:%SZ").to_string()
    };
    format!("{text} ({})", relative(t, Timestamp::now()))
}

/// `3 days ago`, `in 2 months`, `today`.
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let days = (now.as_micros() - t.as_micros()) / 86_400_000_000;
    let (n, future) = (days.abs(), days < 0);
    let span = match n {
        0 => return "today".to_string(),
        1 => "1 day".to_string(),
        2..=60 => format!("{n} days"),
        61..=729 => format!("{} months", n / 30),
        _ => format!("{} years", n / 365),
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

pub fn until(t: Option<Timestamp>) -> String {
    t.map(date).unwrap_or_else(|| "-".to_string())
}

pub fn position(p: Option<u64>) -> String {
    p.map(|p| format!("@{p}")).unwrap_or_else(|| "-".to_string())
}

pub fn vias(v: &[Via]) -> String {
    v.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; ")
}

/// The compact form used in CSV: `direct:5`, `group:fin:4:3` (membership, grant).
pub fn vias_csv(v: &[Via]) -> String {
    v.iter()
        .map(|v| match v {
            Via::Direct { grant } => format!("direct:{grant}"),
            Via::Group { group, membership, grant } => format!("group:{group}:{membership}:{grant}"),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Text from the log made safe for a terminal: control characters (a newline that would
/// forge a table row, an ANSI escape that would recolour or rewrite the screen) are
/// shown escaped, as `\n`, `\u{1b}`. JSON and CSV output keep the text as recorded.
pub fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
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
        let rows: Vec<Vec<String>> =
            self.rows.iter().map(|r| r.iter().map(|c| clean(c).into_owned()).collect()).collect();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| -> String {
            let last = cells.len() - 1;
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| if i == last { c.to_string() } else { format!("{c:<w$}", w = widths[i]) })
                .collect::<Vec<_>>()
                .join("  ")
        };
        writeln!(out, "{}", line(self.headers.clone()))?;
        for row in &rows {
            writeln!(out, "{}", line(row.iter().map(|s| s.as_str()).collect()))?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
