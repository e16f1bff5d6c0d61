//! Request bodies: one typed request from multipart/form-data (photos as file parts) or JSON
//! (photos as base64 strings). A field given twice, or one the route does not take, is refused.
//!
//! Memory is admitted before it is spent: an admission slot is taken before the first byte of the
//! body is read (503 when none is free), and the whole body must arrive within `body_timeout`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::api::{CompareRequest, DetectRequest, EnrollRequest, IdentifyRequest, PhotoBytes, VerifyRequest};
use crate::clients::Caller;
use crate::error::ApiError;
use crate::liveness::SessionRequest;
use crate::state::{Admitted, AppState};

/// A request body of type `T`, from either encoding, the admission it was read under, and who sent it.
pub struct Body<T>(pub T, pub Admitted, pub Caller);

/// Multipart fields by name (only [`FromParts::REPEATED`] ones more than once), taken one by one;
/// what is left over is an error.
pub struct Parts(HashMap<String, Vec<Vec<u8>>>);

impl Parts {
    fn take(&mut self, name: &str) -> Option<Vec<u8>> {
        self.0.remove(name).and_then(|mut v| v.pop())
    }

    fn photos(&mut self, name: &str) -> Vec<PhotoBytes> {
        self.0.remove(name).unwrap_or_default().into_iter().map(PhotoBytes).collect()
    }

    fn photo(&mut self, name: &str) -> Result<PhotoBytes, ApiError> {
        self.take(name)
            .map(PhotoBytes)
            .ok_or_else(|| ApiError::BadRequest(format!("the field `{name}` (a photo) is missing")))
    }

    fn text(&mut self, name: &str) -> Result<String, ApiError> {
        let bytes =
            self.take(name).ok_or_else(|| ApiError::BadRequest(format!("the field `{name}` is missing")))?;
        String::from_utf8(bytes)
            .map(|s| s.trim().to_string())
            .map_err(|_| ApiError::BadRequest(format!("the field `{name}` is not text")))
    }

    fn optional<T: std::str::FromStr>(&mut self, name: &str, what: &str) -> Result<Option<T>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(Some)
                .ok_or_else(|| ApiError::BadRequest(format!("the field `{name}` must be {what}"))),
        }
    }

    fn finish<T>(self, value: T) -> Result<T, ApiError> {
        match self.0.keys().next() {
            None => Ok(value),
            Some(name) => Err(ApiError::BadRequest(format!("unknown field `{name}`"))),
        }
    }
}

/// A request type that can be read from multipart fields.
pub trait FromParts: Sized {
    /// Fields that may be given more than once.
    const REPEATED: &'static [&'static str] = &[];

    /// The request from `parts`.
    ///
    /// # Errors
    /// `BadRequest` naming a missing, malformed or unknown field.
    fn from_parts(parts: Parts) -> Result<Self, ApiError>;
}

impl FromParts for EnrollRequest {
    fn from_parts(mut p: Parts) -> Result<Self, ApiError> {
        let mode = p.optional("mode", "`registration` or `check`")?.unwrap_or_default();
        let request = Self { nik: p.text("nik")?, photo: p.photo("photo")?, mode };
        p.finish(request)
    }
}

impl FromParts for VerifyRequest {
    const REPEATED: &'static [&'static str] = &["frames"];

    fn from_parts(mut p: Parts) -> Result<Self, ApiError> {
        let mode = p.optional("mode", "`registration` or `check`")?.unwrap_or_default();
        let challenge_id = p.optional("challenge_id", "a challenge id")?;
        let selfie = p.take("selfie").map(PhotoBytes);
        let request = Self { nik: p.text("nik")?, selfie, challenge_id, frames: p.photos("frames"), mode };
        p.finish(request)
    }
}

