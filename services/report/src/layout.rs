//! Report layouts of a window: the machine table, and the annex tables of the Vietnamese
//! reports (online reception, processing), with their number formats. A [`Report`] is
//! the one model every output format (JSON, CSV, XLSX, Parquet) writes from.

use crate::ReportError;
use chrono::{Datelike, NaiveDate};
use dvc_pulse_model::reference::{Catalogue, Programme, Service};
use dvc_pulse_window::measure::{MEASURES, Rule, Value as MeasureValue};
use dvc_pulse_window::{Counts, GroupKey, Measure, WindowTable};
use serde_json::{Map, Value};

/// A percentage as the annexes write it: decimal comma, at most two decimals, trailing
/// zeros dropped, `-` without dossiers (`87,76%`, `89,6%`, `100%`, `-`).
pub fn vi_rate(part: i64, total: i64) -> String {
    if total == 0 {
        return "-".into();
    }
    // Round half up on exact integers, not on a float that may sit just below .5.
    let hundredths = (part as i128 * 10_000 * 2 + total as i128) / (total as i128 * 2);
    let (int, frac) = (hundredths / 100, hundredths % 100);
    let frac = format!("{frac:02}");
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{int}%")
    } else {
        format!("{int},{frac}%")
    }
}

/// A day as the reports write it in a period line: `05/6/2024`.
pub fn vi_day(d: NaiveDate) -> String {
    format!("{:02}/{}/{}", d.day(), d.month(), d.year())
}

/// The period line of a report: `Từ ngày 05/6/2024 đến 05/7/2024`.
pub fn vi_period(from: NaiveDate, to: NaiveDate) -> String {
    format!("Từ ngày {} đến {}", vi_day(from), vi_day(to))
}

/// Which table a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Every group key and count, machine-named (the API's plain table).
    Table,
    /// The online-reception annex: one row per catalogue service, then "Tổng".
    Annex,
    /// The processing annex: finished on time / overdue, pending within / past the deadline.
    Processing,
}

impl Layout {
    /// Parses `table`, `annex` or `processing`.
    pub fn parse(s: &str) -> Result<Layout, ReportError> {
        match s {
            "table" => Ok(Layout::Table),
            "annex" => Ok(Layout::Annex),
            "processing" => Ok(Layout::Processing),
            other => Err(ReportError::invalid(
                "invalid_layout",
                format!("layout {other:?}: use table, annex or processing"),
            )),
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Table => "table",
            Layout::Annex => "annex",
            Layout::Processing => "processing",
        }
    }
}

/// Which header a CSV gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Machine keys (`stt,service_vi,…`): stable for tools, as in the golden fixtures.
    Keys,
    /// Vietnamese column titles, as the printed annexes.
    Vi,
}

impl Header {
    /// Parses `keys` or `vi`.
    pub fn parse(s: &str) -> Result<Header, ReportError> {
        match s {
            "keys" => Ok(Header::Keys),
            "vi" => Ok(Header::Vi),
            other => Err(ReportError::invalid(
                "invalid_header",
                format!("header {other:?}: use keys or vi"),
            )),
        }
    }
}

/// One column of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Machine key (CSV `keys` header, JSON and Parquet names).
    pub key: &'static str,
    /// Vietnamese title under its group (or alone).
    pub vi: &'static str,
    /// Title of the merged cell above, as the annexes group their columns.
    pub group: Option<&'static str>,
    /// What the cells hold (Parquet type, XLSX cell kind).
    pub kind: Kind,
}

/// Cell type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Whole numbers.
    Int,
    /// Text.
    Text,
    /// A number with decimals (percent).
    Float,
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Nothing.
    Empty,
    /// A whole number.
    Int(i64),
    /// Text.
    Text(String),
    /// A percent, two decimals in CSV; `None` without dossiers.
    Float(Option<f64>),
}

