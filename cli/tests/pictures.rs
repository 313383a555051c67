//! The pictures: `tenure timeline --svg` parsed with a real SVG library (usvg, through
//! resvg), the bars' positions checked against the intervals they draw; `--html` pages
//! that need no network.

mod common;
use resvg::usvg;
use std::path::Path;

/// The organisation of `reports.rs` (Alice: active 2024-01-01 to her leave 2024-03-01;
/// db#read from 2024-01-02, vault#admin from 2024-01-03), plus a grant of vault#read on
/// 2024-01-10 entered in error and retracted.
const ORG: &str = r#"{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","data":{"identity":"alice","kind":"human","attributes":{}}}
{"type":"group.created","effective_at":"2024-01-01T00:00:00Z","data":{"group":"eng"}}
{"type":"group.access_granted","effective_at":"2024-01-01T00:00:00Z","data":{"group":"eng","entitlement":{"resource":"db","permission":"read"}}}
{"type":"group.member_added","effective_at":"2024-01-02T00:00:00Z","data":{"group":"eng","identity":"alice"}}
{"type":"access.granted","effective_at":"2024-01-03T00:00:00Z","data":{"identity":"alice","entitlement":{"resource":"vault","permission":"admin"},"expires_at":"2024-02-20T00:00:00Z"}}
{"type":"access.granted","effective_at":"2024-01-10T00:00:00Z","data":{"identity":"alice","entitlement":{"resource":"vault","permission":"read"}}}
{"type":"event.retracted","effective_at":"2024-01-11T00:00:00Z","data":{"position":6,"reason":"wrong person"}}
{"type":"identity.left","effective_at":"2024-03-01T00:00:00Z","data":{"identity":"alice"}}
"#;

fn tree(svg: &str) -> usvg::Tree {
    let mut options = usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    usvg::Tree::from_str(svg, &options).unwrap()
}

/// (left, right) of a node's box.
fn span(tree: &usvg::Tree, id: &str) -> (f32, f32) {
    let node = tree.node_by_id(id).unwrap_or_else(|| panic!("no node {id}"));
    let b = node.abs_bounding_box();
    (b.left(), b.right())
}

fn store(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("org.jsonl");
    std::fs::write(&file, ORG).unwrap();
    let data = dir.join("store");
    let o = common::tenure(&data, &["ingest", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    data
}

#[test]
fn the_timeline_svg_draws_each_interval_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let data = store(dir.path());
    let (svg_file, html_file) = (dir.path().join("alice.svg"), dir.path().join("alice.html"));
    let o = common::tenure(
        &data,
        &["timeline", "alice", "--svg", svg_file.to_str().unwrap(), "--html", html_file.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let svg = std::fs::read_to_string(&svg_file).unwrap();
    let tree = tree(&svg);
    // The active span is 60 days, 2024-01-01 to 2024-03-01: the scale of everything else.
    let (x0, x1) = span(&tree, "bar-status-0");
    let day = (x1 - x0) / 60.0;
    let near = |a: f32, b: f32, what: &str| assert!((a - b).abs() < 0.05, "{what}: {a} where {b} was due");
    // Access: db#read from 2024-01-02 to the leave; vault#admin from 2024-01-03 to its
    // expiry on 2024-02-20 (day 50).
    let (a, b) = span(&tree, "bar-access-0");
    near(a, x0 + day, "db#read starts on 2024-01-02");
    near(b, x1, "db#read ends at the leave");
    let (a, b) = span(&tree, "bar-access-1");
    near(a, x0 + 2.0 * day, "vault#admin starts on 2024-01-03");
    near(b, x0 + 50.0 * day, "vault#admin ends at its expiry");
    // The expiry is marked on the grant's row, at 2024-02-20; the leave is a line at the
    // end of the active span; the left span runs to the right edge.
    let (a, b) = span(&tree, "expiry-0");
    near((a + b) / 2.0, x0 + 50.0 * day, "the expiry's diamond");
    let (a, _) = span(&tree, "leave-1");
    near(a, x1, "the leave line");
    let (a, b) = span(&tree, "bar-status-1");
    near(a, x1, "the left span starts at the leave");
    assert!(b > 939.0, "open spans reach the right edge ({b})");
    // The retracted grant was what the records said from 2024-01-10 until the retraction
    // withdrew it: outlined on vault#read's row, from day 9.
    assert!(svg.contains("class=\"retracted\""), "{svg}");
    let retracted = svg.split("<rect id=\"").filter(|r| r.contains("class=\"retracted\"")).count();
    assert_eq!(retracted, 2, "the grant and the access it gave, as the timeline before the retraction showed them");
    let id = svg
        .split("<rect id=\"")
        .find(|r| r.contains("class=\"retracted\"") && r.contains("access vault#read"))
        .and_then(|r| r.split('"').next())
        .unwrap();
    let (a, _) = span(&tree, id);
    near(a, x0 + 9.0 * day, "the retracted access starts on 2024-01-10");
    // Everything was recorded today, long after it took effect: each span is hatched from
    // its start.
    let late = svg.matches("class=\"late\"").count();
    assert!(late >= 4, "{late} late marks");
    // The page is self-contained: the picture inline, no reference to the network.
    let html = std::fs::read_to_string(&html_file).unwrap();
    assert!(html.contains("<svg") && html.contains("<table>"), "{html}");
    assert!(!html.contains("https://") && !html.contains("<script") && !html.contains("<link"), "{html}");
}

#[test]
fn report_pages_have_a_summary_a_chart_and_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = store(dir.path());
    let page = dir.path().join("lag.html");
    let o = common::tenure(&data, &["report", "lag", "--html", page.to_str().unwrap()]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<h1>Event lag</h1>"), "{html}");
    // The chart parses, one bar per row of the table.
    let svg = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap() + 6];
    let tree = tree(svg);
    let rows = html.matches("<tr>").count() - 1;
    assert!(rows > 0);
    for i in 0..rows {
        assert!(tree.node_by_id(&format!("value-{i}")).is_some(), "bar {i} of {rows}");
    }
}

/// Renders the demo's timeline of Alice to docs/timeline.png (run with
/// `cargo test -p tenure-cli --test pictures -- --ignored` after changing the picture).
#[test]
#[ignore]
fn render_the_demo_timeline_for_the_docs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    assert!(common::tenure(&data, &["demo"]).status.success());
    let svg_file = dir.path().join("alice.svg");
    assert!(common::tenure(&data, &["timeline", "alice", "--svg", svg_file.to_str().unwrap()]).status.success());
    let tree = tree(&std::fs::read_to_string(&svg_file).unwrap());
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.save_png(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/timeline.png")).unwrap();
}
