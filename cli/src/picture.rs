//! Pictures for auditors: an identity's timeline as an SVG Gantt chart (status,
//! memberships, grants, access on one time axis; leaves, expiries, and the windows in
//! which the records said something later corrected marked apart), and self-contained
//! HTML pages (inline CSS and SVG, no network) of a timeline or a report.

use tenure_engine::Timestamp;
use tenure_projections::query::{Timeline, TimelineSpan};
use tenure_projections::reports::Mark;

/// Where the plot starts and ends (px), the row height and the label column.
pub const PLOT_X0: f64 = 230.0;
pub const PLOT_X1: f64 = 940.0;
const ROW: f64 = 22.0;
const TOP: f64 = 40.0;

/// Escapes text for XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chart's time axis: from the earliest start to the latest finite time, plus a tenth
/// for the spans still open (drawn to the right edge).
pub fn axis(t: &Timeline, marks: &[Mark]) -> (i64, i64) {
    let spans = t.status.iter().chain(&t.grants).chain(&t.memberships).chain(&t.access);
    let mut lo = i64::MAX;
    let mut hi = i64::MIN;
    for s in spans {
        lo = lo.min(s.from.as_micros());
        hi = hi.max(s.from.as_micros());
        if let Some(to) = s.to {
            hi = hi.max(to.as_micros());
        }
    }
    for m in marks {
        lo = lo.min(m.from.as_micros());
        hi = hi.max(m.to.map_or(m.from, |t| t).as_micros());
    }
    if lo == i64::MAX {
        return (0, 1);
    }
    let margin = ((hi - lo) / 10).max(86_400_000_000);
    (lo, hi + margin)
}

/// The x of time `t` (µs) on the axis `(lo, hi)`.
pub fn x_of(t: i64, (lo, hi): (i64, i64)) -> f64 {
    let t = t.clamp(lo, hi);
    PLOT_X0 + (t - lo) as f64 / (hi - lo) as f64 * (PLOT_X1 - PLOT_X0)
}

fn year_of(t: i64) -> i32 {
    Timestamp::from_micros(t).to_datetime().map_or(1970, |d| chrono::Datelike::year(&d))
}