/// A text cell made safe for spreadsheets (OWASP, CSV injection): text starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return would run as a formula, so it gets a leading
/// `'`. A number, or a lone `-` (no dossiers), is left as it is.
pub fn neutralise(s: &str) -> String {
    let risky = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && s != "-" && s.replace(',', ".").parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

impl Cell {
    fn csv(&self) -> String {
        match self {
            Cell::Empty | Cell::Float(None) => String::new(),
            Cell::Int(n) => n.to_string(),
            Cell::Text(s) => neutralise(s),
            Cell::Float(Some(f)) => format!("{f:.2}"),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Empty | Cell::Float(None) => Value::Null,
            Cell::Int(n) => Value::from(*n),
            Cell::Text(s) => Value::from(s.clone()),
            Cell::Float(Some(f)) => Value::from(*f),
        }
    }
}

/// A report table, ready for any output format.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Layout it was built with.
    pub layout: Layout,
    /// Title line (XLSX).
    pub title: String,
    /// Period line: `Từ ngày 05/6/2024 đến 05/7/2024`.
    pub period: String,
    /// Locality line, when filtered: `Địa bàn: …`.
    pub place: Option<String>,
    /// Columns.
    pub columns: Vec<Column>,
    /// Rows.
    pub rows: Vec<Vec<Cell>>,
    /// The "Tổng" row of the annexes.
    pub total: Option<Vec<Cell>>,
    /// Rows (by index) whose online rate is below 50%: shown in red.
    pub below_half: Vec<usize>,
}

const fn col(
    key: &'static str,
    vi: &'static str,
    group: Option<&'static str>,
    kind: Kind,
) -> Column {
    Column {
        key,
        vi,
        group,
        kind,
    }
}

const ANNEX_HEAD: [Column; 4] = [
    col("stt", "STT", None, Kind::Int),
    col("service_vi", "Dịch vụ công trực tuyến", None, Kind::Text),
    col(
        "connected_to_dvcqg",
        "Kết nối Cổng DVC quốc gia",
        None,
        Kind::Text,
    ),
    col("agency", "Đơn vị thực hiện", None, Kind::Text),
];

const TOTAL: Option<&str> = Some("Tổng số hồ sơ");
const FINISHED: Option<&str> = Some("Đã giải quyết");
const PENDING: Option<&str> = Some("Đang giải quyết");

const ANNEX_COUNTS: [Column; 3] = [
    col(Measure::Total.name(), "Tổng số hồ sơ", TOTAL, Kind::Int),
    col(
        Measure::Online.name(),
        "Tiếp nhận hồ sơ trực tuyến",
        TOTAL,
        Kind::Int,
    ),
    col("rate_vi", "Tỷ lệ %", TOTAL, Kind::Text),
];

const PROCESSING_COUNTS: [Column; 6] = [
    col(Measure::Finished.name(), "Tổng số", FINISHED, Kind::Int),
    col(Measure::OnTime.name(), "Đúng hạn", FINISHED, Kind::Int),
    col(Measure::Overdue.name(), "Quá hạn", FINISHED, Kind::Int),
    col("on_time_rate_vi", "Tỷ lệ đúng hạn", FINISHED, Kind::Text),
    col(
        Measure::PendingWithin.name(),
        "Trong hạn",
        PENDING,
        Kind::Int,
    ),
    col(
        Measure::PendingOverdue.name(),
        "Quá hạn",
        PENDING,
        Kind::Int,
    ),
];

/// Count columns of the machine table: every measure, in the measure table's order.
fn table_counts() -> impl Iterator<Item = Column> {
    MEASURES.iter().map(|d| {
        let kind = match d.rule {
            Rule::Percent(..) => Kind::Float,
            _ => Kind::Int,
        };
        col(d.name, d.title_vi, None, kind)
    })
}

