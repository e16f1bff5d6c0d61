//! Errors as HTTP responses: one mapping from every failure to a status and a stable code.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use wajah::{ErrorKind, QualityIssue};

use crate::api::DuplicateAnswer;
use crate::challenges::ChallengeError;
use crate::messages::{self, Lang, ProblemMessage};

/// Everything a request can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// The engine refused the input or failed.
    Engine(wajah::Error),
    /// The request itself is malformed (missing field, bad base64, bad JSON).
    BadRequest(String),
    /// Content type other than multipart/form-data or application/json.
    UnsupportedMediaType,
    /// The body is over the configured limit.
    PayloadTooLarge,
    /// No or wrong API key.
    Unauthorized,
    /// No such route.
    NotFound,
    /// The route exists, not with this method.
    MethodNotAllowed,
    /// All inference slots and the queue are busy.
    Overloaded,
    /// The client's key is over its request rate; retry after the duration.
    RateLimited(std::time::Duration),
    /// The request ran out of time.
    Timeout,
    /// The client did not send its body in time.
    BodyTimeout,
    /// The request target is over `MAX_URI_BYTES`.
    UriTooLong,
    /// Too many header fields, or too many header bytes.
    HeadersTooLarge,
    /// A liveness challenge that cannot be used.
    Challenge(ChallengeError),
    /// An internal failure outside the engine (a task panicked).
    Internal(String),
}

impl From<wajah::Error> for ApiError {
    fn from(e: wajah::Error) -> Self {
        ApiError::Engine(e)
    }
}

/// The status for each kind of engine error.
fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The service's own codes (beside the engine's [`wajah::Error::USER_CODES`]).
const SERVICE_CODES: &[&str] = &[
    "bad_request",
    "unsupported_media_type",
    "payload_too_large",
    "unauthorized",
    "not_found",
    "method_not_allowed",
    "overloaded",
    "rate_limited",
    "timeout",
    "body_timeout",
    "uri_too_long",
    "headers_too_large",
    "challenge_not_found",
    "challenge_expired",
    "challenge_used",
    "challenge_nik_mismatch",
    "internal",
];

/// Every code a client can see.
pub fn codes() -> impl Iterator<Item = &'static str> {
    SERVICE_CODES.iter().chain(wajah::Error::USER_CODES).copied()
}

impl ApiError {
    /// Status, stable code and client-facing message. 5xx messages hide internals.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::Engine(e) => match e.kind() {
                ErrorKind::Internal => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".into())
                }
                kind @ (ErrorKind::InvalidInput
                | ErrorKind::Unprocessable
                | ErrorKind::TooLarge
                | ErrorKind::NotFound
                | ErrorKind::Conflict
                | ErrorKind::Unavailable) => (status_of(kind), e.code(), e.to_string()),
            },
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send multipart/form-data or application/json".into(),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is over the limit".into(),
            ),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid API key is required (Authorization: Bearer KEY)".into(),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such route".into()),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method".into(),
            ),
            ApiError::Overloaded => {
                (StatusCode::SERVICE_UNAVAILABLE, "overloaded", "all workers are busy; retry shortly".into())
            }
            ApiError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this API key is over its request rate; retry after Retry-After seconds".into(),
            ),
            ApiError::Timeout => {
                (StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long".into())
            }
            ApiError::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the request body did not arrive in time".into(),
            ),
            ApiError::UriTooLong => (
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!("the request target is over {} bytes", crate::limits::MAX_URI_BYTES),
            ),
            ApiError::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!(
                    "over {} header fields or {} header bytes",
                    crate::limits::MAX_HEADERS,
                    crate::limits::MAX_HEADER_BYTES
                ),
            ),
            ApiError::Challenge(e) => match e {
                ChallengeError::NotFound => (
                    StatusCode::NOT_FOUND,
                    "challenge_not_found",
                    "no such liveness challenge (expired ones are dropped; ask for a new one)".into(),
                ),
                ChallengeError::Expired => {
                    (StatusCode::GONE, "challenge_expired", "the liveness challenge has expired".into())
                }
                ChallengeError::Used => {
                    (StatusCode::CONFLICT, "challenge_used", "the liveness challenge was already used".into())
                }
                ChallengeError::NikMismatch => (
                    StatusCode::FORBIDDEN,
                    "challenge_nik_mismatch",
                    "the liveness challenge was issued for another NIK".into(),
                ),
            },
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".into()),
        }
    }

    /// Seconds after which a retry may succeed, for the `Retry-After` header.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Overloaded | ApiError::Timeout => Some(1),
            ApiError::RateLimited(wait) => Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            ApiError::Engine(e) if e.kind() == ErrorKind::Unavailable => Some(1),
            ApiError::Engine(_)
            | ApiError::BadRequest(_)
            | ApiError::UnsupportedMediaType
            | ApiError::PayloadTooLarge
            | ApiError::Unauthorized
            | ApiError::NotFound
            | ApiError::MethodNotAllowed
            | ApiError::BodyTimeout
            | ApiError::UriTooLong
            | ApiError::HeadersTooLarge
            | ApiError::Challenge(_)
            | ApiError::Internal(_) => None,
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// A stable code, a message for the citizen and a detail for developers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable.
    #[schema(schema_with = code_schema)]
    pub code: &'static str,
    /// For the citizen, in the language of `Content-Language` (Bahasa Indonesia unless
    /// `Accept-Language` prefers English).
    pub message: &'static str,
    /// For developers, in English; may change.
    pub detail: String,
    /// With `capture_rejected`: each problem and what to do about it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemMessage>,
    /// With `possible_duplicate`: the matching enrolments, NIKs masked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<DuplicateAnswer>,
}

fn code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(codes()))
        .build()
}

/// What an error answer says, kept in the response's extensions so that [`localise`] can write it
/// again in the caller's language.
#[derive(Clone, Debug)]
pub struct ErrorText {
    code: &'static str,
    detail: String,
    problems: Vec<QualityIssue>,
    candidates: Vec<DuplicateAnswer>,
}

impl ErrorText {
    fn body(&self, lang: Lang) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: messages::error(self.code, lang),
                detail: self.detail.clone(),
                problems: ProblemMessage::all(&self.problems, lang),
                candidates: self.candidates.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = self.parts();
        let retry_after = self.retry_after();
        if status.is_server_error() && retry_after.is_none() {
            // Details stay in the log (request id in the span); never photos or templates.
            tracing::error!(code, detail = ?self, "request failed");
        }
        let (mut problems, mut candidates) = (Vec::new(), Vec::new());
        if let ApiError::Engine(wajah::Error::CaptureRejected { problems: p }) = &self {
            problems.clone_from(p);
        }
        if let ApiError::Engine(wajah::Error::PossibleDuplicate { candidates: c }) = &self {
            candidates = DuplicateAnswer::all(c);
        }
        let text = ErrorText { code, detail, problems, candidates };
        let mut response = (status, Json(text.body(Lang::default()))).into_response();
        response.extensions_mut().insert(text);
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Error answers in the caller's language (`Accept-Language`), and `Content-Language` on every answer.
pub async fn localise(request: Request, next: Next) -> Response {
    let lang = Lang::negotiate(request.headers());
    let mut response = next.run(request).await;
    if lang != Lang::default()
        && let Some(text) = response.extensions().get::<ErrorText>().cloned()
        && let Ok(bytes) = serde_json::to_vec(&text.body(lang))
    {
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = axum::body::Body::from(bytes);
    }
    response.headers_mut().insert(header::CONTENT_LANGUAGE, lang.header());
    response
}
