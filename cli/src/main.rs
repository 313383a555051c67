//! `tenure`: the command-line tool over Tenure's engine and projections.
//!
//! Exit codes: 0 success; 1 an I/O or storage failure; 2 a usage or input error
//! (bad flag, bad line, unknown identity); 3 `verify` found altered bytes.
#![forbid(unsafe_code)]

/// Decoding, folding and ingesting allocate many small strings; mimalloc does that about
/// twice as fast as the system allocator here (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod commands;
mod demo;
mod ingest;
mod output;
mod picture;
mod reconcile;
mod report;
mod serve;
mod sync;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tenure_engine::Timestamp;
use tenure_projections::AsOf;

/// Tenure: who had access to what, when, and why, as your records knew it.
///
/// Tenure keeps an append-only, hash-chained log of identity events (joiners, movers,
/// leavers, grants, groups, credentials) and answers audit questions for any past
/// instant, as known at any point of the log.
///
/// Start with `tenure demo`, then ask the demo store questions with `--data tenure-demo`.
#[derive(Parser, Debug)]
#[command(name = "tenure", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// Data directory of the store.
    ///
    /// Holds the event log (`events.log`), the access index (`access.index`) and other
    /// projections' snapshots (`projections/`). Created on the first write. Defaults to `$TENURE_DATA`, else
    /// `./tenure-data`.
    #[arg(long, global = true, env = "TENURE_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// How a query prints its answer.
#[derive(Args, Debug, Clone, Copy)]
pub struct Format {
    /// Print JSON instead of a table.
    ///
    /// The shapes are documented in docs/cli.md and are stable: scripts may rely on them.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (RFC 4180) instead of a table.
    ///
    /// One row per entitlement, holder or interval; reasons are written as
    /// `direct:GRANT` or `group:NAME:MEMBERSHIP:GRANT`, joined by `;`.
    #[arg(long)]
    pub csv: bool,
}

