//! A live `tenure serve` on loopback for the tests, and a small client for it.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const TOKEN: &str = "test-token-0123456789";
pub const OTHER_TOKEN: &str = "okta-token-0123456789";
/// A token whose deactivations are leaves.
pub const LEAVE_TOKEN: &str = "hr-leave-token-0123456789";
/// A token of the audit API.
pub const AUDIT_TOKEN: &str = "audit-token-0123456789";
/// The webhook secrets: the current one and the one being rotated out.
pub const SECRET: &str = "whsec_current_0123456789abcdef";
pub const OLD_SECRET: &str = "whsec_previous_0123456789abcdef";

/// A server on 127.0.0.1 with a port of its own, over a fresh store; stopped (gracefully)
/// when dropped.
pub struct Server {
    pub base: String,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let mut s = Server::start_in(&dir);
        s._tmp = Some(tmp);
        s
    }

    pub fn start_in(dir: &Path) -> Server {
        Server::start_with(dir, |_| {})
    }

    /// A server on a fresh store, its app set up by `setup` before it serves.
    pub fn start_configured(setup: impl FnOnce(&tenure_server::App) + Send + 'static) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let mut s = Server::start_with(&dir, setup);
        s._tmp = Some(tmp);
        s
    }

    pub fn start_with(dir: &Path, setup: impl FnOnce(&tenure_server::App) + Send + 'static) -> Server {
        let tokens = vec![
            tenure_server::Token::new("auditor", "audit", AUDIT_TOKEN).auditing(),
            tenure_server::Token::new("scim", "scim", TOKEN),
            tenure_server::Token::new("okta-1", "okta", OTHER_TOKEN),
            tenure_server::Token::new("hr-sync", "hr", LEAVE_TOKEN).deactivating(tenure_server::Deactivate::Leave),
        ];
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let store_dir = dir.to_path_buf();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let store = tenure_engine::Store::open(&store_dir).unwrap();
                let secrets = vec![
                    tenure_server::webhooks::Secret::new(SECRET),
                    tenure_server::webhooks::Secret::new(OLD_SECRET),
                ];
                let webhooks = Some(tenure_server::webhooks::Config::new(secrets));
                let base = format!("http://{addr}/scim/v2");
                let app = Arc::new(tenure_server::App::open_with(store, tokens, base, webhooks).unwrap());
                setup(&app);
                addr_tx.send(addr).unwrap();
                tenure_server::serve(app.clone(), listener, async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
                app.store.close();
            });
        });
        let addr = addr_rx.recv().unwrap();
        Server {
            base: format!("http://{addr}/scim/v2"),
            dir: dir.to_path_buf(),
            _tmp: None,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Stops the server and waits until its store is closed.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_with(method, path, body, &[("Authorization", &format!("Bearer {TOKEN}"))])
    }

    pub fn call_with(&self, method: &str, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Reply {
        let body = body.map(|b| b.to_string());
        self.raw(method, path, body.as_deref().map(str::as_bytes), headers)
    }

    pub fn raw(&self, method: &str, path: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> Reply {
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) };
        let mut req = ureq::request(method, &url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/scim+json").send_bytes(b),
            None => req.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let headers: Vec<(String, String)> = response
            .headers_names()
            .into_iter()
            .filter_map(|n| response.header(&n).map(|v| (n.to_ascii_lowercase(), v.to_string())))
            .collect();
        let text = response.into_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, json, headers, text }
    }

    /// Delivers a directory-sync webhook, signed with `secret` at `t_ms`.
    pub fn deliver_signed(&self, body: &str, secret: &str, t_ms: i64) -> Reply {
        let header =
            tenure_server::webhooks::sign(&tenure_server::webhooks::Secret::new(secret), t_ms, body.as_bytes());
        self.raw("POST", &self.url("/webhooks/directory-sync"), Some(body.as_bytes()), &[("WorkOS-Signature", &header)])
    }

    /// Delivers a directory-sync webhook, signed now with the current secret.
    pub fn deliver(&self, body: &str) -> Reply {
        self.deliver_signed(body, SECRET, now_ms())
    }

    /// The URL of a path outside the SCIM base.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches("/scim/v2"))
    }

    /// The access index of the store, folded from its log (read-only, beside the server).
    pub fn index(&self) -> tenure_projections::AccessIndex {
        let store = tenure_engine::Store::open_read_only(&self.dir).unwrap();
        let mut index = tenure_projections::AccessIndex::new();
        store
            .scan(tenure_engine::Position(1), store.head(), |e| {
                index.apply(&e);
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        index
    }

    /// The events of the store, as `tenure log` would print them (read-only, beside the server).
    pub fn log(&self) -> Vec<tenure_engine::Event> {
        let store = tenure_engine::Store::open_read_only(&self.dir).unwrap();
        store.read_range(tenure_engine::Position(1), store.head()).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn now_ms() -> i64 {
    tenure_engine::Timestamp::now().as_micros() / 1000
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub json: Value,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Asserts a SCIM error with this status and scimType.
    pub fn is_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.json["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{}", self.text);
        assert_eq!(self.json["status"], status.to_string(), "{}", self.text);
        assert_eq!(self.json["scimType"].as_str(), scim_type, "{}", self.text);
    }
}
