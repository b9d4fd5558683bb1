//! The HTTP gateway: `POST /v1/dossiers`, `GET /healthz`, `GET /readyz`.
//!
//! A request is answered only after Kafka committed its transaction: 200 with the
//! accepted count and the rejections, or 503 with nothing of the request accepted.

use crate::config::IngestConfig;
use crate::pipeline;
use crate::sink::KafkaSink;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use dvc_pulse_model::Validator;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub use dvc_pulse_model::event::Clock;

/// A readiness probe: true when the broker answers.
pub type ReadyCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// Everything a request handler needs.
pub struct Gateway {
    /// Settings.
    pub config: IngestConfig,
    /// Record validation.
    pub validator: Validator,
    /// Where events go.
    pub sink: KafkaSink,
    /// Now.
    pub clock: Clock,
    /// Broker reachability for `/readyz`.
    pub ready: ReadyCheck,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::IngestMetrics,
}

/// Errors a request can end in; the one place that maps them to status and body.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No or wrong bearer token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// Body over the limit.
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Empty body.
    #[error("the body holds no record")]
    EmptyBody,
    /// Body could not be read from the connection.
    #[error("the body could not be read")]
    BadBody,
    /// Kafka did not take the batch; nothing of it was accepted.
    #[error("the event broker is unavailable; nothing of this request was accepted, retry later")]
    BrokerUnavailable,
}

impl GatewayError {
    fn code(&self) -> (StatusCode, &'static str) {
        match self {
            GatewayError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            GatewayError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            GatewayError::EmptyBody => (StatusCode::BAD_REQUEST, "empty_body"),
            GatewayError::BadBody => (StatusCode::BAD_REQUEST, "unreadable_body"),
            GatewayError::BrokerUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable")
            }
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let (status, code) = self.code();
        let mut resp = dvc_pulse_http::error_response(status, code, self.to_string());
        match self {
            GatewayError::Unauthorized => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    "Bearer".parse().expect("valid header"),
                );
            }
            GatewayError::BrokerUnavailable => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, "5".parse().expect("valid header"));
            }
            _ => {}
        }
        resp
    }
}

pub use dvc_pulse_model::auth::hash_token;

/// The gateway's routes.
pub fn router(gw: Arc<Gateway>) -> Router {
    use utoipa::OpenApi;
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(post_dossiers))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .split_for_parts();
    dvc_pulse_http::with_openapi(router, &doc).with_state(gw)
}

/// What a POST did: records accepted, and each rejected one with its reason.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Accepted {
    /// Records published to the events topic.
    accepted: u64,
    /// Rejected records (sent to the dead-letter topic).
    rejected: Vec<RejectedRecord>,
}

/// One rejected record.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RejectedRecord {
    /// Array position or 0-based line.
    index: u64,
    /// Stable reason code.
    reason: String,
    /// Contract field at fault.
    field: Option<String>,
    /// Explanation.
    detail: String,
}

/// `{"status": …}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Status {
    /// `ok`, `ready` or `broker_unreachable`.
    status: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "dvc-pulse ingest gateway", description = "Dossier records from portals into the events topic."),
    components(schemas(dvc_pulse_http::ErrorBody, dvc_pulse_http::ErrorDetail, Accepted, RejectedRecord, Status)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The portals' bearer token scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        dvc_pulse_http::add_bearer_scheme(doc, "portal_token");
    }
}

/// Alive.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Alive", body = Status)))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

fn authorised(gw: &Gateway, headers: &HeaderMap) -> bool {
    match dvc_pulse_http::bearer_token(headers) {
        Some(t) => dvc_pulse_model::auth::token_matches(t, &gw.config.token_sha256),
        None => gw.config.allow_anonymous,
    }
}

/// Dossier records: one JSON object, a JSON array, or NDJSON; canonical or DVCQG.
#[utoipa::path(post, path = "/v1/dossiers", security(("portal_token" = [])),
    request_body(content(
        (String = "application/x-ndjson"), (String = "application/json"), (String = "text/plain"))),
    responses(
        (status = 200, description = "Committed to Kafka: what was accepted and rejected", body = Accepted),
        (status = 400, description = "Empty or unreadable body", body = dvc_pulse_http::ErrorBody),
        (status = 401, description = "No valid token", body = dvc_pulse_http::ErrorBody),
        (status = 413, description = "Body over ingest.body_limit_bytes", body = dvc_pulse_http::ErrorBody),
        (status = 503, description = "Kafka unavailable: nothing accepted, retry", body = dvc_pulse_http::ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait")))))]
async fn post_dossiers(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    if !authorised(&gw, &headers) {
        gw.metrics.unauthorized.inc();
        return Err(GatewayError::Unauthorized);
    }
    let limit = gw.config.body_limit_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::PayloadTooLarge(limit));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cur {
            if c.is::<http_body_util::LengthLimitError>() {
                return GatewayError::PayloadTooLarge(limit);
            }
            cur = c.source();
        }
        GatewayError::BadBody
    })?;
    let records = dvc_pulse_model::parse::split_body(&bytes);
    if records.is_empty() {
        return Err(GatewayError::EmptyBody);
    }
    let now = (gw.clock)();
    let validator = gw.validator.clone();
    let outcome =
        tokio::task::spawn_blocking(move || pipeline::process(&validator, records, "gateway", now))
            .await
            .map_err(|_| GatewayError::BadBody)?;
    if let Err(error) = gw.sink.publish(outcome.messages).await {
        tracing::warn!(%error, records = outcome.accepted + outcome.rejected.len(), "batch not committed; answering 503");
        gw.metrics.unavailable.inc();
        return Err(GatewayError::BrokerUnavailable);
    }
    gw.metrics.accepted.inc_by(outcome.accepted as u64);
    for r in &outcome.rejected {
        gw.metrics.rejected.with_label_values(&[r.reason]).inc();
    }
    tracing::debug!(
        accepted = outcome.accepted,
        rejected = outcome.rejected.len(),
        "batch committed"
    );
    Ok(Json(json!({ "accepted": outcome.accepted, "rejected": outcome.rejected })).into_response())
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        gw.metrics.render(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "Kafka reachable", body = Status), (status = 503, description = "Kafka unreachable", body = Status)))]
async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let ready = gw.ready.clone();
    let ok = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::task::spawn_blocking(move || ready()),
    )
    .await
    .map(|r| r.unwrap_or(false))
    .unwrap_or(false);
    if ok {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "broker_unreachable" })),
        )
            .into_response()
    }
}
