//! One error type for the whole engine.
//!
//! Every variant is either a *user error* (the input was wrong: a photo with no face, an invalid NIK)
//! or an *internal error* (a model failed to load, the store is broken). [`Error::kind`] says which
//! (and what kind of user error), and [`Error::code`] gives the stable snake_case code that clients
//! see.

use std::path::PathBuf;

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input bytes were empty.
    #[error("the photo is empty")]
    EmptyInput,
    /// The bytes are not an image in a supported format, or the image is corrupt.
    #[error("unsupported or corrupt image: {reason}")]
    UnsupportedImage { reason: String },
    /// The image exceeds a configured limit (bytes, width, height or pixel count).
    #[error("image too large: {what} is {actual}, the limit is {limit}")]
    ImageTooLarge { what: &'static str, actual: u64, limit: u64 },
    /// No face was found.
    #[error("no face found in the photo")]
    NoFace,
    /// More than one face was found where exactly one is required.
    #[error("{count} faces found in the photo; exactly one is required")]
    MultipleFaces { count: usize },
    /// The face is smaller than the configured minimum (inter-ocular distance in pixels).
    #[error("the face is too small: {actual:.1} px between the eyes, at least {min:.1} px required")]
    FaceTooSmall { actual: f32, min: f32 },
    /// The capture was refused under [`crate::CaptureMode::Registration`] for these problems.
    #[error("the capture was refused: {}", problems.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "))]
    CaptureRejected { problems: Vec<crate::QualityIssue> },
    /// Enrolment found other subjects whose templates match the new face (duplicate check, with
    /// the refusing policy); they are given best first.
    #[error("the face matches {} other enrolment(s); refused for review", candidates.len())]
    PossibleDuplicate { candidates: Vec<crate::Candidate> },
    /// The capture fails quality checks.
    #[error("the photo fails capture checks: {}", list(reasons))]
    LowQuality { reasons: Vec<String> },
    /// A NIK (Indonesian national identity number) failed validation.
    #[error("invalid NIK: {reason}")]
    InvalidNik { reason: String },
    /// The subject has no enrolment.
    #[error("subject is not enrolled")]
    NotEnrolled,
    /// A template was made by another model (or model version) than the one in use.
    #[error("template was made by model {found}, the engine uses {expected}; they cannot be compared")]
    ModelMismatch { expected: String, found: String },
    /// Two templates (or a template and an index) have different dimensions.
    #[error("dimension mismatch: expected {expected}, found {found}")]
    DimensionMismatch { expected: usize, found: usize },
    /// A caller-supplied argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A model file is missing, has the wrong checksum, or does not have the expected inputs/outputs.
    #[error("model {}: {reason}", path.display())]
    Model { path: PathBuf, reason: String },
    /// ONNX Runtime failed while running a model.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The template store failed.
    #[error("template store: {0}")]
    Store(String),
    /// The template store (a database server) cannot be reached now; retrying later may work.
    #[error("template store unavailable: {0}")]
    StoreUnavailable(String),
    /// Encryption or decryption of a stored template failed.
    #[error("template encryption: {0}")]
    Crypto(String),
    /// The search index failed.
    #[error("index: {0}")]
    Index(String),
    /// An I/O error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// What kind of failure an [`Error`] is: what a caller (an HTTP service, a batch job) does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed: a bad argument or identifier.
    InvalidInput,
    /// The input is well-formed but cannot be used: no face, an unreadable photo.
    Unprocessable,
    /// The input is over a limit.
    TooLarge,
    /// The subject does not exist.
    NotFound,
    /// The input conflicts with what is stored (a template of another model).
    Conflict,
    /// A service the engine needs (the store's database) is down for now; retry later.
    Unavailable,
    /// The engine or its store failed; not the caller's fault.
    Internal,
}

fn list(reasons: &[String]) -> String {
    reasons.join(", ")
}

/// An ONNX Runtime failure as [`Error::Inference`] (for `map_err`).
pub(crate) fn inference(e: impl std::fmt::Display) -> Error {
    Error::Inference(e.to_string())
}

