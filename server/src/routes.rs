//! Handlers: parse a typed body, run the gallery or engine on the blocking pool, answer a typed
//! body. No face logic here.

use std::io::Cursor;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use wajah::{FaceAnalysis, Liveness, Nik, Upsert, Verification};

use crate::api::{
    CandidateAnswer, CaptureAnswer, CompareAnswer, CompareForm, CompareRequest, CompareSide, DetectForm,
    DetectRequest, DetectionAnswer, DuplicateAnswer, EnrollForm, EnrollRequest, EnrollmentAnswer,
    IdentificationAnswer, IdentifyForm, IdentifyRequest, MAX_K, NikPath, ReadyAnswer, TimingsAnswer,
    VerificationAnswer, VerifyForm, VerifyRequest,
};
use crate::body::Body;
use crate::clients::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::liveness::LivenessAnswer;
use crate::messages::{Lang, ProblemMessage};
use crate::state::{AppState, Inner, Outcome};

/// Enrol the KTP-el photo for a NIK (the same photo again changes nothing; another replaces).
#[utoipa::path(post, path = "/v1/enrollments", tag = "enrolment",
    request_body(content((EnrollForm = "multipart/form-data"), (EnrollRequest = "application/json"))),
    responses(
        (status = 201, description = "Enrolled", body = EnrollmentAnswer),
        (status = 200, description = "Replaced, or unchanged (same photo)", body = EnrollmentAnswer),
        (status = 409, description = "`possible_duplicate` (with the `refuse` policy): the face matches other enrolments, listed masked", body = ErrorBody),
        (status = 422, description = "No usable face, or (registration mode) `capture_rejected`: sunglasses, a mask or a covered face", body = ErrorBody),
    ))]
pub async fn enroll(
    State(state): State<AppState>,
    lang: Lang,
    Body(request, admitted, caller): Body<EnrollRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let nik = Nik::parse(&request.nik)?;
    let subject = nik.as_str().to_string();
    let enrolled = state
        .run(admitted, move |s| {
            let result = s.gallery.enroll(&subject, &request.photo.0, request.mode);
            let outcome = Outcome::of(&result, |e| Outcome {
                decision: e.outcome.as_str().into(),
                score: None,
                problems: e.analysis.quality.issues.clone(),
            });
            s.record(&caller, "enroll", Some(&subject), outcome)?;
            Ok(result?)
        })
        .await?;
    state.metrics.stages(&enrolled.analysis.timings);
    tracing::info!(nik = %nik, outcome = ?enrolled.outcome, "enrolled");
    let status = if enrolled.outcome == Upsert::Created { StatusCode::CREATED } else { StatusCode::OK };
    let answer = EnrollmentAnswer {
        nik: nik.as_str().to_string(),
        status: enrolled.outcome,
        replaced: enrolled.outcome == Upsert::Replaced,
        possible_duplicates: DuplicateAnswer::all(&enrolled.possible_duplicates),
        model: state.gallery.engine().model_id().to_string(),
        capture: CaptureAnswer::of(&enrolled.analysis, lang),
        timings_ms: TimingsAnswer::of(&[&enrolled.analysis], started),
    };
    Ok((status, Json(answer)).into_response())
}

/// 1:1: a selfie against the NIK's enrolled template.
#[utoipa::path(post, path = "/v1/verifications", tag = "verification",
    request_body(content((VerifyForm = "multipart/form-data"), (VerifyRequest = "application/json"))),
    responses(
        (status = 200, description = "Compared", body = VerificationAnswer),
        (status = 404, description = "The NIK is not enrolled", body = ErrorBody),
        (status = 409, description = "Enrolled with another model", body = ErrorBody),
        (status = 422, description = "No usable face, or (registration mode) `capture_rejected` with the problems to fix", body = ErrorBody),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    lang: Lang,
    Body(request, admitted, caller): Body<VerifyRequest>,
) -> Result<Json<VerificationAnswer>, ApiError> {
    let started = Instant::now();
    let nik = Nik::parse(&request.nik)?;
    let subject = nik.as_str().to_string();
    let VerifyRequest { selfie, challenge_id, frames, mode, .. } = request;
    let (verification, liveness) = match (selfie, challenge_id) {
        (Some(selfie), None) if frames.is_empty() => {
            let v = state
                .run(admitted, move |s| {
                    let result = s.gallery.verify(&subject, &selfie.0, mode);
                    s.record(&caller, "verify", Some(&subject), Outcome::of(&result, verified))?;
                    Ok(result?)
                })
                .await?;
            (v, None)
        }
        (None, Some(id)) => {
            let steps = state.challenges.take(&id, Some(&subject))?;
            state
                .run(admitted, move |s| {
                    let result = verify_live(s, &subject, &steps, &frames, mode);
                    let outcome = Outcome::of(&result, |(v, _)| verified(v));
                    s.record(&caller, "verify_liveness", Some(&subject), outcome)?;
                    let (v, l) = result?;
                    Ok((v, Some(l)))
                })
                .await?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "send either `selfie`, or `challenge_id` with its `frames`".into(),
            ));
        }
    };
    let (decision, analysis) = (verification.decision, &verification.analysis);
    state.metrics.stages(&analysis.timings);
    state.metrics.decision("verify", decision.verdict());
    tracing::info!(nik = %nik, matched = decision.matched, "verified");
    Ok(Json(VerificationAnswer {
        nik: nik.as_str().to_string(),
        decision: decision.into(),
        model: state.gallery.engine().model_id().to_string(),
        capture: CaptureAnswer::of(analysis, lang),
        liveness: liveness.as_ref().map(|l| LivenessAnswer::of(l, lang)),
        timings_ms: TimingsAnswer::of(&[analysis], started),
    }))
}

