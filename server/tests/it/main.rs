//! Server integration tests: the real service on a loopback port, driven over HTTP, plus router
//! tests without a socket. Needs `make setup` (models).

mod api;
mod browser;
mod clients;
mod duplicates;
mod hardening;
mod liveness;
mod postgres;
mod router;
mod schema;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wajah::EngineConfig;
use wajah_server::{AppState, Config, serve};

pub const KEY: &str = "test-key-0123456789";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("server/ has a parent").to_path_buf()
}

pub fn photo(rel: &str) -> Vec<u8> {
    std::fs::read(root().join("testdata").join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A fresh data directory, removed when dropped (also when the test fails).
pub fn data_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("wajah-server-it-{name}-")).tempdir().expect("data dir")
}

pub fn config(data: impl AsRef<Path>) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data.as_ref().to_path_buf(),
        api_key_sha256: vec![hex::encode(Sha256::digest(KEY))],
        engine: EngineConfig { ..EngineConfig::in_dir(&root()) },
        ..Config::default()
    }
}

/// A running server; stops (gracefully) when dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(config: Config) -> Server {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let state = AppState::new(&config).expect("state");
                let listener = tokio::net::TcpListener::bind(config.listen).await.expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).expect("send addr");
                serve(listener, state, async move {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(60)).expect("server started");
        Server { addr, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_string()
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`), read to the end.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    let _ = stream.write_all(body); // the server may answer (413) before reading everything
    // Read the head, then exactly Content-Length bytes (some peers keep the connection open).
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let split = loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break split;
        }
        // A signal (a child process of another test ending) may interrupt the read: read again.
        let n = match stream.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => other.expect("read"),
        };
        assert!(n > 0, "connection closed before the response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    match headers.get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => {
            while body.len() < len {
                // A signal (a child process of another test ending) may interrupt the read: read again.
                let n = match stream.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => other.expect("read"),
                };
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&buf[..n]);
            }
            body.truncate(len);
        }
        None => {
            let _ = stream.read_to_end(&mut body);
        }
    }
    if headers.get("transfer-encoding").is_some_and(|v| v == "chunked") {
        body = dechunk(&body);
    }
    Reply { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
    out
}

/// A multipart/form-data body: text fields and file fields.
pub fn multipart(fields: &[(&str, &[u8], bool)]) -> (String, Vec<u8>) {
    let boundary = "wajahboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value, is_file) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if *is_file {
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{name}.jpg\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            );
        } else {
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// POST a multipart form with the API key.
pub fn post_form(addr: SocketAddr, path: &str, fields: &[(&str, &[u8], bool)]) -> Reply {
    let (content_type, body) = multipart(fields);
    http(
        addr,
        "POST",
        path,
        &[("Content-Type", content_type), ("Authorization", format!("Bearer {KEY}"))],
        &body,
    )
}

/// POST JSON with the API key.
pub fn post_json(addr: SocketAddr, path: &str, value: &serde_json::Value) -> Reply {
    http(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json".into()), ("Authorization", format!("Bearer {KEY}"))],
        value.to_string().as_bytes(),
    )
}

/// A valid NIK for test subject `i` (West Java, born 15-05-1990, serial i + 1).
pub fn nik(i: usize) -> String {
    format!("320101150590{:04}", i + 1)
}
