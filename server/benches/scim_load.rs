//! SCIM load over loopback: N clients, each on its own keep-alive connection, running the
//! provisioning mix an identity provider sends (create, PUT update, PATCH deactivate,
//! group membership, GET by filter). Against `tenure serve` (in this process, over a
//! fresh store with its real group-committed fsyncs) or any SCIM server by `--url` (the
//! reference: scim2-server from PyPI, in memory). Afterwards, for Tenure, every
//! acknowledged write is checked to be in the log and `verify` to pass.
//!
//! With `--mix webhooks`, each client sends signed WorkOS Directory Sync deliveries to
//! `POST /webhooks/directory-sync` instead (a user created, updated, added to a group,
//! made inactive); `--mix scim,webhooks` runs both, one after the other, in one run.
//!
//! With `--followers N`, each client count runs twice, back to back: alone, then with N
//! followers reading `/events/stream` live (each event's delivery latency measured from
//! its `recorded_at` to its arrival, on the same clock).
//!
//! cargo bench -p tenure-server --bench scim_load -- [--clients 1,16,64] [--seconds 10]
//!     [--mix scim|webhooks|scim,webhooks] [--followers 100]
//!     [--url http://127.0.0.1:8080/scim/v2 --token T]

use serde_json::{json, Value};

/// As the `tenure` binary, which serves with mimalloc (docs/decisions.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Args {
    clients: Vec<usize>,
    seconds: u64,
    url: Option<String>,
    token: String,
    mixes: Vec<String>,
    /// SSE followers of `/events/stream` during a second run of each client count.
    followers: usize,
}

const SECRET: &str = "whsec_load_0123456789abcdef";

fn args() -> Args {
    let mut a = Args {
        clients: vec![1, 16, 64],
        seconds: 10,
        url: None,
        token: "load-token-0123456789".into(),
        mixes: vec!["scim".into()],
        followers: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--clients" => {
                a.clients = it.next().unwrap_or_default().split(',').filter_map(|c| c.parse().ok()).collect()
            }
            "--seconds" => a.seconds = it.next().and_then(|s| s.parse().ok()).unwrap_or(10),
            "--url" => a.url = it.next(),
            "--token" => a.token = it.next().unwrap_or_default(),
            "--mix" => a.mixes = it.next().unwrap_or_default().split(',').map(str::to_string).collect(),
            "--followers" => a.followers = it.next().and_then(|s| s.parse().ok()).unwrap_or(0),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    host: String,
    prefix: String,
    token: String,
    /// The server said `Connection: close` (a server without keep-alive): reconnect.
    closed: bool,
}

async fn connect(host: &str) -> (BufReader<tokio::net::tcp::OwnedReadHalf>, tokio::net::tcp::OwnedWriteHalf) {
    let stream = loop {
        match TcpStream::connect(host).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    stream.set_nodelay(true).ok();
    let (r, w) = stream.into_split();
    (BufReader::new(r), w)
}

impl Conn {
    async fn open(url: &str, token: &str) -> Conn {
        let rest = url.trim_start_matches("http://");
        let (host, prefix) = rest.split_once('/').map_or((rest, String::new()), |(h, p)| (h, format!("/{p}")));
        let (reader, writer) = connect(host).await;
        Conn { reader, writer, host: host.into(), prefix, token: token.into(), closed: false }
    }

    /// One request; a connection error is status 0 (counted as failed) and a new
    /// connection next time.
    async fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        self.call_with(method, path, body.as_deref(), "").await
    }

    /// [`Conn::call`] with a body as text and extra header lines (each ending in CRLF).
    async fn call_with(&mut self, method: &str, path: &str, body: Option<&str>, extra: &str) -> (u16, Value) {
        if self.closed {
            match TcpStream::connect(&self.host).await {
                Ok(stream) => {
                    stream.set_nodelay(true).ok();
                    let (r, w) = stream.into_split();
                    (self.reader, self.writer) = (BufReader::new(r), w);
                    self.closed = false;
                }
                Err(_) => return (0, Value::Null),
            }
        }
        match self.exchange(method, path, body, extra).await {
            Ok(answer) => answer,
            Err(_) => {
                self.closed = true;
                (0, Value::Null)
            }
        }
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        extra: &str,
    ) -> std::io::Result<(u16, Value)> {
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/scim+json\r\n{extra}Content-Length: {}\r\n\r\n",
            self.prefix,
            self.host,
            self.token,
            body.len()
        );
        self.writer.write_all(head.as_bytes()).await?;
        self.writer.write_all(body.as_bytes()).await?;
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        // An HTTP/1.0 answer closes the connection unless it says otherwise.
        self.closed = line.starts_with("HTTP/1.0");
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
                    self.closed = true;
                }
            }
        }
        let mut buf = vec![0; length];
        self.reader.read_exact(&mut buf).await?;
        Ok((status, serde_json::from_slice(&buf).unwrap_or(Value::Null)))
    }
}

