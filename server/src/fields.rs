//! Request bodies: the same named fields from multipart/form-data (photos as file parts) or from
//! JSON (photos as base64 strings).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use base64::Engine as _;

use crate::error::ApiError;

/// A request's fields by name.
pub struct Fields(HashMap<String, Vec<u8>>);

impl Fields {
    /// A photo field's bytes.
    ///
    /// # Errors
    /// `BadRequest` naming the missing field.
    pub fn photo(&self, name: &str) -> Result<&[u8], ApiError> {
        self.0
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| ApiError::BadRequest(format!("the field `{name}` (a photo) is missing")))
    }

    /// A text field.
    ///
    /// # Errors
    /// `BadRequest` naming the missing or non-UTF-8 field.
    pub fn text(&self, name: &str) -> Result<&str, ApiError> {
        let bytes =
            self.0.get(name).ok_or_else(|| ApiError::BadRequest(format!("the field `{name}` is missing")))?;
        std::str::from_utf8(bytes)
            .map(str::trim)
            .map_err(|_| ApiError::BadRequest(format!("the field `{name}` is not text")))
    }

    /// An optional text field.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|b| std::str::from_utf8(b).ok()).map(str::trim)
    }
}

/// Field names that carry photos (base64 in JSON).
const PHOTOS: [&str; 4] = ["photo", "selfie", "photo_a", "photo_b"];

fn too_large_or_bad(status: StatusCode, message: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(message)
    }
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let mut fields = HashMap::new();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, state)
                .await
                .map_err(|e| too_large_or_bad(e.status(), e.body_text()))?;
            while let Some(field) =
                multipart.next_field().await.map_err(|e| too_large_or_bad(e.status(), e.body_text()))?
            {
                let name = field.name().unwrap_or_default().to_string();
                let bytes = field.bytes().await.map_err(|e| too_large_or_bad(e.status(), e.body_text()))?;
                fields.insert(name, bytes.to_vec());
            }
        } else if content_type.starts_with("application/json") {
            let body = Bytes::from_request(req, state)
                .await
                .map_err(|e| too_large_or_bad(e.status(), e.body_text()))?;
            let value: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
            let object = value
                .as_object()
                .ok_or_else(|| ApiError::BadRequest("the JSON body must be an object".into()))?;
            for (name, value) in object {
                let bytes = match value {
                    serde_json::Value::String(s) if PHOTOS.contains(&name.as_str()) => {
                        base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(|_| {
                            ApiError::BadRequest(format!("the field `{name}` is not valid base64"))
                        })?
                    }
                    serde_json::Value::String(s) => s.clone().into_bytes(),
                    serde_json::Value::Null => continue,
                    other => other.to_string().into_bytes(),
                };
                fields.insert(name.clone(), bytes);
            }
        } else {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(Fields(fields))
    }
}
