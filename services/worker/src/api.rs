//! The worker's HTTP API: window snapshots in report layouts and formats, as of a moment,
//! diffs between moments, the built-in page, `/metrics`, health. Errors are mapped here,
//! in one place, to a status and `{"error": {"code", "message"}}` (the gateway's shape).
//! With `worker.read_token_sha256` set, the `/v1/` routes need a read token.

use crate::error::WorkerError;
use crate::worker::Worker;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::NaiveDate;
use dvc_pulse_http::ErrorBody;
use dvc_pulse_model::event::ict;
use dvc_pulse_report::{Format, Header, Layout, Rendered, ReportError, ReportOptions, render};
use dvc_pulse_window::Measure;
use dvc_pulse_window::{GroupKey, WindowError, WindowQuery, WindowTable};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Query string of `GET /v1/windows` (and of `/v1/windows/daily`, which takes the
/// window fields and `as_of`).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
    /// The window as known at this moment (RFC 3339, or a day: its end in ICT).
    pub as_of: Option<String>,
    /// `json` (default), `csv`, `xlsx` or `parquet`.
    pub format: Option<String>,
    /// `table` (default), `annex` or `processing`.
    pub layout: Option<String>,
    /// CSV header: `keys` (default) or `vi`.
    pub header: Option<String>,
    /// Annex services: ids separated by commas, `A..B` for a catalogue range.
    pub services: Option<String>,
    /// Annex programme when `services` is absent: `DA06` (default) or `QD422`.
    pub programme: Option<String>,
}

/// Query string of `GET /v1/windows/diff`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffParams {
    /// First day of the window.
    pub from: Option<String>,
    /// Last day of the window.
    pub to: Option<String>,
    /// Groupings (default `service`).
    pub group_by: Option<String>,
    /// Locality filter.
    pub locality: Option<String>,
    /// The earlier moment (required).
    #[param(required = true)]
    pub as_of_a: Option<String>,
    /// The later moment (default: everything read).
    pub as_of_b: Option<String>,
    /// Changes per page (default 1000, at most 10,000).
    pub limit: Option<usize>,
    /// First change of the page (default 0; the answer's `next_offset`).
    pub offset: Option<usize>,
}

/// Most changes one diff page lists.
const MAX_DIFF_PAGE: usize = 10_000;

/// Query string of `GET /v1/places`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PlacesParams {
    /// Parent unit code; absent: the provinces of both unit sets.
    pub parent: Option<String>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "dvc-pulse worker API", description = "Rolling 30-day windows of online dossier reception: snapshots, report layouts, daily series, diffs, health and metrics."),
    components(schemas(ErrorBody, dvc_pulse_http::ErrorDetail)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The read token scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        dvc_pulse_http::add_bearer_scheme(doc, "read_token");
    }
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
        dvc_pulse_http::error_response(self.status, self.code, self.detail)
    }
}

/// A query string, refused as a JSON `400 invalid_query` (unknown or malformed
/// parameters) rather than axum's plain-text rejection.
pub struct Params<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(t)) => Ok(Params(t)),
            Err(e) => Err(bad("invalid_query", e.body_text())),
        }
    }
}

/// Lets a request through when no read token is configured, or when it carries one
/// (`Authorization: Bearer …`); 401 otherwise.
async fn require_token(
    State(w): State<Arc<Worker>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let tokens = &w.cfg.read_token_sha256;
    let given = dvc_pulse_http::bearer_token(req.headers());
    match given {
        _ if tokens.is_empty() => next.run(req).await,
        Some(t) if dvc_pulse_model::auth::token_matches(t, tokens) => next.run(req).await,
        _ => {
            let mut r = ApiError {
                status: StatusCode::UNAUTHORIZED,
                code: "unauthorized",
                detail: "a valid read token is required: Authorization: Bearer <token>".into(),
            }
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
            r
        }
    }
}

impl From<WorkerError> for ApiError {
    fn from(e: WorkerError) -> Self {
        match e {
            WorkerError::Window(WindowError::InvalidQuery { code, detail }) => ApiError {
                status: StatusCode::BAD_REQUEST,
                code,
                detail,
            },
            e if e.is_resources_exhausted() => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "query_too_large",
                detail: "the query needs more memory than worker.query_memory allows: narrow the window or the grouping".into(),
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

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Invalid { code, detail } => bad(code, detail),
            other => {
                tracing::error!(error = %other, "report failed");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    detail: "see the worker's log".into(),
                }
            }
        }
    }
}

