//! The server's request-body parser (`read`, the function every route's extractor calls) on
//! arbitrary bodies, both encodings: JSON (duplicate and unknown keys refused, photos as base64)
//! and multipart/form-data (multer; a field given twice or unknown refused).
//!
//! Input: the first byte picks the request type and the encoding; the rest is the body. Multipart
//! bodies use the boundary `FUZZ`.
//!
//! Checks: no panic, every refusal a 4xx.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use libfuzzer_sys::fuzz_target;
use wajah_server::api::{CompareRequest, DetectRequest, EnrollRequest, IdentifyRequest, VerifyRequest};

/// One current-thread runtime for the process (the parser is async; nothing here waits on I/O).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"))
}

fn request(content_type: &'static str, body: &[u8]) -> Request {
    Request::builder()
        .method("POST")
        .header(CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
        .expect("request")
}

/// The body read as a `$type`, as the route taking that type reads it.
macro_rules! parse {
    ($type:ty, $content_type:expr, $body:expr) => {
        runtime().block_on(wajah_server::read_body::<$type>(request($content_type, $body))).map(drop)
    };
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let content_type =
        if selector & 0x80 == 0 { "application/json" } else { "multipart/form-data; boundary=FUZZ" };
    let result = match (selector & 0x7f) % 5 {
        0 => parse!(EnrollRequest, content_type, body),
        1 => parse!(VerifyRequest, content_type, body),
        2 => parse!(CompareRequest, content_type, body),
        3 => parse!(IdentifyRequest, content_type, body),
        _ => parse!(DetectRequest, content_type, body),
    };
    if let Err(err) = result {
        let (status, _, _) = err.parts();
        assert!(status.is_client_error(), "{status} for a malformed body: {err:?}");
    }
});
