//! wajah-server: the HTTP face of the wajah engine for the registration backend.
//!
//! `app(state)` builds the router (tests drive it without a socket); `serve` runs it until
//! SIGTERM or Ctrl-C, finishing requests in flight.

pub mod api;
mod body;
mod challenges;
mod clients;
pub mod config;
pub mod error;
mod limits;
pub mod liveness;
pub mod messages;
pub mod metrics;
mod openapi;
mod routes;
mod serve;
pub mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

// The body parser the routes use, for the fuzz targets (`fuzz/`); not API.
#[doc(hidden)]
pub use body::read as read_body;
pub use clients::Caller;
pub use config::Config;
pub use error::ApiError;
pub use serve::{serve, shutdown_signal};
pub use state::AppState;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The service's routes and middleware. The route table is also the API description's.
pub fn app(state: AppState) -> Router {
    let protected = OpenApiRouter::new()
        .routes(routes!(routes::enroll))
        .routes(routes!(routes::delete))
        .routes(routes!(routes::verify))
        .routes(routes!(routes::compare))
        .routes(routes!(routes::identify))
        .routes(routes!(routes::detect))
        .routes(routes!(liveness::issue))
        .routes(routes!(liveness::session));
    let operations = OpenApiRouter::new().routes(routes!(routes::metrics));
    let (router, mut description) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::readyz))
        .merge(protected)
        .merge(operations)
        .split_for_parts();
    openapi::Protect.modify(&mut description);
    let description = Arc::new(description);
    router
        .route("/", get(routes::console))
        .route("/liveness", get(routes::liveness_page))
        .route("/openapi.json", get(move || std::future::ready(axum::Json(description.as_ref().clone()))))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn(limits::enforce))
        .layer(RequestBodyLimitLayer::new(state.max_body))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::map_response(json_errors))
        .layer(middleware::from_fn(error::localise))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(span).on_request(()).on_response(()).on_failure(()))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), Sequential))
        .layer(middleware::map_request(forget_client_request_id))
        .with_state(state)
}

/// Request ids are ours: `<pid>-<n>`.
#[derive(Clone, Copy)]
struct Sequential;

impl MakeRequestId for Sequential {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = format!("{:x}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// A client's `X-Request-Id` is dropped, not logged: it could carry personal data (a NIK).
async fn forget_client_request_id(mut request: Request) -> Request {
    request.headers_mut().remove(&REQUEST_ID);
    request
}

/// The log span of a request: our id, the method and the route template (never the raw path,
/// which may hold a NIK).
fn span(request: &Request) -> tracing::Span {
    let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!("request", id = %id, method = %request.method(), route = %route)
}

/// Rejects requests without a configured API key (except public paths), and requests over the
/// key's rate (429). The scheme name is case-insensitive (`Bearer`, `bearer`); `X-Api-Key: KEY` is
/// accepted too. The caller (key id and request id) is handed on as a request extension.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if openapi::PUBLIC.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key)
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    let Some(client) = bearer.and_then(|key| state.clients.find(key.trim())) else {
        return ApiError::Unauthorized.into_response();
    };
    let request_id = headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let caller = Caller { client, request_id };
    if let Err(limited) = caller.take() {
        return limited.into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Metrics per route and status, and one log line per served request. Sheds (503) and refusals
/// (401) are counted, and logged at debug level only: a flood must not flood the log.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let response = next.run(request).await;
    let status = response.status();
    let seconds = started.elapsed().as_secs_f64();
    state.metrics.request(&route, status.as_u16(), seconds);
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE) {
        tracing::debug!(status = status.as_u16(), ms = seconds * 1e3, "done");
    } else {
        tracing::info!(status = status.as_u16(), ms = seconds * 1e3, "done");
    }
    response
}

/// Error answers made outside our handlers (the body limit's 413, an extractor's rejection) get
/// the JSON error body too, and keep their other headers. Inside the layers that add the request id
/// and the security headers, so these answers carry them as well.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        StatusCode::NOT_FOUND => ApiError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
        StatusCode::REQUEST_TIMEOUT => ApiError::BodyTimeout,
        StatusCode::SERVICE_UNAVAILABLE => ApiError::Timeout,
        s if s.is_client_error() => {
            ApiError::BadRequest(s.canonical_reason().unwrap_or("bad request").into())
        }
        _ => ApiError::Internal(format!("status {status} without a body")),
    };
    let mut answer = error.into_response();
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().append(name, value.clone());
        }
    }
    answer
}