#[derive(Default)]
struct Tally {
    writes: Vec<u32>,
    reads: Vec<u32>,
    failed: u64,
    /// Events the acknowledged writes must have appended.
    events: u64,
}

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn client(url: String, token: String, id: usize, run: String, until: Instant) -> Tally {
    let mut c = Conn::open(&url, &token).await;
    let mut t = Tally::default();
    let timed = |t0: Instant| t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
    let (status, group) = c
        .call("POST", "/Groups", Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("load-{run}-{id}")})))
        .await;
    if status != 201 {
        t.failed += 1;
        return t;
    }
    t.events += 1;
    let gid = group["id"].as_str().unwrap_or_default().to_string();
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        let name = format!("u{run}-{id}-{i}@example.com");
        let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
            "name": {"givenName": "Load", "familyName": format!("{i}")}, "active": true,
            "emails": [{"primary": true, "type": "work", "value": name}]});
        let t0 = Instant::now();
        let (s, created) = c.call("POST", "/Users", Some(&user)).await;
        t.writes.push(timed(t0));
        if s != 201 {
            t.failed += 1;
            continue;
        }
        t.events += 1;
        let uid = created["id"].as_str().unwrap_or_default().to_string();
        let mut put = user.clone();
        put["title"] = json!("Analyst");
        let t0 = Instant::now();
        let (s, _) = c.call("PUT", &format!("/Users/{uid}"), Some(&put)).await;
        t.writes.push(timed(t0));
        t.failed += u64::from(s != 200);
        t.events += u64::from(s == 200);
        let member =
            json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
        let t0 = Instant::now();
        let (s, _) = c.call("PATCH", &format!("/Groups/{gid}"), Some(&member)).await;
        t.writes.push(timed(t0));
        // RFC 7644 §3.5.2: a PATCH answers 200 with the resource, or 204.
        let patched = s == 200 || s == 204;
        t.failed += u64::from(!patched);
        t.events += u64::from(patched);
        let t0 = Instant::now();
        let (s, found) = c.call("GET", &format!("/Users?filter=userName%20eq%20%22{name}%22"), None).await;
        t.reads.push(timed(t0));
        t.failed += u64::from(s != 200 || found["totalResults"] != 1);
        let off = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": false}}]});
        let t0 = Instant::now();
        let (s, _) = c.call("PATCH", &format!("/Users/{uid}"), Some(&off)).await;
        t.writes.push(timed(t0));
        let patched = s == 200 || s == 204;
        t.failed += u64::from(!patched);
        // Deactivating a group member ends nothing in SCIM; in the log it is one event.
        t.events += u64::from(patched);
        let t0 = Instant::now();
        let (s, _) = c.call("GET", &format!("/Users/{uid}"), None).await;
        t.reads.push(timed(t0));
        t.failed += u64::from(s != 200);
    }
    t
}

/// One delivery, signed now; its events counted from the answer's positions.
async fn deliver(c: &mut Conn, t: &mut Tally, event: &str, id: String, data: Value) {
    let now = tenure_engine::Timestamp::now();
    let body = json!({"event": event, "id": id, "data": data, "created_at": now.to_rfc3339()}).to_string();
    let secret = tenure_server::webhooks::Secret::new(SECRET);
    let header = tenure_server::webhooks::sign(&secret, now.as_micros() / 1000, body.as_bytes());
    let t0 = Instant::now();
    let (status, answer) =
        c.call_with("POST", "/webhooks/directory-sync", Some(&body), &format!("WorkOS-Signature: {header}\r\n")).await;
    t.writes.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
    match (status, answer["positions"].as_array()) {
        (200, Some(p)) => t.events += p[1].as_u64().unwrap_or(0) + 1 - p[0].as_u64().unwrap_or(1),
        _ => t.failed += 1,
    }
}

