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
    command.args(args).env_remove("TENURE_DATA").output().expect("the binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