fn key_title(key: &str) -> &'static str {
    match key {
        "procedure_code" => "Mã thủ tục",
        "service_id" => "Mã dịch vụ",
        "service_name" => "Dịch vụ công trực tuyến",
        "service_short_name" => "Tên ngắn",
        "programme" => "Chương trình",
        "essential" => "Thiết yếu",
        "connected_dvcqg" => "Kết nối Cổng DVC quốc gia",
        "service_agency" => "Đơn vị thực hiện",
        "locality_code" => "Mã địa bàn",
        "locality_name" => "Địa bàn",
        "commune_code" => "Mã xã",
        "commune_name" => "Xã, phường",
        "district_code" => "Mã huyện (cũ)",
        "district_name" => "Quận, huyện (cũ)",
        "province_code" => "Mã tỉnh",
        "province_name" => "Tỉnh, thành phố",
        "province_legacy_code" => "Mã tỉnh (trước 2025)",
        "province_legacy_name" => "Tỉnh, thành phố (trước 2025)",
        "agency" => "Cơ quan tiếp nhận",
        _ => "",
    }
}

fn counts_cells(c: &Counts) -> Vec<Cell> {
    Measure::all()
        .map(|m| match c.value(m) {
            MeasureValue::Count(n) => Cell::Int(n),
            MeasureValue::Percent(p) => Cell::Float(p),
        })
        .collect()
}

fn below_half(c: &Counts) -> bool {
    let (total, online) = (c.get(Measure::Total), c.get(Measure::Online));
    total > 0 && online * 2 < total
}

/// Which catalogue services an annex lists, in its order.
///
/// `services`: ids separated by commas, where `A..B` is every service from `A` to `B` in
/// catalogue order; otherwise every service of `programme` (default Đề án 06).
pub fn annex_services<'c>(
    catalogue: &'c Catalogue,
    services: Option<&str>,
    programme: Option<&str>,
) -> Result<Vec<&'c Service>, ReportError> {
    let all = catalogue.services();
    let index = |id: &str| {
        all.iter().position(|s| s.id == id.trim()).ok_or_else(|| {
            ReportError::invalid(
                "unknown_service",
                format!("no service {id:?} in the catalogue"),
            )
        })
    };
    if let Some(list) = services.filter(|s| !s.trim().is_empty()) {
        let mut out = Vec::new();
        for part in list.split(',').filter(|p| !p.trim().is_empty()) {
            match part.split_once("..") {
                Some((a, b)) => {
                    let (a, b) = (index(a)?, index(b)?);
                    if a > b {
                        return Err(ReportError::invalid(
                            "unknown_service",
                            format!("range {part:?} runs backwards in catalogue order"),
                        ));
                    }
                    out.extend(&all[a..=b]);
                }
                None => out.push(&all[index(part)?]),
            }
        }
        return Ok(out);
    }
    let programme = match programme.unwrap_or("DA06") {
        "DA06" => Programme::Da06,
        "QD422" => Programme::Qd422,
        other => {
            return Err(ReportError::invalid(
                "invalid_programme",
                format!("programme {other:?}: use DA06 or QD422"),
            ));
        }
    };
    Ok(all.iter().filter(|s| s.programme == programme).collect())
}

/// Builds `layout` from `table`. The annex layouts need a table grouped by service only,
/// and list `services` in that order with zero rows for services without dossiers.
pub fn build(
    table: &WindowTable,
    layout: Layout,
    services: &[&Service],
    place: Option<String>,
) -> Result<Report, ReportError> {
    let period = vi_period(table.from, table.to);
    let place = place.map(|p| format!("Địa bàn: {p}"));
    match layout {
        Layout::Table => Ok(build_table(table, period, place)),
        _ if table.group_by != [GroupKey::Service] => Err(ReportError::invalid(
            "invalid_layout",
            "annex layouts need group_by=service",
        )),
        _ => Ok(build_annex(table, layout, services, period, place)),
    }
}