impl From<WindowError> for ApiError {
    fn from(e: WindowError) -> Self {
        ApiError::from(WorkerError::Window(e))
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
    use chrono::Datelike;
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|d| (1900..=9999).contains(&d.year()))
        .ok_or_else(|| {
            bad(
                "invalid_window",
                format!("{name} must be a day YYYY-MM-DD between 1900 and 9999, got {s:?}"),
            )
        })
}

/// Which range limit a query is held to.
enum Limit {
    /// `worker.max_window_days`.
    Window,
    /// `worker.max_series_days`.
    Series,
}

/// The window `p` asks for (defaults from the worker's today), within its range limit.
fn bounded_query(w: &Worker, p: &WindowParams, limit: Limit) -> Result<WindowQuery, ApiError> {
    let today = (w.clock)().with_timezone(&ict()).date_naive();
    let q = window_query(p, today)?;
    let (max, setting) = match limit {
        Limit::Window => (w.cfg.max_window_days, "max_window_days"),
        Limit::Series => (w.cfg.max_series_days, "max_series_days"),
    };
    let days = (q.to - q.from).num_days() + 1;
    if days > max {
        return Err(bad(
            "range_too_long",
            format!(
                "{days} days from {} to {}: the limit is {max} days (worker.{setting})",
                q.from, q.to
            ),
        ));
    }
    Ok(q)
}

/// Parses an `as_of`: RFC 3339 (`2024-07-06T09:00:00+07:00`), or a day, meaning the
/// end of that day in Asia/Ho_Chi_Minh. Milliseconds since the epoch.
pub fn parse_as_of(s: &str) -> Result<i64, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let next = (d + chrono::Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_local_timezone(ict())
            .single()
            .expect("fixed offset");
        return Ok(next.timestamp_millis() - 1);
    }
    Err(bad(
        "invalid_as_of",
        format!("as_of must be RFC 3339 or YYYY-MM-DD, got {s:?}"),
    ))
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
            WindowError::InvalidQuery { code, detail } => bad(code, detail),
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

/// The plain CSV of a window table (machine header, rates with a dot).
pub fn to_csv(t: &WindowTable) -> String {
    let r = dvc_pulse_report::layout::build(t, Layout::Table, &[], None)
        .expect("the table layout takes any table");
    r.to_csv(Header::Keys)
}

fn attachment(r: Rendered, inline: bool) -> Response {
    let disposition = if inline {
        "inline".to_string()
    } else {
        format!("attachment; filename=\"{}\"", r.filename)
    };
    (
        [
            (header::CONTENT_TYPE, r.content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        r.body,
    )
        .into_response()
}

#[utoipa::path(get, path = "/v1/windows", params(WindowParams), security(("read_token" = [])),
    responses((status = 200, description = "The window (JSON), or a report file", content(
        (serde_json::Value = "application/json"), (String = "text/csv"),
        (String = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (String = "application/vnd.apache.parquet"))), (status = 400, description = "Invalid query", body = ErrorBody), (status = 401, description = "No valid read token", body = ErrorBody), (status = 503, description = "Query over worker.query_memory, or the store unavailable", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)))]
async fn windows(
    State(w): State<Arc<Worker>>,
    Params(p): Params<WindowParams>,
) -> Result<Response, ApiError> {
    let mut q = bounded_query(&w, &p, Limit::Window)?;
    let opts = ReportOptions::parse(
        p.layout.as_deref(),
        p.header.as_deref(),
        p.format.as_deref(),
        p.services.clone(),
        p.programme.clone(),
    )?;
    if opts.layout != Layout::Table {
        if p.group_by.as_deref().is_some_and(|g| g != "service") {
            return Err(bad(
                "invalid_layout",
                "annex layouts are grouped by service only".into(),
            ));
        }
        q.group_by = vec![GroupKey::Service];
    }
    let as_of = p.as_of.as_deref().map(parse_as_of).transpose()?;
    let snap = w.snapshot(&q, as_of).await?;
    let meta = json!({ "id": snap.id, "digest": snap.digest, "as_of": snap.as_of });
    let r = render(&snap.table, meta, &opts, &w.reference)?;
    Ok(attachment(r, opts.format == Format::Json))
}

#[utoipa::path(get, path = "/v1/windows/daily", params(WindowParams), security(("read_token" = [])),
    responses((status = 200, description = "Rolling windows ending on each day", body = serde_json::Value), (status = 400, description = "Invalid query", body = ErrorBody), (status = 401, description = "No valid read token", body = ErrorBody), (status = 503, description = "Query over worker.query_memory, or the store unavailable", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)))]
