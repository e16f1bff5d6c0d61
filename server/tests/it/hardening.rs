//! Findings of the hardening review, each over a real socket: slow clients, admission before
//! bodies, request parsing, headers and error bodies.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{KEY, Server, config, data_dir, http, multipart, nik, photo, post_json};

/// Opens a connection and sends `bytes`, then nothing more.
fn stall(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(bytes).expect("write");
    stream
}

/// True when the server closes `stream` (possibly after an answer) within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return started.elapsed() < limit,
        }
    }
}

#[test]
fn half_sent_requests_are_closed_and_others_still_served() {
    let dir = data_dir("slow-headers");
    let mut cfg = config(&dir);
    cfg.header_timeout_secs = 1;
    cfg.max_connections = 16;
    let server = Server::start(cfg);
    // More half-sent request lines than the server has connection slots.
    let mut stalled: Vec<TcpStream> =
        (0..40).map(|_| stall(server.addr, b"GET /healthz HTTP/1.1\r\nHo")).collect();
    // A normal request is still answered: it waits at most for a header deadline to free a slot.
    let started = Instant::now();
    let reply = http(server.addr, "GET", "/healthz", &[], b"");
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() < Duration::from_secs(8), "healthz took {:?}", started.elapsed());
    // Every stalled connection is closed by the server.
    for (i, s) in stalled.iter_mut().enumerate() {
        assert!(closed_within(s, Duration::from_secs(10)), "stalled connection {i} still open");
    }
}

#[test]
fn stalled_uploads_time_out_and_bodies_are_admitted_before_they_are_read() {
    let dir = data_dir("slow-bodies");
    let mut cfg = config(&dir);
    cfg.body_timeout_secs = 2;
    cfg.workers = 1; // twelve admission slots
    let server = Server::start(cfg);
    let head = format!(
        "POST /v1/compare HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{\"photo_a\": \""
    );
    let mut uploads: Vec<TcpStream> = (0..12).map(|_| stall(server.addr, head.as_bytes())).collect();
    std::thread::sleep(Duration::from_millis(300));
    // Every slot holds a stalled upload: the next request is shed at once, before its body.
    let started = Instant::now();
    let shed = post_json(server.addr, "/v1/compare", &json!({ "photo_a": "", "photo_b": "" }));
    assert_eq!((shed.status, shed.code().as_str()), (503, "overloaded"));
    assert!(started.elapsed() < Duration::from_secs(1));
    // The stalled uploads are answered 408 body_timeout and closed.
    for upload in &mut uploads {
        upload.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut answer = Vec::new();
        let _ = upload.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408") && text.contains("body_timeout"), "{text}");
    }
    // With the slots free again, work is served.
    let face = base64_photo("identities/fr_obama/obama.jpg");
    let reply = post_json(server.addr, "/v1/compare", &json!({ "photo_a": face, "photo_b": face }));
    assert_eq!(reply.status, 200, "{:?}", reply.json());
}

fn base64_photo(rel: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(photo(rel))
}

