//! The API description: generated from the handlers' `#[utoipa::path]` attributes, the body types
//! and the route table (see `app`), so code and description cannot drift.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;

/// Paths that need no API key; every other route needs one.
pub const PUBLIC: [&str; 4] = ["/", "/healthz", "/readyz", "/openapi.json"];

/// Answers every protected route can give, besides its own.
const COMMON_ERRORS: [(&str, &str); 8] = [
    ("400", "Malformed request: a missing, unknown or repeated field, bad JSON or base64, invalid NIK"),
    ("401", "No valid API key"),
    ("408", "The request body did not arrive in time"),
    ("429", "This API key is over its request rate; retry after Retry-After seconds"),
    ("413", "Body or photo over the limit"),
    ("415", "Not multipart/form-data or application/json"),
    ("500", "Internal failure (details only in the server log)"),
    ("503", "Overloaded or timed out; retry after Retry-After seconds"),
];

#[derive(OpenApi)]
#[openapi(
    info(title = "wajah", description = "Face verification for digital-ID registration."),
    components(schemas(ErrorBody)),
    modifiers(&Protect)
)]
pub struct ApiDoc;

pub struct Protect;

impl Modify for Protect {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            if PUBLIC.contains(&path.as_str()) {
                continue;
            }
            let operations =
                [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                protect(operation);
            }
        }
    }
}

fn protect(operation: &mut Operation) {
    operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    for (status, description) in COMMON_ERRORS {
        let response = ResponseBuilder::new()
            .description(description)
            .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))))
            .build();
        operation.responses.responses.entry(status.to_string()).or_insert(response.into());
    }
}
