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
use axum::routing::{get, post};
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
pub enum ApiError {
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

impl ApiError {
    fn code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::EmptyBody => (StatusCode::BAD_REQUEST, "empty_body"),
            ApiError::BadBody => (StatusCode::BAD_REQUEST, "unreadable_body"),
            ApiError::BrokerUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.code();
        let body = Json(json!({ "error": { "code": code, "message": self.to_string() } }));
        let mut resp = (status, body).into_response();
        match self {
            ApiError::Unauthorized => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    "Bearer".parse().expect("valid header"),
                );
            }
            ApiError::BrokerUnavailable => {
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
    Router::new()
        .route("/v1/dossiers", post(post_dossiers))
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(gw)
}

fn authorised(gw: &Gateway, headers: &HeaderMap) -> bool {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(dvc_pulse_model::auth::bearer);
    match token {
        Some(t) => dvc_pulse_model::auth::token_matches(t, &gw.config.token_sha256),
        None => gw.config.allow_anonymous,
    }
}

async fn post_dossiers(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !authorised(&gw, &headers) {
        gw.metrics.unauthorized.inc();
        return Err(ApiError::Unauthorized);
    }
    let limit = gw.config.body_limit_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cur {
            if c.is::<http_body_util::LengthLimitError>() {
                return ApiError::PayloadTooLarge(limit);
            }
            cur = c.source();
        }
        ApiError::BadBody
    })?;
    let records = dvc_pulse_model::parse::split_body(&bytes);
    if records.is_empty() {
        return Err(ApiError::EmptyBody);
    }
    let now = (gw.clock)();
    let validator = gw.validator.clone();
    let outcome =
        tokio::task::spawn_blocking(move || pipeline::process(&validator, records, "gateway", now))
            .await
            .map_err(|_| ApiError::BadBody)?;
    if let Err(error) = gw.sink.publish(outcome.messages).await {
        tracing::warn!(%error, records = outcome.accepted + outcome.rejected.len(), "batch not committed; answering 503");
        gw.metrics.unavailable.inc();
        return Err(ApiError::BrokerUnavailable);
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

async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        gw.metrics.render(),
    )
        .into_response()
}

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