async fn daily(
    State(w): State<Arc<Worker>>,
    Params(p): Params<WindowParams>,
) -> Result<Response, ApiError> {
    let q = bounded_query(&w, &p, Limit::Series)?;
    if p.format.as_deref().is_some_and(|f| f != "json") || p.layout.is_some() {
        return Err(bad(
            "invalid_format",
            "the daily series is JSON only, in the table layout".into(),
        ));
    }
    let as_of = p.as_of.as_deref().map(parse_as_of).transpose()?;
    Ok(Json(w.series(&q, as_of).await?).into_response())
}

#[utoipa::path(get, path = "/v1/windows/diff", params(DiffParams), security(("read_token" = [])),
    responses((status = 200, description = "What changed between two moments", body = serde_json::Value), (status = 400, description = "Invalid query", body = ErrorBody), (status = 401, description = "No valid read token", body = ErrorBody), (status = 503, description = "Query over worker.query_memory, or the store unavailable", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)))]
async fn diff(
    State(w): State<Arc<Worker>>,
    Params(p): Params<DiffParams>,
) -> Result<Response, ApiError> {
    let wp = WindowParams {
        from: p.from,
        to: p.to,
        group_by: p.group_by,
        locality: p.locality,
        ..Default::default()
    };
    let q = bounded_query(&w, &wp, Limit::Window)?;
    let limit = p.limit.unwrap_or(1000);
    if !(1..=MAX_DIFF_PAGE).contains(&limit) {
        return Err(bad(
            "invalid_page",
            format!("limit must be 1..={MAX_DIFF_PAGE}, got {limit}"),
        ));
    }
    let a = p
        .as_of_a
        .as_deref()
        .ok_or_else(|| bad("invalid_as_of", "as_of_a is required".into()))
        .and_then(parse_as_of)?;
    let b = p.as_of_b.as_deref().map(parse_as_of).transpose()?;
    if b.is_some_and(|b| b < a) {
        return Err(bad("invalid_as_of", "as_of_b is before as_of_a".into()));
    }
    let diff = w.diff(&q, a, b).await?;
    Ok(Json(diff.page(p.offset.unwrap_or(0), limit)).into_response())
}

/// Procedure codes with dossiers in the window that the catalogue does not map to a
/// service: each is counted as its own procedure, and an operator can add its code to
/// `services.csv`.
#[utoipa::path(get, path = "/v1/procedures/unmapped", params(WindowParams), security(("read_token" = [])),
    responses((status = 200, description = "Procedure codes outside the catalogue", body = serde_json::Value), (status = 400, description = "Invalid query", body = ErrorBody), (status = 401, description = "No valid read token", body = ErrorBody), (status = 503, description = "Query over worker.query_memory, or the store unavailable", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)))]
async fn unmapped(
    State(w): State<Arc<Worker>>,
    Params(p): Params<WindowParams>,
) -> Result<Response, ApiError> {
    let mut q = bounded_query(&w, &p, Limit::Window)?;
    q.group_by = vec![GroupKey::Procedure];
    let snap = w.snapshot(&q, None).await?;
    let procedures: Vec<serde_json::Value> = snap
        .table
        .rows
        .iter()
        .filter_map(|r| {
            let code = r.keys.first()?.1.as_str()?;
            w.reference.services.service_for(code).is_none().then(
                || json!({ "code": code, "name": w.procedure_name(code), "dossiers": r.counts.get(Measure::Total), "pending": r.counts.get(Measure::Pending) }),
            )
        })
        .collect();
    Ok(Json(json!({
        "from": q.from,
        "to": q.to,
        "locality": q.locality,
        "procedures": procedures,
        "hint": "Các mã thủ tục này không có trong danh mục dịch vụ (services.csv): hồ sơ vẫn được đếm theo mã riêng; thêm mã vào procedure_codes của dịch vụ tương ứng để đưa vào phụ lục.",
    }))
    .into_response())
}

