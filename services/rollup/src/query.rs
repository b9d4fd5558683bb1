//! Window queries as DataFusion SQL: one query shape over two fact sources, the live
//! daily buckets (streaming path) or raw event versions (batch path, the oracle).

use crate::dims::Dims;
use crate::error::RollupError;
use crate::fact::{Measure, day_number};
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use serde::Serialize;
use serde::ser::SerializeMap;
use std::sync::Arc;

/// A way to group a window's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKey {
    /// National procedure code as sent.
    Procedure,
    /// Catalogue service (a procedure outside the catalogue is its own service).
    Service,
    /// The locality code as sent (finest known unit).
    Locality,
    /// Commune/ward.
    Commune,
    /// Pre-2025 district.
    District,
    /// Current (post-2025) province.
    Province,
    /// Pre-2025 province.
    ProvinceLegacy,
    /// Handling agency.
    Agency,
}

impl GroupKey {
    /// Every key, in the order `group_by` names are documented.
    pub const ALL: [GroupKey; 8] = [
        GroupKey::Procedure,
        GroupKey::Service,
        GroupKey::Locality,
        GroupKey::Commune,
        GroupKey::District,
        GroupKey::Province,
        GroupKey::ProvinceLegacy,
        GroupKey::Agency,
    ];

    /// The name used in `group_by`.
    pub fn name(self) -> &'static str {
        match self {
            GroupKey::Procedure => "procedure",
            GroupKey::Service => "service",
            GroupKey::Locality => "locality",
            GroupKey::Commune => "commune",
            GroupKey::District => "district",
            GroupKey::Province => "province",
            GroupKey::ProvinceLegacy => "province_legacy",
            GroupKey::Agency => "agency",
        }
    }

    /// Output columns of the key, in order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            GroupKey::Procedure => &["procedure_code"],
            GroupKey::Service => &[
                "service_id",
                "service_name",
                "service_short_name",
                "programme",
                "essential",
                "connected_dvcqg",
                "service_agency",
            ],
            GroupKey::Locality => &["locality_code", "locality_name"],
            GroupKey::Commune => &["commune_code", "commune_name"],
            GroupKey::District => &["district_code", "district_name"],
            GroupKey::Province => &["province_code", "province_name"],
            GroupKey::ProvinceLegacy => &["province_legacy_code", "province_legacy_name"],
            GroupKey::Agency => &["agency"],
        }
    }

    /// Parses `group_by`: names separated by commas, no repeats; empty means the totals only.
    pub fn parse_list(s: &str) -> Result<Vec<GroupKey>, RollupError> {
        let mut out = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let k = GroupKey::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .ok_or_else(|| {
                    let names: Vec<_> = GroupKey::ALL.iter().map(|k| k.name()).collect();
                    RollupError::invalid(
                        "invalid_group_by",
                        format!("unknown grouping {name:?}; use {}", names.join(", ")),
                    )
                })?;
            if out.contains(&k) {
                return Err(RollupError::invalid(
                    "invalid_group_by",
                    format!("{name} named twice"),
                ));
            }
            out.push(k);
        }
        Ok(out)
    }
}

/// What window to compute, grouped how, for which locality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowQuery {
    /// First day, inclusive (ICT).
    pub from: NaiveDate,
    /// Last day, inclusive (ICT).
    pub to: NaiveDate,
    /// Groupings, outermost first.
    pub group_by: Vec<GroupKey>,
    /// A unit code: only dossiers of that unit and everything under it.
    pub locality: Option<String>,
}

/// Longest window served, in days.
pub const MAX_WINDOW_DAYS: i64 = 3660;

impl WindowQuery {
    /// The 30-day window ending on `to` (covering `to - 29 ..= to`).
    pub fn rolling(to: NaiveDate, group_by: Vec<GroupKey>, locality: Option<String>) -> Self {
        WindowQuery {
            from: to - chrono::Duration::days(29),
            to,
            group_by,
            locality,
        }
    }

