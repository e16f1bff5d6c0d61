//! The liveness challenge over real HTTP, on real photos (testdata/liveness: ORL person 1).

use base64::Engine as _;
use serde_json::{Value, json};

use crate::{Server, config, data_dir, nik, photo, post_form, post_json};

/// Real photos of one person (ORL s1) per step; two of a turn where a challenge may ask it twice.
fn frames_for(steps: &[Value]) -> Option<Vec<Vec<u8>>> {
    let mut left = vec!["orl_s1_5.pgm", "orl_s1_10.pgm"].into_iter();
    let mut right = vec!["orl_s1_6.pgm", "orl_s1_4.pgm"].into_iter();
    let mut up = vec!["orl_s1_9.pgm"].into_iter();
    steps
        .iter()
        .map(|s| {
            let name = match s.as_str()? {
                "straight" => Some("orl_s1_1.pgm"),
                "turn_left" => left.next(),
                "turn_right" => right.next(),
                "look_up" => up.next(),
                _ => None,
            }?;
            Some(photo(&format!("liveness/poses/{name}")))
        })
        .collect()
}

fn b64(frames: &[Vec<u8>]) -> Vec<String> {
    frames.iter().map(|f| base64::engine::general_purpose::STANDARD.encode(f)).collect()
}

/// A challenge (bound to `nik` if given) whose steps the photos can answer.
fn challenge(server: &Server, nik: Option<&str>) -> (String, Vec<Vec<u8>>) {
    for _ in 0..50 {
        let reply = post_json(server.addr, "/v1/liveness/challenges", &json!({ "nik": nik }));
        assert_eq!(reply.status, 201, "{:?}", reply.json());
        let c = reply.json();
        let steps = c["steps"].as_array().expect("steps").clone();
        assert_eq!((steps.len(), steps[0].as_str()), (4, Some("straight")));
        assert_eq!(c["instructions"][0], "Lihat lurus ke kamera.");
        assert!(c["expires_at"].as_str().expect("expiry").ends_with('Z'));
        if let Some(frames) = frames_for(&steps) {
            return (c["id"].as_str().expect("id").to_string(), frames);
        }
    }
    panic!("no challenge the photos can answer in 50");
}

#[test]
fn a_live_head_turn_verifies_once_and_attacks_do_not() {
    let dir = data_dir("liveness");
    let server = Server::start(config(&dir));
    let n = nik(21);
    let enrolled = post_form(
        server.addr,
        "/v1/enrollments",
        &[
            ("nik", n.as_bytes(), false),
            ("photo", &photo("liveness/poses/orl_s1_3.pgm"), true),
            ("mode", b"check", false),
        ],
    );
    assert_eq!(enrolled.status, 201, "{:?}", enrolled.json());

    // Live frames of the enrolled person: matched.
    let (id, frames) = challenge(&server, Some(&n));
    let verify = |id: &str, frames: &[Vec<u8>]| {
        post_json(
            server.addr,
            "/v1/verifications",
            &json!({ "nik": n, "challenge_id": id, "frames": b64(frames), "mode": "check" }),
        )
    };
    let live = verify(&id, &frames);
    assert_eq!(live.status, 200, "{:?}", live.json());
    let answer = live.json();
    assert_eq!(
        (answer["matched"].as_bool(), answer["liveness"]["live"].as_bool()),
        (Some(true), Some(true)),
        "{answer}"
    );
    assert_eq!(answer["liveness"]["frames"].as_array().map(Vec::len), Some(4));

    // The same challenge again: used.
    let again = verify(&id, &frames);
    assert_eq!((again.status, again.code()), (409, "challenge_used".to_string()));

    // The accepted frames sent again for a new challenge: not live, not matched.
    let (id2, _) = challenge(&server, Some(&n));
    let replay = verify(&id2, &frames).json();
    assert_eq!(replay["matched"], false, "{replay}");
    assert!(
        replay["liveness"]["reasons"].as_array().expect("reasons").contains(&json!("replayed_frames")),
        "{replay}"
    );

    // One photo in every frame, as multipart parts: identical frames, no pose, a flat picture.
    let (id3, _) = challenge(&server, None);
    let still = photo("liveness/poses/orl_s1_1.pgm");
    let fields: Vec<(&str, &[u8], bool)> = (0..4).map(|_| ("frames", still.as_slice(), true)).collect();
    let flat = post_form(server.addr, &format!("/v1/liveness/sessions/{id3}"), &fields);
    assert_eq!(flat.status, 200, "{:?}", flat.json());
    let flat = flat.json();
    assert_eq!(flat["live"], false);
    for r in ["identical_frames", "pose_not_reached", "planar_motion"] {
        assert!(flat["reasons"].as_array().expect("reasons").contains(&json!(r)), "{flat}");
    }
    assert!(flat["messages"][0]["message"].as_str().expect("message").contains("kepala"), "{flat}");

    // Another NIK's challenge, a wrong frame count, an unknown challenge.
    let (id4, frames4) = challenge(&server, Some(&nik(22)));
    let other = verify(&id4, &frames4);
    assert_eq!((other.status, other.code()), (403, "challenge_nik_mismatch".to_string()));
    let (id5, frames5) = challenge(&server, None);
    let short = post_json(
        server.addr,
        &format!("/v1/liveness/sessions/{id5}"),
        &json!({ "frames": b64(&frames5[..2]) }),
    );
    assert_eq!((short.status, short.code()), (400, "invalid_argument".to_string()));
    let unknown =
        post_json(server.addr, "/v1/liveness/sessions/0123abcd", &json!({ "frames": b64(&frames5) }));
    assert_eq!((unknown.status, unknown.code()), (404, "challenge_not_found".to_string()));
    // Neither a selfie nor a challenge.
    let neither = post_json(server.addr, "/v1/verifications", &json!({ "nik": n }));
    assert_eq!((neither.status, neither.code()), (400, "bad_request".to_string()));
}

#[test]
fn an_expired_challenge_is_refused() {
    let dir = data_dir("liveness-expiry");
    let server = Server::start(wajah_server::config::Config { challenge_ttl_secs: 1, ..config(&dir) });
    let (id, frames) = challenge(&server, None);
    std::thread::sleep(std::time::Duration::from_millis(1300));
    let late =
        post_json(server.addr, &format!("/v1/liveness/sessions/{id}"), &json!({ "frames": b64(&frames) }));
    assert_eq!((late.status, late.code()), (410, "challenge_expired".to_string()));
}
