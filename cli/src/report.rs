//! `tenure report ...`: the governance reports of `tenure_projections::reports`, as a
//! table, CSV or JSON (the audit API's `/v1/reports/...` answers the same JSON).

use crate::commands::{as_of, as_of_line, ask, check_known, emit};
use crate::output::{date, push_date, push_vias, vias, vias_csv, Rendered, Sink, Table, RENDER_BATCH};
use crate::{CliError, Page, Report, ReviewAction};
use std::fmt::Write as _;
use std::io::Write;
use tenure_engine::event::{Decision, Reviewed};
use tenure_engine::{EventData, NewEvent, Store, Timestamp};
use tenure_projections::reports::{event_lag, LagSummary, LeaverRow, Rule};
use tenure_projections::{answers, AccessIndex, QueryError};

/// Seconds as a person reads them: `3d 4h`, `5h 2m`, `40s`, with a sign.
pub fn span(seconds: f64) -> String {
    let sign = if seconds < 0.0 { "-" } else { "" };
    let s = seconds.abs().round() as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    let text = match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m {}s", s % 60),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    };
    format!("{sign}{text}")
}

/// Writes `--html FILE` when asked: title, summary lines, an optional chart, the table.
pub fn write_page(
    page: &Page,
    title: &str,
    summary: &[String],
    svg: Option<String>,
    table: &Table,
) -> Result<(), CliError> {
    let Some(path) = &page.html else { return Ok(()) };
    let html = crate::picture::page(title, summary, svg.as_deref(), &table.headers(), table.rows());
    std::fs::write(path, html).map_err(|e| CliError::failure(format!("{}: {e}", path.display())))
}

/// `--from` / `--to` as a window; either may be left open.
fn window_of(window: crate::Window) -> Result<Option<(Timestamp, Timestamp)>, CliError> {
    match answers::open_window(window.from, window.to) {
        Ok(w) => Ok(w),
        Err(e) => Err(CliError::input(format!("--from/--to: {e}"))),
    }
}

/// A separation-of-duties policy file: `[[rule]]` tables of `name` and `entitlements`.
fn read_policy(path: &std::path::Path) -> Result<Vec<Rule>, CliError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Policy {
        #[serde(default)]
        rule: Vec<PolicyRule>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PolicyRule {
        name: String,
        entitlements: Vec<String>,
    }
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| CliError::input(format!("{shown}: {e}")))?;
    let policy: Policy =
        toml::from_str(&text).map_err(|e| CliError::input(format!("{shown}: {}", e.to_string().trim())))?;
    if policy.rule.is_empty() {
        return Err(CliError::input(format!("{shown}: no [[rule]] in the policy")));
    }
    policy
        .rule
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let at = format!("{shown}: rule {} ('{}')", i + 1, r.name);
            if r.entitlements.len() < 2 {
                return Err(CliError::input(format!("{at}: entitlements: give two or more")));
            }
            let entitlements = r
                .entitlements
                .iter()
                .map(|e| {
                    tenure_engine::Entitlement::parse_short(e)
                        .ok_or_else(|| CliError::input(format!("{at}: entitlements: '{e}' is not RESOURCE#PERMISSION")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Rule { name: r.name, entitlements })
        })
        .collect()
}

fn summary_line(name: &str, s: &LagSummary) -> String {
    format!(
        "  {name}: {} leaves, lag median {}, p90 {}, worst {}",
        s.count,
        span(s.median_seconds),
        span(s.p90_seconds),
        span(s.worst_seconds)
    )
}

const REVIEW_COLUMNS: [&str; 7] = ["IDENTITY", "PERMISSION", "WHY", "SINCE", "GRANTED BY", "LAST REVIEW", "FLAGS"];