impl FromParts for SessionRequest {
    const REPEATED: &'static [&'static str] = &["frames"];

    fn from_parts(mut p: Parts) -> Result<Self, ApiError> {
        let mode = p.optional("mode", "`registration` or `check`")?.unwrap_or_default();
        let nik = p.optional("nik", "a NIK")?;
        let request = Self { frames: p.photos("frames"), nik, mode };
        p.finish(request)
    }
}

impl FromParts for CompareRequest {
    fn from_parts(mut p: Parts) -> Result<Self, ApiError> {
        let request = Self {
            photo_a: p.photo("photo_a")?,
            photo_b: p.photo("photo_b")?,
            include_crops: p.optional("include_crops", "true or false")?.unwrap_or(false),
        };
        p.finish(request)
    }
}

impl FromParts for IdentifyRequest {
    fn from_parts(mut p: Parts) -> Result<Self, ApiError> {
        let k = p.optional("k", "a whole number")?.unwrap_or(crate::api::DEFAULT_K);
        let request = Self { photo: p.photo("photo")?, k };
        p.finish(request)
    }
}

impl FromParts for DetectRequest {
    fn from_parts(mut p: Parts) -> Result<Self, ApiError> {
        let request = Self { photo: p.photo("photo")? };
        p.finish(request)
    }
}

fn too_large_or_bad(status: StatusCode, message: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(message)
    }
}

/// The media type of a `Content-Type` value, lower-cased, without parameters.
fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

impl<T: DeserializeOwned + FromParts + Send> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let caller = req.extensions().get::<Caller>().cloned().ok_or(ApiError::Unauthorized)?;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(state.max_body);
        let admitted = state.admit(&caller, declared)?;
        let value = tokio::time::timeout(state.body_timeout, read(req))
            .await
            .map_err(|_| ApiError::BodyTimeout)??;
        Ok(Body(value, admitted, caller))
    }
}

/// The request's body as a `T`, from multipart/form-data or JSON. Public for the fuzz targets only.
///
/// # Errors
/// `BadRequest` for a malformed body or a missing, repeated or unknown field; `PayloadTooLarge`;
/// `UnsupportedMediaType`.
pub async fn read<T: DeserializeOwned + FromParts>(req: Request) -> Result<T, ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    match essence(content_type).as_str() {
        "multipart/form-data" => {
            let mut multipart = Multipart::from_request(req, &())
                .await
                .map_err(|e| too_large_or_bad(e.status(), e.body_text()))?;
            let mut fields = HashMap::new();
            while let Some(field) =
                multipart.next_field().await.map_err(|e| too_large_or_bad(e.status(), e.body_text()))?
            {
                let name = field.name().unwrap_or_default().to_string();
                if fields.contains_key(&name) && !T::REPEATED.contains(&name.as_str()) {
                    return Err(ApiError::BadRequest(format!("the field `{name}` is given twice")));
                }
                let bytes = field.bytes().await.map_err(|e| too_large_or_bad(e.status(), e.body_text()))?;
                fields.entry(name).or_insert_with(Vec::new).push(Vec::from(bytes));
            }
            T::from_parts(Parts(fields))
        }
        "application/json" => {
            let body = Bytes::from_request(req, &())
                .await
                .map_err(|e| too_large_or_bad(e.status(), e.body_text()))?;
            serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
        }
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_compared_whole_and_without_case() {
        assert_eq!(essence("APPLICATION/JSON; charset=utf-8"), "application/json");
        assert_ne!(essence("application/jsonx"), "application/json");
    }

    #[test]
    fn json_bodies_refuse_duplicate_and_unknown_keys() {
        let dup = r#"{"nik":"3201011505900001","nik":"3201011505900002","selfie":""}"#;
        let err = serde_json::from_str::<VerifyRequest>(dup).expect_err("duplicate");
        assert!(err.to_string().contains("duplicate field `nik`"), "{err}");
        let unknown = r#"{"nik":"3201011505900001","selfie":"","extra":[0,0,0]}"#;
        assert!(serde_json::from_str::<VerifyRequest>(unknown).is_err());
    }
}