/// The webhook mix: per iteration a user created, updated, added to the client's group,
/// and made inactive, each a signed delivery.
async fn webhook_client(root: String, id: usize, run: String, until: Instant) -> Tally {
    let mut c = Conn::open(&root, "").await;
    let mut t = Tally::default();
    let group = json!({"object": "directory_group", "id": format!("g-{run}-{id}"), "directory_id": "directory_load",
                       "name": format!("load {run} {id}"), "idp_id": "x"});
    deliver(&mut c, &mut t, "dsync.group.created", format!("e-{run}-{id}-g"), group.clone()).await;
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        let uid = format!("u-{run}-{id}-{i}");
        let mut user = json!({"object": "directory_user", "id": uid, "directory_id": "directory_load",
            "email": format!("{uid}@example.com"), "first_name": "Load", "last_name": format!("{i}"),
            "state": "active", "custom_attributes": {"department": "Sales"}, "role": {"slug": "member"}});
        deliver(&mut c, &mut t, "dsync.user.created", format!("e-{uid}-c"), user.clone()).await;
        user["custom_attributes"]["job_title"] = json!("Analyst");
        deliver(&mut c, &mut t, "dsync.user.updated", format!("e-{uid}-u"), user.clone()).await;
        let member = json!({"directory_id": "directory_load", "user": user, "group": group});
        deliver(&mut c, &mut t, "dsync.group.user_added", format!("e-{uid}-m"), member).await;
        user["state"] = json!("inactive");
        deliver(&mut c, &mut t, "dsync.user.updated", format!("e-{uid}-i"), user).await;
    }
    t
}