/// An access review row as table (or CSV) cells.
fn review_cells(row: &tenure_projections::reports::ReviewRow, csv: bool) -> Vec<String> {
    let why = if csv { vias_csv(&row.via) } else { vias(&row.via) };
    let mut granted = String::new();
    for (i, g) in row.granted_by.iter().enumerate() {
        let _ = write!(granted, "{}@{}", if i > 0 { "; " } else { "" }, g.position);
        if let Some(a) = &g.actor {
            let _ = write!(granted, " by {a}");
        }
        if let Some(a) = &g.approver {
            let _ = write!(granted, " approved by {a}");
        }
        if let Some(j) = &g.justification {
            let _ = write!(granted, " \"{j}\"");
        }
    }
    let review = row.last_review.as_ref().map_or_else(
        || "-".to_string(),
        |d| format!("{} by {} on {} (@{})", d.decision.as_str(), d.reviewer, date(d.decided_at), d.position),
    );
    vec![
        row.identity.clone(),
        row.permission.clone(),
        why,
        date(row.since),
        granted,
        review,
        if row.flags.is_empty() { "-".into() } else { row.flags.join(" ") },
    ]
}

const LEAVER_COLUMNS: [&str; 8] =
    ["IDENTITY", "LEFT", "RECORDED", "LAG", "SOURCE", "POSITION", "HELD BEFORE", "BELIEVED AFTER"];

/// A leaver row as table (or CSV) cells.
fn leaver_cells(row: &LeaverRow, csv: bool) -> Vec<String> {
    // Written into one string per cell: a report at 10M events writes millions of these.
    let entitlement = |out: &mut String, i: usize, resource: &str, permission: &str| {
        out.push_str(if i > 0 { "; " } else { "" });
        out.push_str(resource);
        out.push('#');
        out.push_str(permission);
    };
    let mut held = String::new();
    for (i, h) in row.held_before.iter().enumerate() {
        entitlement(&mut held, i, &h.resource, &h.permission);
        held.push_str(" (");
        push_vias(&mut held, &h.via, csv);
        held.push(')');
    }
    let mut believed = String::new();
    for (i, b) in row.believed_after.iter().enumerate() {
        entitlement(&mut believed, i, &b.resource, &b.permission);
        believed.push_str(" until ");
        push_date(&mut believed, b.to);
    }
    let list = |text: String| if text.is_empty() { "-".to_string() } else { text };
    vec![
        row.identity.clone(),
        date(row.effective_at),
        date(row.recorded_at),
        if csv { row.lag_seconds.to_string() } else { span(row.lag_seconds) },
        row.source.clone().unwrap_or_else(|| "-".into()),
        itoa::Buffer::new().format(row.position).to_string(),
        list(held),
        list(believed),
    ]
}

/// What stops a streamed report's query: its own error, or the writer having stopped
/// (whose error is then the one told).
enum Stop {
    Query(QueryError),
    WriterGone,
}

impl From<QueryError> for Stop {
    fn from(e: QueryError) -> Self {
        Stop::Query(e)
    }
}

