//! The top-level modules of the engine and of the projections form no cycle (a folder module counts as one): each
//! `crate::NAME` a module's code names is an edge, doc comments and comments aside.
//! `cargo test --test modules -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Module -> the modules its code names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = g.entry(top.clone()).or_default();
        // Unit tests (a `#[cfg(test)]` module at the end of a file) may use any layer.
        for line in text.lines().take_while(|l| *l != "#[cfg(test)]") {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + 7..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                // `crate::Name` (a re-export of lib.rs), a macro or a function is not a module.
                let next = rest[name.len()..].chars().next().unwrap_or(' ');
                if !name.is_empty() && name != top && !matches!(next, '!' | '(') {
                    edges.insert(name);
                }
            }
        }
    }
    g
}

fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys().find_map(|n| visit(n, g, &mut vec![], &mut done))
}

#[test]
fn the_projections_modules_form_no_cycle() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("projections/src"));
    for (m, to) in &g {
        println!("{m} -> {}", to.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    assert!(g.len() > 8, "the graph was not read");
    assert_eq!(cycle(&g), None, "a cycle between the projections' modules");
    // The leaves stay leaves.
    assert!(g["model"].is_empty() && g["error"].is_empty(), "{:?} {:?}", g["model"], g["error"]);
}

#[test]
fn the_engine_modules_form_no_cycle() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("engine/src"));
    for (m, to) in &g {
        println!("{m} -> {}", to.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    assert!(g.len() > 10, "the graph was not read");
    assert_eq!(cycle(&g), None, "a cycle between the engine's modules");
    // The check itself finds a cycle when there is one.
    let mut with_cycle = g.clone();
    with_cycle.entry("chain".into()).or_default().insert("log".into());
    assert!(cycle(&with_cycle).is_some());
}
