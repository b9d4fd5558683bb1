//! Rolling 30-day window counts as Prometheus gauges: per catalogue service and current
//! province (received by channel, finished by timeliness, pending by state), and
//! optionally per commune under a series budget. Each worker exports only the partitions
//! it owns, so `sum by (...)` across workers is exact. Counts, never rates: rules divide.
//!
//! Computed every `refresh` into a private registry and swapped in whole, so a scrape
//! never sees half an update and costs only the text encoding.

use crate::error::WorkerError;
use crate::worker::Worker;
use dvc_pulse_model::Reference;
use dvc_pulse_model::event::ict;
use dvc_pulse_model::reference::Programme;
use dvc_pulse_window::measure::Gauge;
use dvc_pulse_window::{
    Counts, GroupKey, MEASURES, Measure, WindowQuery, WindowRow, window_from_buckets,
};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::Duration;

/// Window metrics settings (the `[worker.metrics]` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowMetricsConfig {
    /// Recompute the gauges this often.
    #[serde(with = "dvc_pulse_model::settings::duration")]
    pub refresh: Duration,
    /// Minimum 30-day volume before a low online rate alerts (exported for the rules).
    pub min_volume: u64,
    /// Also export received counts per commune.
    pub communes: bool,
    /// At most this many commune series; the smallest communes of each service and
    /// province are summed into `commune="other"`.
    pub commune_series_budget: usize,
}

impl Default for WindowMetricsConfig {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(15),
            min_volume: 20,
            communes: false,
            commune_series_budget: 20_000,
        }
    }
}

/// Label keys.
pub mod labels {
    /// Catalogue service id, or the procedure code outside the catalogue.
    pub const SERVICE: &str = "service";
    /// Short Vietnamese name of the service.
    pub const SERVICE_NAME: &str = "service_name";
    /// `true` for essential services of the catalogue.
    pub const ESSENTIAL: &str = "essential";
    /// `DA06`, `QD422`, or empty.
    pub const PROGRAMME: &str = "programme";
    /// Current province code (empty when unknown).
    pub const PROVINCE: &str = "province";
    /// Current province name.
    pub const PROVINCE_NAME: &str = "province_name";
    /// Commune code, or `other`.
    pub const COMMUNE: &str = "commune";
    /// Commune name.
    pub const COMMUNE_NAME: &str = "commune_name";
    /// `online`, `in_person`, `postal`.
    pub const CHANNEL: &str = "channel";
    /// `on_time`, `overdue`, `no_due`.
    pub const TIMELINESS: &str = "timeliness";
    /// `within`, `overdue`.
    pub const STATE: &str = "state";
    /// The catalogue's agency column (ngành), e.g. `Công an`.
    pub const AGENCY: &str = "agency";
}

/// Every window metric name.
pub const NAMES: [&str; 6] = [
    "dvc_pulse_window_received_dossiers",
    "dvc_pulse_window_finished_dossiers",
    "dvc_pulse_window_pending_dossiers",
    "dvc_pulse_window_commune_received_dossiers",
    "dvc_pulse_service_info",
    "dvc_pulse_alert_min_volume_dossiers",
];

/// The latest computed families.
#[derive(Debug, Default)]
pub struct WindowMetrics {
    families: RwLock<Vec<MetricFamily>>,
}

