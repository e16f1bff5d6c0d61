//! The head-turn liveness challenge over HTTP: issue a challenge, check the frames sent for it.
//! The checks themselves are the engine's ([`wajah::Engine::check_liveness`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wajah::{CaptureMode, FrameReport, Liveness, LivenessReason, Nik, QualityIssue, Step};

use crate::api::{PhotoBytes, PhotoFile, nik_schema};
use crate::body::Body;
use crate::challenges::rfc3339;
use crate::error::{ApiError, ErrorBody};
use crate::messages::{self, Lang, ProblemMessage};
use crate::state::{AppState, Inner, Outcome};

/// `POST /v1/liveness/challenges` (the body may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// Bind the challenge to this NIK: only a session or verification for it may use it.
    #[schema(schema_with = nik_schema)]
    #[serde(default)]
    pub nik: Option<String>,
}

/// A new challenge.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeAnswer {
    /// Send it back with the frames; single use.
    pub id: String,
    /// One frame per step, in this order; the first is always `straight`.
    pub steps: Vec<Step>,
    /// What to tell the citizen for each step, in the language of `Content-Language`.
    pub instructions: Vec<&'static str>,
    /// RFC 3339 UTC; after it the challenge answers 410 `challenge_expired`.
    pub expires_at: String,
}

/// The path of `POST /v1/liveness/sessions/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ChallengePath {
    /// The challenge id.
    pub id: String,
}

/// `POST /v1/liveness/sessions/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// One photo per step of the challenge, in order (multipart: one `frames` part each).
    pub frames: Vec<PhotoBytes>,
    /// The NIK, required when the challenge was bound to one.
    #[schema(schema_with = nik_schema)]
    #[serde(default)]
    pub nik: Option<String>,
    /// `registration` (default) holds the straight frame to the selfie capture rules.
    #[serde(default)]
    pub mode: CaptureMode,
}

/// `POST /v1/liveness/sessions/{id}` as multipart/form-data (described; read into
/// [`SessionRequest`]).
#[derive(Debug, ToSchema)]
pub struct SessionForm {
    /// One `frames` part per step of the challenge, in order.
    pub frames: Vec<PhotoFile>,
    /// The NIK, required when the challenge was bound to one.
    #[schema(schema_with = nik_schema)]
    pub nik: Option<String>,
    /// `registration` (default) or `check`.
    pub mode: Option<CaptureMode>,
}

/// A liveness reason with what the citizen should do.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonMessage {
    pub code: LivenessReason,
    /// In the language of `Content-Language`.
    pub message: &'static str,
}

/// The liveness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LivenessAnswer {
    /// True when every check passed.
    pub live: bool,
    /// Why not (empty when live).
    pub reasons: Vec<LivenessReason>,
    /// The reasons with what to do, in the language of `Content-Language`.
    pub messages: Vec<ReasonMessage>,
    /// The straight frame's capture problems that refused it.
    pub frontal_problems: Vec<QualityIssue>,
    pub frontal_messages: Vec<ProblemMessage>,
    /// Per frame: step, pose, face, score against the straight frame, parallax.
    pub frames: Vec<FrameReport>,
}

impl LivenessAnswer {
    pub fn of(l: &Liveness, lang: Lang) -> Self {
        let r = &l.report;
        let mut messages: Vec<ReasonMessage> = Vec::new();
        for code in &r.reasons {
            let message = messages::liveness(*code, lang);
            if !messages.iter().any(|m| m.message == message) {
                messages.push(ReasonMessage { code: *code, message });
            }
        }
        Self {
            live: r.live,
            reasons: r.reasons.clone(),
            messages,
            frontal_problems: r.frontal_problems.clone(),
            frontal_messages: ProblemMessage::all(&r.frontal_problems, lang),
            frames: r.frames.clone(),
        }
    }
}

/// Start a head-turn liveness challenge.
#[utoipa::path(post, path = "/v1/liveness/challenges", tag = "liveness",
    request_body(content((ChallengeRequest = "application/json")), description = "Optional"),
    responses(
        (status = 201, description = "Issued", body = ChallengeAnswer),
        (status = 400, description = "Malformed body or NIK", body = ErrorBody),
        (status = 503, description = "Too many open challenges", body = ErrorBody),
    ))]
pub async fn issue(
    State(state): State<AppState>,
    lang: Lang,
    body: Bytes,
) -> Result<(StatusCode, Json<ChallengeAnswer>), ApiError> {
    let request: ChallengeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ChallengeRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let nik = request.nik.as_deref().map(Nik::parse).transpose()?.map(|n| n.as_str().to_string());
    let issued = state.challenges.issue(nik)?;
    let answer = ChallengeAnswer {
        id: issued.id,
        instructions: issued.steps.iter().map(|s| messages::step(*s, lang)).collect(),
        steps: issued.steps,
        expires_at: rfc3339(issued.expires_at),
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Check the frames taken for a challenge (uses the challenge up).
#[utoipa::path(post, path = "/v1/liveness/sessions/{id}", tag = "liveness", params(ChallengePath),
    request_body(content((SessionForm = "multipart/form-data"), (SessionRequest = "application/json"))),
    responses(
        (status = 200, description = "Checked: `live` says whether every check passed", body = LivenessAnswer),
        (status = 400, description = "Frame count differs from the steps, or a malformed body", body = ErrorBody),
        (status = 403, description = "`challenge_nik_mismatch`", body = ErrorBody),
        (status = 404, description = "`challenge_not_found`", body = ErrorBody),
        (status = 409, description = "`challenge_used`", body = ErrorBody),
        (status = 410, description = "`challenge_expired`", body = ErrorBody),
        (status = 422, description = "A frame without a usable face", body = ErrorBody),
    ))]
pub async fn session(
    State(state): State<AppState>,
    lang: Lang,
    Path(ChallengePath { id }): Path<ChallengePath>,
    Body(request, admitted, caller): Body<SessionRequest>,
) -> Result<Json<LivenessAnswer>, ApiError> {
    let nik = request.nik.as_deref().map(Nik::parse).transpose()?.map(|n| n.as_str().to_string());
    let steps = state.challenges.take(&id, nik.as_deref())?;
    let liveness = state
        .run(admitted, move |s| {
            let result = check(s, &steps, &request.frames, request.mode);
            let outcome = Outcome::of(&result, |l| Outcome {
                decision: if l.report.live { "live" } else { "not_live" }.into(),
                score: None,
                problems: l.report.frontal_problems.clone(),
            });
            s.record(&caller, "liveness", nik.as_deref(), outcome)?;
            Ok(result?)
        })
        .await?;
    tracing::info!(live = liveness.report.live, "liveness checked");
    Ok(Json(LivenessAnswer::of(&liveness, lang)))
}

/// Checks `frames` for `steps`; an accepted session's frames are remembered so that they cannot
/// be sent again.
///
/// # Errors
/// As [`wajah::Engine::check_liveness`].
pub fn check(s: &Inner, steps: &[Step], frames: &[PhotoBytes], mode: CaptureMode) -> wajah::Result<Liveness> {
    let frames: Vec<&[u8]> = frames.iter().map(|f| f.0.as_slice()).collect();
    let liveness = s.gallery.engine().check_liveness(steps, &frames, mode, Some(&s.seen_frames))?;
    if liveness.report.live {
        liveness.remember_in(&s.seen_frames);
    }
    Ok(liveness)
}