/// The timeline as SVG. Every bar is a `rect` with an id (`bar-SECTION-N`, in the order
/// of the timeline's lists), every mark `mark-N` (in the order of `marks`).
pub fn timeline_svg(t: &Timeline, marks: &[Mark]) -> String {
    let axis = axis(t, marks);
    let rows: Vec<(&str, &str)> = {
        let mut rows: Vec<(&str, &str)> = vec![("status", "status")];
        for (section, spans) in [("membership", &t.memberships), ("grant", &t.grants), ("access", &t.access)] {
            for s in spans.iter() {
                if !rows.contains(&(section, s.what.as_str())) {
                    rows.push((section, s.what.as_str()));
                }
            }
        }
        // A retracted span may have no row of its own any more.
        for m in marks.iter().filter(|m| m.section != "status") {
            if !rows.contains(&(m.section, m.what.as_str())) {
                rows.push((m.section, m.what.as_str()));
            }
        }
        rows
    };
    let row_of = |section: &str, what: &str| {
        let section = if section == "status" { "status" } else { section };
        let what = if section == "status" { "status" } else { what };
        rows.iter().position(|r| *r == (section, what)).unwrap_or(0)
    };
    let plot_bottom = TOP + rows.len() as f64 * ROW;
    let height = plot_bottom + 46.0;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="960" height="{height}" viewBox="0 0 960 {height}" font-family="DejaVu Sans, sans-serif" font-size="11">
<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff" fill-opacity="0.2"/><line x1="0" y1="0" x2="0" y2="6" stroke="#222222" stroke-width="2"/></pattern></defs>
<rect width="960" height="{height}" fill="#ffffff"/>
<text x="10" y="20" font-size="14" font-weight="bold">{}</text>
"##,
        esc(&t.identity)
    );
    // Year ticks.
    let (first, last) = (year_of(axis.0), year_of(axis.1));
    for year in first..=last + 1 {
        let Some(at) = chrono::NaiveDate::from_ymd_opt(year, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)) else {
            continue;
        };
        let us = at.and_utc().timestamp_micros();
        if us < axis.0 || us > axis.1 {
            continue;
        }
        let x = x_of(us, axis);
        svg.push_str(&format!(
            "<line class=\"tick\" x1=\"{x:.2}\" y1=\"{}\" x2=\"{x:.2}\" y2=\"{}\" stroke=\"#dddddd\"/><text x=\"{x:.2}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555555\">{year}</text>\n",
            TOP - 8.0,
            plot_bottom,
            plot_bottom + 14.0
        ));
    }
    for (i, (section, what)) in rows.iter().enumerate() {
        let y = TOP + i as f64 * ROW;
        let label = if *section == "status" { "status".to_string() } else { format!("{section}: {what}") };
        svg.push_str(&format!("<text x=\"10\" y=\"{:.2}\">{}</text>\n", y + 14.0, esc(&label)));
    }
    let colour = |section: &str, what: &str| match (section, what) {
        ("status", "active") => "#2e7d32",
        ("status", "suspended") => "#f9a825",
        ("status", "left") => "#9e9e9e",
        ("membership", _) => "#6a1b9a",
        ("grant", _) => "#1565c0",
        _ => "#00838f",
    };
    let bar = |svg: &mut String, id: String, class: &str, section: &str, s: &TimelineSpan| {
        let x0 = x_of(s.from.as_micros(), axis);
        let x1 = s.to.map_or(PLOT_X1, |to| x_of(to.as_micros(), axis));
        let y = TOP + row_of(section, &s.what) as f64 * ROW + 3.0;
        let open = if s.to.is_none() { " open" } else { "" };
        svg.push_str(&format!(
            "<rect id=\"{id}\" class=\"{class}{open}\" x=\"{x0:.3}\" y=\"{y:.2}\" width=\"{:.3}\" height=\"16\" fill=\"{}\"><title>{} {} from {} to {} (@{})</title></rect>\n",
            (x1 - x0).max(0.5),
            colour(section, &s.what),
            esc(section),
            esc(&s.what),
            s.from.to_rfc3339(),
            s.to.map_or_else(|| "now".to_string(), |t| t.to_rfc3339()),
            s.opened_by
        ));
    };
    for (section, spans) in
        [("status", &t.status), ("membership", &t.memberships), ("grant", &t.grants), ("access", &t.access)]
    {
        for (n, s) in spans.iter().enumerate() {
            bar(&mut svg, format!("bar-{section}-{n}"), section, section, s);
            // An expiry: a span that ended with no event ending it.
            if section == "grant" && s.closed_by.is_none() {
                if let Some(to) = s.to {
                    let x = x_of(to.as_micros(), axis);
                    let y = TOP + row_of(section, &s.what) as f64 * ROW + 11.0;
                    svg.push_str(&format!(
                        "<path id=\"expiry-{n}\" class=\"expiry\" d=\"M {x:.2} {:.2} L {:.2} {y:.2} L {x:.2} {:.2} L {:.2} {y:.2} Z\" fill=\"#c62828\"><title>expired {}</title></path>\n",
                        y - 6.0,
                        x + 6.0,
                        y + 6.0,
                        x - 6.0,
                        to.to_rfc3339()
                    ));
                }
            }
        }
    }
    for (n, s) in t.status.iter().enumerate().filter(|(_, s)| s.what == "left") {
        let x = x_of(s.from.as_micros(), axis);
        svg.push_str(&format!(
            "<line id=\"leave-{n}\" class=\"leave\" x1=\"{x:.3}\" y1=\"{}\" x2=\"{x:.3}\" y2=\"{:.2}\" stroke=\"#c62828\" stroke-dasharray=\"4 3\"/>\n",
            TOP - 4.0,
            TOP + rows.len() as f64 * ROW
        ));
    }
    for (n, m) in marks.iter().enumerate() {
        let x0 = x_of(m.from.as_micros(), axis);
        let x1 = m.to.map_or(PLOT_X1, |to| x_of(to.as_micros(), axis));
        let y = TOP + row_of(m.section, &m.what) as f64 * ROW + 1.0;
        let (fill, stroke) = if m.kind == "late" { ("url(#hatch)", "#222222") } else { ("none", "#c62828") };
        svg.push_str(&format!(
            "<rect id=\"mark-{n}\" class=\"{}\" x=\"{x0:.3}\" y=\"{y:.2}\" width=\"{:.3}\" height=\"20\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-dasharray=\"3 2\"><title>{}: {} {} from {} (@{}, recorded {})</title></rect>\n",
            m.kind,
            (x1 - x0).max(0.5),
            if m.kind == "late" { "recorded late" } else { "retracted" },
            m.section,
            esc(&m.what),
            m.from.to_rfc3339(),
            m.position,
            m.recorded_at.to_rfc3339()
        ));
    }
    let ly = plot_bottom + 36.0;
    svg.push_str(&format!(
        "<text x=\"10\" y=\"{ly:.2}\" fill=\"#555555\">hatched: the records did not say this yet (recorded late); red outline: said, then retracted; red dashes: leave; diamonds: expiries</text>\n</svg>\n"
    ));
    svg
}

