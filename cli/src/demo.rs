//! `tenure demo`: a synthetic organisation plus a small cast whose story shows what the
//! engine is for, then the audit questions an auditor would ask, answered with provenance.

use crate::commands::load_index;
use crate::output::{vias, Table};
use crate::CliError;
use std::io::Write;
use std::path::Path;
use tenure_engine::{NewEvent, Store, Timestamp};
use tenure_projections::{AsOf, State, Target};

/// The cast, in the order the log records them. Bob's leave, effective 2022-03-31, is
/// recorded last: HR entered it weeks late.
const CAST: &[&str] = &[
    r#"{"type":"group.created","effective_at":"2020-01-01T00:00:00Z","source":"demo","source_event_id":"c1","data":{"group":"finance","display_name":"Finance"}}"#,
    r#"{"type":"group.access_granted","effective_at":"2020-01-01T00:00:00Z","source":"demo","source_event_id":"c2","data":{"group":"finance","entitlement":{"resource":"payroll-db","permission":"read"}}}"#,
    r#"{"type":"identity.joined","effective_at":"2021-01-10T09:00:00Z","source":"demo","source_event_id":"c3","actor":"hr-sync","data":{"identity":"bob","kind":"human","attributes":{"display_name":"Bob Iles","department":"engineering"}}}"#,
    r#"{"type":"access.granted","effective_at":"2021-02-01T00:00:00Z","source":"demo","source_event_id":"c4","data":{"identity":"bob","entitlement":{"resource":"payroll-db","permission":"write"},"justification":"payroll migration","approver":"carol"}}"#,
    r#"{"type":"identity.joined","effective_at":"2021-02-01T09:00:00Z","source":"demo","source_event_id":"c5","actor":"hr-sync","data":{"identity":"alice","kind":"human","attributes":{"display_name":"Alice Ng","department":"finance"}}}"#,
    r#"{"type":"group.member_added","effective_at":"2021-02-01T09:05:00Z","source":"demo","source_event_id":"c6","data":{"group":"finance","identity":"alice"}}"#,
    r#"{"type":"identity.joined","effective_at":"2021-02-15T00:00:00Z","source":"demo","source_event_id":"c7","data":{"identity":"ci-bot","kind":"service","owner":"bob","attributes":{"purpose":"deploys"}}}"#,
    r#"{"type":"access.granted","effective_at":"2021-02-15T00:00:00Z","source":"demo","source_event_id":"c8","data":{"identity":"ci-bot","entitlement":{"resource":"aws-prod","permission":"admin"}}}"#,
    r#"{"type":"credential.issued","effective_at":"2021-02-15T00:00:00Z","source":"demo","source_event_id":"c9","data":{"identity":"ci-bot","credential":"ci-bot-key","expires_at":"2022-02-15T00:00:00Z"}}"#,
    r#"{"type":"access.granted","effective_at":"2021-03-01T00:00:00Z","source":"demo","source_event_id":"c10","data":{"identity":"alice","entitlement":{"resource":"vault","permission":"admin"},"expires_at":"2021-04-01T00:00:00Z","justification":"quarter close","approver":"carol"}}"#,
    r#"{"type":"identity.moved","effective_at":"2022-01-10T00:00:00Z","source":"demo","source_event_id":"c11","data":{"identity":"alice","attributes":{"department":"treasury"}}}"#,
    r#"{"type":"identity.left","effective_at":"2022-03-31T17:00:00Z","source":"demo","source_event_id":"c12","actor":"hr-sync","data":{"identity":"bob","reason":"resigned"}}"#,
];

fn t(s: &str) -> Timestamp {
    // The demo's own constants; a typo here is a bug in this file, caught by its tests.
    Timestamp::parse_lenient(s).expect("demo dates are valid")
}