/// What the audit trail keeps of a verification.
fn verified(v: &Verification) -> Outcome {
    Outcome {
        decision: v.decision.verdict().as_str().into(),
        score: Some(v.decision.score.0),
        problems: v.analysis.quality.issues.clone(),
    }
}

/// Liveness on the challenge's frames, then the straight frame against the enrolled template:
/// matched only when live, the same person, and not a photo of the ID photo.
fn verify_live(
    s: &Inner,
    subject: &str,
    steps: &[wajah::Step],
    frames: &[crate::api::PhotoBytes],
    mode: wajah::CaptureMode,
) -> wajah::Result<(Verification, Liveness)> {
    let (enrolled, id_photo) = s.gallery.enrolled(subject)?;
    let mut liveness = crate::liveness::check(s, steps, frames, mode)?;
    let engine = s.gallery.engine();
    let mut decision = engine.compare(&liveness.frontal.template, &enrolled)?;
    let replay = engine.flag_id_photo_replay(&decision, &mut liveness.frontal, id_photo.as_ref());
    decision.matched &= liveness.report.live && !replay;
    Ok((Verification { decision, analysis: liveness.frontal.clone() }, liveness))
}

fn png_base64(image: &image::RgbImage) -> String {
    let mut out = Cursor::new(Vec::new());
    // Encoding a 112x112 image in memory cannot fail short of running out of memory.
    let _ = image.write_to(&mut out, image::ImageFormat::Png);
    base64::engine::general_purpose::STANDARD.encode(out.into_inner())
}

/// Stateless 1:1 of two photos.
#[utoipa::path(post, path = "/v1/compare", tag = "verification",
    request_body(content((CompareForm = "multipart/form-data"), (CompareRequest = "application/json"))),
    responses(
        (status = 200, description = "Compared", body = CompareAnswer),
        (status = 422, description = "No usable face in a photo", body = ErrorBody),
    ))]
pub async fn compare(
    State(state): State<AppState>,
    lang: Lang,
    Body(request, admitted, _): Body<CompareRequest>,
) -> Result<Json<CompareAnswer>, ApiError> {
    let started = Instant::now();
    let (a, b, crops) = (request.photo_a.0, request.photo_b.0, request.include_crops);
    let (decision, fa, fb) = state
        .run(admitted, move |s| {
            let engine = s.gallery.engine();
            let (fa, mut fb) = (engine.analyze(&a)?, engine.analyze(&b)?);
            let decision = engine.compare(&fa.template, &fb.template)?;
            // A is the ID photo and B the selfie: B near-identical to A is a photo of the ID photo.
            let id_photo = wajah::FacePatch::of(fa.aligned.image());
            engine.flag_id_photo_replay(&decision, &mut fb, id_photo.as_ref());
            Ok((decision, fa, fb))
        })
        .await?;
    state.metrics.stages(&fa.timings);
    state.metrics.stages(&fb.timings);
    state.metrics.decision("compare", decision.verdict());
    let side = |f: &FaceAnalysis| CompareSide {
        capture: CaptureAnswer::of(f, lang),
        aligned_png_base64: crops.then(|| png_base64(f.aligned.image())),
    };
    Ok(Json(CompareAnswer {
        decision: decision.into(),
        model: state.gallery.engine().model_id().to_string(),
        a: side(&fa),
        b: side(&fb),
        timings_ms: TimingsAnswer::of(&[&fa, &fb], started),
    }))
}

/// 1:N: the k most similar enrolled NIKs (duplicate-registration check).
#[utoipa::path(post, path = "/v1/identifications", tag = "identification",
    request_body(content((IdentifyForm = "multipart/form-data"), (IdentifyRequest = "application/json"))),
    responses(
        (status = 200, description = "Searched", body = IdentificationAnswer),
        (status = 422, description = "No usable face", body = ErrorBody),
    ))]
