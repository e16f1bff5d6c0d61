//! Several servers on one real PostgreSQL (a temporary server per test), over real HTTP: shared
//! enrolments, the change feed within a second, and the database going away and coming back.

use std::time::{Duration, Instant};

use serde_json::Value;
use wajah_server::config::Config;
use wajah_store_pg::testing::TempPostgres;

use crate::{Server, config, data_dir, http, nik, photo, post_form};

fn on_postgres(dir: &tempfile::TempDir, pg: &TempPostgres, key: &std::path::Path) -> Config {
    Config { store: Some(pg.url()), template_key_file: Some(key.to_path_buf()), ..config(dir) }
}

fn candidates(server: &Server, rel: &str) -> Vec<String> {
    let reply =
        post_form(server.addr, "/v1/identifications", &[("photo", &photo(rel), true), ("k", b"3", false)]);
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let json: Value = reply.json();
    json["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter(|c| c["matched"] == true)
        .map(|c| c["nik"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Polls `check` until it holds; the time it took.
fn within(limit: Duration, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

#[test]
fn two_servers_share_enrolments_and_follow_each_other_within_a_second() {
    let pg = TempPostgres::start();
    let (dir_a, dir_b) = (data_dir("pg-a"), data_dir("pg-b"));
    let key = dir_a.path().join("shared-template.key");
    let a = Server::start(on_postgres(&dir_a, &pg, &key));
    let b = Server::start(on_postgres(&dir_b, &pg, &key));
    let n = nik(41);
    let enrolled = post_form(
        a.addr,
        "/v1/enrollments",
        &[("nik", n.as_bytes(), false), ("photo", &photo("identities/fr_obama/obama.jpg"), true)],
    );
    assert_eq!(enrolled.status, 201, "{:?}", enrolled.json());
    // Verify on B at once: B reads the enrolment from the database.
    let verified = post_form(
        b.addr,
        "/v1/verifications",
        &[("nik", n.as_bytes(), false), ("selfie", &photo("identities/fr_obama/obama2.jpg"), true)],
    );
    assert_eq!(
        (verified.status, verified.json()["matched"].as_bool()),
        (200, Some(true)),
        "{:?}",
        verified.json()
    );
    // Identify on B finds A's enrolment within a second (B's index follows the change feed).
    let found =
        within(Duration::from_secs(1), || candidates(&b, "identities/fr_obama/obama2.jpg").contains(&n));
    // Deleted on A: B stops finding it within a second.
    let deleted = http(
        a.addr,
        "DELETE",
        &format!("/v1/enrollments/{n}"),
        &[("Authorization", format!("Bearer {}", crate::KEY))],
        b"",
    );
    assert_eq!(deleted.status, 204);
    let gone =
        within(Duration::from_secs(1), || !candidates(&b, "identities/fr_obama/obama2.jpg").contains(&n));
    println!("B found A's enrolment after {found:?} and lost the deleted one after {gone:?}");
    // A restarted B loads the current state.
    drop(b);
    let b = Server::start(on_postgres(&dir_b, &pg, &key));
    assert!(!candidates(&b, "identities/fr_obama/obama2.jpg").contains(&n));
}

#[test]
fn the_database_going_away_is_a_503_and_the_server_recovers_by_itself() {
    let pg = TempPostgres::start();
    let dir = data_dir("pg-fault");
    let key = dir.path().join("template.key");
    let server = Server::start(on_postgres(&dir, &pg, &key));
    let n = nik(42);
    let enrol = || {
        post_form(
            server.addr,
            "/v1/enrollments",
            &[("nik", n.as_bytes(), false), ("photo", &photo("identities/fr_obama/obama.jpg"), true)],
        )
    };
    assert_eq!(http(server.addr, "GET", "/readyz", &[], b"").status, 200);
    pg.stop();
    let refused = enrol();
    assert_eq!((refused.status, refused.code().as_str()), (503, "store_unavailable"), "{:?}", refused.json());
    assert_eq!(refused.headers.get("retry-after").map(String::as_str), Some("1"));
    assert_eq!(http(server.addr, "GET", "/readyz", &[], b"").status, 503);
    pg.start_server();
    within(Duration::from_secs(10), || http(server.addr, "GET", "/readyz", &[], b"").status == 200);
    assert_eq!(enrol().status, 201);
}

#[test]
fn an_unreachable_database_or_a_newer_schema_stops_the_start_with_a_clear_error() {
    let pg = TempPostgres::start();
    let dir = data_dir("pg-start");
    let key = dir.path().join("template.key");
    let good = on_postgres(&dir, &pg, &key);
    let nowhere = Config {
        store: Some("host=/nonexistent-wajah-socket-dir port=5432 user=postgres dbname=postgres".into()),
        ..good.clone()
    };
    let err = wajah_server::state::AppState::new(&nowhere).err().expect("refused").to_string();
    assert!(err.contains("PostgreSQL") && err.contains("unavailable"), "{err}");
    drop(wajah_server::state::AppState::new(&good).expect("starts"));
    let out = std::process::Command::new("psql")
        .args(["-h"])
        .arg(pg.socket_dir())
        .args(["-p", pg.url().split("port=").nth(1).and_then(|p| p.split(' ').next()).unwrap_or_default()])
        .args(["-U", "postgres", "-c", "UPDATE wajah_schema SET version = 7"])
        .output()
        .expect("psql");
    assert!(out.status.success());
    let err = wajah_server::state::AppState::new(&good).err().expect("refused").to_string();
    assert!(err.contains("schema 7"), "{err}");
}
