//! The service over a real socket: the registration flow on real photos, every error code,
//! restart persistence, load shedding.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::json;
use wajah::{IndexConfig, IndexKind};

use crate::{KEY, Server, config, data_dir, http, nik, photo, post_form, post_json, root};

/// People in testdata/ with at least two photos, and their photos.
fn people() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(root().join("testdata/ORIGINS.csv")).expect("origins");
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        if cols[0].starts_with("identities/") && !cols[0].ends_with(".pgm") && !cols[4].is_empty() {
            by.entry(cols[4].to_string()).or_default().push(cols[0].to_string());
        }
    }
    by.into_iter().filter(|(_, p)| p.len() >= 2).collect()
}

#[test]
fn registration_flow_enrol_verify_identify_delete_and_restart() {
    flow(IndexKind::Auto);
}

/// The same flow on the int8 index that national-scale galleries use (`[index] kind = "compact"`):
/// identification rescored from the store, deletions followed, the index refilled on restart.
#[test]
fn registration_flow_on_a_compact_index() {
    flow(IndexKind::Compact);
}

fn flow(kind: IndexKind) {
    let dir = data_dir("flow");
    let config = |dir: &tempfile::TempDir| {
        let mut c = config(dir);
        c.index = IndexConfig { kind, ..IndexConfig::default() };
        c
    };
    let server = Server::start(config(&dir));
    let addr = server.addr;
    let people = people();
    assert!(people.len() >= 20, "{} people with two photos", people.len());

    // Enrol 20 people: the first photo that gives exactly one usable face.
    let mut enrolled: Vec<(String, String, Vec<String>)> = Vec::new();
    for (i, (_, photos)) in people.iter().enumerate() {
        if enrolled.len() == 20 {
            break;
        }
        for (j, p) in photos.iter().enumerate() {
            let reply = post_form(
                addr,
                "/v1/enrollments",
                &[("nik", nik(i).as_bytes(), false), ("photo", &photo(p), true)],
            );
            if reply.status == 201 {
                assert_eq!(reply.json()["status"], "created");
                let others =
                    photos.iter().enumerate().filter(|(k, _)| *k != j).map(|(_, p)| p.clone()).collect();
                enrolled.push((nik(i), p.clone(), others));
                break;
            }
            assert_eq!(reply.status, 422, "{p}: {:?}", reply.json());
        }
    }
    assert_eq!(enrolled.len(), 20);

    // Re-enrolling the same photo is idempotent; another photo replaces and says so.
    let (n0, p0, _) = &enrolled[0];
    let again =
        post_form(addr, "/v1/enrollments", &[("nik", n0.as_bytes(), false), ("photo", &photo(p0), true)]);
    assert_eq!((again.status, again.json()["status"].clone()), (200, json!("unchanged")));

    // A different photo of each person matches (JSON + base64 this time).
    let mut verified = 0;
    for (n, _, others) in &enrolled {
        for p in others {
            let selfie = base64::engine::general_purpose::STANDARD.encode(photo(p));
            let reply =
                post_json(addr, "/v1/verifications", &json!({ "nik": n, "selfie": selfie, "mode": "check" }));
            if reply.status == 422 {
                continue; // that photo has a capture problem (e.g. two faces); try the next one
            }
            let body = reply.json();
            assert_eq!(reply.status, 200, "{body}");
            assert_eq!(body["decision"], "match", "{n} with {p}: score {}", body["score"]);
            for key in ["score", "threshold", "model", "face", "capture_problems", "timings_ms"] {
                assert!(body.get(key).is_some(), "verification answer lacks {key}");
            }
            verified += 1;
            break;
        }
    }
    assert!(verified >= 18, "only {verified} of 20 verified with a second photo");

    // 20 impostors: person i's NIK with person i+1's photo. None may match.
    for i in 0..20 {
        let (n, _, _) = &enrolled[i];
        let (_, impostor, _) = &enrolled[(i + 1) % 20];
        let reply = post_form(
            addr,
            "/v1/verifications",
            &[("nik", n.as_bytes(), false), ("selfie", &photo(impostor), true), ("mode", b"check", false)],
        );
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.json()["decision"],
            "no_match",
            "{n} accepted {impostor}: score {}",
            reply.json()["score"]
        );
    }

    // Identification puts the right NIK first.
    for (n, _, others) in enrolled.iter().take(5) {
        let reply = post_form(
            addr,
            "/v1/identifications",
            &[("photo", &photo(&others[0]), true), ("k", b"3", false)],
        );
        if reply.status == 422 {
            continue;
        }
        assert_eq!(reply.json()["candidates"][0]["nik"], json!(n), "{}", reply.json());
    }

    // Delete, then verify: not_enrolled; deleting again: not_enrolled.
    let (n, _, others) = &enrolled[1];
    let auth = [("Authorization", format!("Bearer {KEY}"))];
    assert_eq!(http(addr, "DELETE", &format!("/v1/enrollments/{n}"), &auth, b"").status, 204);
    let reply = post_form(
        addr,
        "/v1/verifications",
        &[("nik", n.as_bytes(), false), ("selfie", &photo(&others[0]), true)],
    );
    assert_eq!((reply.status, reply.code()), (404, "not_enrolled".to_string()));
    assert_eq!(http(addr, "DELETE", &format!("/v1/enrollments/{n}"), &auth, b"").code(), "not_enrolled");
    let identified = post_form(addr, "/v1/identifications", &[("photo", &photo(&others[0]), true)]);
    assert!(identified.json()["candidates"].as_array().expect("list").iter().all(|c| c["nik"] != json!(n)));

    // Restart on the same data directory: enrolments are still there, the deleted one is not.
    drop(server);
    let server = Server::start(config(&dir));
    let (n2, _, others2) = &enrolled[2];
    let reply = post_form(
        server.addr,
        "/v1/verifications",
        &[("nik", n2.as_bytes(), false), ("selfie", &photo(&others2[0]), true)],
    );
    assert!(reply.status == 200 || reply.status == 422, "{:?}", reply.json());
    let metrics = http(server.addr, "GET", "/metrics", &[("Authorization", format!("Bearer {KEY}"))], b"");
    assert!(String::from_utf8_lossy(&metrics.body).contains("wajah_enrolled 19\n"));
    let reply = post_form(
        server.addr,
        "/v1/verifications",
        &[("nik", n.as_bytes(), false), ("selfie", &photo(&others[0]), true)],
    );
    assert_eq!(reply.code(), "not_enrolled");
    drop(server);
}