#[test]
fn parsing_headers_and_error_bodies() {
    let dir = data_dir("parsing");
    let server = Server::start(config(&dir));
    let addr = server.addr;
    let face = photo("identities/fr_obama/obama.jpg");
    let n = nik(3);
    let send =
        |headers: &[(&str, String)], body: &[u8]| http(addr, "POST", "/v1/verifications", headers, body);
    // A field given twice is refused, in multipart and in JSON.
    let (ct, body) = multipart(&[
        ("nik", n.as_bytes(), false),
        ("nik", nik(4).as_bytes(), false),
        ("selfie", &face, true),
    ]);
    let reply = send(&[("Content-Type", ct), ("Authorization", format!("Bearer {KEY}"))], &body);
    assert_eq!((reply.status, reply.code().as_str()), (400, "bad_request"), "{:?}", reply.json());
    assert!(reply.json()["error"]["detail"].as_str().unwrap_or_default().contains("twice"));
    let dup = format!(r#"{{"nik":"{n}","nik":"{}","selfie":""}}"#, nik(4));
    let reply = send(
        &[("Content-Type", "application/json".into()), ("Authorization", format!("Bearer {KEY}"))],
        dup.as_bytes(),
    );
    assert_eq!((reply.status, reply.code().as_str()), (400, "bad_request"));
    // The auth scheme is case-insensitive; X-Api-Key works; media types are compared whole.
    let body = json!({ "nik": n, "selfie": base64_photo("identities/fr_obama/obama.jpg") }).to_string();
    for auth in [
        ("Authorization", format!("bearer {KEY}")),
        ("Authorization", format!("BEARER {KEY}")),
        ("X-Api-Key", KEY.to_string()),
    ] {
        let reply = send(
            &[("Content-Type", "APPLICATION/JSON; charset=utf-8".into()), auth.clone()],
            body.as_bytes(),
        );
        assert_eq!((reply.status, reply.code().as_str()), (404, "not_enrolled"), "{auth:?}");
    }
    let reply = send(
        &[("Content-Type", "application/jsonx".into()), ("Authorization", format!("Bearer {KEY}"))],
        body.as_bytes(),
    );
    assert_eq!(reply.code(), "unsupported_media_type");
    // 404 and 405 answer the JSON error body.
    let reply = http(addr, "GET", "/v1/nowhere", &[("Authorization", format!("Bearer {KEY}"))], b"");
    assert_eq!((reply.status, reply.code().as_str()), (404, "not_found"));
    let reply = http(addr, "GET", "/v1/verifications", &[("Authorization", format!("Bearer {KEY}"))], b"");
    assert_eq!((reply.status, reply.code().as_str()), (405, "method_not_allowed"));
    // 414 and 431 too: a 9 KiB target, 150 header fields, 40 KiB of headers.
    let long = format!("/v1/verifications?{}", "a".repeat(9 * 1024));
    let reply = http(addr, "GET", &long, &[("Authorization", format!("Bearer {KEY}"))], b"");
    assert_eq!((reply.status, reply.code().as_str()), (414, "uri_too_long"), "{:?}", reply.json());
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("x-extra-{i}"), "1".to_string())).collect();
    let many: Vec<(&str, String)> = many.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let reply = http(addr, "GET", "/healthz", &many, b"");
    assert_eq!((reply.status, reply.code().as_str()), (431, "headers_too_large"));
    let reply = http(addr, "GET", "/healthz", &[("x-big", "b".repeat(40 * 1024))], b"");
    assert_eq!((reply.status, reply.code().as_str()), (431, "headers_too_large"));
    assert_eq!(http(addr, "GET", "/healthz", &[("x-ok", "c".repeat(1024))], b"").status, 200);
    // A client's request id is not echoed (it may carry a NIK): ours is.
    let reply = http(addr, "GET", "/healthz", &[("X-Request-Id", n.clone())], b"");
    let id = reply.headers.get("x-request-id").cloned().unwrap_or_default();
    assert!(!id.is_empty() && !id.contains(&n), "request id {id:?}");
    // Without a key: readiness says nothing about enrolments, metrics are refused.
    let ready = http(addr, "GET", "/readyz", &[], b"").json();
    assert!(ready.get("enrolled").is_none(), "{ready}");
    assert_eq!(http(addr, "GET", "/metrics", &[], b"").status, 401);
}

#[test]
fn body_memory_is_reserved_before_reading() {
    let dir = data_dir("budget");
    let mut cfg = config(&dir);
    (cfg.max_body_mib, cfg.body_budget_mib, cfg.body_timeout_secs) = (15, 16, 3);
    let server = Server::start(cfg);
    let head = |len: usize| {
        format!(
            "POST /v1/detections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n{{"
        )
    };
    // One upload announces 15 MB and stalls: it holds 15 of the 16 MiB before a byte is read.
    let _big = stall(server.addr, head(15 << 20).as_bytes());
    std::thread::sleep(Duration::from_millis(300));
    // The next request that needs 2 MB more is shed without reading its body; a small one fits.
    let mut second = stall(server.addr, head(2 << 20).as_bytes());
    second.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let mut answer = [0u8; 512];
    let n = second.read(&mut answer).expect("answered before the body was sent");
    assert!(
        String::from_utf8_lossy(&answer[..n]).contains("503"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let face = base64_photo("identities/fr_obama/obama.jpg");
    let reply = post_json(server.addr, "/v1/detections", &json!({ "photo": face }));
    assert_eq!(reply.status, 200, "{:?}", reply.json());
}

/// The real binary at log level info: a flood of refused (401) and shed (503) requests writes
/// next to nothing to the log, while served requests are logged.
#[test]
fn refusals_and_sheds_do_not_flood_the_log() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = data_dir("log");
    let root = crate::root();
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(KEY));
    let mut child = Command::new(env!("CARGO_BIN_EXE_wajah-server"))
        .args(["--listen", "127.0.0.1:0", "--api-key-sha256", &hash, "--workers", "1"])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--models-dir")
        .arg(root.join(".cache/models"))
        .arg("--onnxruntime")
        .arg(root.join(".cache/onnxruntime/libonnxruntime.so.1.31.1"))
        .env("WAJAH_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr: std::net::SocketAddr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).ok()?;
            v["fields"]["listen"].as_str()?.parse().ok()
        })
        .expect("the ready line names the address");
    for _ in 0..200 {
        assert_eq!(http(addr, "GET", "/metrics", &[], b"").status, 401);
    }
    assert_eq!(http(addr, "GET", "/healthz", &[], b"").status, 200);
    // Shed: one worker's twelve slots held by stalled uploads, then more requests.
    let head = format!(
        "POST /v1/detections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    let _held: Vec<TcpStream> = (0..12).map(|_| stall(addr, head.as_bytes())).collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..100 {
        assert_eq!(post_json(addr, "/v1/detections", &json!({ "photo": "" })).status, 503);
    }
    let _ = child.kill();
    let _ = child.wait();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let noisy = rest.iter().filter(|l| l.contains("401") || l.contains("503")).count();
    assert!(noisy < 5, "{noisy} log lines for 300 refused or shed requests:\n{}", rest.join("\n"));
    assert!(rest.iter().any(|l| l.contains("\"status\":200")), "a served request is logged");
}
