//! What the binary's tests share: running `tenure` against a store, reading its output.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `tenure --data DATA ARGS...`, with no `TENURE_DATA` from the environment. The commands
/// that touch no store (`generate`, `completions`, `man`) refuse a `--data` and get none.
pub fn tenure(data: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenure"));
    if !matches!(args.first(), Some(&("generate" | "completions" | "man"))) {
        command.arg("--data").arg(data);
    }
    command.args(args).env_remove("TENURE_DATA").env_remove("TENURE_WEBHOOK_SECRET").output().expect("the binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `tenure --data DATA serve --listen 127.0.0.1:0 ARGS...` with `envs` (and none of the
/// token and secret variables from the test's own environment), its standard output
/// piped; the server and the first line it prints (`listening on ADDR, SCIM base URL`).
pub fn serve(data: &Path, args: &[&str], envs: &[(&str, &str)]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenure"));
    command.arg("--data").arg(data).args(["serve", "--listen", "127.0.0.1:0"]).args(args);
    for var in ["TENURE_DATA", "TENURE_SCIM_TOKEN", "TENURE_AUDIT_TOKEN", "TENURE_WEBHOOK_SECRET", "TENURE_SYNC_TOKEN"]
    {
        command.env_remove(var);
    }
    command.envs(envs.iter().copied());
    let mut server = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary runs");
    let mut first = String::new();
    let out = server.stdout.take().expect("piped");
    std::io::BufReader::new(out).read_line(&mut first).expect("the first line");
    (server, first)
}

/// The `http://ADDR` of a server's first line.
pub fn root_of(first_line: &str) -> String {
    format!("http://{}", first_line.split_whitespace().nth(2).unwrap_or_default().trim_end_matches(','))
}