pub fn run(dir: &Path, identities: usize, out: &mut impl Write) -> Result<(), CliError> {
    let store = Store::open(dir)?;
    writeln!(
        out,
        "Tenure demo: a synthetic organisation of {identities} identities over 3 years, in {}",
        dir.display()
    )?;

    // 1. The organisation, as the directory and HR feeds would deliver it.
    let mut events: Vec<NewEvent> = Vec::new();
    let config = tenure_gen::OrgConfig::new(identities, 3, 7);
    tenure_gen::generate(&config, |e| events.push(e));
    let generated = events.len();
    let mut appended = 0usize;
    for chunk in events.chunks(100_000) {
        appended +=
            store.append(chunk.to_vec())?.iter().filter(|o| matches!(o, tenure_engine::Outcome::Stored(_))).count();
    }
    // 2. The cast.
    let mut cast = Vec::new();
    for line in CAST {
        cast.push(NewEvent::from_json(line).map_err(|e| CliError::failure(format!("demo event: {e}")))?);
    }
    let outcomes = store.append(cast)?;
    appended += outcomes.iter().filter(|o| matches!(o, tenure_engine::Outcome::Stored(_))).count();
    let late_leave = outcomes.last().map(|o| o.position().get()).unwrap_or(0);
    let delivered = generated + CAST.len();
    let skipped = delivered - appended;
    let why = if appended == 0 {
        "all of them were stored by an earlier run (each has a source and an id: nothing is stored twice)"
    } else {
        "the directory feed re-delivers some events on purpose, as identity providers do, and those are \
         recognised by their source and id and skipped"
    };
    writeln!(
        out,
        "{generated} generated events and {} story events delivered; {appended} stored, {skipped} skipped: {why}.\n",
        CAST.len()
    )?;

    let index = load_index(&store)?;

    // Q1
    let at = t("2022-03-14");
    writeln!(out, "1. Who could read payroll-db on 2022-03-14?")?;
    let mut table = Table::new(vec!["  IDENTITY", "PERMISSION", "WHY"]);
    for h in index.holders(&Target::Resource("payroll-db".into()), at, AsOf::Head)? {
        table.row(vec![format!("  {}", h.identity), h.permission, vias(&h.via)])
    }
    table.print(out)?;

    // Q2
    writeln!(out, "\n2. Did bob lose every entitlement when he left (effective 2022-03-31)?")?;
    let after = index.access("bob", t("2022-04-15"), AsOf::Head)?;
    writeln!(
        out,
        "   On 2022-04-15, as we know now: {}",
        if after.is_empty() { "no access." } else { "STILL HAS ACCESS." }
    )?;
    let before = AsOf::Position(late_leave.saturating_sub(1));
    let believed = index.access("bob", t("2022-04-15"), before)?;
    writeln!(
        out,
        "   But the leave was recorded late (position {late_leave}). As the log knew it before then, bob still held:"
    )?;
    for h in &believed {
        writeln!(out, "     {}#{} ({})", h.resource, h.permission, vias(&h.via))?;
    }
    writeln!(
        out,
        "   Any audit run before position {late_leave} was told bob had access: that is the deprovisioning lag."
    )?;

    // Q3
    writeln!(out, "\n3. Which service accounts are owned by people who have left (as of 2022-06-01)?")?;
    let now = t("2022-06-01");
    let states: std::collections::BTreeMap<String, Option<State>> =
        index.states_at(now, AsOf::Head)?.into_iter().collect();
    let mut orphans = Table::new(vec!["  SERVICE", "OWNER", "OWNER STATE"]);
    let mut count = 0;
    for (name, state) in &states {
        if *state != Some(State::Active) {
            continue;
        }
        let p = index.profile(name, now, AsOf::Head)?;
        if p.kind != Some(tenure_engine::IdentityKind::Service) {
            continue;
        }
        if let Some(owner) = &p.owner {
            if states.get(owner).copied().flatten() == Some(State::Left) {
                count += 1;
                if name == "ci-bot" || count <= 5 {
                    orphans.row(vec![format!("  {name}"), owner.clone(), "left".into()]);
                }
            }
        }
    }
    orphans.print(out)?;
    writeln!(out, "   {count} active services have an owner who left (first 5 and ci-bot shown).")?;

    // Q4
    writeln!(out, "\n4. alice's temporary vault#admin: when did it hold, and did it expire?")?;
    let timeline = index.timeline("alice", AsOf::Head)?;
    for s in timeline.access.iter().filter(|s| s.what == "vault#admin") {
        let to = s.to.map(|t| t.to_rfc3339()).unwrap_or_else(|| "still open".into());
        writeln!(out, "   vault#admin from {} to {to} ({})", s.from.to_rfc3339(), vias(&s.via))?;
    }
    let access = index.access("alice", t("2021-04-01"), AsOf::Head)?;
    let still = access.iter().any(|h| h.resource == "vault");
    writeln!(
        out,
        "   On 2021-04-01 it is {}: the grant expired at its expires_at.",
        if still { "still held" } else { "gone" }
    )?;

    // Q5
    let anomalies = index.anomalies(AsOf::Head)?;
    writeln!(out, "\n5. Events the fold found meaningless: {} (see `tenure anomalies`).", anomalies.len())?;
    let report = tenure_engine::verify(dir)?;
    writeln!(out, "   Integrity: {} events chained, head hash {}.", report.intact, report.head_hash)?;

    // Q6: the reports.
    writeln!(out, "\n6. The governance reports (`tenure report ...`):")?;
    let leavers = index.leavers(None, AsOf::Head, &store)?;
    if let Some(all) = &leavers.overall {
        writeln!(
            out,
            "   leavers: {} leaves; deprovisioning lag median {}, p90 {}, worst {}.",
            all.count,
            crate::report::span(all.median_seconds),
            crate::report::span(all.p90_seconds),
            crate::report::span(all.worst_seconds)
        )?;
    }
    if let Some(bob) = leavers.rows.iter().find(|r| r.identity == "bob") {
        let believed: Vec<String> =
            bob.believed_after.iter().map(|b| format!("{}#{}", b.resource, b.permission)).collect();
        writeln!(
            out,
            "   bob's leave was recorded {} late; until then the records still showed {}.",
            crate::report::span(bob.lag_seconds),
            if believed.is_empty() { "nothing".to_string() } else { believed.join(", ") }
        )?;
    }
    let nhi = index.nhi(now, AsOf::Head, 90 * 86_400_000_000, 365 * 86_400_000_000)?;
    writeln!(
        out,
        "   non-human identities on 2022-06-01: {} services whose owner is not active, {} credential findings.",
        nhi.services.len(),
        nhi.credentials.len()
    )?;

    writeln!(out, "\nAsk your own questions:")?;
    let d = dir.display();
    let t = command_name();
    writeln!(out, "  {t} --data {d} access alice --at 2021-03-15")?;
    writeln!(out, "  {t} --data {d} who payroll-db --during 2021-01-01..2022-12-31")?;
    writeln!(out, "  {t} --data {d} access bob --at 2022-04-15 --as-of {}", late_leave.saturating_sub(1))?;
    writeln!(out, "  {t} --data {d} timeline bob")?;
    writeln!(out, "  {t} --data {d} show ci-bot --at 2022-06-01")?;
    writeln!(out, "  {t} --data {d} report leavers --from 2022-01-01 --to 2023-01-01")?;
    writeln!(out, "  {t} --data {d} report nhi --at 2022-06-01")?;
    writeln!(out, "  {t} --data {d} report access --resource payroll-db --at 2022-03-14")?;
    writeln!(out, "  {t} --data {d} timeline alice --svg alice.svg --html alice.html")?;
    writeln!(out, "  {t} --data {d} verify")?;
    if t != "tenure" {
        writeln!(out, "(`cargo install --path cli` puts `tenure` on your PATH.)")?;
    }
    Ok(())
}

/// How to call this binary so that a printed command works as printed: `tenure` when the
/// `tenure` on the PATH is this very binary, else its path (relative to the current
/// directory when inside it, as `target/release/tenure` after `cargo run`).
fn command_name() -> String {
    let Ok(me) = std::env::current_exe().and_then(|p| p.canonicalize()) else { return "tenure".into() };
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("tenure").canonicalize().is_ok_and(|p| p == me))
    });
    if on_path {
        return "tenure".into();
    }
    let cwd = std::env::current_dir().and_then(|c| c.canonicalize()).ok();
    match cwd.as_ref().and_then(|c| me.strip_prefix(c).ok()) {
        Some(rel) => rel.display().to_string(),
        None => me.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cast_parses() {
        for line in super::CAST {
            tenure_engine::NewEvent::from_json(line).unwrap();
        }
    }
}