    /// Checks the window and the locality against the reference data.
    pub fn validate(&self, dims: &Dims) -> Result<(), RollupError> {
        if self.from > self.to {
            return Err(RollupError::invalid("invalid_window", "from is after to"));
        }
        if (self.to - self.from).num_days() >= MAX_WINDOW_DAYS {
            return Err(RollupError::invalid(
                "invalid_window",
                format!("windows are at most {MAX_WINDOW_DAYS} days"),
            ));
        }
        if let Some(code) = &self.locality {
            let known = dims
                .places
                .column(0)
                .as_string::<i32>()
                .iter()
                .any(|c| c == Some(code));
            if !known {
                return Err(RollupError::invalid(
                    "unknown_locality",
                    format!("{code:?} is not a unit of either unit set"),
                ));
            }
        }
        Ok(())
    }
}

/// Where the facts come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// Table `buckets`: daily deltas kept by the streaming state.
    Buckets,
    /// Table `events`: raw versions; the latest per dossier is picked in SQL (equal
    /// `updated_at` and status: the later in input order). Versions of a dossier before
    /// its first one whose day is on or after `cutoff` (Date32) are dropped first, as the
    /// worker refuses them; `i32::MIN` keeps everything.
    Events {
        /// First day inside the horizon.
        cutoff: i32,
    },
}

fn date(d: NaiveDate) -> String {
    format!("DATE '{}'", d.format("%Y-%m-%d"))
}

fn ict_date(col: &str) -> String {
    format!("CAST({col} + INTERVAL '7 hours' AS DATE)")
}

/// The measures of a row, in output order, with their bucket and event formulas.
fn measures(source: Source, from: &str, to: &str) -> Vec<(&'static str, String)> {
    // Bucket facts arrive aggregated per key, flows already restricted to the window.
    let within = |m: Measure| format!("SUM({})", m.column());
    let upto = |a: Measure, b: Measure| format!("SUM({} - {})", a.column(), b.column());
    match source {
        Source::Buckets => vec![
            ("total", within(Measure::Received)),
            ("online", within(Measure::Online)),
            ("in_person", within(Measure::InPerson)),
            ("postal", within(Measure::Postal)),
            ("finished", within(Measure::Finished)),
            ("on_time", within(Measure::OnTime)),
            ("overdue", within(Measure::Overdue)),
            ("finished_no_due", within(Measure::FinishedNoDue)),
            ("pending", upto(Measure::PendingOpen, Measure::PendingClose)),
            (
                "pending_overdue",
                upto(Measure::OverdueOpen, Measure::OverdueClose),
            ),
        ],
        Source::Events { .. } => {
            let count = |cond: String| format!("SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)");
            let rin = format!("r BETWEEN {from} AND {to}");
            let fin = format!("fin BETWEEN {from} AND {to}");
            let pending = format!("(closed IS NULL OR closed > {to})");
            vec![
                ("total", count(rin.clone())),
                ("online", count(format!("{rin} AND channel = 'online'"))),
                (
                    "in_person",
                    count(format!("{rin} AND channel = 'in_person'")),
                ),
                ("postal", count(format!("{rin} AND channel = 'postal'"))),
                ("finished", count(fin.clone())),
                (
                    "on_time",
                    count(format!("{fin} AND due IS NOT NULL AND on_time")),
                ),
                (
                    "overdue",
                    count(format!("{fin} AND due IS NOT NULL AND NOT on_time")),
                ),
                ("finished_no_due", count(format!("{fin} AND due IS NULL"))),
                ("pending", count(pending.clone())),
                (
                    "pending_overdue",
                    count(format!("{pending} AND due <= {to}")),
                ),
            ]
        }
    }
}

/// The bucket facts of a window, aggregated per (procedure, locality, agency) before any
/// join: the flows of the window's days, the pending deltas of every day up to its end.
/// Joins then see one row per key, not one per day and key.
fn bucket_facts(from: &str, to: &str) -> String {
    let cols: Vec<String> = Measure::ALL
        .iter()
        .map(|m| {
            let c = m.column();
            match m {
                Measure::PendingOpen
                | Measure::PendingClose
                | Measure::OverdueOpen
                | Measure::OverdueClose => format!("SUM({c}) AS {c}"),
                _ => format!("SUM(CASE WHEN day >= {from} THEN {c} ELSE 0 END) AS {c}"),
            }
        })
        .collect();
    format!(
        "facts AS (SELECT procedure_code, locality_code, agency, {} FROM buckets \
         WHERE day <= {to} GROUP BY procedure_code, locality_code, agency)",
        cols.join(", ")
    )
}

