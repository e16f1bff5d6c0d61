//! The API description: generated from the handlers' `#[utoipa::path]` attributes, the body types
//! and the route table (see `app`), so code and description cannot drift.

use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;

/// Paths that need no API key; every other route needs one.
pub const PUBLIC: [&str; 5] = ["/", "/liveness", "/healthz", "/readyz", "/openapi.json"];

/// What an operation does, which decides the error answers it can give besides its own.
#[derive(Clone, Copy)]
struct Kind {
    /// Needs an API key.
    protected: bool,
    /// Reads a typed body (multipart/form-data or JSON).
    reads_body: bool,
    /// Takes an admission slot and a worker (every operation that is not a `GET`).
    runs_work: bool,
}

/// Which operations can give an error answer.
type GivenBy = fn(Kind) -> bool;

/// Error answers (status, description), each with the operations that can give it.
const ERRORS: [(&str, &str, GivenBy); 10] = [
    (
        "400",
        "Malformed request: a missing, unknown or repeated field, bad JSON or base64, invalid NIK",
        |k| k.runs_work,
    ),
    ("401", "No valid API key", |k| k.protected),
    ("408", "The body did not arrive within the body deadline (`body_timeout`)", |k| k.reads_body),
    ("413", "Body (or, where one is read, photo) over the limit", |_| true),
    ("414", "The request target is over 8 KiB (`uri_too_long`)", |_| true),
    ("415", "Not multipart/form-data or application/json", |k| k.reads_body),
    ("431", "Over 100 header fields or 32 KiB of headers (`headers_too_large`)", |_| true),
    (
        "429",
        "This API key is over its request rate (`rate_limited`); retry after `Retry-After` seconds",
        |k| k.protected,
    ),
    ("500", "Internal failure (details only in the server log)", |k| k.runs_work),
    ("503", "Overloaded (`overloaded`) or out of time (`timeout`); retry after `Retry-After` seconds", |k| {
        k.runs_work
    }),
];

#[derive(OpenApi)]
#[openapi(
    info(title = "wajah", description = "Face verification for digital-ID registration."),
    components(schemas(ErrorBody)),
    modifiers(&Protect)
)]
pub struct ApiDoc;

/// The bearer scheme on protected operations, and on every operation the error answers its kind
/// can give (see [`ERRORS`]). Run once the route table's paths are in.
pub struct Protect;

impl Modify for Protect {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let protected = !PUBLIC.contains(&path.as_str());
            let operations = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.delete, true),
                (&mut item.patch, true),
            ];
            for (operation, runs_work) in operations {
                if let Some(operation) = operation {
                    let reads_body = operation.request_body.is_some();
                    describe(operation, Kind { protected, reads_body, runs_work });
                }
            }
        }
    }
}

/// Adds the API key requirement and the error answers of its kind to `operation`.
fn describe(operation: &mut Operation, kind: Kind) {
    if kind.protected {
        operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
    // A path parameter is always required (utoipa leaves one described by `schema_with` optional).
    for parameter in operation.parameters.iter_mut().flatten() {
        if parameter.parameter_in == ParameterIn::Path {
            parameter.required = Required::True;
        }
    }
    for (status, description, applies) in ERRORS {
        if !applies(kind) {
            continue;
        }
        let mut response = ResponseBuilder::new()
            .description(description)
            .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))));
        if status == "503" || status == "429" {
            let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1));
            let mut retry = Header::new(seconds);
            retry.description = Some("Seconds to wait before retrying".into());
            response = response.header("Retry-After", retry);
        }
        operation.responses.responses.entry(status.to_string()).or_insert(response.build().into());
    }
}