#[utoipa::path(get, path = "/v1/places", params(PlacesParams), security(("read_token" = [])),
    responses((status = 200, description = "Administrative units", body = serde_json::Value), (status = 400, description = "Invalid query", body = ErrorBody), (status = 401, description = "No valid read token", body = ErrorBody), (status = 503, description = "Query over worker.query_memory, or the store unavailable", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)))]
async fn places(State(w): State<Arc<Worker>>, Params(p): Params<PlacesParams>) -> Response {
    let l = &w.reference.localities;
    let parent = p.parent.unwrap_or_default();
    let unit = |u: &dvc_pulse_model::reference::Unit, set: &str| json!({ "code": u.code, "name": u.name, "level": format!("{:?}", u.level).to_lowercase(), "set": set });
    let mut out: Vec<serde_json::Value> = Vec::new();
    out.extend(
        l.current
            .children(&parent)
            .into_iter()
            .map(|u| unit(u, "current")),
    );
    out.extend(
        l.legacy
            .children(&parent)
            .into_iter()
            .map(|u| unit(u, "legacy")),
    );
    Json(json!({ "parent": parent, "places": out })).into_response()
}

#[utoipa::path(get, path = "/v1/services", security(("read_token" = [])),
    responses((status = 200, description = "The service catalogue", body = serde_json::Value), (status = 400, description = "Invalid query", body = ErrorBody), (status = 401, description = "No valid read token", body = ErrorBody), (status = 503, description = "Query over worker.query_memory, or the store unavailable", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)))]
async fn services(State(w): State<Arc<Worker>>) -> Response {
    let v: Vec<serde_json::Value> = w
        .reference
        .services
        .services()
        .iter()
        .map(|s| json!({ "id": s.id, "name": s.name_vi, "short_name": s.short_name_vi, "agency": s.agency, "programme": match s.programme { dvc_pulse_model::reference::Programme::Da06 => "DA06", dvc_pulse_model::reference::Programme::Qd422 => "QD422" }, "connected_dvcqg": s.connected_dvcqg }))
        .collect();
    Json(json!({ "services": v })).into_response()
}

#[utoipa::path(get, path = "/", responses((status = 200, description = "The built-in page", content_type = "text/html", body = String)))]
async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("page.html"),
    )
        .into_response()
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
async fn metrics(State(w): State<Arc<Worker>>) -> Response {
    let mut families = w.metrics.registry.gather();
    families.extend(w.window_metrics.families());
    let mut out = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&families, &mut out)
        .expect("text encoding cannot fail");
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], out).into_response()
}

fn health(w: &Worker) -> Response {
    let (status, word) = if w.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let body = json!({ "status": word, "worker": w.id, "consumes": w.consumes(), "partitions_assigned": w.assigned_partitions(), "partitions_loaded": w.owned_partitions() });
    (status, Json(body)).into_response()
}

/// 200 while the consume loop runs (a query-only server: always), else 503.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The consume loop runs", body = serde_json::Value), (status = 503, description = "The consume loop stopped", body = serde_json::Value)))]
async fn healthz(State(w): State<Arc<Worker>>) -> Response {
    health(&w)
}

/// Ready to be routed to and counted: the consume loop runs and commits.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "Ready", body = serde_json::Value), (status = 503, description = "Not ready", body = serde_json::Value)))]
async fn readyz(State(w): State<Arc<Worker>>) -> Response {
    health(&w)
}

/// The worker's routes, with `/openapi.json` describing them (OpenAPI 3.1, generated
/// from the handlers).
pub fn router(worker: Arc<Worker>) -> Router {
    use utoipa::OpenApi;
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    // The data: behind the read tokens, when configured.
    let data = OpenApiRouter::new()
        .routes(routes!(windows))
        .routes(routes!(diff))
        .routes(routes!(places))
        .routes(routes!(services))
        .routes(routes!(daily))
        .routes(routes!(unmapped))
        .route_layer(axum::middleware::from_fn_with_state(
            worker.clone(),
            require_token,
        ));
    // The page (it asks for the token), metrics and health stay open.
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(page))
        .routes(routes!(metrics))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .merge(data)
        .split_for_parts();
    dvc_pulse_http::with_openapi(router, &doc).with_state(worker)
}