/// A live follower of `/events/stream` after `after` until `until`: the delivery latency of
/// each event (now minus its `recorded_at`, µs). HTTP/1.0, so the stream is not chunked.
async fn follower(root: String, token: String, after: u64, until: Instant) -> Vec<u32> {
    let host = root.trim_start_matches("http://").to_string();
    let (mut reader, mut writer) = connect(&host).await;
    let request =
        format!("GET /events/stream?after={after} HTTP/1.0\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n");
    let mut latencies = Vec::new();
    if writer.write_all(request.as_bytes()).await.is_err() {
        return latencies;
    }
    let mut line = String::new();
    loop {
        line.clear();
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, reader.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return latencies,
        }
        let Some(data) = line.strip_prefix("data: ") else { continue };
        let Some(at) = data.split("\"recorded_at\":\"").nth(1).and_then(|r| r.split('"').next()) else { continue };
        if let Ok(t) = tenure_engine::Timestamp::parse_rfc3339(at) {
            let lag = tenure_engine::Timestamp::now().as_micros() - t.as_micros();
            latencies.push(lag.clamp(0, i64::from(u32::MAX)) as u32);
        }
    }
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let store_dir = dir.path().join("store");
    let (url, app) = match &a.url {
        Some(u) => (u.clone(), None),
        None => {
            let tokens = vec![tenure_server::Token::new("load", "load", &a.token)];
            let (url, app) = rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let addr = listener.local_addr().expect("addr");
                let store = tenure_engine::Store::open(&store_dir).expect("store");
                let hooks = tenure_server::webhooks::Config::new(vec![tenure_server::webhooks::Secret::new(SECRET)]);
                let base = format!("http://{addr}/scim/v2");
                let app = Arc::new(tenure_server::App::open_with(store, tokens, base, Some(hooks)).expect("app"));
                let serving = app.clone();
                tokio::spawn(async move { tenure_server::serve(serving, listener, std::future::pending()).await });
                (format!("http://{addr}/scim/v2"), app)
            });
            (url, Some(app))
        }
    };
    let target = if a.url.is_some() { url.clone() } else { "tenure serve (in process, fsync on)".into() };
    let total_events = AtomicU64::new(0);
    // Names unique to this process, so that runs against a server that keeps its users
    // (the reference) do not collide with an earlier run's.
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    for mix in &a.mixes {
        let webhooks = mix == "webhooks";
        if webhooks && a.url.is_some() {
            println!("the webhook mix runs against tenure serve only");
            continue;
        }
        if webhooks {
            println!("target: {target}; {} s per run; webhook mix per iteration: signed dsync.user.created, dsync.user.updated, dsync.group.user_added, dsync.user.updated (inactive)", a.seconds);
        } else {
            println!("target: {target}; {} s per run; mix per iteration: POST user, PUT user, PATCH group member, GET filter, PATCH deactivate, GET user", a.seconds);
        }
        println!(
            "{:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "clients", "req/s", "writes/s", "w p50 ms", "w p99 ms", "r p50 ms", "r p99 ms", "failed"
        );
        let root = url.trim_end_matches("/scim/v2").to_string();
        let runs: Vec<(usize, usize)> = a
            .clients
            .iter()
            .flat_map(|&n| if a.followers > 0 && app.is_some() { vec![(n, 0), (n, a.followers)] } else { vec![(n, 0)] })
            .collect();
        for (run, &(n, followers)) in runs.iter().enumerate() {
            let until = Instant::now() + Duration::from_secs(a.seconds);
            let started = Instant::now();
            let after = app.as_ref().map_or(0, |app| app.store.head().get());
            let watching: Vec<_> = (0..followers)
                .map(|_| rt.spawn(follower(root.clone(), a.token.clone(), after, until + Duration::from_secs(1))))
                .collect();
            let tallies: Vec<Tally> = rt.block_on(async {
                let handles: Vec<_> = (0..n)
                    .map(|i| {
                        let tag = format!("{nonce}-{mix}-{run}");
                        if webhooks {
                            tokio::spawn(webhook_client(root.clone(), i, tag, until))
                        } else {
                            tokio::spawn(client(url.clone(), a.token.clone(), i, tag, until))
                        }
                    })
                    .collect();
                let mut out = Vec::new();
                for h in handles {
                    out.push(h.await.expect("client"));
                }
                out
            });
            let secs = started.elapsed().as_secs_f64();
            let mut writes: Vec<u32> = tallies.iter().flat_map(|t| t.writes.iter().copied()).collect();
            let mut reads: Vec<u32> = tallies.iter().flat_map(|t| t.reads.iter().copied()).collect();
            writes.sort_unstable();
            reads.sort_unstable();
            let failed: u64 = tallies.iter().map(|t| t.failed).sum();
            total_events.fetch_add(tallies.iter().map(|t| t.events).sum(), Ordering::Relaxed);
            println!(
                "{n:>7} {:>9.0} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {failed:>7}",
                (writes.len() + reads.len()) as f64 / secs,
                writes.len() as f64 / secs,
                pct(&writes, 0.5),
                pct(&writes, 0.99),
                pct(&reads, 0.5),
                pct(&reads, 0.99),
            );
            if followers > 0 {
                let appended = app.as_ref().map_or(0, |app| app.store.head().get() - after);
                let mut lags: Vec<u32> = Vec::new();
                let mut short = 0;
                for w in watching {
                    let got = rt.block_on(w).unwrap_or_default();
                    short += usize::from((got.len() as u64) < appended);
                    lags.extend(got);
                }
                lags.sort_unstable();
                println!(
                    "        with {followers} SSE followers: {appended} events appended, {} delivered ({:.0}/s), \
                     delivery latency p50 {:.2} ms, p99 {:.2} ms, {short} followers short of the head",
                    lags.len(),
                    lags.len() as f64 / secs,
                    pct(&lags, 0.5),
                    pct(&lags, 0.99)
                );
            }
        }
    }
    if let Some(app) = app {
        let head = app.store.head().get();
        let expected = total_events.load(Ordering::Relaxed);
        // What the compactor left: the file other processes map, and the tail in memory.
        let file = tenure_projections::AccessIndex::open_file(&store_dir.join(tenure_projections::ACCESS_INDEX_FILE))
            .map_or(0, |f| f.head().get());
        let tail = app.index.read().map_or(0, |i| i.tail_len());
        println!("access index: the file at position {file} of {head}; {tail} events in the server's memory since it");
        drop(rt);
        app.store.close();
        let report = tenure_engine::verify(&store_dir).expect("verify");
        println!(
            "log: {head} events, {expected} acknowledged writes' events; verify: {} intact, first bad {:?}",
            report.intact, report.first_bad
        );
        assert_eq!(head, expected, "an acknowledged write is missing from the log (or an extra event is there)");
        assert!(report.first_bad.is_none());
    }
}
