//! The router without a socket (`oneshot`): public and protected paths, metrics, OpenAPI.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wajah_server::{AppState, app};

use crate::{KEY, config, data_dir};

async fn get(state: &AppState, path: &str, key: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get(path);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response =
        app(state.clone()).oneshot(request.body(Body::empty()).expect("request")).await.expect("response");
    let status = response.status();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).to_string())
}

#[tokio::test]
async fn public_paths_protected_paths_metrics_and_openapi() {
    let dir = data_dir("router");
    let state = AppState::new(&config(&dir)).expect("state");
    assert_eq!(get(&state, "/healthz", None).await.0, StatusCode::OK);
    let (status, body) = get(&state, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"ready\":true"));
    let (status, page) = get(&state, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("wajah"));
    let (status, body) = get(&state, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    for path in [
        "/v1/enrollments",
        "/v1/verifications",
        "/v1/compare",
        "/v1/identifications",
        "/v1/detections",
        "/v1/enrollments/{nik}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    let (status, body) = get(&state, "/nowhere", Some(KEY)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("\"not_found\""), "{body}");
    let (status, body) = get(&state, "/v1/compare", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(get(&state, "/metrics", None).await.0, StatusCode::UNAUTHORIZED);
    let (_, metrics) = get(&state, "/metrics", Some(KEY)).await;
    assert!(metrics.contains("wajah_requests_total{route=\"/healthz\",status=\"200\"} 1"), "{metrics}");
    assert!(metrics.contains("wajah_request_seconds_bucket"));
    std::fs::remove_dir_all(dir).ok();
}

/// The codes listed under README's "Error codes" heading are exactly the codes the service gives.
#[test]
fn readme_lists_every_error_code() {
    let readme = std::fs::read_to_string(crate::root().join("README.md")).expect("README");
    let section = readme.split("### Error codes").nth(1).expect("README has an Error codes section");
    let section = section.split("\n#").next().unwrap_or_default();
    let listed: std::collections::BTreeSet<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let known: std::collections::BTreeSet<&str> = wajah_server::error::codes().collect();
    assert_eq!(listed, known, "README's error codes differ from the code's");
}
