//! `GET /openapi.json`: the API description, built from the route table and error codes in this crate.

use axum::Json;
use serde_json::{Value, json};

use crate::error::CODES;

struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    fields: &'static [(&'static str, &'static str, bool)],
    ok: u16,
}

const OPS: &[Op] = &[
    Op {
        method: "post",
        path: "/v1/enrollments",
        summary: "Enrol the KTP-el photo for a NIK (idempotent for the same photo; re-enrolment replaces).",
        fields: &[("nik", "string", true), ("photo", "binary", true)],
        ok: 201,
    },
    Op {
        method: "post",
        path: "/v1/verifications",
        summary: "1:1: a selfie against the NIK's enrolled template.",
        fields: &[("nik", "string", true), ("selfie", "binary", true)],
        ok: 200,
    },
    Op {
        method: "post",
        path: "/v1/compare",
        summary: "Stateless 1:1 of two photos.",
        fields: &[
            ("photo_a", "binary", true),
            ("photo_b", "binary", true),
            ("include_crops", "boolean", false),
        ],
        ok: 200,
    },
    Op {
        method: "post",
        path: "/v1/identifications",
        summary: "1:N: the k most similar enrolled NIKs (duplicate-registration check).",
        fields: &[("photo", "binary", true), ("k", "integer", false)],
        ok: 200,
    },
    Op {
        method: "post",
        path: "/v1/detections",
        summary: "All human faces in a photo (detected, then confirmed): boxes, landmarks, scores.",
        fields: &[("photo", "binary", true)],
        ok: 200,
    },
];

fn body(fields: &[(&str, &str, bool)]) -> Value {
    let schema = |base64: bool| {
        let props: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(name, kind, _)| {
                let s = match (*kind, base64) {
                    ("binary", true) => json!({ "type": "string", "format": "byte" }),
                    ("binary", false) => json!({ "type": "string", "format": "binary" }),
                    (k, _) => json!({ "type": k }),
                };
                (name.to_string(), s)
            })
            .collect();
        let required: Vec<&str> = fields.iter().filter(|f| f.2).map(|f| f.0).collect();
        json!({ "type": "object", "properties": props, "required": required })
    };
    json!({ "required": true, "content": {
        "multipart/form-data": { "schema": schema(false) },
        "application/json": { "schema": schema(true) },
    }})
}

fn error_response() -> Value {
    json!({ "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The OpenAPI 3.1 document.
pub async fn document() -> Json<Value> {
    let mut paths = serde_json::Map::new();
    for op in OPS {
        paths.insert(
            op.path.into(),
            json!({ op.method: {
                "summary": op.summary,
                "security": [{ "bearer": [] }],
                "requestBody": body(op.fields),
                "responses": { op.ok.to_string(): { "description": "OK" }, "default": error_response() },
            }}),
        );
    }
    paths.insert("/v1/enrollments/{nik}".into(), json!({ "delete": {
        "summary": "Delete the NIK's enrolment (deactivation or erasure).",
        "security": [{ "bearer": [] }],
        "parameters": [{ "name": "nik", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[0-9]{16}$" } }],
        "responses": { "204": { "description": "Deleted" }, "default": error_response() },
    }}));
    for (path, summary) in [
        ("/healthz", "Liveness."),
        ("/readyz", "Readiness: models loaded, store open."),
        ("/metrics", "Prometheus metrics."),
    ] {
        paths.insert(
            path.into(),
            json!({ "get": { "summary": summary, "responses": { "200": { "description": "OK" } } } }),
        );
    }
    Json(json!({
        "openapi": "3.1.0",
        "info": { "title": "wajah", "version": env!("CARGO_PKG_VERSION"), "description": "Face verification for digital-ID registration." },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Error": { "type": "object", "required": ["error"], "properties": { "error": {
                "type": "object", "required": ["code", "message"],
                "properties": { "code": { "type": "string", "enum": CODES }, "message": { "type": "string" } },
            }}}},
        },
    }))
}