/// The SQL of a window query.
pub(crate) fn window_sql(source: Source, q: &WindowQuery) -> String {
    let (from, to) = (date(q.from), date(q.to));
    let facts = match source {
        Source::Buckets => bucket_facts(&from, &to),
        Source::Events { cutoff } => {
            // A dossier becomes known with its first version (in input order) inside the
            // horizon; from there on every version of it is kept.
            let kept = if cutoff == i32::MIN {
                "SELECT * FROM versions".to_string()
            } else {
                format!(
                    "SELECT * FROM (SELECT *, MIN(CASE WHEN COALESCE(r, {}) >= {} THEN seq END) \
                       OVER (PARTITION BY dossier_id) AS first_in FROM versions) WHERE seq >= first_in",
                    ict_date("updated_at"),
                    date(crate::fact::day_date(cutoff))
                )
            };
            format!(
                "versions AS (SELECT *, CASE WHEN received_at IS NOT NULL AND status NOT IN (1, 3) \
                   THEN {r} END AS r FROM events), \
                 kept AS ({kept}), \
                 ranked AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY dossier_id \
                   ORDER BY updated_at DESC, status DESC, seq DESC) AS rn FROM kept), \
                 latest AS (SELECT *, {fin} AS fin, {due} AS due, finished_at <= due_at AS on_time, \
                   CASE WHEN finished_at IS NOT NULL THEN {fin} \
                        WHEN status IN (7, 8, 9, 10) THEN {u} END AS c0 \
                   FROM ranked WHERE rn = 1 AND r IS NOT NULL AND r <= {to}), \
                 facts AS (SELECT *, CASE WHEN c0 < r THEN r ELSE c0 END AS closed FROM latest)",
                r = ict_date("received_at"),
                u = ict_date("updated_at"),
                fin = ict_date("finished_at"),
                due = ict_date("due_at"),
            )
        }
    };
    let (keyed, keys, order) = keyed_cte(q);
    let group_exprs: Vec<String> = keys
        .iter()
        .map(|k| k.split(" AS ").next().expect("expr").to_string())
        .collect();
    let ms = measures(source, &from, &to);
    let select: Vec<String> = keys
        .iter()
        .cloned()
        .chain(ms.iter().map(|(name, e)| format!("{e} AS {name}")))
        .collect();
    let group = if group_exprs.is_empty() {
        String::new()
    } else {
        format!("GROUP BY {}", group_exprs.join(", "))
    };
    let order = if order.is_empty() {
        String::new()
    } else {
        format!("ORDER BY {}", order.join(", "))
    };
    format!(
        "WITH {facts}, {keyed} SELECT * FROM (SELECT {} FROM f {group}) \
         WHERE total <> 0 OR finished <> 0 OR pending <> 0 {order}",
        select.join(", ")
    )
}

/// The `f` CTE (facts joined to places and services, locality-filtered), the grouping
/// key expressions (`expr AS name` where renamed) and the ORDER BY terms.
fn keyed_cte(q: &WindowQuery) -> (String, Vec<String>, Vec<String>) {
    let filter = q.locality.as_ref().map_or(String::new(), |code| {
        format!(
            "WHERE facts.locality_code IN (SELECT anc_code FROM ancestry WHERE ancestor = '{}')",
            code.replace('\'', "''")
        )
    });
    let keyed = format!(
        "f AS (SELECT facts.*, p.*, s.*, \
           COALESCE(s.catalogue_id, facts.procedure_code) AS service_id, \
           COALESCE(s.catalogue_name, facts.procedure_code) AS service_name, \
           COALESCE(s.catalogue_short_name, facts.procedure_code) AS service_short_name, \
           s.catalogue_id IS NOT NULL AS essential, \
           COALESCE(p.locality_name, facts.locality_code) AS locality_name_any \
         FROM facts LEFT JOIN places p ON facts.locality_code = p.place_code \
         LEFT JOIN services s ON facts.procedure_code = s.svc_code {filter})"
    );
    let mut keys: Vec<String> = Vec::new();
    let mut order: Vec<String> = Vec::new();
    for k in &q.group_by {
        if *k == GroupKey::Service {
            keys.push("service_order".into());
            order.push("service_order NULLS LAST".into());
        }
        for c in k.columns() {
            let expr = match *c {
                "locality_name" => "locality_name_any".to_string(),
                c => c.to_string(),
            };
            keys.push(if expr == *c {
                expr
            } else {
                format!("{expr} AS {c}")
            });
            order.push(format!("{c} NULLS LAST"));
        }
    }
    (keyed, keys, order)
}

