//! Handlers: parse, run the engine on the blocking pool, answer JSON. No face logic here.

use std::io::Cursor;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use wajah::{Enrollment, FaceAnalysis, Nik, TemplateStore, Upsert};

use crate::error::ApiError;
use crate::fields::Fields;
use crate::state::AppState;

fn face_json(a: &FaceAnalysis) -> Value {
    json!({
        "bbox": a.face.bbox,
        "landmarks": a.face.landmarks,
        "score": a.face.score,
        "faces_found": a.faces_found,
        "photo_width": a.photo_size.0,
        "photo_height": a.photo_size.1,
    })
}

fn capture_problems(a: &FaceAnalysis) -> Vec<&'static str> {
    a.quality.issues.iter().map(|i| i.as_str()).collect()
}

fn timings(analyses: &[&FaceAnalysis], started: Instant) -> Value {
    let sum = |f: fn(&wajah::Timings) -> f64| analyses.iter().map(|a| f(&a.timings)).sum::<f64>();
    json!({
        "decode_ms": sum(|t| t.decode_ms),
        "detect_ms": sum(|t| t.detect_ms),
        "align_ms": sum(|t| t.align_ms),
        "quality_ms": sum(|t| t.quality_ms),
        "embed_ms": sum(|t| t.embed_ms),
        "total_ms": started.elapsed().as_secs_f64() * 1e3,
    })
}

fn nik(fields: &Fields) -> Result<Nik, ApiError> {
    Ok(Nik::parse(fields.text("nik")?)?)
}

/// `POST /v1/enrollments` {nik, photo}: enrol the KTP-el photo for a NIK.
pub async fn enroll(State(state): State<AppState>, fields: Fields) -> Result<Response, ApiError> {
    let started = Instant::now();
    let nik = nik(&fields)?;
    let photo = fields.photo("photo")?.to_vec();
    let subject = nik.as_str().to_string();
    let (outcome, analysis) = state
        .run(move |s| {
            let analysis = s.engine.analyze(&photo)?;
            let enrollment = Enrollment {
                subject: subject.clone(),
                template: analysis.template.clone(),
                quality: serde_json::to_value(&analysis.quality).unwrap_or(Value::Null),
                photo_sha256: analysis.photo_sha256.clone(),
                created_ms: 0,
                updated_ms: 0,
            };
            let outcome = s.store.upsert(&enrollment)?;
            if outcome != Upsert::Unchanged {
                let mut index =
                    s.index.write().map_err(|_| ApiError::Internal("index lock poisoned".into()))?;
                index.insert(&subject, &analysis.template.embedding)?;
            }
            Ok((outcome, analysis))
        })
        .await?;
    state.metrics.stages(&analysis.timings);
    tracing::info!(nik = %nik, outcome = ?outcome, "enrolled");
    let status = if outcome == Upsert::Created { StatusCode::CREATED } else { StatusCode::OK };
    let body = json!({
        "nik": nik.as_str(),
        "status": outcome,
        "replaced": outcome == Upsert::Replaced,
        "model": state.engine.model_id(),
        "face": face_json(&analysis),
        "capture_problems": capture_problems(&analysis),
        "quality": analysis.quality,
        "timings_ms": timings(&[&analysis], started),
    });
    Ok((status, Json(body)).into_response())
}

/// `POST /v1/verifications` {nik, selfie}: 1:1 against the enrolled template.
pub async fn verify(State(state): State<AppState>, fields: Fields) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let nik = nik(&fields)?;
    let selfie = fields.photo("selfie")?.to_vec();
    let subject = nik.as_str().to_string();
    let (decision, analysis) = state
        .run(move |s| {
            let enrolled = s.store.get(&subject, s.engine.model_id())?;
            Ok(s.engine.verify(&selfie, &enrolled.template)?)
        })
        .await?;
    state.metrics.stages(&analysis.timings);
    state.metrics.decision("verify", decision.matched);
    tracing::info!(nik = %nik, matched = decision.matched, "verified");
    Ok(Json(json!({
        "nik": nik.as_str(),
        "matched": decision.matched,
        "decision": if decision.matched { "match" } else { "no_match" },
        "score": decision.score,
        "threshold": decision.threshold,
        "model": state.engine.model_id(),
        "face": face_json(&analysis),
        "capture_problems": capture_problems(&analysis),
        "quality": analysis.quality,
        "timings_ms": timings(&[&analysis], started),
    })))
}

