//! Request-line and header limits, enforced by the service (so that the answer is the JSON error
//! body) below hyper's own, which answer bare 414/431 only past `HYPER_MAX_HEADERS` fields or
//! `HYPER_MAX_BUF` bytes.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Longest request target (path and query), in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header fields.
pub const MAX_HEADERS: usize = 100;
/// Most header bytes (names and values).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// hyper's own header-field limit, set well above [`MAX_HEADERS`].
pub const HYPER_MAX_HEADERS: usize = 1000;
/// hyper's read buffer (request line and headers must fit), set well above our limits.
pub const HYPER_MAX_BUF: usize = 512 * 1024;

/// 414 `uri_too_long` or 431 `headers_too_large` before anything else runs.
pub async fn enforce(request: Request, next: Next) -> Response {
    let target = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::UriTooLong.into_response();
    }
    let headers = request.headers();
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge.into_response();
    }
    next.run(request).await
}