/// The SQL of a rolling series: for each day D of `from..=to` and each group, the sums of
/// the 30-day window D-29..=D (a window function over a complete day grid; table
/// `calendar` holds the days `from - 29 ..= to`).
pub(crate) fn series_sql(q: &WindowQuery) -> String {
    let (from, to) = (date(q.from), date(q.to));
    let first = date(q.from - chrono::Duration::days(29));
    let (keyed, keys, order) = keyed_cte(q);
    let exprs: Vec<String> = keys
        .iter()
        .map(|k| k.split(" AS ").next().expect("expr").to_string())
        .collect();
    let names: Vec<String> = keys
        .iter()
        .map(|k| k.rsplit(" AS ").next().expect("name").to_string())
        .collect();
    let flows = [
        "total",
        "online",
        "in_person",
        "postal",
        "finished",
        "on_time",
        "overdue",
        "finished_no_due",
    ];
    // The received and finished measures, under their bucket column names.
    let sources = Measure::ALL[..flows.len()].iter().map(|m| m.column());
    let daily_sums: Vec<String> = flows
        .iter()
        .zip(sources)
        .map(|(f, s)| format!("SUM({s}) AS {f}"))
        .collect();
    let gkey_parts: Vec<String> = names
        .iter()
        .map(|n| format!("COALESCE(CAST({n} AS VARCHAR), '∅')"))
        .collect();
    let gkey = if gkey_parts.is_empty() {
        "''".to_string()
    } else {
        format!("CONCAT_WS('|', {})", gkey_parts.join(", "))
    };
    let group = exprs
        .iter()
        .cloned()
        .chain(["day".to_string()])
        .collect::<Vec<_>>()
        .join(", ");
    let filled: Vec<String> = flows
        .iter()
        .map(|f| format!("COALESCE(kd.{f}, 0) AS {f}"))
        .collect();
    let windowed: Vec<String> = flows
        .iter()
        .map(|f| format!("SUM({f}) OVER (PARTITION BY gkey ORDER BY day RANGE BETWEEN INTERVAL '29 days' PRECEDING AND CURRENT ROW) AS {f}"))
        .collect();
    let key_list = |prefix: &str| {
        names
            .iter()
            .map(|n| format!("{prefix}{n}"))
            .collect::<Vec<_>>()
    };
    let select_keys = key_list("");
    let order = order
        .into_iter()
        .chain(["day".to_string()])
        .collect::<Vec<_>>()
        .join(", ");
    let comma = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!("{}, ", v.join(", "))
        }
    };
    format!(
        "WITH facts AS (SELECT * FROM buckets WHERE day BETWEEN {first} AND {to}), {keyed}, \
         daily AS (SELECT {keys}day, {sums} FROM f GROUP BY {group}), \
         kd AS (SELECT *, {gkey} AS gkey FROM daily), \
         groups AS (SELECT DISTINCT {gk}gkey FROM kd), \
         grid AS (SELECT groups.*, calendar.day FROM groups CROSS JOIN calendar), \
         filled AS (SELECT grid.*, {filled} FROM grid LEFT JOIN kd ON grid.gkey = kd.gkey AND grid.day = kd.day) \
         SELECT * FROM (SELECT {sk}day, {windowed}, 0 AS pending, 0 AS pending_overdue FROM filled) \
         WHERE day >= {from} AND (total <> 0 OR finished <> 0) ORDER BY {order}",
        keys = comma(&keys),
        sums = daily_sums.join(", "),
        gk = comma(&select_keys),
        filled = filled.join(", "),
        sk = comma(&select_keys),
        windowed = windowed.join(", "),
    )
}