fn gauge(reg: &Registry, name: &str, help: &str, keys: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), keys).expect("valid metric");
    reg.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn key(r: &WindowRow, name: &str) -> String {
    match r.keys.iter().find(|(k, _)| *k == name).map(|(_, v)| v) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// `service` label of everything outside the catalogue.
pub const OTHER_SERVICE: &str = "other";

/// Whether a row's service is in the catalogue; the others share [`OTHER_SERVICE`], so
/// a portal sending thousands of unknown codes adds one series per province, not
/// thousands.
fn service_label(reference: &Reference, r: &WindowRow) -> Option<String> {
    let id = key(r, "service_id");
    reference.services.get(&id).map(|_| id)
}

/// The service rows' label values (service, name, essential, programme, province, its
/// name) with their counts, services outside the catalogue summed per province.
fn by_catalogue_service(
    reference: &Reference,
    rows: &[WindowRow],
) -> BTreeMap<[String; 6], Counts> {
    let mut out: BTreeMap<[String; 6], Counts> = BTreeMap::new();
    for r in rows {
        let (province, province_name) = (key(r, "province_code"), key(r, "province_name"));
        let labels = match service_label(reference, r) {
            Some(id) => [
                id,
                key(r, "service_short_name"),
                key(r, "essential"),
                key(r, "programme"),
                province,
                province_name,
            ],
            None => [
                OTHER_SERVICE.into(),
                "Ngoài danh mục".into(),
                "false".into(),
                String::new(),
                province,
                province_name,
            ],
        };
        out.entry(labels).or_default().add(&r.counts);
    }
    out
}

/// The received-by-channel measures, with their `channel` label values.
fn channels() -> Vec<(Measure, &'static str)> {
    MEASURES
        .iter()
        .filter_map(|d| match d.gauge {
            Some(Gauge::Received(ch)) => Some((d.measure, ch)),
            _ => None,
        })
        .collect()
}

impl WindowMetrics {
    /// The families of the last refresh.
    pub fn families(&self) -> Vec<MetricFamily> {
        self.families.read().expect("families lock").clone()
    }

    /// Builds the families from window rows: `service_rows` grouped by service and
    /// province, `commune_rows` (if any) by service, province and commune.
    pub fn build(
        reference: &Reference,
        cfg: &WindowMetricsConfig,
        service_rows: &[WindowRow],
        commune_rows: Option<&[WindowRow]>,
    ) -> Vec<MetricFamily> {
        let reg = Registry::new();
        service_gauges(&reg, reference, service_rows);
        if let Some(rows) = commune_rows {
            commune_gauges(&reg, reference, cfg.commune_series_budget, rows);
        }
        info_gauges(&reg, reference);
        let guard = prometheus::IntGauge::new(
            NAMES[5],
            "Minimum 30-day volume before a low online rate alerts.",
        )
        .expect("valid metric");
        guard.set(cfg.min_volume as i64);
        reg.register(Box::new(guard)).expect("unique metric");
        reg.gather()
    }

    /// Recomputes from the partitions `worker` owns, for the 30 days ending today.
    pub async fn refresh(&self, worker: &Worker, reference: &Reference) -> Result<(), WorkerError> {
        let cfg = &worker.cfg.metrics;
        let batches = worker.owned_buckets();
        let today = (worker.clock)().with_timezone(&ict()).date_naive();
        let q = WindowQuery::rolling(today, vec![GroupKey::Service, GroupKey::Province], None);
        let services = window_from_buckets(&worker.dims, batches.clone(), &q).await?;
        let communes = if cfg.communes {
            let q = WindowQuery::rolling(
                today,
                vec![GroupKey::Service, GroupKey::Province, GroupKey::Commune],
                None,
            );
            Some(window_from_buckets(&worker.dims, batches, &q).await?.rows)
        } else {
            None
        };
        let families = Self::build(reference, cfg, &services.rows, communes.as_deref());
        let newest = worker.metrics.newest_event_seconds.get();
        if newest > 0 {
            worker
                .metrics
                .freshness_seconds
                .set((worker.clock)().timestamp() - newest);
        }
        *self.families.write().expect("families lock") = families;
        Ok(())
    }
}

/// Received, finished and pending gauges per catalogue service and province: every
/// measure the measure table gives a gauge, zeros included, so a rate of 0% is a rate
/// and not a gap.
fn service_gauges(reg: &Registry, reference: &Reference, rows: &[WindowRow]) {
    use labels::*;
    let base = [
        SERVICE,
        SERVICE_NAME,
        ESSENTIAL,
        PROGRAMME,
        PROVINCE,
        PROVINCE_NAME,
    ];
    let with = |extra: &'static str| base.iter().copied().chain([extra]).collect::<Vec<_>>();
    let received = gauge(
        reg,
        NAMES[0],
        "Dossiers received in the 30 days ending today (ICT), by channel; this worker's partitions.",
        &with(CHANNEL),
    );
    let finished = gauge(
        reg,
        NAMES[1],
        "Dossiers finished in the 30 days ending today, by timeliness; this worker's partitions.",
        &with(TIMELINESS),
    );
    let pending = gauge(
        reg,
        NAMES[2],
        "Dossiers pending at the end of today, within or past their deadline; this worker's partitions.",
        &with(STATE),
    );
    for (b, c) in by_catalogue_service(reference, rows) {
        for d in &MEASURES {
            let (family, label) = match d.gauge {
                Some(Gauge::Received(l)) => (&received, l),
                Some(Gauge::Finished(l)) => (&finished, l),
                Some(Gauge::Pending(l)) => (&pending, l),
                None => continue,
            };
            let values: Vec<&str> = b.iter().map(String::as_str).chain([label]).collect();
            family.with_label_values(&values).set(c.get(d.measure));
        }
    }
}

/// Received by channel per commune, the largest communes first within `budget` series;
/// the rest summed per (service, province) into `commune="other"`.
fn commune_gauges(reg: &Registry, reference: &Reference, budget: usize, rows: &[WindowRow]) {
    use labels::*;
    let g = gauge(
        reg,
        NAMES[3],
        "Dossiers received in the 30 days ending today per commune, by channel (largest communes within the series budget; the rest as commune=\"other\").",
        &[SERVICE, PROVINCE, COMMUNE, COMMUNE_NAME, CHANNEL],
    );
    let total = |r: &WindowRow| r.counts.get(Measure::Total);
    let mut rows: Vec<&WindowRow> = rows.iter().filter(|r| total(r) > 0).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(total(r)));
    let channels = channels();
    let per_row = channels.len();
    let mut other: BTreeMap<(String, String), Counts> = BTreeMap::new();
    let mut used = 0;
    for r in rows {
        let svc = service_label(reference, r).unwrap_or_else(|| OTHER_SERVICE.into());
        let prov = key(r, "province_code");
        // Keep room for one "other" row per (service, province).
        if used + per_row + other.len() * per_row + per_row <= budget {
            let (code, name) = (key(r, "commune_code"), key(r, "commune_name"));
            for (m, ch) in &channels {
                g.with_label_values(&[
                    svc.as_str(),
                    prov.as_str(),
                    code.as_str(),
                    name.as_str(),
                    ch,
                ])
                .set(r.counts.get(*m));
            }
            used += per_row;
        } else {
            other.entry((svc, prov)).or_default().add(&r.counts);
        }
    }
    for ((svc, prov), c) in other {
        for (m, ch) in &channels {
            g.with_label_values(&[svc.as_str(), prov.as_str(), "other", "", ch])
                .set(c.get(*m));
        }
    }
}

