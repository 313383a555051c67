//! `tenure reconcile`: reading a directory snapshot (SCIM JSON as Okta and Entra ID return
//! it, or CSV) into `DirUser`s, and printing the comparison.

use crate::commands::{as_of_line, emit};
use crate::output::{date, Table};
use crate::{CliError, Format, Known};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use tenure_projections::reports::{DirUser, Reconciliation};
use tenure_projections::AccessIndex;

/// Reads every snapshot file and joins them: users from the Users, memberships from the
/// Groups (by the members' directory ids) and from each user's own `groups`.
pub fn read_snapshot(files: &[std::path::PathBuf]) -> Result<Vec<DirUser>, CliError> {
    let mut snapshot = tenure_server::snapshot::Snapshot::default();
    for file in files {
        let shown = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|e| CliError::input(format!("{shown}: {e}")))?;
        let trimmed = text.trim_start_matches('\u{feff}').trim_start();
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            let value: Value =
                serde_json::from_str(trimmed).map_err(|e| CliError::input(format!("{shown}: not JSON: {e}")))?;
            snapshot.add_json(&shown, &value).map_err(CliError::input)?;
        } else {
            for user in read_csv(&shown, trimmed)? {
                snapshot.add_user(user);
            }
        }
    }
    Ok(snapshot.finish())
}

/// A CSV snapshot: `identity`, `active`, then any attributes, `groups` (`;`-separated).
fn read_csv(shown: &str, text: &str) -> Result<Vec<DirUser>, CliError> {
    let mut users = Vec::new();
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| CliError::input(format!("{shown}: {e}")))?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let identity = col("identity").ok_or_else(|| CliError::input(format!("{shown}: line 1: no `identity` column")))?;
    let active_col = col("active").ok_or_else(|| CliError::input(format!("{shown}: line 1: no `active` column")))?;
    let groups = col("groups");
    for (n, record) in reader.records().enumerate() {
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
        users.push(DirUser { keys: vec![name.clone()], user_name: None, active, attributes, groups });
    }
    Ok(users)
}

pub fn print(
    report: &Reconciliation,
    index: &AccessIndex,
    (known, format, page): (Known, Format, &crate::Page),
    corrections: Option<&Path>,
    out: &mut impl Write,
) -> Result<i32, CliError> {
    if let Some(path) = corrections {
        let mut text = String::new();
        for e in &report.corrections {
            text.push_str(&e.to_json());
            text.push('\n');
        }
        std::fs::write(path, text).map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut table = Table::new(vec!["DRIFT", "IDENTITY", "DIRECTORY", "FIELD", "HERE", "THERE", "POSITIONS"]);
    for row in &report.rows {
        let positions: Vec<String> = row.positions.iter().map(u64::to_string).collect();
        table.row(vec![
            row.kind.to_string(),
            dash(&row.identity),
            dash(&row.directory),
            dash(&row.field),
            dash(&row.here),
            dash(&row.there),
            if positions.is_empty() { "-".into() } else { positions.join(" ") },
        ]);
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
        emit(out, format, json, table)?;
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