/// What `tenure review` does.
#[derive(Subcommand, Debug)]
pub enum ReviewAction {
    /// Append a decision for every current holder of a resource (or those named), one
    /// `access.reviewed` event per holder and permission. It changes no access: carry out
    /// a `revoke` with an `access.revoked` (or the end of the membership).
    Record {
        /// The resource reviewed.
        #[arg(long, value_name = "RESOURCE")]
        resource: String,
        /// Who decided (recorded as the reviewer and the events' actor).
        #[arg(long, value_name = "NAME")]
        reviewer: String,
        /// `keep` (certified) or `revoke`.
        #[arg(long, value_parser = ["keep", "revoke"])]
        decision: String,
        /// Only this holder.
        #[arg(long, value_name = "IDENTITY")]
        identity: Option<String>,
        /// Only this permission.
        #[arg(long, value_name = "PERMISSION")]
        permission: Option<String>,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
        /// When the decision was taken (default: now); the holders are those at this time.
        #[arg(long, value_name = "T", value_parser = parse_time)]
        at: Option<Timestamp>,
        /// Print the appended positions as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The reports of `tenure report`.
#[derive(Subcommand, Debug)]
pub enum Report {
    /// One row per leave: its lag, what the leaver held just before it, and what the
    /// records still showed held after it until the leave was recorded.
    ///
    /// The lag is recorded minus effective time (negative for a leave recorded ahead of
    /// its date); "believed after" is the access that, as known just before the leave
    /// was recorded, was held at some time between the effective leave and its
    /// recording. Summaries: count, median, p90 and worst lag, per source. With --json or
    /// --csv the rows are written as they are made, a few thousand in memory at a time
    /// (the JSON's summary comes after its rows).
    Leavers {
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
        #[command(flatten)]
        page: Page,
    },
    /// Services whose owner is not active (since when, and since when the records knew
    /// it), services without an owner, and credentials expired or not rotated.
    Nhi {
        /// The instant asked about (default: now).
        #[arg(long, value_name = "T", value_parser = parse_time)]
        at: Option<Timestamp>,
        /// A credential not issued or rotated within this long before T is listed
        /// (`90d`, `12h`, `2w`).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "90d")]
        max_age: i64,
        /// An active service with no lifecycle event for this long before T is dormant.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "365d")]
        dormant_after: i64,
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
        #[command(flatten)]
        page: Page,
    },
    /// Access review of a resource: every holder, how, since when, granted by whom, the
    /// latest review decision; and every `revoke` decision, carried out or not.
    ///
    /// Rows are flagged `never_reviewed`, `revoke_not_carried_out` (the latest decision
    /// is `revoke` and the access is still held), `owner_not_active` (a service whose
    /// owner is not active) or `held_past_expiry` (a direct grant ran out at its expiry
    /// during the holding and the access went on, through a group). Decisions are
    /// recorded with `tenure review record`.
    Access {
        /// The resource reviewed (every permission on it).
        #[arg(long, value_name = "RESOURCE")]
        resource: String,
        /// The instant asked about (default: now).
        #[arg(long, value_name = "T", value_parser = parse_time)]
        at: Option<Timestamp>,
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
        #[command(flatten)]
        page: Page,
    },
    /// Separation of duties over history: every interval in which someone held all the
    /// entitlements of a rule at once, with the grants behind each side, and whether the
    /// records showed it when it began.
    ///
    /// The policy is TOML: one `[[rule]]` per toxic combination, with a `name` and two or
    /// more `entitlements` as RESOURCE#PERMISSION:
    ///
    ///   [[rule]]
    ///   name = "create and approve payments"
    ///   entitlements = ["payments#create", "payments#approve"]
    Sod {
        /// The policy file.
        #[arg(long, value_name = "POLICY.toml")]
        policy: PathBuf,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
        #[command(flatten)]
        page: Page,
    },
    /// The anomalies (`tenure anomalies`) counted by kind and source, then each with its
    /// event's type, subject and times; `--from`/`--to` keep those effective in a window.
    Anomalies {
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
        #[command(flatten)]
        page: Page,
    },
    /// Event lag (recorded minus effective time) per source and type: count, median,
    /// p90 and worst.
    Lag {
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
        #[command(flatten)]
        page: Page,
    },
}

/// A window of effective time, either end open: `--from T1 --to T2`.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct Window {
    /// Only what is effective at or after T1 (for `sod`: overlaps that reach past it).
    #[arg(long, value_name = "T1", value_parser = parse_time)]
    pub from: Option<Timestamp>,
    /// Only what is effective before T2 (for `sod`: overlaps that begin before it).
    #[arg(long, value_name = "T2", value_parser = parse_time)]
    pub to: Option<Timestamp>,
}

/// A page for people: `--html FILE`.
#[derive(Args, Debug, Clone, Default)]
pub struct Page {
    /// Also write a self-contained HTML page (inline CSS and SVG, no network) of the
    /// answer to FILE: summary figures, a chart, the table.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// The knowledge point of a query.
#[derive(Args, Debug, Clone, Copy)]
pub struct Known {
    /// Answer as the log knew it at R: a position, an RFC 3339 time or a date.
    ///
    /// A position (`--as-of 5`) takes the events recorded up to and including it; a time
    /// (`--as-of 2025-03-14`) takes those recorded by then. Default: everything recorded.
    /// Retractions recorded after R are ignored, so this shows what an auditor would have
    /// been told on that day.
    #[arg(long = "as-of", value_name = "R", value_parser = parse_as_of)]
    pub as_of: Option<AsOf>,
}

/// The directory-sync webhook endpoint's settings.
#[derive(Args, Debug, Clone)]
pub struct WebhookArgs {
    /// Webhook secrets, one per line (several while one is rotated), also from
    /// TENURE_WEBHOOK_SECRET; with either, POST /webhooks/directory-sync is served.
    #[arg(long, value_name = "F")]
    webhook_secret_file: Option<PathBuf>,
    /// How far a delivery's signed time may be from now, either way, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    webhook_tolerance: u64,
    /// The source name the deliveries' events are recorded under.
    #[arg(long, value_name = "NAME", default_value = "workos")]
    webhook_source: String,
}

/// `tenure sync --from URL`.
#[derive(Args, Debug, Clone)]
pub struct FollowArgs {
    /// The events API to follow (its `/events` URL; a query of its own is kept).
    #[arg(long, value_name = "URL")]
    from: Option<String>,
    /// Keep following after catching up, asking again every --interval seconds, until
    /// SIGINT or SIGTERM (otherwise stop once caught up).
    #[arg(long)]
    follow: bool,
    /// Seconds between asks once caught up (with --follow).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    interval: f64,
    /// Events per page asked for (the API may give fewer).
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
    /// Consecutive failed asks (5xx, 429, cut bodies, refused connections) before giving up.
    #[arg(long, value_name = "N", default_value_t = 10)]
    max_retries: u32,
    /// What the API serves: `tenure` (another Tenure's log, replicated as it is) or
    /// `workos` (WorkOS Directory Sync events, mapped as the webhooks are).
    #[arg(long, value_name = "FORMAT", default_value = "tenure", value_parser = ["tenure", "workos"])]
    format: String,
    /// With --format workos: the source the events are recorded under (the webhooks'
    /// by default, so that an event had both ways is stored once).
    #[arg(long, value_name = "NAME", default_value = "workos")]
    source: String,
    /// With --format workos: start after this event id instead of the stored cursor
    /// (events already recorded are not stored again).
    #[arg(long, value_name = "CURSOR")]
    replay_from: Option<String>,
}

impl FollowArgs {
    /// The settings of `tenure serve --sync-from URL`: following, WorkOS format.
    pub fn following(url: &str, interval: f64, source: &str) -> FollowArgs {
        FollowArgs {
            from: Some(url.to_string()),
            follow: true,
            interval,
            limit: 100,
            max_retries: 10,
            format: "workos".into(),
            source: source.to_string(),
            replay_from: None,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum SyncAction {
    /// What each source has recorded, the consumers' cursors and lag, and the events kept
    /// as failed (with their errors), from the log alone.
    Status {
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the signature of the webhook delivery the event at POSITION came from.
    ///
    /// Reads the delivery the log keeps (the body as received and its WorkOS-Signature
    /// header) and checks the signature with the secrets of --webhook-secret-file or
    /// TENURE_WEBHOOK_SECRET. Exit 0 when one of them made it, 3 when none did. The
    /// timestamp is reported, not judged: the delivery is as old as it is.
    VerifyDelivery {
        /// A position of any event the delivery wrote.
        position: u64,
        /// Webhook secrets, one per line, also from TENURE_WEBHOOK_SECRET.
        #[arg(long, value_name = "F")]
        webhook_secret_file: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Append JSONL events from files (`-` for standard input).
    ///
    /// Each line is one event in the interchange form of docs/events.md. A bad line stops
    /// the ingest with its file, line, field and reason, and nothing of that file is stored
    /// (files of more than 1,048,576 events are stored in parts of that size, each whole or
    /// not at all). Events whose (source, source_event_id) is already stored are skipped
    /// and counted as duplicates, so an interrupted ingest can simply be run again.
    ///
    /// When the files leave the access index file 50,000 events or more behind the log,
    /// it is brought up to date before the command returns (said on stderr), so that the
    /// next query does not pay for it.
    Ingest {
        /// JSONL files to read, in order; `-` reads standard input.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Store the good lines and write each bad one, with its reason, to this file.
        ///
        /// Each line of REJECTS is a JSON object: {"file", "line", "error", "event"}, where
        /// "event" is the line as read.
        #[arg(long, value_name = "REJECTS")]
        skip_invalid: Option<PathBuf>,
        /// Start at this line of each file (to resume an ingest that stopped part way, as
        /// its error message says).
        #[arg(long, value_name = "LINE", default_value_t = 1)]
        from_line: usize,
        /// Print each file's summary as a JSON line: {"file", "appended", "first", "last",
        /// "duplicates", "conflicts", "rejected"}.
        #[arg(long)]
        json: bool,
    },
    /// The entitlements of an identity at a time, and why it had each.
    ///
    /// Each entitlement lists its reasons: a direct grant (the position of the grant
    /// event), or a group (the positions of the membership and of the group's grant).
    Access {
        /// The identity, as the source names it (`alice`, `ci-bot`), or a userName it had
        /// (as a SCIM directory gave it: any case, a past one too).
        identity: String,
        /// The instant asked about: an RFC 3339 time or a date (`2025-03-14` = midnight UTC).
        #[arg(long, value_name = "T", value_parser = parse_time)]
        at: Timestamp,
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
    },
    /// Who held an entitlement (`payroll-db#read`) or any permission on a resource.
    ///
    /// With `--at T`, the holders at that instant; with `--during T1..T2`, everyone who held
    /// it at some instant of the half-open window [T1, T2), with every reason seen.
    Who {
        /// `RESOURCE#PERMISSION`, or `RESOURCE` for any permission on it.
        #[arg(value_name = "RESOURCE[#PERMISSION]")]
        target: String,
        /// The instant asked about: an RFC 3339 time or a date.
        #[arg(long, value_name = "T", value_parser = parse_time, required_unless_present = "during", conflicts_with = "during")]
        at: Option<Timestamp>,
        /// A half-open window `T1..T2` (times or dates).
        #[arg(long, value_name = "T1..T2", value_parser = parse_window)]
        during: Option<(Timestamp, Timestamp)>,
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
    },
    /// The history of an identity: status, grants, memberships and effective access.
    ///
    /// Intervals are half-open [from, to), oldest first, each with the positions of the
    /// events that opened and closed it (`-` when it is still open or ended by expiry).
    Timeline {
        /// The identity, as the source names it, or a userName it had.
        identity: String,
        /// Also draw it as an SVG Gantt chart to FILE: status, memberships, grants and
        /// access on one time axis, leaves and expiries marked, and hatched or outlined
        /// the windows in which the records said something later corrected.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
        #[command(flatten)]
        page: Page,
    },
    /// What the records said about an identity at a time.
    ///
    /// State, kind, attributes, owner (for a service), and the services it owned then.
    Show {
        /// The identity, as the source names it, or a userName it had.
        identity: String,
        /// The instant asked about: an RFC 3339 time or a date.
        #[arg(long, value_name = "T", value_parser = parse_time)]
        at: Timestamp,
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
    },
    /// Access gained and lost between two instants, for one identity or everyone.
    Diff {
        /// The earlier instant.
        #[arg(long, value_name = "T1", value_parser = parse_time)]
        from: Timestamp,
        /// The later instant.
        #[arg(long, value_name = "T2", value_parser = parse_time)]
        to: Timestamp,
        /// Only this identity (default: the whole organisation).
        #[arg(long, value_name = "I")]
        identity: Option<String>,
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
    },
    /// The raw events, as recorded (JSON lines with position and recorded_at).
    ///
    /// With `--identity` or `--group`, only the events that name it, found through the
    /// log's secondary index.
    Log {
        /// Only events that name this identity (as subject, member or owner).
        #[arg(long, value_name = "I", conflicts_with = "group")]
        identity: Option<String>,
        /// Only events that name this group.
        #[arg(long, value_name = "G")]
        group: Option<String>,
        /// Start at this position.
        #[arg(long, value_name = "POS", default_value_t = 1)]
        from: u64,
        /// Stop after this many events.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// JSON lines, one event per line (the only form of this stream; accepted so that
        /// every command takes `--json`). `ingest` reads them back.
        #[arg(long)]
        json: bool,
    },
    /// Governance reports: leaver compliance, non-human identities, event lag.
    ///
    /// Each is a query like the others (docs/semantics.md, "Reports"): at an effective
    /// time, as known at R (`--as-of`), every row with the positions behind it.
    Report {
        #[command(subcommand)]
        report: Report,
    },
    /// Compare a directory snapshot with what Tenure says at the snapshot's time.
    ///
    /// The snapshot is a SCIM ListResponse of Users and/or Groups as Okta or Entra ID
    /// return it (several files, or an array of ListResponses, are joined), or a CSV with
    /// the header `identity,active,department,groups` (groups separated by `;`; other
    /// columns are compared as attributes of that name). Users match Tenure identities by
    /// `userName` (against the identities' `userName` attribute, without regard to case),
    /// then by `userName`, `externalId` or `id` as the identity's name. Rows: orphaned
    /// (active here, absent there), disabled_there, missing, inactive_here, attribute,
    /// membership_missing, membership_extra; the drift is their number. Dormant accounts
    /// (active, no lifecycle event within --dormant-after) are listed apart. The snapshot
    /// is read as a stream, once: its resources are made into users on every core, the
    /// memberships noted and the users kept in a temporary file, so that a bad resource
    /// is told, with its line, before anything is compared; the users are then compared
    /// from that file. The rows are written as they are made, in every form (the table's
    /// totals and dormant accounts follow its rows; --html keeps every row for its page);
    /// --emit-corrections is written whole or not at all.
    Reconcile {
        /// The snapshot files (SCIM JSON or CSV).
        #[arg(long = "directory", value_name = "SNAPSHOT", required = true)]
        directory: Vec<PathBuf>,
        /// When the snapshot was taken (default: now).
        #[arg(long, value_name = "T", value_parser = parse_time)]
        at: Option<Timestamp>,
        /// Compare service identities too (directories often hold only people).
        #[arg(long)]
        include_services: bool,
        /// An active identity with no lifecycle event for this long before T is dormant.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "90d")]
        dormant_after: i64,
        /// Write the events that would bring Tenure in line (JSONL, effective at T, source
        /// `reconcile`) to this file, for a person to review and `tenure ingest`.
        #[arg(long, value_name = "FILE")]
        emit_corrections: Option<PathBuf>,
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
        #[command(flatten)]
        page: Page,
    },
    /// Record access review decisions (`access.reviewed` events).
    Review {
        #[command(subcommand)]
        action: ReviewAction,
    },
    /// Events the fold found meaningless (a grant to a leaver, a double join, ...).
    Anomalies {
        #[command(flatten)]
        known: Known,
        #[command(flatten)]
        format: Format,
    },
    /// Check the integrity chain: exit 0 when intact, 3 naming the first altered position.
    ///
    /// Recomputes every record's SHA-256 leaf hash and the chain, and prints the head hash:
    /// write it down, and a later `verify` that prints the same hash proves that nothing
    /// up to that position changed since. Tells damage to acknowledged records (exit 3) from
    /// an unacknowledged torn tail left by a crash or a full disk (exit 0, reported), and
    /// checks the derived files byte for byte, rebuilding any that does not read back.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show, then with --apply carry out, the cut of a damaged log (the operator's action).
    ///
    /// Checks the whole log (framing, checksums, chain) and finds the first record that
    /// does not verify. Without --apply it only says what it would do (exit 3 when there is
    /// damage). With --apply it moves the bytes from the start of that record's batch to the
    /// end of the log into a file of quarantine/, records the repair in
    /// quarantine/repairs.log, names the new head in the head marker, and removes the derived
    /// files (rebuilt by the next command). Refused while a writer runs. Nothing else ever
    /// removes bytes from the log.
    Repair {
        /// Carry the repair out (otherwise only say what it would do).
        #[arg(long)]
        apply: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build a realistic synthetic organisation and answer audit questions about it.
    ///
    /// Writes the store to `--data` (default for this command: `./tenure-demo`), so the
    /// questions can be asked again by hand. Running it again stores nothing twice.
    Demo {
        /// People and service accounts over the whole history.
        #[arg(long, default_value_t = 2000)]
        identities: usize,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// For bash: `tenure completions bash > ~/.local/share/bash-completion/completions/tenure`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), made from the same help text: `tenure man > tenure.1`.
    Man,
    /// Serve the store as a SCIM 2.0 provisioning target (Okta, Entra ID, ...).
    ///
    /// Every provisioning call becomes events of the log, durable before the response
    /// (docs/scim.md has the mapping). Holds the store's writer lock; queries from other
    /// processes still answer, and see every acknowledged event. One log line per request
    /// on stderr; SIGINT or SIGTERM stops it after answering the requests in flight.
    Serve {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Bearer tokens, one per line: `TOKEN`, or `NAME SOURCE TOKEN` (NAME becomes the
        /// events' actor, SOURCE their source), or `NAME audit TOKEN` for a read-only token
        /// of the audit API (/v1; also TENURE_AUDIT_TOKEN). Several lines let a token be
        /// rotated without downtime.
        #[arg(long, value_name = "F")]
        token_file: Option<PathBuf>,
        /// The URL clients reach this server by, for `meta.location` (default:
        /// `http://ADDR/scim/v2`).
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
        #[command(flatten)]
        webhooks: WebhookArgs,
        /// Follow this WorkOS events API while serving (as `tenure sync --format workos
        /// --follow` would, into this store; token from TENURE_SYNC_TOKEN; its events under
        /// --webhook-source, so one had both ways is stored once).
        #[arg(long, value_name = "URL")]
        sync_from: Option<String>,
        /// Seconds between asks of --sync-from once caught up.
        #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
        sync_interval: f64,
        /// Outbound webhooks: `NAME URL SECRET [ATTEMPTS]` per line; each appended event is
        /// POSTed to each URL in log order, signed (Tenure-Signature, as deliveries in are),
        /// retried, and after ATTEMPTS (8) kept in DATA/sync/dead-NAME.jsonl.
        #[arg(long, value_name = "F")]
        subscribers: Option<PathBuf>,
    },
    /// Follow an events API into this store (`--from URL`), or see or check what it holds.
    ///
    /// `tenure sync --from http://HOST:8080/events` follows another Tenure's events API and
    /// ends with the same log: the same events at the same positions, the same chain head
    /// (each page appended as one batch with the ids and record times of the source). The
    /// cursor is this store's head, stored with the events in the same atomic append, so a
    /// crash at any moment neither skips nor doubles an event; run it again to resume.
    /// Retries 429 and 5xx answers, a refused connection and a cut body with backoff and
    /// jitter (honouring Retry-After); a 4xx is an error (exit 1). The bearer token comes
    /// from TENURE_SYNC_TOKEN, never the command line. With `--format workos` it follows a
    /// WorkOS events API instead, mapping each event as the webhooks do (its cursor is the
    /// last event id stored, kept in the log with the events; an event that cannot be
    /// applied is kept with its error in sync/ and tried again on every run). docs/sync.md
    /// has the details.
    #[command(args_conflicts_with_subcommands = true)]
    Sync {
        #[command(flatten)]
        follow: FollowArgs,
        #[command(subcommand)]
        action: Option<SyncAction>,
    },
    /// Write a synthetic organisation's events as JSONL (for `ingest` or other tools).
    ///
    /// Deterministic: the same arguments give the same file on every machine.
    Generate {
        /// People and service accounts over the whole history (about 10% services).
        #[arg(long, default_value_t = 1000)]
        identities: usize,
        /// Years of history.
        #[arg(long, default_value_t = 3)]
        years: u32,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub use tenure_projections::answers::{parse_as_of, parse_duration, parse_time, parse_window};

/// An error for the user: one sentence, and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: i32,
}

impl CliError {
    pub fn input(message: impl Into<String>) -> Self {
        CliError { message: message.into(), code: 2 }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        CliError { message: message.into(), code: 1 }
    }
}

impl From<tenure_engine::Error> for CliError {
    fn from(e: tenure_engine::Error) -> Self {
        use tenure_engine::Error::*;
        let code = match e {
            Rejected { .. } | Conflict { .. } | BatchTooLarge { .. } | NoSuchPosition(_) => 2,
            Corrupt { .. } | NotALog { .. } => 3,
            _ => 1,
        };
        CliError { message: e.to_string(), code }
    }
}

impl From<tenure_projections::ProjectionError> for CliError {
    fn from(e: tenure_projections::ProjectionError) -> Self {
        match e {
            tenure_projections::ProjectionError::Engine(e) => e.into(),
            other => CliError::failure(other.to_string()),
        }
    }
}

impl From<tenure_projections::QueryError> for CliError {
    fn from(e: tenure_projections::QueryError) -> Self {
        match e {
            // Met again after a rebuild from the log: something keeps damaging it.
            // An integrity failure, like the log's: exit 3.
            tenure_projections::QueryError::Corrupt(_) => CliError { message: e.to_string(), code: 3 },
            _ => CliError::input(e.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            // A closed pipe (`tenure log | head`) is where the reader stopped: not an error.
            std::io::ErrorKind::BrokenPipe => CliError { message: String::new(), code: 0 },
            _ => CliError::failure(e.to_string()),
        }
    }
}

impl From<csv::Error> for CliError {
    fn from(e: csv::Error) -> Self {
        match e.is_io_error() {
            // A write that failed (a closed pipe among them) is told as the I/O error it is.
            true => match e.into_kind() {
                csv::ErrorKind::Io(e) => e.into(),
                other => CliError::failure(format!("{other:?}")),
            },
            false => CliError::failure(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        match e.io_error_kind() {
            Some(kind) => std::io::Error::new(kind, e.to_string()).into(),
            None => CliError::failure(e.to_string()),
        }
    }
}

fn main() {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // `--data` is global (it may stand before or after the command), but these commands
    // touch no store: a `--data` typed for them is a mistake worth saying. (From
    // `$TENURE_DATA` it is just the environment, and ignored.)
    let typed_data = matches.value_source("data") == Some(clap::parser::ValueSource::CommandLine);
    let storeless = match &cli.command {
        Command::Generate { .. } => Some("generate writes to --out or standard output"),
        Command::Completions { .. } | Command::Man => Some("it prints to standard output"),
        _ => None,
    };
    if let (true, Some(why)) = (typed_data, storeless) {
        eprintln!("tenure: --data is not used here: {why}, and no store is read or written");
        std::process::exit(2);
    }
    let result = commands::run(cli);
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) if e.code == 0 => std::process::exit(0),
        Err(e) => {
            eprintln!("tenure: {}", e.message);
            std::process::exit(e.code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{} --{id} has no help", cmd.get_name());
            }
            for sub in cmd.get_subcommands() {
                assert!(sub.get_about().is_some(), "{} has no about", sub.get_name());
                walk(sub);
            }
        }
        walk(&Cli::command());
    }

    #[test]
    fn times_and_knowledge_points_parse() {
        assert!(parse_time("2025-03-14").is_ok());
        assert!(parse_time("2025-03-14T10:00:00+02:00").is_ok());
        assert_eq!(parse_time("14/03/2025").unwrap_err(), "'14/03/2025' is not an RFC 3339 time or a YYYY-MM-DD date");
        assert_eq!(parse_as_of("5").unwrap(), AsOf::Position(5));
        assert!(matches!(parse_as_of("2025-03-14").unwrap(), AsOf::Recorded(_)));
        assert!(parse_window("2024-01-01..2024-02-01").is_ok());
        assert!(parse_window("2024-02-01..2024-01-01").unwrap_err().contains("empty"));
        assert!(parse_window("2024-02-01").is_err());
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "tenure",
            "--data",
            "d",
            "who",
            "db#read",
            "--during",
            "2024-01-01..2024-02-01",
            "--as-of",
            "7",
            "--json",
        ])
        .unwrap();
        match cli.command {
            Command::Who { target, during, at, known, format } => {
                assert_eq!(target, "db#read");
                assert!(during.is_some() && at.is_none());
                assert_eq!(known.as_of, Some(AsOf::Position(7)));
                assert!(format.json && !format.csv);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["tenure", "who", "db"]).is_err(), "--at or --during is required");
        assert!(Cli::try_parse_from(["tenure", "access", "a", "--at", "2024-01-01", "--json", "--csv"]).is_err());
    }
}
