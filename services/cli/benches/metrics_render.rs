//! `/metrics` at national scale, printed (never asserted): 34 provinces × the whole
//! catalogue, plus every commune × service with a budget of 20,000 commune series.
//! Prints the refresh (build) time and the scrape (text encoding) time against the
//! 100 ms aim.
//!
//! `cargo bench -p dvc-pulse --bench metrics_render`

use dvc_pulse_model::Reference;
use dvc_pulse_model::reference::Level;
use dvc_pulse_window::{Counts, Measure, WindowRow};
use dvc_pulse_worker::window_metrics::{WindowMetrics, WindowMetricsConfig};
use serde_json::Value;
use std::time::Instant;

fn row(keys: Vec<(&'static str, String)>, i: i64) -> WindowRow {
    WindowRow {
        keys: keys
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
        counts: {
            let mut c = Counts::default();
            for (m, v) in [
                (Measure::Total, 10 + i % 97),
                (Measure::Online, 5 + i % 89),
                (Measure::InPerson, 5),
                (Measure::Finished, 7),
                (Measure::OnTime, 6),
                (Measure::Overdue, 1),
                (Measure::Pending, 3),
                (Measure::PendingOverdue, 1),
            ] {
                c.set(m, v);
            }
            c
        },
    }
}

fn main() {
    let reference = Reference::embedded();
    let services = reference.services.services();
    let current = &reference.localities.current;
    let provinces: Vec<_> = reference
        .localities
        .codes()
        .into_iter()
        .filter_map(|c| current.get(c))
        .filter(|u| u.level == Level::Province)
        .collect();
    let communes: Vec<_> = reference
        .localities
        .codes()
        .into_iter()
        .filter_map(|c| current.get(c))
        .filter(|u| u.level == Level::Commune)
        .collect();
    let mut service_rows = Vec::new();
    let mut commune_rows = Vec::new();
    for (i, s) in services.iter().enumerate() {
        for p in &provinces {
            service_rows.push(row(
                vec![
                    ("service_id", s.id.clone()),
                    ("service_short_name", s.short_name_vi.clone()),
                    ("essential", "true".into()),
                    ("programme", "DA06".into()),
                    ("province_code", p.code.clone()),
                    ("province_name", p.name.clone()),
                ],
                i as i64,
            ));
        }
        for (j, c) in communes.iter().enumerate() {
            commune_rows.push(row(
                vec![
                    ("service_id", s.id.clone()),
                    ("province_code", c.parent_code.clone()),
                    ("commune_code", c.code.clone()),
                    ("commune_name", c.name.clone()),
                ],
                (i * 31 + j) as i64,
            ));
        }
    }
    let cfg = WindowMetricsConfig {
        communes: true,
        commune_series_budget: 20_000,
        ..Default::default()
    };
    let started = Instant::now();
    let families = WindowMetrics::build(&reference, &cfg, &service_rows, Some(&commune_rows));
    let build = started.elapsed();
    let series: usize = families.iter().map(|f| f.get_metric().len()).sum();
    let mut best = std::time::Duration::MAX;
    let mut bytes = 0;
    for _ in 0..10 {
        let started = Instant::now();
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&families, &mut out)
            .unwrap();
        best = best.min(started.elapsed());
        bytes = out.len();
    }
    println!(
        "/metrics at national scale: {} provinces × {} services, {} commune rows offered, {series} series, {:.1} MB",
        provinces.len(),
        services.len(),
        commune_rows.len(),
        bytes as f64 / 1e6
    );
    println!("  refresh (build families)  {build:?}");
    println!(
        "  scrape (text encoding)    {best:?}   {:.2}x the 100 ms aim",
        best.as_secs_f64() / 0.1
    );
}
