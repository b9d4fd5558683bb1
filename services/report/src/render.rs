//! Renders a window in a report layout and output format, for the API and the CLI.

use crate::layout::{self as report, Header, Layout};
use crate::{ReportError, to_parquet, to_xlsx};
use dvc_pulse_model::Reference;
use dvc_pulse_window::WindowTable;
use serde_json::Value;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// CSV (UTF-8).
    Csv,
    /// Excel workbook.
    Xlsx,
    /// Parquet file.
    Parquet,
}

impl Format {
    /// Parses `json`, `csv`, `xlsx` or `parquet`.
    pub fn parse(s: &str) -> Result<Format, ReportError> {
        Ok(match s {
            "json" => Format::Json,
            "csv" => Format::Csv,
            "xlsx" => Format::Xlsx,
            "parquet" => Format::Parquet,
            other => {
                return Err(ReportError::Invalid {
                    code: "invalid_format",
                    detail: format!("format {other:?}: use json, csv, xlsx or parquet"),
                });
            }
        })
    }

    fn ext(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Parquet => "parquet",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// How to render a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    /// Layout.
    pub layout: Layout,
    /// CSV header.
    pub header: Header,
    /// Output format.
    pub format: Format,
    /// Annex services (ids, `A..B` ranges), in order.
    pub services: Option<String>,
    /// Annex programme when `services` is absent: `DA06` (default) or `QD422`.
    pub programme: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            layout: Layout::Table,
            header: Header::Keys,
            format: Format::Json,
            services: None,
            programme: None,
        }
    }
}

impl ReportOptions {
    /// From the API's or CLI's strings; `None` takes the default.
    pub fn parse(
        layout: Option<&str>,
        header: Option<&str>,
        format: Option<&str>,
        services: Option<String>,
        programme: Option<String>,
    ) -> Result<ReportOptions, ReportError> {
        Ok(ReportOptions {
            layout: layout
                .map(Layout::parse)
                .transpose()?
                .unwrap_or(Layout::Table),
            header: header
                .map(Header::parse)
                .transpose()?
                .unwrap_or(Header::Keys),
            format: format
                .map(Format::parse)
                .transpose()?
                .unwrap_or(Format::Json),
            services,
            programme,
        })
    }
}

/// A rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// MIME type.
    pub content_type: &'static str,
    /// Suggested file name.
    pub filename: String,
    /// Bytes.
    pub body: Vec<u8>,
}

/// Renders `table`; `meta` (an object: id, digest, as_of, input summary…) joins JSON output.
pub fn render(
    table: &WindowTable,
    meta: Value,
    opts: &ReportOptions,
    reference: &Reference,
) -> Result<Rendered, ReportError> {
    let services = match opts.layout {
        Layout::Table => Vec::new(),
        _ => report::annex_services(
            &reference.services,
            opts.services.as_deref(),
            opts.programme.as_deref(),
        )?,
    };
    let place = table.locality.as_deref().and_then(|c| {
        let l = &reference.localities;
        l.current
            .get(c)
            .or_else(|| l.legacy.get(c))
            .map(|u| u.name.clone())
    });
    let r = report::build(table, opts.layout, &services, place)?;
    let body = match opts.format {
        Format::Json => {
            let mut v = match opts.layout {
                Layout::Table => serde_json::to_value(table).expect("table serialises"),
                _ => r.to_json(),
            };
            if let (Some(o), Value::Object(m)) = (v.as_object_mut(), meta) {
                o.extend(m);
            }
            serde_json::to_vec(&v).expect("json serialises")
        }
        Format::Csv => r.to_csv(opts.header).into_bytes(),
        Format::Xlsx => to_xlsx(&r)?,
        Format::Parquet => to_parquet(&r)?,
    };
    let filename = format!(
        "dvc-pulse_{}_{}_{}_{}.{}",
        opts.layout.name(),
        table.locality.as_deref().unwrap_or("toan-quoc"),
        table.from,
        table.to,
        opts.format.ext()
    );
    Ok(Rendered {
        content_type: opts.format.content_type(),
        filename,
        body,
    })
}