/// Counts of one row (or of the totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Received in the window.
    pub total: i64,
    /// Received online.
    pub online: i64,
    /// Received in person.
    pub in_person: i64,
    /// Received by post.
    pub postal: i64,
    /// `online / total`, in percent; `None` without dossiers.
    pub online_rate: Option<f64>,
    /// Finished in the window.
    pub finished: i64,
    /// Finished on time.
    pub on_time: i64,
    /// Finished after the due date.
    pub overdue: i64,
    /// Finished, without a due date.
    pub finished_no_due: i64,
    /// Pending at the end of the window.
    pub pending: i64,
    /// Pending and within the deadline (or without one) at the end of the window.
    pub pending_within: i64,
    /// Pending and past the deadline at the end of the window.
    pub pending_overdue: i64,
}

impl Counts {
    fn finish(mut self) -> Self {
        self.online_rate = (self.total > 0).then(|| self.online as f64 * 100.0 / self.total as f64);
        self.pending_within = self.pending - self.pending_overdue;
        self
    }

    pub(crate) fn add(&mut self, o: &Counts) {
        self.total += o.total;
        self.online += o.online;
        self.in_person += o.in_person;
        self.postal += o.postal;
        self.finished += o.finished;
        self.on_time += o.on_time;
        self.overdue += o.overdue;
        self.finished_no_due += o.finished_no_due;
        self.pending += o.pending;
        self.pending_overdue += o.pending_overdue;
    }
}

/// One row of a window: its group keys, then its counts.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    /// Group key columns, in order, with their values.
    pub keys: Vec<(&'static str, serde_json::Value)>,
    /// Counts.
    pub counts: Counts,
}

impl Serialize for WindowRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let counts = serde_json::to_value(self.counts).map_err(serde::ser::Error::custom)?;
        let counts = counts.as_object().expect("counts serialise as an object");
        let mut m = s.serialize_map(Some(self.keys.len() + counts.len()))?;
        for (k, v) in &self.keys {
            m.serialize_entry(k, v)?;
        }
        for (k, v) in counts {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The table of one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowTable {
    /// First day, inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// Groupings.
    pub group_by: Vec<GroupKey>,
    /// Locality filter.
    pub locality: Option<String>,
    /// Rows, catalogue order first, then by key.
    pub rows: Vec<WindowRow>,
    /// Sums over all rows.
    pub totals: Counts,
}

/// One day of a rolling series: the 30-day window ending that day, for one group.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoint {
    /// Last day of the window.
    pub day: NaiveDate,
    /// Group keys and counts (pending is not part of a series).
    pub row: WindowRow,
}

impl Serialize for SeriesPoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = &self.row.counts;
        let mut m = s.serialize_map(None)?;
        for (k, v) in &self.row.keys {
            m.serialize_entry(k, v)?;
        }
        m.serialize_entry("day", &self.day)?;
        m.serialize_entry("total", &c.total)?;
        m.serialize_entry("online", &c.online)?;
        m.serialize_entry("in_person", &c.in_person)?;
        m.serialize_entry("postal", &c.postal)?;
        m.serialize_entry("online_rate", &c.online_rate)?;
        m.serialize_entry("finished", &c.finished)?;
        m.serialize_entry("on_time", &c.on_time)?;
        m.serialize_entry("overdue", &c.overdue)?;
        m.serialize_entry("finished_no_due", &c.finished_no_due)?;
        m.end()
    }
}

/// Rolling 30-day windows ending on each day of `from..=to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesTable {
    /// First window end.
    pub from: NaiveDate,
    /// Last window end.
    pub to: NaiveDate,
    /// Groupings.
    pub group_by: Vec<GroupKey>,
    /// Locality filter.
    pub locality: Option<String>,
    /// One point per group and day with dossiers in its window.
    pub points: Vec<SeriesPoint>,
}