/// A self-contained HTML page: a title, summary lines, a picture, and a table.
pub fn page(title: &str, summary: &[String], svg: Option<&str>, header: &[String], rows: &[Vec<String>]) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:DejaVu Sans,Arial,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}}th{{background:#f3f3f3}}.summary li{{margin:2px 0}}</style></head><body>\n<h1>{}</h1>\n",
        esc(title),
        esc(title)
    );
    if !summary.is_empty() {
        html.push_str("<ul class=\"summary\">\n");
        for s in summary {
            html.push_str(&format!("<li>{}</li>\n", esc(s)));
        }
        html.push_str("</ul>\n");
    }
    if let Some(svg) = svg {
        html.push_str(svg);
    }
    html.push_str("<table>\n<tr>");
    for h in header {
        html.push_str(&format!("<th>{}</th>", esc(h)));
    }
    html.push_str("</tr>\n");
    for row in rows {
        html.push_str("<tr>");
        for c in row {
            html.push_str(&format!("<td>{}</td>", esc(c)));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n<p>Written by tenure; every row names the log positions behind it.</p>\n</body></html>\n");
    html
}

/// A horizontal bar chart (SVG) of labelled values, for a report page.
pub fn bars_svg(title: &str, unit: &str, values: &[(String, f64)]) -> String {
    let max = values.iter().map(|v| v.1).fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE);
    let height = 40.0 + values.len() as f64 * ROW;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\" height=\"{height}\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"11\"><text x=\"10\" y=\"20\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
        esc(title)
    );
    for (i, (label, v)) in values.iter().enumerate() {
        let y = 30.0 + i as f64 * ROW;
        let w = (v.max(0.0) / max * (PLOT_X1 - PLOT_X0 - 80.0)).max(0.5);
        svg.push_str(&format!(
            "<text x=\"10\" y=\"{:.2}\">{}</text><rect id=\"value-{i}\" x=\"{PLOT_X0}\" y=\"{:.2}\" width=\"{w:.3}\" height=\"16\" fill=\"#1565c0\"/><text x=\"{:.2}\" y=\"{:.2}\">{} {unit}</text>\n",
            y + 12.0,
            esc(label),
            y,
            PLOT_X0 + w + 4.0,
            y + 12.0,
            (v * 10.0).round() / 10.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