impl Error {
    /// Every code [`Error::code`] gives for a user error (the codes clients can see).
    pub const USER_CODES: &[&str] = &[
        "empty_image",
        "unsupported_image",
        "image_too_large",
        "no_face",
        "multiple_faces",
        "face_too_small",
        "low_quality",
        "capture_rejected",
        "invalid_nik",
        "not_enrolled",
        "model_mismatch",
        "possible_duplicate",
        "dimension_mismatch",
        "invalid_argument",
        "store_unavailable",
    ];

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidNik { .. } | Error::InvalidArgument(_) | Error::DimensionMismatch { .. } => {
                ErrorKind::InvalidInput
            }
            Error::EmptyInput
            | Error::UnsupportedImage { .. }
            | Error::NoFace
            | Error::MultipleFaces { .. }
            | Error::FaceTooSmall { .. }
            | Error::LowQuality { .. }
            | Error::CaptureRejected { .. } => ErrorKind::Unprocessable,
            Error::ImageTooLarge { .. } => ErrorKind::TooLarge,
            Error::NotEnrolled => ErrorKind::NotFound,
            Error::ModelMismatch { .. } | Error::PossibleDuplicate { .. } => ErrorKind::Conflict,
            Error::StoreUnavailable(_) => ErrorKind::Unavailable,
            Error::Config(_)
            | Error::Model { .. }
            | Error::Inference(_)
            | Error::Store(_)
            | Error::Crypto(_)
            | Error::Index(_)
            | Error::Io(_) => ErrorKind::Internal,
        }
    }

    /// True when the caller's input caused the error (HTTP 4xx), false for internal failures (5xx).
    pub fn is_user_error(&self) -> bool {
        self.kind() != ErrorKind::Internal
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::EmptyInput => "empty_image",
            Error::UnsupportedImage { .. } => "unsupported_image",
            Error::ImageTooLarge { .. } => "image_too_large",
            Error::NoFace => "no_face",
            Error::MultipleFaces { .. } => "multiple_faces",
            Error::FaceTooSmall { .. } => "face_too_small",
            Error::LowQuality { .. } => "low_quality",
            Error::CaptureRejected { .. } => "capture_rejected",
            Error::InvalidNik { .. } => "invalid_nik",
            Error::NotEnrolled => "not_enrolled",
            Error::ModelMismatch { .. } => "model_mismatch",
            Error::PossibleDuplicate { .. } => "possible_duplicate",
            Error::DimensionMismatch { .. } => "dimension_mismatch",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Config(_) => "config",
            Error::Model { .. } => "model",
            Error::Inference(_) => "inference",
            Error::Store(_) => "store",
            Error::StoreUnavailable(_) => "store_unavailable",
            Error::Crypto(_) => "crypto",
            Error::Index(_) => "index",
            Error::Io(_) => "io",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_exactly_the_codes_of_user_errors() {
        let user = [
            Error::EmptyInput,
            Error::UnsupportedImage { reason: String::new() },
            Error::ImageTooLarge { what: "width", actual: 2, limit: 1 },
            Error::NoFace,
            Error::MultipleFaces { count: 2 },
            Error::FaceTooSmall { actual: 1.0, min: 2.0 },
            Error::LowQuality { reasons: Vec::new() },
            Error::CaptureRejected { problems: Vec::new() },
            Error::InvalidNik { reason: String::new() },
            Error::NotEnrolled,
            Error::ModelMismatch { expected: String::new(), found: String::new() },
            Error::PossibleDuplicate { candidates: Vec::new() },
            Error::DimensionMismatch { expected: 1, found: 2 },
            Error::InvalidArgument(String::new()),
            Error::StoreUnavailable(String::new()),
        ];
        let codes: Vec<&str> =
            user.iter().inspect(|e| assert!(e.is_user_error(), "{e}")).map(Error::code).collect();
        assert_eq!(codes, Error::USER_CODES);
        for internal in
            [Error::Config(String::new()), Error::Store(String::new()), Error::Index(String::new())]
        {
            assert_eq!(internal.kind(), ErrorKind::Internal);
            assert!(!Error::USER_CODES.contains(&internal.code()));
        }
    }
}
