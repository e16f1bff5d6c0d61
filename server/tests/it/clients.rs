//! API clients over a real socket: per-key rate limits, a fair share of admission per key, and
//! the audit trail of every enrolment, verification, identification and deletion.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wajah::{AuditLog, TemplateKey};

use crate::{KEY, Server, config, data_dir, http, nik, photo, post_form};

const OTHER_KEY: &str = "second-client-key-987654";

#[test]
fn a_key_over_its_rate_gets_429_with_retry_after() {
    let dir = data_dir("rate");
    let mut cfg = config(&dir);
    (cfg.rate_per_key, cfg.burst_per_key) = (0.5, 3.0);
    let server = Server::start(cfg);
    let auth = [("Authorization", format!("Bearer {KEY}"))];
    let statuses: Vec<u16> =
        (0..5).map(|_| http(server.addr, "GET", "/metrics", &auth, b"").status).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let limited = http(server.addr, "GET", "/metrics", &auth, b"");
    assert_eq!(limited.code(), "rate_limited");
    let wait: u64 = limited.headers.get("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
}

#[test]
fn one_client_flooding_cannot_take_every_slot() {
    let dir = data_dir("fair");
    let mut cfg = config(&dir);
    cfg.workers = 1; // twelve admission slots; with two keys each may hold six
    cfg.body_timeout_secs = 3;
    cfg.api_key_sha256.push(hex::encode(Sha256::digest(OTHER_KEY)));
    let server = Server::start(cfg);
    let head = format!(
        "POST /v1/detections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{"
    );
    // The first client stalls twelve uploads: only six are admitted, the rest are shed at once.
    let mut held = Vec::new();
    let mut shed = 0;
    for _ in 0..12 {
        let mut s = TcpStream::connect(server.addr).expect("connect");
        s.write_all(head.as_bytes()).expect("write");
        s.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
        let mut buf = [0u8; 512];
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(n) if n > 0 && String::from_utf8_lossy(&buf[..n]).contains("503") => shed += 1,
            _ => held.push(s),
        }
    }
    assert_eq!((held.len(), shed), (6, 6));
    // The other client is still served.
    let face = photo("identities/fr_obama/obama.jpg");
    let (ct, body) = crate::multipart(&[("photo", &face, true)]);
    let reply = http(
        server.addr,
        "POST",
        "/v1/detections",
        &[("Content-Type", ct), ("Authorization", format!("Bearer {OTHER_KEY}"))],
        &body,
    );
    assert_eq!(reply.status, 200, "{:?}", reply.json());
}

#[test]
fn every_operation_is_audited_with_key_id_and_no_nik() {
    let dir = data_dir("audit");
    let server = Server::start(config(&dir));
    let n = nik(7);
    let (enrol, selfie) = (photo("identities/fr_obama/obama.jpg"), photo("identities/fr_obama/obama2.jpg"));
    assert_eq!(
        post_form(server.addr, "/v1/enrollments", &[("nik", n.as_bytes(), false), ("photo", &enrol, true)])
            .status,
        201
    );
    let verified = post_form(
        server.addr,
        "/v1/verifications",
        &[("nik", n.as_bytes(), false), ("selfie", &selfie, true), ("mode", b"check", false)],
    );
    assert_eq!(verified.json()["decision"], "match");
    let no_face = photo("no_face/dogs.jpg");
    assert_eq!(post_form(server.addr, "/v1/identifications", &[("photo", &no_face, true)]).status, 422);
    let auth = [("Authorization", format!("Bearer {KEY}"))];
    assert_eq!(http(server.addr, "DELETE", &format!("/v1/enrollments/{n}"), &auth, b"").status, 204);
    drop(server);

    let db = dir.path().join("templates.db");
    let log = AuditLog::open(&db, TemplateKey::load(&dir.path().join("template.key")).expect("key"))
        .expect("opens");
    assert_eq!(log.verify().expect("the chain holds"), 4);
    let records = log.list(10).expect("listed");
    let ops: Vec<(&str, &str)> =
        records.iter().map(|r| (r.event.operation.as_str(), r.event.decision.as_str())).collect();
    assert_eq!(
        ops,
        [("enroll", "created"), ("verify", "match"), ("identify", "no_face"), ("delete", "deleted")]
    );
    let key_id = &hex::encode(Sha256::digest(KEY))[..12];
    assert!(records.iter().all(|r| r.event.api_key_id == key_id && !r.event.request_id.is_empty()));
    assert_eq!(records[0].event.subject, log.subject_hash(&n));
    assert!(records[1].event.score.is_some_and(|s| s > 0.5));
    let raw: Vec<u8> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .flatten()
        .collect();
    assert!(!raw.windows(n.len()).any(|w| w == n.as_bytes()), "the NIK is on disk in clear");
}