/// Runs a rolling-series query in `ctx` (which must hold `buckets` and `calendar`).
pub(crate) async fn run_series(
    ctx: &SessionContext,
    q: &WindowQuery,
) -> Result<SeriesTable, RollupError> {
    let batches = ctx.sql(&series_sql(q)).await?.collect().await?;
    let mut points = Vec::new();
    for b in &batches {
        let days = cast(
            b.column_by_name("day").expect("day column"),
            &DataType::Date32,
        )?;
        let days = days.as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        for (i, row) in read_rows(b, &q.group_by)?.into_iter().enumerate() {
            points.push(SeriesPoint {
                day: crate::fact::day_date(days.value(i)),
                row,
            });
        }
    }
    Ok(SeriesTable {
        from: q.from,
        to: q.to,
        group_by: q.group_by.clone(),
        locality: q.locality.clone(),
        points,
    })
}

/// Registers the dimension tables and `name` (built from `batches`) in a fresh context.
pub(crate) fn context(
    dims: &Dims,
    name: &str,
    schema: datafusion::arrow::datatypes::SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<SessionContext, RollupError> {
    let ctx = SessionContext::new();
    register_dims(&ctx, dims)?;
    ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![batches])?))?;
    Ok(ctx)
}

/// Registers the dimension tables in `ctx`.
pub(crate) fn register_dims(ctx: &SessionContext, dims: &Dims) -> Result<(), RollupError> {
    for (name, b) in [
        ("places", &dims.places),
        ("ancestry", &dims.ancestry),
        ("services", &dims.services),
    ] {
        if !ctx.table_exist(name)? {
            ctx.register_batch(name, b.clone())?;
        }
    }
    Ok(())
}

/// Runs a window query in `ctx` and reads the answer.
pub(crate) async fn run(
    ctx: &SessionContext,
    source: Source,
    q: &WindowQuery,
) -> Result<WindowTable, RollupError> {
    let sql = window_sql(source, q);
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut rows = Vec::new();
    for b in &batches {
        rows.extend(read_rows(b, &q.group_by)?);
    }
    let mut totals = Counts::default();
    for r in &rows {
        totals.add(&r.counts);
    }
    Ok(WindowTable {
        from: q.from,
        to: q.to,
        group_by: q.group_by.clone(),
        locality: q.locality.clone(),
        rows,
        totals: totals.finish(),
    })
}

fn read_rows(b: &RecordBatch, group_by: &[GroupKey]) -> Result<Vec<WindowRow>, RollupError> {
    let column = |name: &str| {
        b.column_by_name(name)
            .cloned()
            .ok_or_else(|| RollupError::Corrupt {
                what: "window result".into(),
                detail: format!("no column {name}"),
            })
    };
    let mut key_cols = Vec::new();
    for k in group_by {
        for c in k.columns() {
            let a = column(c)?;
            let a = if a.data_type() == &DataType::Boolean {
                a
            } else {
                cast(&a, &DataType::Utf8)?
            };
            key_cols.push((*c, a));
        }
    }
    let int = |name: &str| -> Result<Vec<i64>, RollupError> {
        let a = cast(&column(name)?, &DataType::Int64)?;
        Ok(a.as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.unwrap_or(0))
            .collect())
    };
    let m: Vec<Vec<i64>> = [
        "total",
        "online",
        "in_person",
        "postal",
        "finished",
        "on_time",
        "overdue",
        "finished_no_due",
        "pending",
        "pending_overdue",
    ]
    .iter()
    .map(|n| int(n))
    .collect::<Result<_, _>>()?;
    Ok((0..b.num_rows())
        .map(|i| {
            let keys = key_cols
                .iter()
                .map(|(name, a)| {
                    let v = if a.is_null(i) {
                        serde_json::Value::Null
                    } else if let Some(bools) = a.as_boolean_opt() {
                        serde_json::Value::Bool(bools.value(i))
                    } else {
                        serde_json::Value::String(a.as_string::<i32>().value(i).to_string())
                    };
                    (*name, v)
                })
                .collect();
            let counts = Counts {
                total: m[0][i],
                online: m[1][i],
                in_person: m[2][i],
                postal: m[3][i],
                finished: m[4][i],
                on_time: m[5][i],
                overdue: m[6][i],
                finished_no_due: m[7][i],
                pending: m[8][i],
                pending_overdue: m[9][i],
                ..Counts::default()
            }
            .finish();
            WindowRow { keys, counts }
        })
        .collect())
}

/// Date32 of a day (re-exported for callers building queries).
pub fn to_day(d: NaiveDate) -> i32 {
    day_number(d)
}