/// The machine table: key columns, then every measure.
fn build_table(table: &WindowTable, period: String, place: Option<String>) -> Report {
    let mut columns: Vec<Column> = table
        .group_by
        .iter()
        .flat_map(|k| k.columns().iter())
        .map(|k| col(k, key_title(k), None, Kind::Text))
        .collect();
    columns.extend(table_counts());
    let mut rows = Vec::new();
    let mut below = Vec::new();
    for (i, r) in table.rows.iter().enumerate() {
        let mut cells: Vec<Cell> = r
            .keys
            .iter()
            .map(|(_, v)| match v {
                Value::Null => Cell::Empty,
                Value::String(s) => Cell::Text(s.clone()),
                other => Cell::Text(other.to_string()),
            })
            .collect();
        cells.extend(counts_cells(&r.counts));
        if below_half(&r.counts) {
            below.push(i);
        }
        rows.push(cells);
    }
    Report {
        layout: Layout::Table,
        title: "Số liệu hồ sơ theo cửa sổ".into(),
        period,
        place,
        columns,
        rows,
        total: None,
        below_half: below,
    }
}

/// An annex table: one row per listed service, in order, and the "Tổng" row.
fn build_annex(
    table: &WindowTable,
    layout: Layout,
    services: &[&Service],
    period: String,
    place: Option<String>,
) -> Report {
    let by_id: std::collections::HashMap<&str, &Counts> = table
        .rows
        .iter()
        .filter_map(|r| {
            let id = r
                .keys
                .iter()
                .find(|(k, _)| *k == "service_id")?
                .1
                .as_str()?;
            Some((id, &r.counts))
        })
        .collect();
    let zero = Counts::default();
    let mut sum = Counts::default();
    let mut rows = Vec::new();
    let mut below = Vec::new();
    for (i, s) in services.iter().enumerate() {
        let c = by_id.get(s.id.as_str()).copied().unwrap_or(&zero);
        sum.add(c);
        if below_half(c) {
            below.push(i);
        }
        let connected = if s.connected_dvcqg {
            "Đã kết nối"
        } else {
            "Chưa kết nối"
        };
        let mut cells = vec![
            Cell::Int(i as i64 + 1),
            Cell::Text(s.name_vi.clone()),
            Cell::Text(connected.into()),
            Cell::Text(s.agency.clone()),
        ];
        cells.extend(layout_counts(layout, c));
        rows.push(cells);
    }
    let mut total = vec![
        Cell::Empty,
        Cell::Text("Tổng".into()),
        Cell::Empty,
        Cell::Empty,
    ];
    total.extend(layout_counts(layout, &sum));
    let mut columns = ANNEX_HEAD.to_vec();
    let title = match layout {
        Layout::Annex => {
            columns.extend(ANNEX_COUNTS);
            "Kết quả tiếp nhận hồ sơ dịch vụ công trực tuyến thiết yếu"
        }
        _ => {
            columns.extend(PROCESSING_COUNTS);
            "Tình hình giải quyết hồ sơ dịch vụ công thiết yếu"
        }
    };
    Report {
        layout,
        title: title.into(),
        period,
        place,
        columns,
        rows,
        total: Some(total),
        below_half: below,
    }
}

fn layout_counts(layout: Layout, c: &Counts) -> Vec<Cell> {
    let n = |m: Measure| c.get(m);
    match layout {
        Layout::Annex => vec![
            Cell::Int(n(Measure::Total)),
            Cell::Int(n(Measure::Online)),
            Cell::Text(vi_rate(n(Measure::Online), n(Measure::Total))),
        ],
        _ => vec![
            Cell::Int(n(Measure::Finished)),
            Cell::Int(n(Measure::OnTime)),
            Cell::Int(n(Measure::Overdue)),
            Cell::Text(vi_rate(
                n(Measure::OnTime),
                n(Measure::OnTime) + n(Measure::Overdue),
            )),
            Cell::Int(n(Measure::PendingWithin)),
            Cell::Int(n(Measure::PendingOverdue)),
        ],
    }
}

