//! The API description against the running service: schemathesis (from the hash-pinned venv of
//! `scripts/setup-api-tools.sh`) drives every operation from `/openapi.json`; answers that cannot
//! be drawn from a schema (408, 503, a body over the limit) are provoked here and looked up in the
//! description; the NIK pattern is compared with `Nik::parse` over whole ranges of numbers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{KEY, Reply, Server, config, data_dir, http, nik, photo, post_form, post_json, root};

/// A program of the API tools venv: `.cache/venv-api-<first 12 hex of the requirements' sha256>`,
/// the directory `scripts/setup-api-tools.sh` installs into.
pub fn api_tool(name: &str) -> PathBuf {
    let requirements = std::fs::read(root().join("scripts/requirements-api.txt")).expect("requirements");
    let venv = format!("venv-api-{}", &hex::encode(Sha256::digest(&requirements))[..12]);
    let path = root().join(".cache").join(venv).join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/setup-api-tools.sh` (make test does)",
        path.display()
    );
    path
}

/// Photos schemathesis may put in JSON bodies (as base64): enrolled people, a greyscale PGM, a
/// GIF, rotated pixels, a group.
const PHOTOS: [&str; 6] = [
    "identities/fr_obama/obama_small.jpg",
    "identities/df_sundar/img25.jpg",
    "identities/orl_s1/1.pgm",
    "robustness/yalefaces__subject01__subject01.glasses.gif",
    "robustness/insightface__kun__r90.jpg",
    "multi_face/2008_001009.jpg",
];

/// Cases per operation and phase: the whole run stays well under three minutes on two cores.
/// `WAJAH_SCHEMATHESIS_EXAMPLES` sets another number, for a deeper run by hand.
fn max_examples() -> String {
    std::env::var("WAJAH_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "60".into())
}

/// The schemathesis configuration: the API key, and dictionaries that put real photos and
/// enrolled NIKs into the generated requests (else no photo would ever hold a face and every
/// success answer would go unchecked). Statuses a schema-valid request may get besides 2xx: the
/// NIK is not enrolled (404) or enrolled by another model (409), the photo is no usable face (422).
fn schemathesis_toml(niks: &[String]) -> String {
    let b64 = |rel: &str| base64::engine::general_purpose::STANDARD.encode(photo(rel));
    let photos: Vec<String> = PHOTOS.iter().map(|p| b64(p)).collect();
    let mut toml = format!(
        "headers = {{ Authorization = \"Bearer {KEY}\" }}\nrequest-timeout = 60\n\n\
         [dictionaries.photos]\nvalues = {}\n\n[dictionaries.niks]\nvalues = {}\n\n[parameters]\n",
        json!(photos),
        json!(niks)
    );
    for field in ["photo", "selfie", "photo_a", "photo_b"] {
        toml.push_str(&format!("\"body.{field}\" = {{ dictionary = \"photos\", probability = 0.7 }}\n"));
    }
    toml.push_str("\"body.nik\" = { dictionary = \"niks\", probability = 0.5 }\n");
    toml.push_str("\"path.nik\" = { dictionary = \"niks\", probability = 0.5 }\n\n");
    toml.push_str("[checks.positive_data_acceptance]\nexpected-statuses = [\"2xx\", 404, 409, 422]\n");
    // A challenge's state (bound to another NIK 403, expired 410) and its frame count (400), and a
    // verification's choice between `selfie` and `challenge_id` (400), are not in the schema.
    for (path, statuses) in [
        ("/v1/liveness/sessions/{id}", "[\"2xx\", 400, 403, 404, 409, 410, 422]"),
        ("/v1/verifications", "[\"2xx\", 400, 403, 404, 409, 410, 422]"),
    ] {
        toml.push_str(&format!(
            "\n[[operations]]\ninclude-path = \"{path}\"\nchecks.positive_data_acceptance.expected-statuses = {statuses}\n"
        ));
    }
    toml
}

/// Runs `command` for at most `limit`, killing it after; its exit success and stdout + stderr.
fn run_bounded(mut command: Command, limit: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text =
        std::fs::read_to_string(out).unwrap_or_default() + &std::fs::read_to_string(err).unwrap_or_default();
    match status {
        Some(status) => (status.success(), text),
        None => (false, format!("killed after {limit:?}\n{text}")),
    }
}

/// The operations, as the description names them, each with a path that reaches it.
const OPERATIONS: [(&str, &str, &str); 9] = [
    ("post", "/v1/enrollments", "/v1/enrollments"),
    ("post", "/v1/verifications", "/v1/verifications"),
    ("post", "/v1/compare", "/v1/compare"),
    ("post", "/v1/identifications", "/v1/identifications"),
    ("post", "/v1/detections", "/v1/detections"),
    ("delete", "/v1/enrollments/{nik}", "/v1/enrollments/3201011505900001"),
    ("get", "/metrics", "/metrics"),
    ("get", "/healthz", "/healthz"),
    ("get", "/readyz", "/readyz"),
];

/// The operation a request in schemathesis's HAR report went to.
fn operation_of(method: &str, url: &str) -> Option<(&'static str, &'static str)> {
    let path = url.split_once("://").map_or(url, |(_, rest)| rest.split_once('/').map_or("", |p| p.1));
    let path = format!("/{}", path.split('?').next().unwrap_or_default());
    let template = if path.starts_with("/v1/enrollments/") { "/v1/enrollments/{nik}" } else { path.as_str() };
    OPERATIONS
        .iter()
        .find(|(m, t, _)| m.eq_ignore_ascii_case(method) && *t == template)
        .map(|(m, t, _)| (*m, *t))
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_the_description_contradicts() {
    let schemathesis = api_tool("schemathesis");
    let dir = data_dir("schemathesis");
    // Thousands of requests in seconds: the per-key rate (tested in `clients`) is not under test.
    let mut cfg = config(&dir);
    (cfg.rate_per_key, cfg.burst_per_key) = (1e6, 1e6);
    let server = Server::start(cfg);
    let addr = server.addr;
    // Two enrolments, so verifications, identifications and deletions have something to find.
    for (i, rel) in [(0, "identities/fr_obama/obama.jpg"), (1, "identities/df_sundar/img24.jpg")] {
        let n = nik(i);
        let reply =
            post_form(addr, "/v1/enrollments", &[("nik", n.as_bytes(), false), ("photo", &photo(rel), true)]);
        assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    }
    let work = tempfile::tempdir().expect("work dir");
    let settings = work.path().join("schemathesis.toml");
    std::fs::write(&settings, schemathesis_toml(&[nik(0), nik(1), nik(2)])).expect("toml");
    let har = work.path().join("calls.har");
    let mut command = Command::new(&schemathesis);
    command
        .current_dir(work.path())
        .env("NO_PROXY", "*")
        .arg("--config-file")
        .arg(&settings)
        .args(["run", &format!("http://{addr}/openapi.json"), "--checks"])
        .arg(
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance,positive_data_acceptance",
        )
        .args(["--max-examples", &max_examples(), "--generation-deterministic"])
        .args(["--workers", "1", "--no-color", "--report", "har", "--report-har-path"])
        .arg(&har);
    let started = Instant::now();
    let (passed, report) = run_bounded(command, Duration::from_secs(240));
    let summary = report
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains("generated"));
    let summary = summary.collect::<Vec<_>>().join(" ");
    println!("schemathesis: {} in {:.0?}", summary.trim(), started.elapsed());
    assert!(passed, "schemathesis found problems:\n{report}");
    // The run reached every operation and saw each one succeed, so success bodies were checked too.
    let calls: Value =
        serde_json::from_slice(&std::fs::read(&har).expect("HAR report")).expect("HAR is JSON");
    let entries = calls["log"]["entries"].as_array().expect("entries");
    let mut succeeded = std::collections::BTreeSet::new();
    for entry in entries {
        let method = entry["request"]["method"].as_str().unwrap_or_default();
        let url = entry["request"]["url"].as_str().unwrap_or_default();
        let status = entry["response"]["status"].as_u64().unwrap_or_default();
        if let Some(operation) = operation_of(method, url).filter(|_| (200..300).contains(&status)) {
            succeeded.insert(operation);
        }
    }
    println!("schemathesis: {} API calls", entries.len());
    // A verification needs either a selfie or a live challenge's frames, which generated bodies
    // rarely are; its 2xx answers are tested over real HTTP in api.rs and liveness.rs.
    for (method, template, _) in OPERATIONS.iter().filter(|o| o.1 != "/v1/verifications") {
        assert!(succeeded.contains(&(*method, *template)), "no 2xx answer from {method} {template}");
    }
}

/// Reads an answer from `stream` (headers and body, up to the close).
fn read_reply(stream: &mut TcpStream) -> Reply {
    stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply { status, headers, body: body.as_bytes().to_vec() }
}

#[test]
fn answers_provoked_over_http_are_described_and_carry_the_security_headers() {
    let dir = data_dir("described");
    let mut cfg = config(&dir);
    cfg.workers = 1; // twelve admission slots
    cfg.body_timeout_secs = 2;
    cfg.max_body_mib = 1;
    let server = Server::start(cfg);
    let addr = server.addr;
    let description = http(addr, "GET", "/openapi.json", &[], b"").json();
    let key = ("Authorization", format!("Bearer {KEY}"));
    let json_type = ("Content-Type", "application/json".to_string());
    let mut answers: Vec<(&str, &str, Reply)> = Vec::new();
    for (op, template, path) in OPERATIONS {
        let (method, big) = (op.to_uppercase(), vec![b'x'; 2 << 20]);
        let method = method.as_str();
        answers.push((op, template, http(addr, method, path, &[key.clone(), json_type.clone()], &big)));
        if template.starts_with("/v1/") || template == "/metrics" {
            answers.push((op, template, http(addr, method, path, &[], b"")));
        }
        if op == "post" {
            let text = ("Content-Type", "text/plain".to_string());
            answers.push((op, template, http(addr, method, path, &[key.clone(), text], b"{}")));
            answers.push((op, template, http(addr, method, path, &[key.clone(), json_type.clone()], b"{")));
        }
    }
    for nik in ["%FF".to_string(), "1234".to_string(), nik(7)] {
        let reply = http(addr, "DELETE", &format!("/v1/enrollments/{nik}"), std::slice::from_ref(&key), b"");
        answers.push(("delete", "/v1/enrollments/{nik}", reply));
    }
    let noise = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
    answers.push(("post", "/v1/detections", post_json(addr, "/v1/detections", &json!({ "photo": noise }))));
    let selfie = json!({ "nik": nik(7), "selfie": noise });
    answers.push(("post", "/v1/verifications", post_json(addr, "/v1/verifications", &selfie)));
    // Twelve stalled uploads hold every admission slot: work is shed (503), then they time out (408).
    let head = format!(
        "POST /v1/detections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"photo\": \""
    );
    let mut stalled: Vec<TcpStream> = (0..12)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.write_all(head.as_bytes()).expect("write");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for (op, template, path) in OPERATIONS.iter().filter(|o| o.0 != "get") {
        let reply = http(addr, &op.to_uppercase(), path, &[key.clone(), json_type.clone()], b"{}");
        answers.push((op, template, reply));
    }
    for stream in &mut stalled {
        answers.push(("post", "/v1/detections", read_reply(stream)));
    }

    let mut statuses = std::collections::BTreeSet::new();
    for (method, template, reply) in &answers {
        let status = reply.status.to_string();
        let listed = &description["paths"][template][method]["responses"][&status];
        let what = format!("{method} {template} answered {status} {}", String::from_utf8_lossy(&reply.body));
        assert!(listed.is_object(), "{what}: the description does not list {status}");
        let schema = &listed["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(schema, "#/components/schemas/ErrorBody", "{what}");
        if reply.status == 503 {
            assert!(reply.headers.contains_key("retry-after"), "{what}: no Retry-After");
            assert!(listed["headers"]["Retry-After"].is_object(), "{what}: Retry-After not described");
        }
        for (name, value) in [
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(reply.headers.get(name).map(String::as_str), Some(value), "{what}: {name}");
        }
        assert!(reply.headers.get("x-request-id").is_some_and(|id| !id.is_empty()), "{what}: no request id");
        statuses.insert(reply.status);
    }
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        [400, 401, 404, 408, 413, 415, 422, 503],
        "the answers provoked"
    );
}

/// The NIK pattern of every place the description has one.
fn nik_patterns(description: &Value) -> Vec<String> {
    let schemas = &description["components"]["schemas"];
    let mut found: Vec<&Value> = ["EnrollRequest", "VerifyRequest", "EnrollForm", "VerifyForm"]
        .iter()
        .map(|s| &schemas[s]["properties"]["nik"]["pattern"])
        .collect();
    found
        .push(&description["paths"]["/v1/enrollments/{nik}"]["delete"]["parameters"][0]["schema"]["pattern"]);
    found.iter().map(|p| p.as_str().unwrap_or_else(|| panic!("no NIK pattern: {p}")).to_string()).collect()
}

/// Checks `pattern` against `Nik::parse` on `nik`.
fn agree(pattern: &regex::Regex, nik: &str) {
    assert_eq!(
        pattern.is_match(nik),
        wajah::Nik::parse(nik).is_ok(),
        "the NIK pattern and the service disagree on {nik}"
    );
}

#[test]
fn nik_pattern_is_exactly_what_the_service_accepts() {
    let dir = data_dir("nik-pattern");
    let server = Server::start(config(&dir));
    let description = http(server.addr, "GET", "/openapi.json", &[], b"").json();
    let patterns = nik_patterns(&description);
    assert!(patterns.windows(2).all(|w| w[0] == w[1]), "{patterns:?}");
    let pattern = regex::Regex::new(&patterns[0]).expect("the NIK pattern compiles");
    for date in 0..1_000_000 {
        agree(&pattern, &format!("320101{date:06}0001"));
    }
    for region in 0..10_000 {
        agree(&pattern, &format!("{region:04}01150590{:04}", region % 3));
    }
    for (district, serial) in (0..100).flat_map(|d| [0, 1, 9, 10, 100, 1000, 9999].map(|s| (d, s))) {
        agree(&pattern, &format!("3201{district:02}150590{serial:04}"));
    }
    // (The service also trims spaces around a NIK; the pattern describes the NIK itself.)
    for other in ["", "320101150590000", "32010115059000011", "320101150590000a", "32010115059000 1"] {
        agree(&pattern, other);
    }
}
