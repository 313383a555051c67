//! The hostile-input table: each named input goes to `tenure ingest` after one good line,
//! against a store with history, and must be refused with exactly its error (file, line
//! and field), exit 2, and the store byte for byte as it was.

mod common;
use common::tenure;

use std::collections::BTreeMap;
use std::path::Path;

/// Every file of the store with its bytes (the writer's `LOCK` file is empty).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.insert(p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read(&p).unwrap());
        }
    }
    out
}

const BASE: &str = r#"{"type":"identity.joined","effective_at":"2024-01-01T00:00:00Z","source":"hr","source_event_id":"b1","data":{"identity":"alice","kind":"human","attributes":{"department":"finance"}}}
{"type":"group.created","effective_at":"2024-01-01T00:00:00Z","source":"okta","source_event_id":"b2","data":{"group":"fin"}}
{"type":"access.granted","effective_at":"2024-01-02T00:00:00Z","source":"it","source_event_id":"b3","data":{"identity":"alice","entitlement":{"resource":"db","permission":"read"}}}
"#;

/// Line 1 of every hostile file: good, so that a refusal must also undo it.
const FIRST: &str = r#"{"type":"identity.joined","effective_at":"2024-02-01T00:00:00Z","source":"hr","source_event_id":"h1","data":{"identity":"zed","kind":"human","attributes":{}}}"#;