fn png_base64(image: &image::RgbImage) -> String {
    let mut out = Cursor::new(Vec::new());
    // Encoding a 112x112 image in memory cannot fail short of running out of memory.
    let _ = image.write_to(&mut out, image::ImageFormat::Png);
    base64::engine::general_purpose::STANDARD.encode(out.into_inner())
}

/// `POST /v1/compare` {photo_a, photo_b[, include_crops]}: stateless 1:1.
pub async fn compare(State(state): State<AppState>, fields: Fields) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let a = fields.photo("photo_a")?.to_vec();
    let b = fields.photo("photo_b")?.to_vec();
    let crops = matches!(fields.optional("include_crops"), Some("true" | "1"));
    let (decision, fa, fb) = state
        .run(move |s| {
            let fa = s.engine.analyze(&a)?;
            let fb = s.engine.analyze(&b)?;
            let decision = s.engine.compare(&fa.template, &fb.template)?;
            Ok((decision, fa, fb))
        })
        .await?;
    state.metrics.stages(&fa.timings);
    state.metrics.stages(&fb.timings);
    state.metrics.decision("compare", decision.matched);
    let side = |f: &FaceAnalysis| {
        let mut v =
            json!({ "face": face_json(f), "capture_problems": capture_problems(f), "quality": f.quality });
        if crops {
            v["aligned_png_base64"] = json!(png_base64(f.aligned.image()));
        }
        v
    };
    Ok(Json(json!({
        "matched": decision.matched,
        "decision": if decision.matched { "match" } else { "no_match" },
        "score": decision.score,
        "threshold": decision.threshold,
        "model": state.engine.model_id(),
        "a": side(&fa),
        "b": side(&fb),
        "timings_ms": timings(&[&fa, &fb], started),
    })))
}

/// `POST /v1/identifications` {photo[, k]}: 1:N top-k over the gallery.
pub async fn identify(State(state): State<AppState>, fields: Fields) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let photo = fields.photo("photo")?.to_vec();
    let k: usize = match fields.optional("k") {
        Some(k) => k.parse().map_err(|_| ApiError::BadRequest("`k` must be a whole number".into()))?,
        None => 5,
    };
    if !(1..=100).contains(&k) {
        return Err(ApiError::BadRequest("`k` must be within 1..=100".into()));
    }
    let (matches, analysis) = state
        .run(move |s| {
            let analysis = s.engine.analyze(&photo)?;
            let index = s.index.read().map_err(|_| ApiError::Internal("index lock poisoned".into()))?;
            Ok((index.search(&analysis.template.embedding, k)?, analysis))
        })
        .await?;
    state.metrics.stages(&analysis.timings);
    let threshold = state.engine.threshold();
    state.metrics.decision("identify", matches.first().is_some_and(|m| m.score.0 >= threshold));
    let candidates: Vec<Value> = matches
        .iter()
        .map(|m| json!({ "nik": m.subject, "score": m.score, "matched": m.score.0 >= threshold }))
        .collect();
    Ok(Json(json!({
        "candidates": candidates,
        "k": k,
        "threshold": threshold,
        "model": state.engine.model_id(),
        "face": face_json(&analysis),
        "capture_problems": capture_problems(&analysis),
        "timings_ms": timings(&[&analysis], started),
    })))
}

/// `POST /v1/detections` {photo}: all faces, boxes, landmarks.
pub async fn detect(State(state): State<AppState>, fields: Fields) -> Result<Json<Value>, ApiError> {
    let photo = fields.photo("photo")?.to_vec();
    let detection = state.run(move |s| Ok(s.engine.detect(&photo)?)).await?;
    Ok(Json(json!({ "width": detection.width, "height": detection.height, "faces": detection.faces })))
}

/// `DELETE /v1/enrollments/{nik}`: deactivation or erasure.
pub async fn delete(State(state): State<AppState>, Path(nik): Path<String>) -> Result<StatusCode, ApiError> {
    let nik = Nik::parse(&nik)?;
    let subject = nik.as_str().to_string();
    let deleted = state
        .run(move |s| {
            let deleted = s.store.delete(&subject)?;
            s.index.write().map_err(|_| ApiError::Internal("index lock poisoned".into()))?.remove(&subject);
            Ok(deleted)
        })
        .await?;
    tracing::info!(nik = %nik, deleted, "enrolment deleted");
    if deleted { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::Engine(wajah::Error::NotEnrolled)) }
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: models loaded and store open.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        Json(json!({ "ready": true, "model": state.engine.model_id(), "enrolled": state.index.read().map(|i| i.len()).unwrap_or(0) }))
            .into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false }))).into_response()
    }
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
        .into_response()
}

/// `GET /`: the operator console.
pub async fn console() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}
