//! What the gateway and the worker API share over HTTP, so that both answer alike: the
//! one error body `{"error": {"code", "message"}}`, the bearer token read from a request,
//! the bearer scheme of their OpenAPI documents and the `/openapi.json` route.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use std::sync::Arc;

/// The body of every error: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable code and a message for people.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine code, e.g. `invalid_window` or `payload_too_large`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// An error response: `status` with the one error body.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_string(),
            message: message.into(),
        },
    };
    (status, Json(body)).into_response()
}

/// The bearer token of a request's `Authorization` header (scheme in any case).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(dvc_pulse_model::auth::bearer)
}

/// Adds a bearer-token security scheme named `name` to an OpenAPI document.
pub fn add_bearer_scheme(doc: &mut utoipa::openapi::OpenApi, name: &str) {
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
    let c = doc.components.get_or_insert_with(Default::default);
    c.add_security_scheme(
        name,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
}

/// `router` with `GET /openapi.json` serving `doc`, rendered once.
pub fn with_openapi<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
    doc: &utoipa::openapi::OpenApi,
) -> axum::Router<S> {
    let doc = Arc::new(doc.to_json().expect("the document serialises"));
    router.route(
        "/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], (*doc).clone()) }
        }),
    )
}
