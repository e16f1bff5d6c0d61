//! The duplicate check at enrolment over real HTTP: a second NIK with the same face is refused or
//! flagged, with the candidates' NIKs masked.

use std::net::SocketAddr;

use crate::{Reply, Server, config, data_dir, nik, photo, post_form};

/// Enrols NIK `n` with the testdata photo `rel`.
fn enrol(addr: SocketAddr, n: &str, rel: &str) -> Reply {
    post_form(addr, "/v1/enrollments", &[("nik", n.as_bytes(), false), ("photo", &photo(rel), true)])
}

#[test]
fn a_duplicate_enrolment_is_flagged_or_refused_with_masked_niks() {
    let dir = data_dir("duplicates");
    let mut refusing = config(&dir);
    refusing.engine.duplicates.policy = wajah::DuplicatePolicy::Refuse;
    let server = Server::start(refusing);
    assert_eq!(enrol(server.addr, &nik(51), "identities/fr_obama/obama.jpg").status, 201);
    let refused = enrol(server.addr, &nik(52), "identities/fr_obama/obama2.jpg");
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (409, "possible_duplicate"),
        "{:?}",
        refused.json()
    );
    let masked = refused.json()["error"]["candidates"][0]["nik"].as_str().unwrap_or_default().to_string();
    assert_eq!(masked, format!("{}********{}", &nik(51)[..4], &nik(51)[12..]));
    drop(server);

    let dir = data_dir("duplicates-flag");
    let server = Server::start(config(&dir));
    assert_eq!(enrol(server.addr, &nik(51), "identities/fr_obama/obama.jpg").status, 201);
    let flagged = enrol(server.addr, &nik(52), "identities/fr_obama/obama2.jpg");
    assert_eq!(flagged.status, 201, "stored under the default `flag` policy");
    assert_eq!(
        flagged.json()["possible_duplicates"][0]["nik"].as_str().map(|s| s.contains("********")),
        Some(true)
    );
}
