//! The worker's HTTP API: window snapshots, `/metrics`, health. Errors are mapped here, in
//! one place, to a status and a stable JSON body.

use crate::error::WorkerError;
use crate::worker::Worker;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use dvc_pulse_model::event::ict;
use dvc_pulse_rollup::{GroupKey, RollupError, WindowQuery, WindowTable};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Query string of `GET /v1/windows`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowParams {
    /// First day, `YYYY-MM-DD` (default: `to` minus 29 days).
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (default: today in Asia/Ho_Chi_Minh).
    pub to: Option<String>,
    /// Groupings separated by commas (default `service`).
    pub group_by: Option<String>,
    /// A unit code: that unit and everything under it.
    pub locality: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// An API error: status and stable code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.code, "detail": self.detail })),
        )
            .into_response()
    }
}

impl From<WorkerError> for ApiError {
    fn from(e: WorkerError) -> Self {
        match e {
            WorkerError::Rollup(RollupError::InvalidQuery { code, detail }) => ApiError {
                status: StatusCode::BAD_REQUEST,
                code,
                detail,
            },
            other => {
                tracing::error!(error = %other, "window query failed");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    detail: "see the worker's log".into(),
                }
            }
        }
    }
}

fn bad(code: &'static str, detail: String) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code,
        detail,
    }
}

fn day(s: &str, name: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        bad(
            "invalid_window",
            format!("{name} must be YYYY-MM-DD, got {s:?}"),
        )
    })
}

/// Turns query parameters into a window query; `today` fills the defaults.
pub fn window_query(p: &WindowParams, today: NaiveDate) -> Result<WindowQuery, ApiError> {
    let to =
        p.to.as_deref()
            .map(|s| day(s, "to"))
            .transpose()?
            .unwrap_or(today);
    let from = p
        .from
        .as_deref()
        .map(|s| day(s, "from"))
        .transpose()?
        .unwrap_or(to - chrono::Duration::days(29));
    let group_by =
        GroupKey::parse_list(p.group_by.as_deref().unwrap_or("service")).map_err(|e| match e {
            RollupError::InvalidQuery { code, detail } => bad(code, detail),
            other => bad("invalid_group_by", other.to_string()),
        })?;
    let locality = p.locality.clone().filter(|l| !l.is_empty());
    Ok(WindowQuery {
        from,
        to,
        group_by,
        locality,
    })
}

/// The CSV of a snapshot: key columns, then counts; rates with a dot and two decimals.
pub fn to_csv(t: &WindowTable) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let counts = [
        "total",
        "online",
        "in_person",
        "postal",
        "online_rate",
        "finished",
        "on_time",
        "overdue",
        "finished_no_due",
        "pending",
        "pending_within",
        "pending_overdue",
    ];
    let keys: Vec<&str> = t
        .group_by
        .iter()
        .flat_map(|k| k.columns().iter().copied())
        .collect();
    w.write_record(keys.iter().chain(counts.iter()))
        .expect("in-memory write");
    for r in &t.rows {
        let c = &r.counts;
        let mut rec: Vec<String> = r
            .keys
            .iter()
            .map(|(_, v)| match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            })
            .collect();
        rec.extend([
            c.total.to_string(),
            c.online.to_string(),
            c.in_person.to_string(),
            c.postal.to_string(),
            c.online_rate.map_or(String::new(), |r| format!("{r:.2}")),
            c.finished.to_string(),
            c.on_time.to_string(),
            c.overdue.to_string(),
            c.finished_no_due.to_string(),
            c.pending.to_string(),
            c.pending_within.to_string(),
            c.pending_overdue.to_string(),
        ]);
        w.write_record(&rec).expect("in-memory write");
    }
    String::from_utf8(w.into_inner().expect("in-memory flush")).expect("utf-8 in, utf-8 out")
}

async fn windows(
    State(w): State<Arc<Worker>>,
    Query(p): Query<WindowParams>,
) -> Result<Response, ApiError> {
    let today = (w.clock)().with_timezone(&ict()).date_naive();
    let q = window_query(&p, today)?;
    let snap = w.snapshot(&q).await?;
    match p.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(snap).into_response()),
        "csv" => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            to_csv(&snap.table),
        )
            .into_response()),
        other => Err(bad(
            "invalid_format",
            format!("format {other:?}: use json or csv"),
        )),
    }
}

async fn daily(
    State(w): State<Arc<Worker>>,
    Query(p): Query<WindowParams>,
) -> Result<Response, ApiError> {
    let today = (w.clock)().with_timezone(&ict()).date_naive();
    let q = window_query(&p, today)?;
    if p.format.as_deref().is_some_and(|f| f != "json") {
        return Err(bad(
            "invalid_format",
            "the daily series is JSON only".into(),
        ));
    }
    Ok(Json(w.series(&q).await?).into_response())
}

async fn metrics(State(w): State<Arc<Worker>>) -> Response {
    let mut families = w.metrics.registry.gather();
    families.extend(w.window_metrics.families());
    let mut out = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&families, &mut out)
        .expect("text encoding cannot fail");
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], out).into_response()
}

async fn healthz(State(w): State<Arc<Worker>>) -> Response {
    Json(json!({ "status": "ok", "worker": w.id, "partitions_assigned": w.assigned_partitions(), "partitions_loaded": w.owned_partitions() })).into_response()
}

/// The worker's routes.
pub fn router(worker: Arc<Worker>) -> Router {
    Router::new()
        .route("/v1/windows", get(windows))
        .route("/v1/windows/daily", get(daily))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(worker)
}
