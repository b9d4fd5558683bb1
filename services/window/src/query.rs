//! Window queries in DataFusion: one query shape over two fact sources, the live daily
//! buckets (streaming path) or raw event versions (batch path, the oracle). The facts and
//! their joins are SQL; the measures, grouping, filter and order are expressions built
//! from the measure table ([`crate::measure`]).

use crate::dims::Dims;
use crate::error::WindowError;
use crate::fact::{Counter, day_number};
use crate::measure::{Counts, MEASURES, Measure, MeasureDef, Rule};
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::functions_aggregate::expr_fn::sum;
use datafusion::logical_expr::{Expr, col, lit, when};
use datafusion::prelude::{DataFrame, SessionContext};
use dvc_pulse_model::Channel;
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
    pub fn parse_list(s: &str) -> Result<Vec<GroupKey>, WindowError> {
        let mut out = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let k = GroupKey::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .ok_or_else(|| {
                    let names: Vec<_> = GroupKey::ALL.iter().map(|k| k.name()).collect();
                    WindowError::invalid(
                        "invalid_group_by",
                        format!("unknown grouping {name:?}; use {}", names.join(", ")),
                    )
                })?;
            if out.contains(&k) {
                return Err(WindowError::invalid(
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
    pub fn validate(&self, dims: &Dims) -> Result<(), WindowError> {
        let places = dims.places.column(0).as_string::<i32>();
        self.validate_with(|code| places.iter().any(|c| c == Some(code)))
    }

    /// [`WindowQuery::validate`] with the units known told by `known(code)` (the
    /// reference data's own index, before the dimension tables are built).
    pub fn validate_with(&self, known: impl Fn(&str) -> bool) -> Result<(), WindowError> {
        if self.from > self.to {
            return Err(WindowError::invalid("invalid_window", "from is after to"));
        }
        if (self.to - self.from).num_days() >= MAX_WINDOW_DAYS {
            return Err(WindowError::invalid(
                "invalid_window",
                format!("windows are at most {MAX_WINDOW_DAYS} days"),
            ));
        }
        if let Some(code) = &self.locality
            && !known(code)
        {
            return Err(WindowError::invalid(
                "unknown_locality",
                format!("{code:?} is not a unit of either unit set"),
            ));
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
    /// Table `events` holding only the latest version of each dossier, already picked
    /// (by [`crate::LatestVersions`], the same rule folded in input order).
    Latest,
}

fn date(d: NaiveDate) -> String {
    format!("DATE '{}'", d.format("%Y-%m-%d"))
}

fn ict_date(col: &str) -> String {
    format!("CAST({col} + INTERVAL '7 hours' AS DATE)")
}

fn day_lit(d: NaiveDate) -> Expr {
    lit(ScalarValue::Date32(Some(day_number(d))))
}

/// The aggregate of every summed measure, named as the measure table says.
fn measure_exprs(source: Source, q: &WindowQuery) -> Result<Vec<Expr>, WindowError> {
    let mut out = Vec::new();
    for m in Measure::summed() {
        let e = match (source, m.def().rule) {
            // Bucket facts arrive aggregated per key, flows already restricted to the window.
            (Source::Buckets, Rule::Flow(c)) => sum(col(c.column())),
            (Source::Buckets, Rule::Stock(open, close)) => {
                sum(col(open.column()) - col(close.column()))
            }
            (Source::Events { .. } | Source::Latest, rule) => {
                sum(when(event_condition(rule, q), lit(1i64)).otherwise(lit(0i64))?)
            }
            (_, rule) => unreachable!("a summed measure has a derived rule {rule:?}"),
        };
        out.push(e.alias(m.name()));
    }
    Ok(out)
}

/// Whether the latest version of a dossier (a row of the events `facts`) counts for a
/// flow or stock rule over the window: the batch twin of [`crate::fact::Days::deltas`].
fn event_condition(rule: Rule, q: &WindowQuery) -> Expr {
    let received = col("r").between(day_lit(q.from), day_lit(q.to));
    let finished = col("fin").between(day_lit(q.from), day_lit(q.to));
    let pending = col("closed").is_null().or(col("closed").gt(day_lit(q.to)));
    let channel = |c: Channel| received.clone().and(col("channel").eq(lit(c.as_str())));
    let due = || col("due");
    match rule {
        Rule::Flow(Counter::Received) => received,
        Rule::Flow(Counter::Online) => channel(Channel::Online),
        Rule::Flow(Counter::InPerson) => channel(Channel::InPerson),
        Rule::Flow(Counter::Postal) => channel(Channel::Postal),
        Rule::Flow(Counter::Finished) => finished,
        Rule::Flow(Counter::OnTime) => finished.and(due().is_not_null()).and(col("on_time")),
        Rule::Flow(Counter::Overdue) => finished.and(due().is_not_null()).and(!col("on_time")),
        Rule::Flow(Counter::FinishedNoDue) => finished.and(due().is_null()),
        Rule::Stock(Counter::PendingOpen, _) => pending,
        Rule::Stock(Counter::OverdueOpen, _) => pending.and(due().lt_eq(day_lit(q.to))),
        other => unreachable!("no batch definition for {other:?}"),
    }
}

/// The bucket facts of a window, aggregated per (procedure, locality, agency) before any
/// join: the flows of the window's days, the pending deltas of every day up to its end.
/// Joins then see one row per key, not one per day and key.
fn bucket_facts(from: &str, to: &str) -> String {
    let cols: Vec<String> = Counter::ALL
        .iter()
        .map(|m| {
            let c = m.column();
            if m.is_stock() {
                format!("SUM({c}) AS {c}")
            } else {
                format!("SUM(CASE WHEN day >= {from} THEN {c} ELSE 0 END) AS {c}")
            }
        })
        .collect();
    format!(
        "facts AS (SELECT procedure_code, locality_code, agency, {} FROM buckets \
         WHERE day <= {to} GROUP BY procedure_code, locality_code, agency)",
        cols.join(", ")
    )
}

/// The raw versions as facts: the latest version of each dossier received by the
/// window's end, with its days. A dossier becomes known with its first version (in input
/// order) inside the horizon; from there on every version of it is kept. Without a
/// `cutoff`, the table already holds one latest version per dossier.
fn event_facts(cutoff: Option<i32>, to: &str) -> String {
    let Some(cutoff) = cutoff else {
        return facts_of_latest("SELECT *, 1 AS rn FROM versions", to, |c| {
            format!("{c}_day")
        });
    };
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
    let ranked = format!(
        "SELECT *, ROW_NUMBER() OVER (PARTITION BY dossier_id \
           ORDER BY updated_at DESC, status DESC, seq DESC) AS rn FROM ({kept})"
    );
    facts_of_latest(&ranked, to, |c| ict_date(&format!("{c}_at")))
}

/// The facts CTEs over `ranked` (versions with `rn`, 1 for the latest of a dossier).
/// `day("received")` is the ICT day of a version's `received_at`: computed from the
/// timestamp (`events`), or a column the fold computed (`received_day`, the table of
/// latest versions).
fn facts_of_latest(ranked: &str, to: &str, day: impl Fn(&str) -> String) -> String {
    format!(
        "versions AS (SELECT *, CASE WHEN status NOT IN (1, 3) THEN {r} END AS r FROM events), \
         ranked AS ({ranked}), \
         latest AS (SELECT *, {fin} AS fin, {due} AS due, finished_at <= due_at AS on_time, \
           CASE WHEN finished_at IS NOT NULL THEN {fin} \
                WHEN status IN (7, 8, 9, 10) THEN {u} END AS c0 \
           FROM ranked WHERE rn = 1 AND r IS NOT NULL AND r <= {to}), \
         facts AS (SELECT *, CASE WHEN c0 < r THEN r ELSE c0 END AS closed FROM latest)",
        r = day("received"),
        u = day("updated"),
        fin = day("finished"),
        due = day("due"),
    )
}

/// The facts of a window joined to places and services and locality-filtered (the `f`
/// of [`keyed_cte`]), as a DataFrame; the measures and grouping are applied to it as
/// expressions.
async fn keyed_facts(
    ctx: &SessionContext,
    source: Source,
    q: &WindowQuery,
) -> Result<DataFrame, WindowError> {
    let (from, to) = (date(q.from), date(q.to));
    let facts = match source {
        Source::Buckets => bucket_facts(&from, &to),
        Source::Events { cutoff } => event_facts(Some(cutoff), &to),
        Source::Latest => event_facts(None, &to),
    };
    let keyed = keyed_cte(q);
    Ok(ctx
        .sql(&format!("WITH {facts}, {keyed} SELECT * FROM f"))
        .await?)
}

/// A grouping column of a query: the column of `f` it reads, and its output name.
#[derive(Debug, Clone, Copy)]
struct KeyColumn {
    source: &'static str,
    name: &'static str,
}

/// The grouping columns of a query, outermost first; results are ordered by them.
fn key_columns(q: &WindowQuery) -> Vec<KeyColumn> {
    let mut keys = Vec::new();
    for k in &q.group_by {
        if *k == GroupKey::Service {
            keys.push(KeyColumn {
                source: "service_order",
                name: "service_order",
            });
        }
        for c in k.columns() {
            let source = if *c == "locality_name" {
                "locality_name_any"
            } else {
                c
            };
            keys.push(KeyColumn { source, name: c });
        }
    }
    keys
}

/// The dimension tables a grouping key reads: (`places`, `services`).
fn dimensions(k: GroupKey) -> (bool, bool) {
    match k {
        GroupKey::Procedure | GroupKey::Agency => (false, false),
        GroupKey::Service => (false, true),
        GroupKey::Locality
        | GroupKey::Commune
        | GroupKey::District
        | GroupKey::Province
        | GroupKey::ProvinceLegacy => (true, false),
    }
}

/// The `f` CTE: facts joined to the dimension tables the grouping reads, and
/// locality-filtered. A dimension table holds one row per code (a test holds it to
/// that), so a join no key reads changes no count: it is left out, and a window by
/// procedure reads the facts alone.
fn keyed_cte(q: &WindowQuery) -> String {
    let filter = q.locality.as_ref().map_or(String::new(), |code| {
        format!(
            " WHERE facts.locality_code IN (SELECT anc_code FROM ancestry WHERE ancestor = '{}')",
            code.replace('\'', "''")
        )
    });
    let places = q.group_by.iter().any(|k| dimensions(*k).0);
    let services = q.group_by.iter().any(|k| dimensions(*k).1);
    let (mut columns, mut joins) = (String::from("facts.*"), String::new());
    if places {
        columns += ", p.*, COALESCE(p.locality_name, facts.locality_code) AS locality_name_any";
        joins += " LEFT JOIN places p ON facts.locality_code = p.place_code";
    }
    if services {
        columns += ", s.*, \
           COALESCE(s.catalogue_id, facts.procedure_code) AS service_id, \
           COALESCE(s.catalogue_name, facts.procedure_code) AS service_name, \
           COALESCE(s.catalogue_short_name, facts.procedure_code) AS service_short_name, \
           s.catalogue_id IS NOT NULL AS essential";
        joins += " LEFT JOIN services s ON facts.procedure_code = s.svc_code";
    }
    format!("f AS (SELECT {columns} FROM facts{joins}{filter})")
}

/// The window's DataFrame: grouped, measured, rows without dossiers dropped, ordered.
async fn window_frame(
    ctx: &SessionContext,
    source: Source,
    q: &WindowQuery,
) -> Result<DataFrame, WindowError> {
    let keys = key_columns(q);
    let group: Vec<Expr> = keys.iter().map(|k| col(k.source).alias(k.name)).collect();
    let nonzero = |m: Measure| col(m.name()).not_eq(lit(0i64));
    let df = keyed_facts(ctx, source, q)
        .await?
        .aggregate(group, measure_exprs(source, q)?)?
        .filter(
            nonzero(Measure::Total)
                .or(nonzero(Measure::Finished))
                .or(nonzero(Measure::Pending)),
        )?;
    if keys.is_empty() {
        return Ok(df);
    }
    Ok(df.sort(keys.iter().map(|k| col(k.name).sort(true, false)).collect())?)
}

/// The SQL of a rolling series: for each day D of `from..=to` and each group, the sums of
/// the 30-day window D-29..=D (a window function over a complete day grid; table
/// `calendar` holds the days `from - 29 ..= to`). Carries the flows of the measure table.
pub(crate) fn series_sql(q: &WindowQuery) -> String {
    let (from, to) = (date(q.from), date(q.to));
    let first = date(q.from - chrono::Duration::days(29));
    let keyed = keyed_cte(q);
    let keys = key_columns(q);
    let flows: Vec<(&str, Counter)> = MEASURES
        .iter()
        .filter_map(|d| match d.rule {
            Rule::Flow(c) => Some((d.name, c)),
            _ => None,
        })
        .collect();
    let list = |f: &dyn Fn(&str, Counter) -> String| -> String {
        flows
            .iter()
            .map(|(n, c)| f(n, *c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let prefixed = |render: &dyn Fn(&KeyColumn) -> String| -> String {
        keys.iter().map(|k| format!("{}, ", render(k))).collect()
    };
    let gkey = if keys.is_empty() {
        "''".to_string()
    } else {
        let parts: Vec<String> = keys
            .iter()
            .map(|k| format!("COALESCE(CAST({} AS VARCHAR), '∅')", k.name))
            .collect();
        format!("CONCAT_WS('|', {})", parts.join(", "))
    };
    let order: Vec<String> = keys
        .iter()
        .map(|k| format!("{} NULLS LAST", k.name))
        .collect();
    format!(
        "WITH facts AS (SELECT * FROM buckets WHERE day BETWEEN {first} AND {to}), {keyed}, \
         daily AS (SELECT {keys}day, {sums} FROM f GROUP BY {group}day), \
         kd AS (SELECT *, {gkey} AS gkey FROM daily), \
         groups AS (SELECT DISTINCT {names}gkey FROM kd), \
         grid AS (SELECT groups.*, calendar.day FROM groups CROSS JOIN calendar), \
         filled AS (SELECT grid.*, {filled} FROM grid LEFT JOIN kd ON grid.gkey = kd.gkey AND grid.day = kd.day) \
         SELECT * FROM (SELECT {names}day, {windowed} FROM filled) \
         WHERE day >= {from} AND ({total} <> 0 OR {finished} <> 0) ORDER BY {order}day",
        keys = prefixed(&|k| format!("{} AS {}", k.source, k.name)),
        group = prefixed(&|k| k.source.to_string()),
        names = prefixed(&|k| k.name.to_string()),
        sums = list(&|n, c| format!("SUM({}) AS {n}", c.column())),
        filled = list(&|n, _| format!("COALESCE(kd.{n}, 0) AS {n}")),
        windowed = list(&|n, _| format!(
            "SUM({n}) OVER (PARTITION BY gkey ORDER BY day RANGE BETWEEN INTERVAL '29 days' PRECEDING AND CURRENT ROW) AS {n}"
        )),
        total = Measure::Total.name(),
        finished = Measure::Finished.name(),
        order = order.iter().map(|o| format!("{o}, ")).collect::<String>(),
    )
}

/// One row of a window: its group keys, then its counts.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    /// Group key columns, in order, with their values.
    pub keys: Vec<(&'static str, serde_json::Value)>,
    /// Counts.
    pub counts: Counts,
}

impl WindowRow {
    fn serialize_with<S: serde::Serializer>(
        &self,
        s: S,
        day: Option<NaiveDate>,
        keep: impl Fn(&MeasureDef) -> bool,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in &self.keys {
            m.serialize_entry(k, v)?;
        }
        if let Some(day) = day {
            m.serialize_entry("day", &day)?;
        }
        self.counts.serialize_into(&mut m, keep)?;
        m.end()
    }
}

impl Serialize for WindowRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize_with(s, None, |_| true)
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
    /// Group keys and counts (only the measures a series carries).
    pub row: WindowRow,
}

impl Serialize for SeriesPoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.row.serialize_with(s, Some(self.day), |d| d.in_series)
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
) -> Result<SeriesTable, WindowError> {
    let batches = ctx.sql(&series_sql(q)).await?.collect().await?;
    let flows: Vec<Measure> = Measure::summed()
        .filter(|m| matches!(m.def().rule, Rule::Flow(_)))
        .collect();
    let mut points = Vec::new();
    for b in &batches {
        let days = cast(
            b.column_by_name("day").expect("day column"),
            &DataType::Date32,
        )?;
        let days = days.as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        for (i, row) in read_rows(b, &q.group_by, &flows)?.into_iter().enumerate() {
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
) -> Result<SessionContext, WindowError> {
    let ctx = SessionContext::new();
    register_dims(&ctx, dims)?;
    // One partition per core, the batches dealt round: every core scans and aggregates.
    let cores = ctx.copied_config().target_partitions().max(1);
    let mut parts = vec![Vec::new(); cores.min(batches.len()).max(1)];
    let n = parts.len();
    for (i, b) in batches.into_iter().enumerate() {
        parts[i % n].push(b);
    }
    ctx.register_table(name, Arc::new(MemTable::try_new(schema, parts)?))?;
    Ok(ctx)
}

/// Registers the dimension tables in `ctx`.
pub(crate) fn register_dims(ctx: &SessionContext, dims: &Dims) -> Result<(), WindowError> {
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
) -> Result<WindowTable, WindowError> {
    let batches = window_frame(ctx, source, q).await?.collect().await?;
    let summed: Vec<Measure> = Measure::summed().collect();
    let mut rows = Vec::new();
    for b in &batches {
        rows.extend(read_rows(b, &q.group_by, &summed)?);
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
        totals,
    })
}

/// The rows of a result batch: the key columns of `group_by`, and `measures` by name.
fn read_rows(
    b: &RecordBatch,
    group_by: &[GroupKey],
    measures: &[Measure],
) -> Result<Vec<WindowRow>, WindowError> {
    let column = |name: &str| {
        b.column_by_name(name)
            .cloned()
            .ok_or_else(|| WindowError::Corrupt {
                what: "window result".into(),
                detail: format!("no column {name}"),
            })
    };
    let mut key_cols = Vec::new();
    for c in group_by.iter().flat_map(|k| k.columns()) {
        let a = column(c)?;
        let a = if a.data_type() == &DataType::Boolean {
            a
        } else {
            cast(&a, &DataType::Utf8)?
        };
        key_cols.push((*c, a));
    }
    let mut values = Vec::new();
    for m in measures {
        values.push((*m, cast(&column(m.name())?, &DataType::Int64)?));
    }
    Ok((0..b.num_rows())
        .map(|i| {
            let keys = key_cols
                .iter()
                .map(|(name, a)| (*name, key_value(a, i)))
                .collect();
            let mut counts = Counts::default();
            for (m, a) in &values {
                let a = a.as_primitive::<Int64Type>();
                counts.set(*m, if a.is_null(i) { 0 } else { a.value(i) });
            }
            WindowRow { keys, counts }
        })
        .collect())
}

fn key_value(a: &dyn Array, i: usize) -> serde_json::Value {
    if a.is_null(i) {
        serde_json::Value::Null
    } else if let Some(bools) = a.as_boolean_opt() {
        serde_json::Value::Bool(bools.value(i))
    } else {
        serde_json::Value::String(a.as_string::<i32>().value(i).to_string())
    }
}

/// Date32 of a day (re-exported for callers building queries).
pub fn to_day(d: NaiveDate) -> i32 {
    day_number(d)
}
