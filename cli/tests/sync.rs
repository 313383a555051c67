//! `tenure serve --webhook-secret-file` taking a signed directory-sync delivery over real
//! HTTP, and `tenure sync verify-delivery` checking it afterwards from the log alone.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

const SECRET: &str = "whsec_cli_test_0123456789abcdef";

fn tenure(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("TENURE_DATA")
        .env_remove("TENURE_WEBHOOK_SECRET")
        .output()
        .unwrap()
}

#[test]
fn a_delivery_is_kept_and_verifies_later() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let secrets = dir.path().join("secrets");
    std::fs::write(&secrets, format!("# current\n{SECRET}\n")).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0", "--webhook-secret-file"])
        .arg(&secrets)
        .env("TENURE_SCIM_TOKEN", "cli-sync-token-0123456789")
        .env_remove("TENURE_DATA")
        .env_remove("TENURE_WEBHOOK_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let _scim = lines.next().unwrap().unwrap();
    let hook = lines.next().unwrap().unwrap();
    let url = hook.split(" at ").nth(1).unwrap().trim().to_string();
    assert!(url.ends_with("/webhooks/directory-sync"), "{hook}");

    let body = serde_json::json!({
        "event": "dsync.user.created", "id": "event_cli_1", "created_at": "2024-03-01T09:00:00Z",
        "data": {"object": "directory_user", "id": "directory_user_1", "directory_id": "directory_1",
                 "email": "ana@x.io", "first_name": "Ana", "state": "active", "role": {"slug": "member"}}
    })
    .to_string();
    let now = tenure_engine::Timestamp::now().as_micros() / 1000;
    let header = tenure_server::webhooks::sign(&tenure_server::webhooks::Secret::new(SECRET), now, body.as_bytes());
    let answer: serde_json::Value =
        ureq::post(&url).set("WorkOS-Signature", &header).send_string(&body).unwrap().into_json().unwrap();
    assert_eq!(answer["status"], "applied", "{answer}");
    let forged = ureq::post(&url).set("WorkOS-Signature", &header).send_string(&body.replace("Ana", "Eve"));
    assert!(matches!(forged, Err(ureq::Error::Status(401, _))));

    let _ = Command::new("kill").arg(server.id().to_string()).status();
    assert!(server.wait().unwrap().success());
    let mut log = String::new();
    server.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(!log.contains(SECRET) && !log.contains(&header), "a secret or signature in the server's log:\n{log}");

    // Both events of the delivery (the join and the role's grant) lead to it.
    for position in ["1", "2"] {
        let out =
            tenure(&data, &["sync", "verify-delivery", position, "--webhook-secret-file", secrets.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("delivery event_cli_1") && text.contains(": verified: signed at"), "{text}");
    }
    let other = dir.path().join("other");
    std::fs::write(&other, "whsec_not_the_one_0123456789\n").unwrap();
    let out =
        tenure(&data, &["sync", "verify-delivery", "1", "--json", "--webhook-secret-file", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["verified"], false);
    let out = tenure(&data, &["sync", "verify-delivery", "9", "--webhook-secret-file", secrets.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("positions are 1 to 2"));
}