/// A valid event of `type` with `data` (JSON text), effective in 2024.
fn ev(ty: &str, data: &str) -> String {
    format!(r#"{{"type":"{ty}","effective_at":"2024-03-01T00:00:00Z","data":{data}}}"#)
}

/// An event with an envelope field set to `value` (JSON text) on a valid join.
fn env(field: &str, value: &str) -> String {
    format!(
        r#"{{"type":"identity.left","effective_at":"2024-03-01T00:00:00Z","{field}":{value},"data":{{"identity":"alice"}}}}"#
    )
}

/// A join of alice's at a given `effective_at` (JSON text).
fn at(value: &str) -> String {
    format!(r#"{{"type":"identity.left","effective_at":{value},"data":{{"identity":"alice"}}}}"#)
}

fn grant(ent: &str) -> String {
    ev("access.granted", &format!(r#"{{"identity":"alice","entitlement":{ent}}}"#))
}

/// (name, the bytes of line 2 on, the message after `FILE:2: `).
fn table() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let s = |x: String| x.into_bytes();
    let b = |x: &str| x.as_bytes().to_vec();
    let deep = "[".repeat(100_000);
    let long_name = "x".repeat(70_000);
    vec![
        // JSON syntax
        ("empty object", b("{}"), "field type: missing"),
        ("array", b("[]"), "field -: not a JSON event object: a line must start with `{` (it starts \"[]\")"),
        ("null", b("null"), "field -: not a JSON event object: a line must start with `{` (it starts \"null\")"),
        ("number", b("42"), "field -: not a JSON event object: a line must start with `{` (it starts \"42\")"),
        ("string", b(r#""identity.joined""#), "field -: not a JSON event object: a line must start with `{` (it starts \"\\\"identity.jo\")"),
        ("true", b("true"), "field -: not a JSON event object: a line must start with `{` (it starts \"true\")"),
        ("truncated after a key", b(r#"{"type":"#), "field -: not a JSON event object: EOF while parsing a value"),
        ("truncated in a string", b(r#"{"type":"identity.jo"#), "field -: not a JSON event object: EOF while parsing a string"),
        ("truncated object", s(FIRST[..FIRST.len() - 2].to_string()), "field -: not a JSON event object: EOF while parsing an object"),
        ("trailing garbage", s(format!("{} x", ev("identity.left", r#"{"identity":"alice"}"#))), "field -: not a JSON event object: trailing characters"),
        ("two objects on a line", s(format!("{0}{0}", ev("identity.left", r#"{"identity":"alice"}"#))), "field -: not a JSON event object: trailing characters"),
        ("single quotes", b("{'type':'identity.left'}"), "field -: not a JSON event object: key must be a string"),
        ("a comment", b(r#"// {"type":"identity.left"}"#), "field -: not a JSON event object: a line must start with `{` (it starts \"// {\\\"type\\\":\\\"\")"),
        ("trailing comma", b(r#"{"type":"identity.left","effective_at":"2024-03-01T00:00:00Z","data":{"identity":"alice"},}"#), "field -: not a JSON event object: trailing comma"),
        ("NaN", b(r#"{"type":"event.retracted","effective_at":"2024-03-01T00:00:00Z","data":{"position":NaN,"reason":"x"}}"#), "field -: not a JSON event object: expected value"),
        ("deep nesting", s(deep), "line longer than 65536 bytes"),
        ("deep nesting in data", s(format!(r#"{{"type":"identity.left","effective_at":"2024-03-01T00:00:00Z","data":{}}}"#, "[".repeat(5000))), "field -: not a JSON event object: expected value"),
        ("deep nesting in data, closed", s(format!(r#"{{"type":"identity.left","effective_at":"2024-03-01T00:00:00Z","data":{{"identity":{}{}}}}}"#, "[".repeat(5000), "]".repeat(5000))), "field data.identity: invalid type: sequence, expected a string"),
        ("deep nesting in raw, closed", s(format!(r#"{{"type":"identity.left","effective_at":"2024-03-01T00:00:00Z","data":{{"identity":"a"}},"raw":{}{}}}"#, "[".repeat(5000), "]".repeat(5000))), "field -: not a JSON event object: recursion limit exceeded"),
        ("a line longer than an event may be", s(ev("identity.joined", &format!(r#"{{"identity":"{long_name}","kind":"human","attributes":{{}}}}"#))), "line longer than 65536 bytes"),
        ("a lone brace", b("{"), "field -: not a JSON event object: EOF while parsing an object"),
        ("a lone closing brace", b("}"), "field -: not a JSON event object: a line must start with `{` (it starts \"}\")"),
        ("bare word", b("hello"), "field -: not a JSON event object: a line must start with `{` (it starts \"hello\")"),
        ("duplicate key", b(r#"{"type":"identity.left","type":"identity.left","effective_at":"2024-03-01T00:00:00Z","data":{"identity":"alice"}}"#), "field -: not a JSON event object: duplicate field `type`"),
        // Encoding
        ("invalid UTF-8", vec![b'{', 0xff, 0xfe, b'}'], "not UTF-8 (byte 2 of the line)"),
        ("invalid UTF-8 inside a name", { let mut v = b(r#"{"type":"identity.left","effective_at":"2024-03-01T00:00:00Z","data":{"identity":"al"#); v.extend([0xc3, 0x28]); v.extend(b(r#"ice"}}"#)); v }, "not UTF-8 (byte 85 of the line)"),
        ("overlong UTF-8", { let mut v = b(r#"{"type":""#); v.extend([0xc0, 0xaf]); v.extend(b(r#""}"#)); v }, "not UTF-8 (byte 10 of the line)"),
        ("UTF-16 BOM", { let mut v = vec![0xff, 0xfe]; v.extend(b("{}")); v }, "not UTF-8 (byte 1 of the line)"),
        ("a BOM on line 2", { let mut v = vec![0xef, 0xbb, 0xbf]; v.extend(b("{}")); v }, "field -: not a JSON event object: a line must start with `{` (it starts \"\\u{feff}{}\")"),
        ("a NUL byte", b("{\0}"), "field -: not a JSON event object: key must be a string"),
        ("a NUL in a name", s(ev("identity.left", "{\"identity\":\"al\u{0}ice\"}")), "field -: not a JSON event object: control character (\\u0000-\\u001F) found while parsing a string"),
        ("an escaped NUL in a name", s(ev("identity.left", r#"{"identity":"al\u0000ice"}"#)), "field data.identity: unknown identity 'al\0ice': no earlier event joined it"),
        ("a lone surrogate", s(ev("identity.left", r#"{"identity":"\ud800"}"#)), "field data.identity: unexpected end of hex escape"),
        ("control characters in a name", s(ev("identity.left", "{\"identity\":\"a\u{1b}[31mlice\"}")), "field -: not a JSON event object: control character (\\u0000-\\u001F) found while parsing a string"),
        // The envelope
        ("no type", b(r#"{"effective_at":"2024-03-01T00:00:00Z","data":{"identity":"alice"}}"#), "field type: missing"),
        ("type null", b(r#"{"type":null,"effective_at":"2024-03-01T00:00:00Z","data":{"identity":"alice"}}"#), "field type: missing"),
        ("type a number", b(r#"{"type":7,"effective_at":"2024-03-01T00:00:00Z","data":{"identity":"alice"}}"#), "field type: expected a string"),
        ("unknown type", s(ev("identity.renamed", r#"{"identity":"alice"}"#)), "field type: unknown event type 'identity.renamed'"),
        ("type in capitals", s(ev("IDENTITY.LEFT", r#"{"identity":"alice"}"#)), "field type: unknown event type 'IDENTITY.LEFT'"),
        ("type with a space", s(ev("identity.left ", r#"{"identity":"alice"}"#)), "field type: unknown event type 'identity.left '"),
        ("empty type", s(ev("", r#"{"identity":"alice"}"#)), "field type: must not be empty"),
        ("no effective_at", b(r#"{"type":"identity.left","data":{"identity":"alice"}}"#), "field effective_at: missing"),
        ("effective_at null", s(at("null")), "field effective_at: missing"),
        ("effective_at a number", s(at("1709251200")), "field effective_at: expected a string"),
        ("effective_at empty", s(at(r#""""#)), "field effective_at: must not be empty"),
        ("effective_at month 13", s(at(r#""2024-13-01T00:00:00Z""#)), "field effective_at: not an RFC 3339 time"),
        ("effective_at day 32", s(at(r#""2024-01-32T00:00:00Z""#)), "field effective_at: not an RFC 3339 time"),
        ("effective_at 30 February", s(at(r#""2024-02-30T00:00:00Z""#)), "field effective_at: not an RFC 3339 time"),
        ("effective_at hour 25", s(at(r#""2024-03-01T25:00:00Z""#)), "field effective_at: not an RFC 3339 time"),
        ("effective_at without a zone", s(at(r#""2024-03-01T00:00:00""#)), "field effective_at: not an RFC 3339 time"),
        ("effective_at a date only", s(at(r#""2024-03-01""#)), "field effective_at: not an RFC 3339 time"),
        ("effective_at year 10000", s(at(r#""10000-01-01T00:00:00Z""#)), "field effective_at: not an RFC 3339 time"),
        ("effective_at year 0", s(at(r#""0000-01-01T00:00:00Z""#)), "field effective_at: out of range (times run from 1900-01-01 to 9999-12-31)"),
        ("effective_at negative year", s(at(r#""-0001-01-01T00:00:00Z""#)), "field effective_at: not an RFC 3339 time"),
        ("effective_at in words", s(at(r#""yesterday""#)), "field effective_at: not an RFC 3339 time"),
        ("effective_at zone +25:00", s(at(r#""2024-03-01T00:00:00+25:00""#)), "field effective_at: not an RFC 3339 time"),
        ("effective_at an object", s(at(r#"{"t":1}"#)), "field effective_at: expected a string"),
        ("no data", b(r#"{"type":"identity.left","effective_at":"2024-03-01T00:00:00Z"}"#), "field data: missing"),
        ("data null", s(ev("identity.left", "null")), "field data: missing"),
        ("data an array", s(ev("identity.left", r#"["alice"]"#)), "field data: expected an object"),
        ("data a string", s(ev("identity.left", r#""alice""#)), "field data: expected an object"),
        ("unknown envelope field", s(env("colour", r#""red""#)), "field colour: unknown field"),
        ("id not a UUID", s(env("id", r#""not-a-uuid""#)), "field id: not a UUID"),
        ("id a number", s(env("id", "7")), "field id: expected a string"),
        ("source a number", s(env("source", "7")), "field source: expected a string"),
        ("source_event_id an object", s(env("source_event_id", "{}")), "field source_event_id: expected a string"),
        ("actor an array", s(env("actor", "[]")), "field actor: expected a string"),
        ("an unknown envelope field", s(env("raw_body", r#"{"x":1}"#)), "field raw_body: unknown field"),
        // The data of each type
        ("joined: no identity", s(ev("identity.joined", r#"{"kind":"human","attributes":{}}"#)), "field data: missing field `identity`"),
        ("joined: empty identity", s(ev("identity.joined", r#"{"identity":"","kind":"human","attributes":{}}"#)), "field data.identity: must not be empty"),
        ("joined: identity a number", s(ev("identity.joined", r#"{"identity":5,"kind":"human","attributes":{}}"#)), "field data.identity: invalid type: integer `5`, expected a string"),
        ("joined: unknown kind", s(ev("identity.joined", r#"{"identity":"bo","kind":"robot","attributes":{}}"#)), "field data.kind: unknown variant `robot`, expected `human` or `service`"),
        ("joined: no kind", s(ev("identity.joined", r#"{"identity":"bo","attributes":{}}"#)), "field data: missing field `kind`"),
        ("joined: service without owner", s(ev("identity.joined", r#"{"identity":"bot","kind":"service","attributes":{}}"#)), "field data.owner: required for a service identity"),
        ("joined: service owning itself", s(ev("identity.joined", r#"{"identity":"bot","kind":"service","owner":"bot","attributes":{}}"#)), "field data.owner: an identity cannot own itself"),
        ("joined: unknown owner", s(ev("identity.joined", r#"{"identity":"bot","kind":"service","owner":"nobody","attributes":{}}"#)), "field data.owner: unknown identity 'nobody': no earlier event joined it"),
        ("joined: attributes an array", s(ev("identity.joined", r#"{"identity":"bo","kind":"human","attributes":[]}"#)), "field data.attributes: invalid type: sequence, expected a map"),
        ("joined: attribute a number", s(ev("identity.joined", r#"{"identity":"bo","kind":"human","attributes":{"age":5}}"#)), "field data.attributes.age: invalid type: integer `5`, expected a string"),
        ("joined: attribute an object", s(ev("identity.joined", r#"{"identity":"bo","kind":"human","attributes":{"name":{"given":"Bo"}}}"#)), "field data.attributes.name: invalid type: map, expected a string"),
        ("joined: unknown data field", s(ev("identity.joined", r#"{"identity":"bo","kind":"human","attributes":{},"colour":"red"}"#)), "field data.colour: unknown field `colour`, expected one of `identity`, `kind`, `attributes`, `owner`"),
        ("moved: unknown identity", s(ev("identity.moved", r#"{"identity":"nobody","attributes":{"department":"x"}}"#)), "field data.identity: unknown identity 'nobody': no earlier event joined it"),
        ("moved: no attributes", s(ev("identity.moved", r#"{"identity":"alice"}"#)), "field data: missing field `attributes`"),
        ("suspended: unknown identity", s(ev("identity.suspended", r#"{"identity":"nobody"}"#)), "field data.identity: unknown identity 'nobody': no earlier event joined it"),
        ("reactivated: unknown identity", s(ev("identity.reactivated", r#"{"identity":"nobody"}"#)), "field data.identity: unknown identity 'nobody': no earlier event joined it"),
        ("left: unknown identity", s(ev("identity.left", r#"{"identity":"nobody"}"#)), "field data.identity: unknown identity 'nobody': no earlier event joined it"),
        ("left: identity joined later in the file", s(format!("{}\n{}", ev("identity.left", r#"{"identity":"later"}"#), ev("identity.joined", r#"{"identity":"later","kind":"human","attributes":{}}"#))), "field data.identity: unknown identity 'later': no earlier event joined it"),
        ("left: reason a number", s(ev("identity.left", r#"{"identity":"alice","reason":5}"#)), "field data.reason: invalid type: integer `5`, expected a string"),
        ("rejoined: unknown identity", s(ev("identity.rejoined", r#"{"identity":"nobody"}"#)), "field data.identity: unknown identity 'nobody': no earlier event joined it"),
        ("owner_changed: unknown owner", s(ev("identity.owner_changed", r#"{"identity":"alice","owner":"nobody"}"#)), "field data.owner: unknown identity 'nobody': no earlier event joined it"),
        ("owner_changed: no owner", s(ev("identity.owner_changed", r#"{"identity":"alice"}"#)), "field data: missing field `owner`"),
        ("granted: unknown identity", s(ev("access.granted", r#"{"identity":"nobody","entitlement":{"resource":"db","permission":"read"}}"#)), "field data.identity: unknown identity 'nobody': no earlier event joined it"),
        ("granted: no entitlement", s(ev("access.granted", r#"{"identity":"alice"}"#)), "field data: missing field `entitlement`"),
        ("granted: entitlement short form", s(grant(r#""db#read""#)), "field data.entitlement: invalid type: string \"db#read\", expected struct Entitlement"),
        ("granted: empty resource", s(grant(r#"{"resource":"","permission":"read"}"#)), "field data.entitlement.resource: must not be empty"),
        ("granted: empty permission", s(grant(r#"{"resource":"db","permission":""}"#)), "field data.entitlement.permission: must not be empty"),
        ("granted: no permission", s(grant(r#"{"resource":"db"}"#)), "field data.entitlement: missing field `permission`"),
        ("granted: '#' in the resource", s(grant(r#"{"resource":"a#b","permission":"read"}"#)), "field data.entitlement.resource: must not contain '#' (it separates resource and permission in RESOURCE#PERMISSION)"),
        ("granted: resource a number", s(grant(r#"{"resource":1,"permission":"read"}"#)), "field data.entitlement.resource: invalid type: integer `1`, expected a string"),
        ("granted: bad expires_at", s(ev("access.granted", r#"{"identity":"alice","entitlement":{"resource":"db","permission":"read"},"expires_at":"soon"}"#)), "field data.expires_at: not an RFC 3339 time"),
        ("revoked: unknown identity", s(ev("access.revoked", r#"{"identity":"nobody","entitlement":{"resource":"db","permission":"read"}}"#)), "field data.identity: unknown identity 'nobody': no earlier event joined it"),
        ("group.created: empty group", s(ev("group.created", r#"{"group":""}"#)), "field data.group: must not be empty"),
        ("group.created: no group", s(ev("group.created", r#"{"display_name":"x"}"#)), "field data: missing field `group`"),
        ("group.deleted: unknown group", s(ev("group.deleted", r#"{"group":"nope"}"#)), "field data.group: unknown group 'nope': no earlier event created it"),
        ("member_added: unknown group", s(ev("group.member_added", r#"{"group":"nope","identity":"alice"}"#)), "field data.group: unknown group 'nope': no earlier event created it"),
        ("member_added: unknown identity", s(ev("group.member_added", r#"{"group":"fin","identity":"nobody"}"#)), "field data.identity: unknown identity 'nobody': no earlier event joined it"),
        ("member_removed: unknown group", s(ev("group.member_removed", r#"{"group":"nope","identity":"alice"}"#)), "field data.group: unknown group 'nope': no earlier event created it"),
        ("group access_granted: unknown group", s(ev("group.access_granted", r#"{"group":"nope","entitlement":{"resource":"db","permission":"read"}}"#)), "field data.group: unknown group 'nope': no earlier event created it"),
        ("group access_granted: '#' in the resource", s(ev("group.access_granted", r##"{"group":"fin","entitlement":{"resource":"d#b","permission":"read"}}"##)), "field data.entitlement.resource: must not contain '#' (it separates resource and permission in RESOURCE#PERMISSION)"),
        ("credential.issued: unknown identity", s(ev("credential.issued", r#"{"identity":"nobody","credential":"k1"}"#)), "field data.identity: unknown identity 'nobody': no earlier event joined it"),
        ("credential.issued: empty credential", s(ev("credential.issued", r#"{"identity":"alice","credential":""}"#)), "field data.credential: must not be empty"),
        ("credential.rotated: bad expires_at", s(ev("credential.rotated", r#"{"identity":"alice","credential":"k1","expires_at":"2024-99-01T00:00:00Z"}"#)), "field data.expires_at: not an RFC 3339 time"),
        ("retracted: position 0", s(ev("event.retracted", r#"{"position":0,"reason":"x"}"#)), "field data.position: positions start at 1"),
        ("retracted: a position past the head", s(ev("event.retracted", r#"{"position":99,"reason":"x"}"#)), "field data.position: position 99 does not exist"),
        ("retracted: a negative position", s(ev("event.retracted", r#"{"position":-1,"reason":"x"}"#)), "field data.position: invalid value: integer `-1`, expected u64"),
        ("retracted: position a string", s(ev("event.retracted", r#"{"position":"1","reason":"x"}"#)), "field data.position: invalid type: string \"1\", expected u64"),
        ("retracted: position too large", s(ev("event.retracted", r#"{"position":18446744073709551616,"reason":"x"}"#)), "field data.position: invalid type: floating point `1.8446744073709552e+19`, expected u64"),
        ("retracted: no reason", s(ev("event.retracted", r#"{"position":1}"#)), "field data: missing field `reason`"),
        ("retracted: a retraction", s(format!("{}\n{}", ev("event.retracted", r#"{"position":1,"reason":"x"}"#), ev("event.retracted", r#"{"position":5,"reason":"y"}"#))), "3: field data.position: position 5 is itself a retraction"),
    ]
}

/// A store holding `BASE`: its directory, its path, the base file, and every file's bytes.
fn base_store() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf, BTreeMap<String, Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let base = dir.path().join("base.jsonl");
    std::fs::write(&base, BASE).unwrap();
    assert!(tenure(&data, &["ingest", base.to_str().unwrap()]).status.success());
    let before = snapshot(&data);
    (dir, data, base, before)
}

#[test]
fn every_hostile_input_is_refused_exactly_and_changes_nothing() {
    let (dir, data, base, before) = base_store();
    let table = table();
    assert!(table.len() >= 100, "{} inputs", table.len());
    let mut wrong = Vec::new();
    for (i, (name, rest, want)) in table.iter().enumerate() {
        let file = dir.path().join(format!("hostile-{i}.jsonl"));
        let mut bytes = FIRST.as_bytes().to_vec();
        bytes.push(b'\n');
        bytes.extend_from_slice(rest);
        bytes.push(b'\n');
        std::fs::write(&file, &bytes).unwrap();
        let o = tenure(&data, &["ingest", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        // The message names line 2 unless it says which.
        let want = if want.as_bytes()[0].is_ascii_digit() { want.to_string() } else { format!("2: {want}") };
        let prefix = format!("tenure: {}:", file.display());
        let got = err.strip_prefix(&prefix).map(|m| m.trim_end().to_string()).unwrap_or(err.clone());
        if o.status.code() != Some(2) || got != want {
            wrong.push(format!("(\"{name}\", {:?}, {got:?}),", o.status.code()));
        }
        if snapshot(&data) != before {
            wrong.push(format!("{name}: THE STORE CHANGED"));
            std::fs::remove_dir_all(&data).unwrap();
            assert!(tenure(&data, &["ingest", base.to_str().unwrap()]).status.success());
            for (f, bytes) in &before {
                std::fs::write(data.join(f), bytes).unwrap();
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {} inputs:\n{}", wrong.len(), table.len(), wrong.join("\n"));
}

/// Inputs that are not JSONL files at all: each refused with its reason, exit 2, the store
/// as it was, and (for endless input) in bounded time and memory.
#[test]
fn inputs_that_are_not_files_of_lines_are_refused() {
    let (dir, data, _, before) = base_store();
    let missing = dir.path().join("missing.jsonl");
    let utf16 = dir.path().join("utf16.jsonl");
    std::fs::write(&utf16, [0xFF, 0xFE, b'{', 0, b'}', 0, b'\n', 0]).unwrap();
    let cases: Vec<(&str, String, String)> = vec![
        (
            "UTF-16 text",
            utf16.display().to_string(),
            format!(
                "{0}:1: UTF-16 text (it starts with a UTF-16 byte order mark); Tenure reads UTF-8 JSONL: convert it \
                 first, e.g. `iconv -f UTF-16 -t UTF-8 {0}`",
                utf16.display()
            ),
        ),
        (
            "a missing file",
            missing.display().to_string(),
            format!("{}: No such file or directory (os error 2)", missing.display()),
        ),
        (
            "a directory",
            dir.path().display().to_string(),
            format!("{}: a directory, not a JSONL file", dir.path().display()),
        ),
        (
            "endless bytes with no newline",
            "/dev/zero".to_string(),
            "/dev/zero:1: no end of line within 67108864 bytes: not a JSONL file".to_string(),
        ),
    ];
    for (name, arg, want) in cases {
        let started = std::time::Instant::now();
        let o = tenure(&data, &["ingest", &arg]);
        assert_eq!(o.status.code(), Some(2), "{name}");
        assert_eq!(String::from_utf8_lossy(&o.stderr), format!("tenure: {want}\n"), "{name}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{name}: {:?}", started.elapsed());
        assert_eq!(snapshot(&data), before, "{name}: the store changed");
    }
    // An empty file and one of blank lines store nothing and are not errors.
    for (name, text) in [("empty", ""), ("blank", "\n\n  \n")] {
        let f = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&f, text).unwrap();
        let o = tenure(&data, &["ingest", f.to_str().unwrap()]);
        assert!(o.status.success(), "{name}");
        assert_eq!(snapshot(&data), before, "{name}: the store changed");
    }
}