/// A photo whose only face is real but tiny (eye distance under the 16 px minimum).
fn tiny_face_png() -> Vec<u8> {
    let img = image::load_from_memory(&photo("identities/fr_obama/obama.jpg")).expect("decodes").to_rgb8();
    let small = image::imageops::resize(&img, 91, 114, image::imageops::FilterType::Triangle);
    let mut canvas = image::RgbImage::from_pixel(320, 320, image::Rgb([128, 128, 128]));
    image::imageops::replace(&mut canvas, &small, 110, 100);
    let mut out = std::io::Cursor::new(Vec::new());
    canvas.write_to(&mut out, image::ImageFormat::Png).expect("encodes");
    out.into_inner()
}

#[test]
fn every_error_code_from_a_real_request() {
    let dir = data_dir("errors");
    // A template from another model, stored before the server starts, with the server's key.
    let key = wajah::TemplateKey::create(&dir.path().join("template.key")).expect("key");
    let store = wajah::SqliteStore::open(&dir.path().join("templates.db"), vec![key]).expect("store");
    let embedding = wajah::Embedding::from_raw(vec![1.0; 128]).expect("unit");
    wajah::TemplateStore::upsert(
        &store,
        &wajah::Enrollment {
            subject: nik(99),
            template: wajah::Template { model: "old-model:00000000".into(), embedding },
            quality: json!({}),
            photo_sha256: "x".into(),
            created_ms: 0,
            updated_ms: 0,
        },
    )
    .expect("stored");
    drop(store);
    let mut cfg = config(&dir);
    cfg.max_body_mib = 1;
    let server = Server::start(cfg);
    let addr = server.addr;
    let face = photo("identities/fr_obama/obama2.jpg");
    let expect = |reply: crate::Reply, status: u16, code: &str| {
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (status, code),
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    };

    expect(http(addr, "POST", "/v1/verifications", &[], b""), 401, "unauthorized");
    let wrong = [("Authorization", "Bearer nope".to_string()), ("Content-Type", "application/json".into())];
    expect(http(addr, "POST", "/v1/compare", &wrong, b"{}"), 401, "unauthorized");
    let auth_text = [("Authorization", format!("Bearer {KEY}")), ("Content-Type", "text/plain".into())];
    expect(http(addr, "POST", "/v1/compare", &auth_text, b"hello"), 415, "unsupported_media_type");
    expect(post_json(addr, "/v1/compare", &json!({ "photo_a": "***" })), 400, "bad_request");
    expect(post_form(addr, "/v1/verifications", &[("selfie", &face, true)]), 400, "bad_request");
    expect(
        post_form(addr, "/v1/verifications", &[("nik", b"1234", false), ("selfie", &face, true)]),
        400,
        "invalid_nik",
    );
    let n = nik(1);
    let verify =
        |p: &[u8]| post_form(addr, "/v1/verifications", &[("nik", n.as_bytes(), false), ("selfie", p, true)]);
    expect(verify(&face), 404, "not_enrolled");
    expect(
        post_form(addr, "/v1/enrollments", &[("nik", n.as_bytes(), false), ("photo", b"", true)]),
        422,
        "empty_image",
    );
    let noise: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    expect(
        post_form(addr, "/v1/enrollments", &[("nik", n.as_bytes(), false), ("photo", &noise, true)]),
        422,
        "unsupported_image",
    );
    let bomb = [b"P6\n30000 30000\n255\n".as_slice(), &[0u8; 64]].concat();
    expect(
        post_form(addr, "/v1/enrollments", &[("nik", n.as_bytes(), false), ("photo", &bomb, true)]),
        413,
        "image_too_large",
    );
    let dogs = photo("no_face/dogs.jpg");
    expect(
        post_form(addr, "/v1/enrollments", &[("nik", n.as_bytes(), false), ("photo", &dogs, true)]),
        422,
        "no_face",
    );
    let two = photo("multi_face/two_people.jpg");
    expect(
        post_form(addr, "/v1/enrollments", &[("nik", n.as_bytes(), false), ("photo", &two, true)]),
        422,
        "multiple_faces",
    );
    expect(
        post_form(
            addr,
            "/v1/enrollments",
            &[("nik", n.as_bytes(), false), ("photo", &tiny_face_png(), true)],
        ),
        422,
        "face_too_small",
    );
    let big = vec![0u8; 2 << 20];
    expect(
        post_form(addr, "/v1/enrollments", &[("nik", n.as_bytes(), false), ("photo", &big, true)]),
        413,
        "payload_too_large",
    );
    let old = nik(99);
    expect(
        post_form(addr, "/v1/verifications", &[("nik", old.as_bytes(), false), ("selfie", &face, true)]),
        409,
        "model_mismatch",
    );
    drop(server);

    // Overloaded: one worker, a queue of eight; forty requests at once must shed some with 503.
    let mut cfg = config(&dir);
    cfg.workers = 1;
    let server = Server::start(cfg);
    let addr = server.addr;
    let big_photo = photo("identities/df_jack/img59.jpg");
    let statuses: Vec<crate::Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..40)
            .map(|_| {
                s.spawn(|| {
                    post_form(
                        addr,
                        "/v1/compare",
                        &[("photo_a", &big_photo, true), ("photo_b", &big_photo, true)],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let shed: Vec<&crate::Reply> = statuses.iter().filter(|r| r.status == 503).collect();
    assert!(!shed.is_empty(), "no request was shed");
    assert!(statuses.iter().all(|r| r.status == 503 || r.status == 200 || r.status == 422));
    assert_eq!(shed[0].code(), "overloaded");
    assert_eq!(shed[0].headers.get("retry-after").map(String::as_str), Some("1"));
    drop(server);
}

/// Registration mode over real HTTP: a masked selfie and a photo of the ID photo are refused with
/// `capture_rejected` and what to fix, in Bahasa Indonesia by default and in English on request; in
/// check mode the same selfie is compared and the problem reported beside the answer.
#[test]
fn registration_mode_refuses_non_compliant_captures_in_the_citizens_language() {
    let dir = data_dir("capture");
    let server = Server::start(config(&dir));
    let addr = server.addr;
    let n = nik(7);
    let enrolled = post_form(
        addr,
        "/v1/enrollments",
        &[("nik", n.as_bytes(), false), ("photo", &photo("capture/replay/id_photo.jpg"), true)],
    );
    assert_eq!(enrolled.status, 201, "{:?}", enrolled.json());
    // The ID photo itself is held to the ID-photo rules: a masked one is refused and not stored.
    let masked = photo("robustness/insightface___robustness__mask2.jpg");
    let refused =
        post_form(addr, "/v1/enrollments", &[("nik", nik(8).as_bytes(), false), ("photo", &masked, true)]);
    assert_eq!(
        (refused.status, refused.code()),
        (422, "capture_rejected".to_string()),
        "{:?}",
        refused.json()
    );

    let auth = |lang: &str| {
        vec![
            ("Authorization", format!("Bearer {KEY}")),
            ("Accept-Language", lang.to_string()),
            ("Content-Type", "application/json".to_string()),
        ]
    };
    let body = |selfie: &[u8], mode: &str| {
        serde_json::to_vec(&json!({
            "nik": n,
            "selfie": base64::engine::general_purpose::STANDARD.encode(selfie),
            "mode": mode,
        }))
        .expect("json")
    };
    let problems = |reply: &crate::Reply| -> Vec<(String, String)> {
        reply.json()["error"]["problems"]
            .as_array()
            .expect("problems listed")
            .iter()
            .map(|p| (p["code"].as_str().unwrap_or("").into(), p["message"].as_str().unwrap_or("").into()))
            .collect()
    };
    // No Accept-Language (or Indonesian first): Indonesian.
    let id = http(
        addr,
        "POST",
        "/v1/verifications",
        &auth("id-ID,id;q=0.9,en;q=0.8"),
        &body(&masked, "registration"),
    );
    assert_eq!((id.status, id.code()), (422, "capture_rejected".to_string()));
    assert_eq!(id.headers.get("content-language").map(String::as_str), Some("id"));
    assert!(problems(&id).contains(&("mask".into(), "Lepaskan masker Anda.".into())), "{:?}", id.json());
    assert!(id.json()["error"]["message"].as_str().unwrap_or("").starts_with("Foto belum memenuhi syarat"));
    assert!(id.json().get("score").is_none() && id.json()["error"].get("score").is_none(), "no comparison");
    // English when preferred.
    let en = http(addr, "POST", "/v1/verifications", &auth("en-GB,en;q=0.9"), &body(&masked, "registration"));
    assert_eq!(en.headers.get("content-language").map(String::as_str), Some("en"));
    assert!(problems(&en).contains(&("mask".into(), "Please take off your mask.".into())), "{:?}", en.json());
    // Other error codes are translated too.
    let bad = http(addr, "POST", "/v1/verifications", &auth("en"), b"{\"nik\": \"1234\", \"selfie\": \"\"}");
    assert_eq!(bad.json()["error"]["message"], "The NIK is not valid. A NIK has 16 digits.");
    let bad = http(addr, "POST", "/v1/verifications", &auth("id"), b"{\"nik\": \"1234\", \"selfie\": \"\"}");
    assert_eq!(bad.json()["error"]["message"], "NIK tidak valid. NIK terdiri dari 16 angka.");
    // Check mode: compared, the problem reported with its message.
    let checked = http(addr, "POST", "/v1/verifications", &auth("id"), &body(&masked, "check"));
    assert_eq!(checked.status, 200, "{:?}", checked.json());
    assert!(checked.json()["capture_problems"].as_array().expect("list").contains(&json!("mask")));
    assert!(checked.json()["capture_messages"].as_array().expect("list").contains(&json!({
        "code": "mask",
        "message": "Lepaskan masker Anda.",
    })));
    let score = checked.json()["quality"]["quality_score"].as_u64().expect("a quality score");
    assert!(score < 50, "a masked selfie scored {score}");

    // A photo of the enrolled ID photo, held up to a camera (testdata/capture/replay, made by
    // `wajah make-replay`): refused in registration mode, flagged in check mode.
    let replay = photo("capture/replay/replay_7_001.jpg");
    let refused = http(addr, "POST", "/v1/verifications", &auth("id"), &body(&replay, "registration"));
    assert_eq!(
        (refused.status, refused.code()),
        (422, "capture_rejected".to_string()),
        "{:?}",
        refused.json()
    );
    assert_eq!(problems(&refused).iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["photo_of_id_photo"]);
    let checked = http(addr, "POST", "/v1/verifications", &auth("en"), &body(&replay, "check"));
    assert!(
        checked.json()["capture_problems"].as_array().expect("list").contains(&json!("photo_of_id_photo"))
    );
    // /v1/compare reports the same check, with A as the ID photo and B as the selfie.
    let compared = post_form(
        addr,
        "/v1/compare",
        &[("photo_a", &photo("capture/replay/id_photo.jpg"), true), ("photo_b", &replay, true)],
    );
    assert!(
        compared.json()["b"]["capture_problems"]
            .as_array()
            .expect("list")
            .contains(&json!("photo_of_id_photo"))
    );
    assert!(
        !compared.json()["a"]["capture_problems"]
            .as_array()
            .expect("list")
            .contains(&json!("photo_of_id_photo"))
    );
}
