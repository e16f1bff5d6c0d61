//! Errors as HTTP responses: one mapping from every failure to a status and a stable code.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
    /// All inference slots and the queue are busy.
    Overloaded,
    /// The request ran out of time.
    Timeout,
    /// An internal failure outside the engine (a task panicked, a lock was poisoned).
    Internal(String),
}

impl From<wajah::Error> for ApiError {
    fn from(e: wajah::Error) -> Self {
        ApiError::Engine(e)
    }
}

impl ApiError {
    /// Status, stable code and client-facing message. 5xx messages hide internals.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        use wajah::Error as E;
        match self {
            ApiError::Engine(e) => {
                let status = match e {
                    E::EmptyInput
                    | E::UnsupportedImage { .. }
                    | E::NoFace
                    | E::MultipleFaces { .. }
                    | E::FaceTooSmall { .. }
                    | E::LowQuality { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                    E::ImageTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                    E::InvalidNik { .. } | E::InvalidArgument(_) | E::DimensionMismatch { .. } => {
                        StatusCode::BAD_REQUEST
                    }
                    E::NotEnrolled => StatusCode::NOT_FOUND,
                    E::ModelMismatch { .. } => StatusCode::CONFLICT,
                    E::Config(_)
                    | E::Model { .. }
                    | E::Inference(_)
                    | E::Store(_)
                    | E::Crypto(_)
                    | E::Index(_)
                    | E::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let message =
                    if status.is_server_error() { "internal error".to_string() } else { e.to_string() };
                let code = if status.is_server_error() { "internal" } else { e.code() };
                (status, code, message)
            }
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
            ApiError::Overloaded => {
                (StatusCode::SERVICE_UNAVAILABLE, "overloaded", "all workers are busy; retry shortly".into())
            }
            ApiError::Timeout => {
                (StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long".into())
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".into()),
        }
    }
}

/// Every code a client can see, for the API description.
pub const CODES: &[&str] = &[
    "bad_request",
    "unsupported_media_type",
    "payload_too_large",
    "unauthorized",
    "overloaded",
    "timeout",
    "internal",
    "empty_image",
    "unsupported_image",
    "image_too_large",
    "no_face",
    "multiple_faces",
    "face_too_small",
    "low_quality",
    "invalid_nik",
    "invalid_argument",
    "dimension_mismatch",
    "not_enrolled",
    "model_mismatch",
];

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        if status.is_server_error() && !matches!(self, ApiError::Overloaded | ApiError::Timeout) {
            // Details stay in the log (request id in the span); never photos or templates.
            tracing::error!(code, detail = ?self, "request failed");
        }
        let mut response =
            (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response();
        if matches!(self, ApiError::Overloaded | ApiError::Timeout) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