/// `report leavers --json` / `--csv`: rows written as they are made, so memory holds a
/// few batches of rows whatever the number of leaves. The query runs on its own thread
/// and hands batches over a short channel, so that computing rows and writing them go on
/// at once. A damaged index found before the first row is rebuilt as [`ask`] does; after
/// it, the error stands (what was written cannot be taken back).
fn leavers_streamed(
    store: &Store,
    mut index: &'static AccessIndex,
    (window, known): (Option<(Timestamp, Timestamp)>, crate::Known),
    format: crate::Format,
    page: &Page,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    loop {
        // `--html` writes every row into the page as well.
        let mut all = page.html.is_some().then(|| Table::new(LEAVER_COLUMNS.to_vec()));
        let r = index.resolve(as_of(known));
        let mut sink = Sink::new(&mut *out, format, vec![("as_of", r.into())], "rows", LEAVER_COLUMNS.to_vec())?;
        let paged = all.is_some();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Rendered>>(2);
        let (result, sent, written) = std::thread::scope(|scope| {
            let query = scope.spawn(move || {
                let (mut pending, mut sent) = (Vec::new(), 0usize);
                let render = |row: LeaverRow| {
                    let page = paged.then(|| leaver_cells(&row, false));
                    Rendered::of(&row, format, |csv| leaver_cells(&row, csv)).with_page(page)
                };
                let result = index.leavers_each(window, as_of(known), store, render, |row| {
                    pending.push(row);
                    if pending.len() == RENDER_BATCH {
                        sent += pending.len();
                        tx.send(std::mem::take(&mut pending)).map_err(|_| Stop::WriterGone)?;
                    }
                    Ok(())
                });
                if result.is_ok() && !pending.is_empty() {
                    sent += pending.len();
                    let _ = tx.send(pending);
                }
                (result, sent)
            });
            let mut written = Ok(());
            for mut batch in rx {
                if let Some(all) = all.as_mut() {
                    batch.iter_mut().for_each(|row| all.row(row.page.take().unwrap_or_default()));
                }
                written = sink.rows(batch);
                if written.is_err() {
                    break;
                }
            }
            let (result, sent) = query.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            (result, sent, written)
        });
        written?;
        match result {
            Err(Stop::Query(QueryError::Corrupt(e))) if sent == 0 => {
                crate::commands::note(&format!("{e}; rebuilt from the log"));
                index = crate::commands::load_index_with(store, true)?;
            }
            Err(Stop::Query(e)) => return Err(e.into()),
            Err(Stop::WriterGone) => return Err(CliError::failure("the output stopped")),
            Ok(summary) => {
                // The count, then the lag overall and per source.
                let mut lines = vec![format!("{} leaves, {}", summary.count, as_of_line(index, known))];
                if let Some(all) = &summary.overall {
                    lines.push(summary_line("all sources", all));
                    lines.extend(summary.by_source.iter().map(|(source, s)| summary_line(source, s)));
                }
                if let Some(table) = &all {
                    let lines: Vec<String> = lines.iter().map(|l| l.trim().to_string()).collect();
                    let chart: Vec<(String, f64)> = summary
                        .by_source
                        .iter()
                        .map(|(source, s)| (format!("{source} (median)"), s.median_seconds / 86_400.0))
                        .collect();
                    let svg = (!chart.is_empty())
                        .then(|| crate::picture::bars_svg("deprovisioning lag by source", "days", &chart));
                    write_page(page, "Leaver compliance", &lines, svg, table)?;
                }
                let tail = vec![
                    ("by_source", serde_json::to_value(&summary.by_source)?),
                    ("overall", serde_json::to_value(&summary.overall)?),
                ];
                match sink.finish(tail)? {
                    None => {}
                    Some(out) => {
                        writeln!(out, "{}", lines[0])?;
                        if lines.len() > 1 {
                            writeln!(out, "lag:")?;
                        }
                        for line in &lines[1..] {
                            writeln!(out, "{line}")?;
                        }
                    }
                }
                return Ok(0);
            }
        }
    }
}