impl Report {
    /// A column's title on one line: under its group when another column shares it.
    pub fn flat_title(&self, i: usize) -> String {
        let c = &self.columns[i];
        let shared = self.columns.iter().filter(|o| o.vi == c.vi).count() > 1;
        match c.group {
            Some(g) if shared => format!("{} ({})", c.vi, g.to_lowercase()),
            _ => c.vi.to_string(),
        }
    }

    /// The report as CSV (RFC 4180, `\n` line ends), the "Tổng" row last.
    pub fn to_csv(&self, header: Header) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let head: Vec<String> = match header {
            Header::Keys => self.columns.iter().map(|c| c.key.to_string()).collect(),
            Header::Vi => (0..self.columns.len())
                .map(|i| self.flat_title(i))
                .collect(),
        };
        w.write_record(&head).expect("in-memory write");
        for r in self.rows.iter().chain(&self.total) {
            w.write_record(r.iter().map(Cell::csv))
                .expect("in-memory write");
        }
        String::from_utf8(w.into_inner().expect("in-memory flush")).expect("utf-8 in, utf-8 out")
    }

    /// The report as JSON: columns with their titles, rows and total as objects by key.
    pub fn to_json(&self) -> Value {
        let obj = |r: &Vec<Cell>| {
            let m: Map<String, Value> = self
                .columns
                .iter()
                .zip(r)
                .map(|(c, v)| (c.key.to_string(), v.json()))
                .collect();
            Value::Object(m)
        };
        let columns: Vec<Value> = self
            .columns
            .iter()
            .map(|c| serde_json::json!({ "key": c.key, "title": c.vi, "group": c.group }))
            .collect();
        serde_json::json!({
            "layout": self.layout.name(),
            "title": self.title,
            "period": self.period,
            "place": self.place,
            "columns": columns,
            "rows": self.rows.iter().map(obj).collect::<Vec<_>>(),
            "total": self.total.as_ref().map(obj),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_in_csv() {
        for (raw, safe) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1+2", "'+1+2"),
            ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("-", "-"),
            ("-5", "-5"),
            ("87,76%", "87,76%"),
            ("UBND xã Thành Hải", "UBND xã Thành Hải"),
        ] {
            assert_eq!(neutralise(raw), safe, "{raw:?}");
        }
    }

    #[test]
    fn formats_like_the_annexes() {
        assert_eq!(vi_rate(172, 196), "87,76%");
        assert_eq!(vi_rate(112, 125), "89,6%");
        assert_eq!(vi_rate(6, 6), "100%");
        assert_eq!(vi_rate(8685, 8725), "99,54%");
        assert_eq!(vi_rate(0, 0), "-");
        assert_eq!(vi_rate(0, 7), "0%");
        assert_eq!(vi_rate(1, 8), "12,5%");
        assert_eq!(vi_rate(1, 200), "0,5%");
    }

    #[test]
    fn periods_like_the_annexes() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            vi_period(d("2024-06-05"), d("2024-07-05")),
            "Từ ngày 05/6/2024 đến 05/7/2024"
        );
    }

    #[test]
    fn annex_service_lists() {
        let r = dvc_pulse_model::Reference::embedded();
        let ids = |v: Vec<&Service>| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
        let range = annex_services(&r.services, Some("DA06-01..DA06-15"), None).unwrap();
        assert_eq!(range.len(), 15);
        assert_eq!(range[14].id, "DA06-15");
        assert_eq!(
            ids(annex_services(&r.services, Some("DA06-03,QD422-01"), None).unwrap()),
            ["DA06-03", "QD422-01"]
        );
        assert_eq!(annex_services(&r.services, None, None).unwrap().len(), 24);
        assert_eq!(
            ids(annex_services(&r.services, None, Some("QD422")).unwrap()),
            ["QD422-01"]
        );
        for bad in ["DA06-99", "DA06-05..DA06-02"] {
            assert!(matches!(
                annex_services(&r.services, Some(bad), None),
                Err(ReportError::Invalid {
                    code: "unknown_service",
                    ..
                })
            ));
        }
    }
}
