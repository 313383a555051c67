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
    if tokens.is_empty() {
        return Err(CliError::input("no token: give --token-file F or set TENURE_SCIM_TOKEN"));
    }
    Ok(tokens)
}

pub fn run(data: &Path, listen: &str, token_file: Option<&Path>, base_url: Option<String>) -> Result<i32, CliError> {
    crate::commands::refuse_a_file(data)?;
    let tokens = load_tokens(token_file)?;
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
        let app = Arc::new(tenure_server::App::open(store, tokens, base.trim_end_matches('/').to_string())?);
        // The address actually bound (with `--listen 127.0.0.1:0`, the port the system
        // chose), on stdout, for scripts that start the server.
        println!("listening on {addr}, SCIM base {}", app.base);
        tenure_server::serve(app.clone(), listener, tenure_server::shutdown_signal())
            .await
            .map_err(|e| CliError::failure(format!("serving: {e}")))?;
        // Every handler has returned; closing the store waits for the writer.
        app.store.close();
        Ok(0)
    })
}