/// `dvc_pulse_service_info`: 1 for every service of the catalogue.
fn info_gauges(reg: &Registry, reference: &Reference) {
    use labels::*;
    let info = gauge(
        reg,
        NAMES[4],
        "1 for every service of the catalogue.",
        &[SERVICE, SERVICE_NAME, ESSENTIAL, PROGRAMME, AGENCY],
    );
    for s in reference.services.services() {
        let programme = match s.programme {
            Programme::Da06 => "DA06",
            Programme::Qd422 => "QD422",
        };
        info.with_label_values(&[
            s.id.as_str(),
            s.short_name_vi.as_str(),
            "true",
            programme,
            s.agency.as_str(),
        ])
        .set(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn row(service: &str, province: &str, commune: &str, online: i64, in_person: i64) -> WindowRow {
        let s = |v: &str| Value::String(v.into());
        WindowRow {
            keys: vec![
                ("service_id", s(service)),
                ("service_short_name", s("Tên")),
                ("essential", Value::Bool(true)),
                ("programme", s("DA06")),
                ("province_code", s(province)),
                ("province_name", s("Tỉnh")),
                ("commune_code", s(commune)),
                ("commune_name", s(&format!("Xã {commune}"))),
            ],
            counts: {
                let mut c = Counts::default();
                c.set(Measure::Total, online + in_person);
                c.set(Measure::Online, online);
                c.set(Measure::InPerson, in_person);
                c
            },
        }
    }

    fn series(families: &[MetricFamily], name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        families
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .map(|m| {
                let labels = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect();
                (labels, m.get_gauge().get_value())
            })
            .collect()
    }

    #[test]
    fn every_channel_is_exported_even_at_zero() {
        let cfg = WindowMetricsConfig::default();
        let fams = WindowMetrics::build(
            &Reference::embedded(),
            &cfg,
            &[row("DA06-09", "56", "", 0, 7)],
            None,
        );
        let received = series(&fams, NAMES[0]);
        assert_eq!(received.len(), 3);
        let online = received
            .iter()
            .find(|(l, _)| l.contains(&("channel".into(), "online".into())))
            .unwrap();
        assert_eq!(online.1, 0.0);
        assert_eq!(
            series(&fams, NAMES[4]).len(),
            Reference::embedded().services.services().len()
        );
        assert_eq!(series(&fams, NAMES[5])[0].1, 20.0);
    }

    #[test]
    fn thousands_of_unknown_codes_make_one_other_service_per_province() {
        let cfg = WindowMetricsConfig::default();
        let mut rows: Vec<WindowRow> = (0..5000)
            .map(|i| row(&format!("9.{i:06}"), "56", "", 1, 2))
            .collect();
        rows.push(row("DA06-03", "56", "", 4, 0));
        rows.push(row("X-UNKNOWN", "79", "", 0, 1));
        let fams = WindowMetrics::build(&Reference::embedded(), &cfg, &rows, None);
        let received = series(&fams, NAMES[0]);
        // (DA06-03, 56), (other, 56), (other, 79): three channels each.
        assert_eq!(received.len(), 9, "{received:?}");
        let sum = |svc: &str, prov: &str, ch: &str| -> f64 {
            received
                .iter()
                .filter(|(l, _)| {
                    l.contains(&("service".into(), svc.into()))
                        && l.contains(&("province".into(), prov.into()))
                        && l.contains(&("channel".into(), ch.into()))
                })
                .map(|(_, v)| v)
                .sum()
        };
        assert_eq!(sum("other", "56", "online"), 5000.0);
        assert_eq!(sum("other", "56", "in_person"), 10000.0);
        assert_eq!(sum("DA06-03", "56", "online"), 4.0);
        assert_eq!(sum("other", "79", "in_person"), 1.0);
    }

    #[test]
    fn communes_stay_within_the_budget_and_the_rest_sums_into_other() {
        let cfg = WindowMetricsConfig {
            communes: true,
            commune_series_budget: 18,
            ..Default::default()
        };
        let rows: Vec<WindowRow> = (1..=20)
            .map(|i| row("DA06-03", "56", &format!("{i:05}"), i, 1))
            .collect();
        let fams = WindowMetrics::build(&Reference::embedded(), &cfg, &[], Some(&rows));
        let s = series(&fams, NAMES[3]);
        assert!(s.len() <= 18, "{} series", s.len());
        let online = |pred: &dyn Fn(&str) -> bool| -> f64 {
            s.iter()
                .filter(|(l, _)| l.contains(&("channel".into(), "online".into())))
                .filter(|(l, _)| l.iter().any(|(k, v)| k == "commune" && pred(v)))
                .map(|(_, v)| v)
                .sum()
        };
        assert_eq!(
            online(&|_| true),
            (1..=20).sum::<i64>() as f64,
            "nothing is lost"
        );
        assert_eq!(
            online(&|c| c == "00020"),
            20.0,
            "the largest commune keeps its own series"
        );
        assert!(online(&|c| c == "other") > 0.0);
    }
}
