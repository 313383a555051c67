//! `tenure serve`: the tokens, the runtime and the log lines around `tenure_server::serve`.

use crate::CliError;
use std::path::Path;
use std::sync::Arc;

fn load_tokens(token_file: Option<&Path>) -> Result<Vec<tenure_server::Token>, CliError> {
    let mut tokens = Vec::new();
    if let Some(path) = token_file {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CliError::input(format!("{name}: {e}")))?;
        tokens = tenure_server::parse_tokens(&name, &text).map_err(|e| CliError::input(e.to_string()))?;
    }
    if let Ok(secret) = std::env::var("TENURE_SCIM_TOKEN") {
        let secret = secret.trim();
        if secret.len() < 16 {
            return Err(CliError::input("TENURE_SCIM_TOKEN: a token of fewer than 16 characters is too easy to guess"));
        }
        tokens.push(tenure_server::Token::new("scim", "scim", secret));
    }
    if let Ok(secret) = std::env::var("TENURE_AUDIT_TOKEN") {
        let secret = secret.trim();
        if secret.len() < 16 {
            return Err(CliError::input(
                "TENURE_AUDIT_TOKEN: a token of fewer than 16 characters is too easy to guess",
            ));
        }
        tokens.push(tenure_server::Token::new("audit", "audit", secret).auditing());
    }
    if tokens.is_empty() {
        return Err(CliError::input("no token: give --token-file F or set TENURE_SCIM_TOKEN"));
    }
    Ok(tokens)
}

/// The webhook secrets of `--webhook-secret-file` and `TENURE_WEBHOOK_SECRET` (none: the
/// endpoint is not served). Errors name the file and line, never a secret.
pub fn load_secrets(file: Option<&Path>) -> Result<Vec<tenure_server::webhooks::Secret>, CliError> {
    let mut secrets = Vec::new();
    if let Some(path) = file {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CliError::input(format!("{name}: {e}")))?;
        secrets = tenure_server::webhooks::parse_secrets(&name, &text).map_err(CliError::input)?;
    }
    if let Ok(secret) = std::env::var("TENURE_WEBHOOK_SECRET") {
        let secret = secret.trim();
        if secret.len() < tenure_server::webhooks::MIN_SECRET {
            return Err(CliError::input(format!(
                "TENURE_WEBHOOK_SECRET: a secret of fewer than {} characters is too easy to guess",
                tenure_server::webhooks::MIN_SECRET
            )));
        }
        secrets.push(tenure_server::webhooks::Secret::new(secret));
    }
    Ok(secrets)
}

/// What `tenure serve` was asked to do besides listening.
pub struct Serving {
    pub token_file: Option<std::path::PathBuf>,
    pub base_url: Option<String>,
    pub webhooks: crate::WebhookArgs,
    /// `--sync-from URL` and its interval.
    pub sync: Option<(String, f64)>,
    pub subscribers: Option<std::path::PathBuf>,
}

pub fn run(data: &Path, listen: &str, serving: Serving) -> Result<i32, CliError> {
    let Serving { token_file, base_url, webhooks, sync, subscribers } = serving;
    let webhooks = &webhooks;
    crate::commands::refuse_a_file(data)?;
    let tokens = load_tokens(token_file.as_deref())?;
    let subscribers = match &subscribers {
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| CliError::input(format!("{name}: {e}")))?;
            tenure_server::outbound::parse_subscribers(&name, &text).map_err(CliError::input)?
        }
        None => Vec::new(),
    };
    let secrets = load_secrets(webhooks.webhook_secret_file.as_deref())?;
    if let Some((_, interval)) = &sync {
        if !(interval.is_finite() && *interval > 0.0) {
            return Err(CliError::input("--sync-interval: a positive number of seconds"));
        }
    }
    let source = webhooks.webhook_source.clone();
    // With no secret the webhook endpoint answers 404; the consumer still needs the
    // source and the memory of what was delivered.
    let webhooks = (!secrets.is_empty() || sync.is_some()).then(|| tenure_server::webhooks::Config {
        secrets,
        tolerance: std::time::Duration::from_secs(webhooks.webhook_tolerance),
        source: source.clone(),
    });
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("starting the runtime: {e}")))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| CliError::failure(format!("listening on {listen}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| CliError::failure(e.to_string()))?;
        let base = base_url.unwrap_or_else(|| format!("http://{addr}/scim/v2"));
        let store = tenure_engine::Store::open(data)?;
        let serves_webhooks = webhooks.as_ref().is_some_and(|w| !w.secrets.is_empty());
        let consumer_config = webhooks.clone();
        let app =
            Arc::new(tenure_server::App::open_with(store, tokens, base.trim_end_matches('/').to_string(), webhooks)?);
        // The address actually bound (with `--listen 127.0.0.1:0`, the port the system
        // chose), on stdout, for scripts that start the server.
        say(&format!("listening on {addr}, SCIM base {}", app.base));
        if serves_webhooks {
            say(&format!("directory-sync webhooks at http://{addr}/webhooks/directory-sync"));
        }
        let consumer = match (sync, consumer_config) {
            (Some((url, interval)), Some(config)) => {
                say(&format!("following {url} (WorkOS events) into the log"));
                let failed = crate::sync::failed_path(data, &source);
                Some(tokio::spawn(follow_in_server(app.clone(), config, url, interval, failed)))
            }
            _ => None,
        };
        for s in subscribers {
            say(&format!("delivering each appended event to {} ({})", s.name, s.url));
            tokio::spawn(tenure_server::outbound::deliver(app.clone(), s));
        }
        tenure_server::serve(app.clone(), listener, tenure_server::shutdown_signal())
            .await
            .map_err(|e| CliError::failure(format!("serving: {e}")))?;
        if let Some(c) = consumer {
            c.abort();
        }
        // Every handler has returned; closing the store waits for the writer.
        app.store.close();
        Ok(0)
    })
}

/// `--sync-from`: the WorkOS consumer's loop in the server, into its own store. An error
/// (the API refusing the token, too many failed asks, the log refusing events) is logged
/// and the loop starts again after a pause; the server keeps serving.
async fn follow_in_server(
    app: Arc<tenure_server::App>,
    config: tenure_server::webhooks::Config,
    url: String,
    interval: f64,
    failed: std::path::PathBuf,
) {
    let token = std::env::var("TENURE_SYNC_TOKEN").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    let args = crate::FollowArgs::following(&url, interval, &config.source);
    loop {
        let mut done = crate::sync::Consumed::default();
        if let Err(e) = crate::sync::consume_workos(&app, &config, &args, &url, token.clone(), &failed, &mut done).await
        {
            tracing::error!(error = %e.message, "following the events API stopped; starting again in a minute");
        }
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }
}

/// A line on standard output for whoever started the server; one nobody reads any more
/// (a script that took the first line and closed the pipe) is no reason to stop serving.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