pub async fn identify(
    State(state): State<AppState>,
    lang: Lang,
    Body(request, admitted, caller): Body<IdentifyRequest>,
) -> Result<Json<IdentificationAnswer>, ApiError> {
    let started = Instant::now();
    let k = request.k;
    if !(1..=MAX_K).contains(&k) {
        return Err(ApiError::BadRequest(format!("`k` must be within 1..={MAX_K}")));
    }
    let found = state
        .run(admitted, move |s| {
            let result = s.gallery.identify(&request.photo.0, k);
            let outcome = Outcome::of(&result, |found| Outcome {
                decision: found.verdict().as_str().into(),
                score: found.candidates.first().map(|c| c.decision.score.0),
                problems: found.analysis.quality.issues.clone(),
            });
            s.record(&caller, "identify", None, outcome)?;
            Ok(result?)
        })
        .await?;
    let analysis = &found.analysis;
    state.metrics.stages(&analysis.timings);
    state.metrics.decision("identify", found.verdict());
    let candidates = found
        .candidates
        .iter()
        .map(|c| CandidateAnswer {
            nik: c.subject.clone(),
            score: c.decision.score.0,
            matched: c.decision.matched,
        })
        .collect();
    Ok(Json(IdentificationAnswer {
        candidates,
        k,
        threshold: state.gallery.engine().threshold(),
        model: state.gallery.engine().model_id().to_string(),
        face: analysis.into(),
        capture_problems: analysis.quality.issues.clone(),
        capture_messages: ProblemMessage::all(&analysis.quality.issues, lang),
        timings_ms: TimingsAnswer::of(&[analysis], started),
    }))
}

/// All human faces in a photo (detected, then confirmed): boxes, landmarks, scores.
#[utoipa::path(post, path = "/v1/detections", tag = "detection",
    request_body(content((DetectForm = "multipart/form-data"), (DetectRequest = "application/json"))),
    responses(
        (status = 200, description = "Faces found (possibly none)", body = DetectionAnswer),
        (status = 422, description = "Not a readable photo", body = ErrorBody),
    ))]
pub async fn detect(
    State(state): State<AppState>,
    Body(request, admitted, _): Body<DetectRequest>,
) -> Result<Json<DetectionAnswer>, ApiError> {
    let d = state.run(admitted, move |s| Ok(s.gallery.engine().detect(&request.photo.0)?)).await?;
    Ok(Json(DetectionAnswer { width: d.width, height: d.height, faces: d.faces }))
}

/// Delete the NIK's enrolment (deactivation or erasure).
#[utoipa::path(delete, path = "/v1/enrollments/{nik}", tag = "enrolment",
    params(NikPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "The NIK is not enrolled", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(NikPath { nik }): Path<NikPath>,
) -> Result<StatusCode, ApiError> {
    let nik = Nik::parse(&nik)?;
    let subject = nik.as_str().to_string();
    let admitted = state.admit(&caller, 0)?;
    let deleted = state
        .run(admitted, move |s| {
            let result = s.gallery.delete(&subject);
            let outcome =
                Outcome::of(&result, |d| Outcome::plain(if *d { "deleted" } else { "not_enrolled" }));
            s.record(&caller, "delete", Some(&subject), outcome)?;
            Ok(result?)
        })
        .await?;
    tracing::info!(nik = %nik, deleted, "enrolment deleted");
    if deleted { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::Engine(wajah::Error::NotEnrolled)) }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: models loaded, store open and answering.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = ReadyAnswer),
        (status = 503, description = "Starting, shutting down, or the store's database is unreachable", body = ReadyAnswer),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.clone();
    let available =
        tokio::task::spawn_blocking(move || store.gallery.store_available()).await.unwrap_or(false);
    if state.is_ready() && available {
        let model = Some(state.gallery.engine().model_id().to_string());
        Json(ReadyAnswer { ready: true, model }).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(ReadyAnswer { ready: false, model: None })).into_response()
    }
}

/// Prometheus metrics (they reveal decision counts: an API key is required).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.gallery.len()),
    )
        .into_response()
}

const CONSOLE: &str = include_str!("../static/index.html");
const LIVENESS: &str = include_str!("../static/liveness.html");

/// A page's Content-Security-Policy: its one inline script and style by hash, nothing else inline,
/// no frames, requests only to this origin.
fn page_policy(page: &str) -> String {
    let hash = |open: &str, close: &str| {
        let inner = page.split_once(open).and_then(|(_, rest)| rest.split_once(close)).map_or("", |p| p.0);
        let digest = <sha2::Sha256 as sha2::Digest>::digest(inner.as_bytes());
        format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
    };
    format!(
        "default-src 'none'; script-src {}; style-src {}; img-src 'self' data: blob:; connect-src 'self'; \
         form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        hash("<script>", "</script>"),
        hash("<style>", "</style>")
    )
}

/// The operator console.
pub async fn console() -> Response {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let policy = POLICY.get_or_init(|| page_policy(CONSOLE)).as_str();
    ([(axum::http::header::CONTENT_SECURITY_POLICY, policy)], Html(CONSOLE)).into_response()
}

/// The liveness page: runs a challenge with the browser's camera (or uploads).
pub async fn liveness_page() -> Response {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let policy = POLICY.get_or_init(|| page_policy(LIVENESS)).as_str();
    ([(axum::http::header::CONTENT_SECURITY_POLICY, policy)], Html(LIVENESS)).into_response()
}
