//! wajah-server: the HTTP face of the wajah engine for the registration backend.
//!
//! `app(state)` builds the router (tests drive it without a socket); `serve` runs it until
//! SIGTERM or Ctrl-C, finishing requests in flight.

pub mod config;
pub mod error;
mod fields;
pub mod metrics;
mod openapi;
mod routes;
pub mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;

pub use config::{Args, Config};
pub use error::ApiError;
pub use state::AppState;

/// Paths that need no API key.
const PUBLIC: [&str; 5] = ["/", "/healthz", "/readyz", "/metrics", "/openapi.json"];

/// The service's routes and middleware.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/enrollments", post(routes::enroll))
        .route("/v1/enrollments/{nik}", delete(routes::delete))
        .route("/v1/verifications", post(routes::verify))
        .route("/v1/compare", post(routes::compare))
        .route("/v1/identifications", post(routes::identify))
        .route("/v1/detections", post(routes::detect))
        .route_layer(middleware::from_fn_with_state(state.clone(), shed_early));
    Router::new()
        .route("/", get(routes::console))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(openapi::document))
        .merge(api)
        .fallback(|| async { ApiError::BadRequest("no such route".into()).into_response() })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(state.max_body))
        .with_state(state)
}

/// Rejects requests without a configured API key (except public paths).
async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if PUBLIC.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    match bearer {
        Some(key) if state.accepts(key.trim()) => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// Sheds load before the body is read when every admission slot is taken: a 503 then costs
/// almost nothing, so a flood of retries cannot starve the requests being served. (`AppState::run`
/// still enforces the limit exactly.)
async fn shed_early(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.admission.available_permits() == 0 {
        return ApiError::Overloaded.into_response();
    }
    next.run(request).await
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Request id, a log line per request (route template, never the raw path: it may hold a NIK), and
/// metrics.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map_or_else(
            || format!("{:x}-{}", std::process::id(), NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            str::to_string,
        );
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = request.method().clone();
    let span = tracing::info_span!("request", id = %id, %method, route = %route);
    let mut response = {
        let _enter = span.enter();
        drop(_enter);
        tracing::Instrument::instrument(next.run(request), span.clone()).await
    };
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    state.metrics.request(&route, status, seconds);
    span.in_scope(|| tracing::info!(status, ms = seconds * 1e3, "done"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Serves `state` on `listener` until `shutdown` resolves, then lets requests in flight finish.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ready = state.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            ready.set_not_ready();
            tracing::info!("shutting down: finishing requests in flight");
        })
        .await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
