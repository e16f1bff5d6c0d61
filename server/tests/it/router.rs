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
}

/// The codes listed under README's "Error codes" heading are exactly the codes the service gives.
#[test]
fn readme_lists_every_error_code() {
    let readme = std::fs::read_to_string(crate::root().join("README.md")).expect("README");
    let section = readme.split("### Error codes").nth(1).expect("README has an Error codes section");
    let section = section.split("\n#").next().unwrap_or_default();
    let listed: std::collections::BTreeSet<&str> =
        section.lines().filter_map(|l| l.strip_prefix("| `")).filter_map(|l| l.split('`').next()).collect();
    let known: std::collections::BTreeSet<&str> = wajah_server::error::codes().collect();
    assert_eq!(listed, known, "README's error codes differ from the code's");
}

/// `/openapi.json` is valid OpenAPI 3 (checked by openapi-spec-validator from the venv that
/// `make test` provisions) and describes every route the router serves.
#[tokio::test]
async fn openapi_document_validates_and_covers_the_routes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = AppState::new(&config(dir.path())).expect("state");
    let (status, body) = get(&state, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &body).expect("write");
    let validator = crate::schema::api_tool("openapi-spec-validator");
    let out = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{} (run `make test`, which installs it): {e}", validator.display()));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/v1/enrollments", "post"),
        ("/v1/enrollments/{nik}", "delete"),
        ("/v1/verifications", "post"),
        ("/v1/compare", "post"),
        ("/v1/identifications", "post"),
        ("/v1/detections", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        let op = &paths.get(path).unwrap_or_else(|| panic!("no {path}"))[method];
        assert!(op.is_object(), "no {method} {path}");
        if path.starts_with("/v1/") {
            assert!(op["responses"].get("401").is_some(), "{path} does not list 401");
            assert_eq!(op["security"][0].get("bearer"), Some(&serde_json::json!([])));
        }
    }
    // Request bodies come from the Rust types: JSON and multipart, with the NIK pattern.
    let enrol = &paths["/v1/enrollments"]["post"]["requestBody"]["content"];
    assert!(enrol.get("multipart/form-data").is_some() && enrol.get("application/json").is_some());
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["EnrollRequest"]["properties"]["nik"]["pattern"], wajah_server::api::NIK_PATTERN);
    // Multipart bodies are described by their own schemas (photos as file parts), with the same fields.
    for (json, form) in [
        ("EnrollRequest", "EnrollForm"),
        ("VerifyRequest", "VerifyForm"),
        ("CompareRequest", "CompareForm"),
        ("IdentifyRequest", "IdentifyForm"),
        ("DetectRequest", "DetectForm"),
    ] {
        let fields = |name: &str| {
            schemas[name]["properties"].as_object().map(|p| p.keys().cloned().collect::<Vec<_>>())
        };
        assert_eq!(fields(json), fields(form), "{json} and {form}");
        assert_eq!(schemas[json]["required"], schemas[form]["required"], "{json} and {form}");
    }
    assert_eq!(schemas["PhotoFile"]["format"], "binary");
    assert_eq!(schemas["PhotoBytes"]["contentEncoding"], "base64");
    let codes = schemas["ErrorDetail"]["properties"]["code"]["enum"].as_array().expect("codes");
    assert_eq!(codes.len(), wajah_server::error::codes().count());
}