pub fn run(
    report: Report,
    store: &Store,
    mut index: &'static AccessIndex,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let mut out = out;
    match report {
        Report::Leavers { window, known, format, page } => {
            check_known(index, known)?;
            let window = window_of(window)?;
            leavers_streamed(store, index, (window, known), format, &page, out)
        }
        Report::Nhi { at, max_age, dormant_after, known, format, page } => {
            check_known(index, known)?;
            let at = at.unwrap_or_else(Timestamp::now);
            let report = ask(store, &mut index, |i| i.nhi(at, as_of(known), max_age, dormant_after))?;
            let mut table = Table::new(vec!["FINDING", "IDENTITY", "OF", "SINCE", "KNOWN SINCE", "POSITION"]);
            let when = |t: Option<Timestamp>| t.map_or_else(|| "-".to_string(), date);
            for s in &report.services {
                let finding = match s.owner_state.as_deref() {
                    None => "no owner".to_string(),
                    Some(state) => format!("owner {state}"),
                };
                table.row(vec![
                    finding,
                    s.service.clone(),
                    s.owner.clone().unwrap_or_else(|| "-".into()),
                    when(s.orphaned_since),
                    when(s.known_since),
                    s.ended_by.map_or_else(|| s.profile_since.to_string(), |p| p.to_string()),
                ]);
            }
            for c in &report.credentials {
                let since = match c.finding {
                    "expired" => c.expires_at,
                    _ => Some(c.last_rotated_at.map_or(c.issued_at, |r| r.max(c.issued_at))),
                };
                table.row(vec![
                    c.finding.replace('_', " "),
                    c.identity.clone(),
                    c.credential.clone(),
                    when(since),
                    "-".into(),
                    c.issued_by.to_string(),
                ]);
            }
            for d in &report.dormant {
                table.row(vec![
                    "dormant".into(),
                    d.identity.clone(),
                    "-".into(),
                    date(d.last_event_at),
                    "-".into(),
                    d.last_event.to_string(),
                ]);
            }
            let summary = vec![
                format!("at {}, {}", date(at), as_of_line(index, known)),
                format!(
                    "{} dormant services (no lifecycle event in {})",
                    report.dormant.len(),
                    span(tenure_projections::reports::seconds(dormant_after))
                ),
                format!("{} services whose owner is not active or who have none", report.services.len()),
                format!(
                    "{} credential findings (expired, or older than {})",
                    report.credentials.len(),
                    span(report.max_age_seconds)
                ),
            ];
            write_page(&page, "Non-human identities", &summary, None, &table)?;
            if !format.json && !format.csv {
                writeln!(
                    out,
                    "non-human identities at {}, {} (credentials older than {}):",
                    date(at),
                    as_of_line(index, known),
                    span(report.max_age_seconds)
                )?;
                if table.is_empty() {
                    writeln!(out, "nothing to report")?;
                    return Ok(0);
                }
            }
            emit(&mut out, format, answers::nhi(&report), table).map(|()| 0)
        }
        Report::Access { resource, at, known, format, page } => {
            check_known(index, known)?;
            let at = at.unwrap_or_else(Timestamp::now);
            let review = ask(store, &mut index, |i| i.access_review(&resource, at, as_of(known), store))?;
            let flagged = review.rows.iter().filter(|r| !r.flags.is_empty()).count();
            if page.html.is_some() {
                let mut table = Table::new(REVIEW_COLUMNS.to_vec());
                review.rows.iter().for_each(|row| table.row(review_cells(row, false)));
                let summary = vec![
                    format!(
                        "{} holders of {resource} at {}, {}",
                        review.rows.len(),
                        date(at),
                        as_of_line(index, known)
                    ),
                    format!("{flagged} flagged"),
                    format!(
                        "{} revoke decisions, {} not carried out",
                        review.revocations.len(),
                        review.revocations.iter().filter(|v| v.held_at_decision && v.carried_out_at.is_none()).count()
                    ),
                ];
                write_page(&page, &format!("Access review: {resource}"), &summary, None, &table)?;
            }
            if !format.json && !format.csv {
                writeln!(
                    out,
                    "access review of {resource} at {}, {}: {} holders",
                    date(at),
                    as_of_line(index, known),
                    review.rows.len()
                )?;
            }
            // Rows rendered a batch at a time on every core (a large resource has tens of
            // thousands of holders).
            let head = vec![
                ("resource", serde_json::to_value(&review.resource)?),
                ("at", serde_json::to_value(review.at)?),
                ("as_of", review.as_of.into()),
            ];
            let mut sink = Sink::new(&mut *out, format, head, "rows", REVIEW_COLUMNS.to_vec())?;
            for batch in review.rows.chunks(RENDER_BATCH) {
                sink.rows(Rendered::all(batch, |row| Rendered::of(row, format, |csv| review_cells(row, csv))))?;
            }
            let Some(out) = sink.finish(vec![("revocations", serde_json::to_value(&review.revocations)?)])? else {
                return Ok(0);
            };
            if !review.revocations.is_empty() {
                writeln!(out, "revoke decisions:")?;
                for v in &review.revocations {
                    let what = match (v.held_at_decision, v.carried_out_at) {
                        (false, _) => "not held when decided".to_string(),
                        (true, Some(t)) => {
                            format!("carried out {} ({} after the decision)", date(t), span(v.stayed_seconds))
                        }
                        (true, None) => {
                            format!("NOT carried out: still held {} after the decision", span(v.stayed_seconds))
                        }
                    };
                    writeln!(
                        out,
                        "  {} {}#{}: revoke by {} on {} (@{}): {what}",
                        v.identity,
                        v.resource,
                        v.permission,
                        v.decision.reviewer,
                        date(v.decision.decided_at),
                        v.decision.position
                    )?;
                }
            }
            Ok(0)
        }
        Report::Sod { policy, window, known, format, page } => {
            check_known(index, known)?;
            let rules = read_policy(&policy)?;
            let window = window_of(window)?;
            let report = ask(store, &mut index, |i| i.sod(&rules, window, as_of(known)))?;
            let mut table = Table::new(vec!["RULE", "IDENTITY", "FROM", "TO", "KNOWN AT START", "SIDES"]);
            for v in &report.violations {
                let sides: Vec<String> = v
                    .sides
                    .iter()
                    .map(|h| {
                        let why = if format.csv { vias_csv(&h.via) } else { vias(&h.via) };
                        format!("{}#{} ({why})", h.resource, h.permission)
                    })
                    .collect();
                table.row(vec![
                    v.rule.clone(),
                    v.identity.clone(),
                    date(v.from),
                    v.to.map_or_else(|| "-".into(), date),
                    if v.known_at_start { "yes".into() } else { "no".into() },
                    sides.join("; "),
                ]);
            }
            let summary = vec![format!(
                "{} violations of {} rules, {}",
                report.violations.len(),
                report.rules.len(),
                as_of_line(index, known)
            )];
            write_page(&page, "Separation of duties", &summary, None, &table)?;
            if !format.json && !format.csv {
                writeln!(
                    out,
                    "{} violations of {} rules, {}:",
                    report.violations.len(),
                    report.rules.len(),
                    as_of_line(index, known)
                )?;
                if table.is_empty() {
                    return Ok(0);
                }
            }
            emit(&mut out, format, answers::sod(&report), table).map(|()| 0)
        }
        Report::Anomalies { window, known, format, page } => {
            check_known(index, known)?;
            let window = window_of(window)?;
            let report = ask(store, &mut index, |i| i.anomalies_report(window, as_of(known), store))?;
            let mut table = Table::new(vec!["POSITION", "KIND", "SOURCE", "TYPE", "SUBJECT", "EFFECTIVE", "WHY"]);
            for a in &report.rows {
                let subject = match (&a.identity, &a.group) {
                    (Some(i), Some(g)) => format!("{i} in {g}"),
                    (Some(i), None) => i.clone(),
                    (None, Some(g)) => g.clone(),
                    (None, None) => "-".into(),
                };
                let kind =
                    serde_json::to_value(a.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                table.row(vec![
                    a.position.to_string(),
                    kind,
                    a.source.clone().unwrap_or_else(|| "-".into()),
                    a.event_type.to_string(),
                    subject,
                    date(a.effective_at),
                    a.reason.clone(),
                ]);
            }
            let label = |k: tenure_projections::AnomalyKind| {
                serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
            };
            let chart: Vec<(String, f64)> = report
                .groups
                .iter()
                .map(|g| (format!("{} from {}", label(g.kind), g.source), g.count as f64))
                .collect();
            let svg = (!chart.is_empty()).then(|| crate::picture::bars_svg("anomalies by kind and source", "", &chart));
            let summary = vec![format!("{} anomalies, {}", report.rows.len(), as_of_line(index, known))];
            write_page(&page, "Anomalies", &summary, svg, &table)?;
            if !format.json && !format.csv {
                writeln!(out, "{} anomalies, {}:", report.rows.len(), as_of_line(index, known))?;
                for g in &report.groups {
                    let kind = serde_json::to_value(g.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    writeln!(out, "  {:>6}  {kind} from {}", g.count, g.source)?;
                }
                if table.is_empty() {
                    return Ok(0);
                }
            }
            emit(&mut out, format, answers::anomalies_report(&report), table).map(|()| 0)
        }
        Report::Lag { known, format, page } => {
            check_known(index, known)?;
            let r = index.resolve(as_of(known));
            let rows = event_lag(store, r)?;
            let mut table = Table::new(vec!["SOURCE", "TYPE", "EVENTS", "MEDIAN", "P90", "WORST"]);
            for row in &rows {
                let s = &row.summary;
                let show = |x: f64| if format.csv { x.to_string() } else { span(x) };
                table.row(vec![
                    row.source.clone(),
                    row.event_type.to_string(),
                    s.count.to_string(),
                    show(s.median_seconds),
                    show(s.p90_seconds),
                    show(s.worst_seconds),
                ]);
            }
            let chart: Vec<(String, f64)> = rows
                .iter()
                .map(|r| (format!("{} {}", r.source, r.event_type), r.summary.median_seconds / 3_600.0))
                .collect();
            let svg = (!chart.is_empty()).then(|| crate::picture::bars_svg("median event lag", "hours", &chart));
            write_page(
                &page,
                "Event lag",
                &[format!("event lag (recorded minus effective), {}", as_of_line(index, known))],
                svg,
                &table,
            )?;
            if !format.json && !format.csv {
                writeln!(out, "event lag (recorded minus effective), {}:", as_of_line(index, known))?;
            }
            emit(&mut out, format, answers::lag(r, &rows), table).map(|()| 0)
        }
    }
}

/// `tenure review record`: one `access.reviewed` event per current holder (and
/// permission) of the resource, or of those named.
pub fn record_review(
    action: ReviewAction,
    store: &Store,
    mut index: &'static AccessIndex,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let ReviewAction::Record { resource, reviewer, decision, identity, permission, comment, at, json } = action;
    let decision = if decision == "keep" { Decision::Keep } else { Decision::Revoke };
    if reviewer.trim().is_empty() {
        return Err(CliError::input("--reviewer: must not be empty"));
    }
    let at = at.unwrap_or_else(Timestamp::now);
    let target = tenure_projections::Target::Resource(resource.clone());
    let holders = ask(store, &mut index, |i| i.holders(&target, at, tenure_projections::AsOf::Head))?;
    let chosen: Vec<_> = holders
        .into_iter()
        .filter(|h| identity.as_ref().is_none_or(|i| &h.identity == i))
        .filter(|h| permission.as_ref().is_none_or(|p| &h.permission == p))
        .collect();
    if chosen.is_empty() {
        let who = identity.as_deref().map_or_else(|| "no one".to_string(), |i| format!("'{i}' does not"));
        let what = permission.as_ref().map_or_else(|| resource.clone(), |p| format!("{resource}#{p}"));
        return Err(CliError::input(format!(
            "{who} hold{} {what} at {}: nothing to review",
            if identity.is_some() { "" } else { "s" },
            date(at)
        )));
    }
    let events: Vec<NewEvent> = chosen
        .iter()
        .map(|h| {
            let mut e = NewEvent::new(
                at,
                EventData::AccessReviewed(Reviewed {
                    identity: h.identity.as_str().into(),
                    entitlement: tenure_engine::Entitlement::new(&h.resource, &h.permission),
                    reviewer: reviewer.clone(),
                    decision,
                    comment: comment.clone(),
                }),
            );
            e.source = Some("tenure-review".into());
            e.actor = Some(reviewer.clone());
            e
        })
        .collect();
    let outcomes = store.append(events)?;
    store.close();
    let positions: Vec<u64> = outcomes.iter().map(|o| o.position().get()).collect();
    if json {
        let rows: Vec<serde_json::Value> = chosen
            .iter()
            .zip(&positions)
            .map(|(h, p)| serde_json::json!({"identity": h.identity, "resource": h.resource, "permission": h.permission, "position": p}))
            .collect();
        serde_json::to_writer_pretty(
            &mut *out,
            &serde_json::json!({"decision": decision, "reviewer": reviewer, "at": at, "recorded": rows}),
        )
        .map_err(CliError::from)?;
        writeln!(out)?;
    } else {
        for (h, p) in chosen.iter().zip(&positions) {
            writeln!(out, "{}: {} {}#{} (position {p})", decision.as_str(), h.identity, h.resource, h.permission)?;
        }
    }
    Ok(0)
}
