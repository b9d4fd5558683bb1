//! Dossier lifecycles and their messy delivery.

use crate::profile::{OTHER_PROCEDURES, PROFILES};
use crate::rng::Rng;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use dvc_pulse_model::event::{Timestamp, ict};
use dvc_pulse_model::reference::Level;
use dvc_pulse_model::{Channel, DossierEvent, Reference, Status};
use serde_json::{Value, json};

/// What to simulate and how messy to make it. Rates are per dossier (or per version).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed: the same seed gives the same traffic.
    pub seed: u64,
    /// First day of receptions (ICT).
    pub start: NaiveDate,
    /// Number of days of receptions.
    pub days: u32,
    /// Locality codes (commune, district or province: expanded to their communes).
    pub localities: Vec<String>,
    /// Multiplies every calibrated volume.
    pub scale: f64,
    /// A version delivered twice, byte for byte.
    pub duplicate_rate: f64,
    /// A dossier's versions delivered out of order.
    pub out_of_order_rate: f64,
    /// A dossier delivered late, by 1 day to `late_max_days`.
    pub late_rate: f64,
    /// Longest lateness, in days.
    pub late_max_days: i64,
    /// A dossier corrected later (channel or procedure mis-keyed at first).
    pub correction_rate: f64,
    /// Malformed records, per dossier.
    pub malformed_rate: f64,
    /// Versions sent as DVCQG sync records (with the applicant's personal data).
    pub dvcqg_rate: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            start: NaiveDate::from_ymd_opt(2024, 6, 5).expect("valid date"),
            days: 31,
            localities: vec!["582".into()],
            scale: 1.0,
            duplicate_rate: 0.05,
            out_of_order_rate: 0.10,
            late_rate: 0.05,
            late_max_days: 60,
            correction_rate: 0.02,
            malformed_rate: 0.01,
            dvcqg_rate: 0.2,
        }
    }
}

/// One record as the portal sends it, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// When the record reaches dvc-pulse.
    pub at: DateTime<Utc>,
    /// The bytes (one NDJSON line, no newline).
    pub bytes: Vec<u8>,
    /// False for records made malformed on purpose.
    pub valid: bool,
}

/// A simulation: deliveries in arrival order, and the true final version of each dossier.
#[derive(Debug, Clone, Default)]
pub struct Simulation {
    /// Records in arrival order.
    pub deliveries: Vec<Delivery>,
    /// The latest version of every dossier: the ground truth.
    pub truth: Vec<DossierEvent>,
}

/// Runs a simulation. Pure: the same config and reference give the same result.
pub fn simulate(cfg: &SimConfig, reference: &Reference) -> Simulation {
    let mut rng = Rng::new(cfg.seed);
    let communes = expand(&cfg.localities, reference);
    let mut sim = Simulation::default();
    let mut serial = 0u64;
    for day in 0..cfg.days {
        let date = cfg.start + Duration::days(day as i64);
        for commune in &communes {
            let catalogue = PROFILES.iter().map(|p| {
                (
                    p.service_id,
                    None,
                    p.per_commune_daily,
                    p.online_rate,
                    p.due_days,
                )
            });
            let others = OTHER_PROCEDURES
                .iter()
                .map(|(c, n, v, r)| (*c, Some(*n), *v, *r, 5));
            for (code, name, volume, online, due_days) in catalogue.chain(others) {
                for _ in 0..rng.poisson(volume * cfg.scale) {
                    serial += 1;
                    let d = Dossier {
                        serial,
                        code,
                        name,
                        commune,
                        date,
                        online,
                        due_days,
                    };
                    lifecycle(&d, cfg, &mut rng, &mut sim);
                }
            }
        }
    }
    sim.deliveries.sort_by_key(|d| d.at);
    sim
}

struct Dossier<'a> {
    serial: u64,
    code: &'a str,
    name: Option<&'a str>,
    commune: &'a str,
    date: NaiveDate,
    online: f64,
    due_days: i64,
}

fn expand(codes: &[String], reference: &Reference) -> Vec<String> {
    let mut out = Vec::new();
    for code in codes {
        for set in [&reference.localities.legacy, &reference.localities.current] {
            let Some(unit) = set.get(code) else { continue };
            if unit.level == Level::Commune {
                out.push(code.clone());
            } else {
                let mut found: Vec<String> = set
                    .units_under(code)
                    .filter(|u| u.level == Level::Commune)
                    .map(|u| u.code.clone())
                    .collect();
                found.sort();
                out.extend(found);
            }
            break;
        }
    }
    out.dedup();
    out
}

fn at(date: NaiveDate, secs: i64) -> Timestamp {
    ict()
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
        .single()
        .expect("fixed offset")
        + Duration::seconds(secs)
}

// Long because it tells one dossier's life in order; each step draws from the same seeded stream.
fn lifecycle(d: &Dossier, cfg: &SimConfig, rng: &mut Rng, sim: &mut Simulation) {
    let channel = if rng.chance(d.online) {
        Channel::Online
    } else if rng.chance(0.05) {
        Channel::Postal
    } else {
        Channel::InPerson
    };
    // Desks open 07:30–17:00; online dossiers arrive around the clock. Dossiers received
    // within minutes of midnight exercise the day boundary.
    let secs = match channel {
        Channel::Online if rng.chance(0.02) => rng.range(86_400 - 120, 86_399),
        Channel::Online => rng.range(0, 86_399),
        _ => rng.range(27_000, 61_200),
    };
    let received = at(d.date, secs);
    let due = at(d.date + Duration::days(d.due_days), 61_200);
    let span = (due - received).num_seconds().max(3600);
    // Most finish in time; about one in ten runs late.
    let finish = received
        + Duration::seconds(
            (span as f64
                * if rng.chance(0.9) {
                    rng.f64() * 0.95
                } else {
                    1.0 + rng.f64()
                }) as i64,
        );
    let id = format!("H{}-{}-{:07}", d.commune, d.date.format("%y%m%d"), d.serial);
    let base = DossierEvent {
        dossier_id: id,
        procedure_code: d.code.to_string(),
        procedure_name: d.name.map(str::to_string),
        locality_code: d.commune.to_string(),
        agency: None,
        channel,
        status: Status::Received,
        received_at: Some(received),
        due_at: Some(due),
        finished_at: None,
        updated_at: received,
        event_id: None,
        source: Some("sim".into()),
    };
    let mut versions = vec![base.clone()];
    let processing = DossierEvent {
        status: Status::Processing,
        updated_at: received + Duration::seconds(rng.range(60, 3 * 3600)),
        ..base.clone()
    };
    if processing.updated_at < finish {
        versions.push(processing);
    }
    let done = DossierEvent {
        status: Status::Processed,
        finished_at: Some(finish),
        updated_at: finish,
        ..base.clone()
    };
    versions.push(done.clone());
    if rng.chance(0.7) {
        versions.push(DossierEvent {
            status: Status::Returned,
            updated_at: finish + Duration::seconds(rng.range(600, 2 * 86_400)),
            ..done
        });
    }
    // A correction: the first versions carry a mis-keyed channel, a later one fixes it.
    if rng.chance(cfg.correction_rate) {
        let wrong = if channel == Channel::Online {
            Channel::InPerson
        } else {
            Channel::Online
        };
        let last = versions.last().expect("non-empty").clone();
        for v in versions.iter_mut() {
            v.channel = wrong;
        }
        versions.push(DossierEvent {
            channel,
            updated_at: last.updated_at + Duration::seconds(rng.range(3600, 10 * 86_400)),
            ..last
        });
    }
    for (i, v) in versions.iter_mut().enumerate() {
        v.event_id = Some(format!("{}-v{}", v.dossier_id, i + 1));
    }
    sim.truth.push(
        versions
            .iter()
            .max_by_key(|v| v.version_key())
            .expect("non-empty")
            .clone(),
    );

    let late = rng
        .chance(cfg.late_rate)
        .then(|| Duration::days(rng.range(1, cfg.late_max_days.max(1))));
    let mut times: Vec<DateTime<Utc>> = versions
        .iter()
        .map(|v| {
            v.updated_at.with_timezone(&Utc)
                + Duration::seconds(rng.range(1, 600))
                + late.unwrap_or_default()
        })
        .collect();
    if rng.chance(cfg.out_of_order_rate) && times.len() > 1 {
        times.sort_by(|a, b| b.cmp(a));
    }
    for (v, t) in versions.iter().zip(times) {
        let bytes = render(v, cfg, rng);
        if rng.chance(cfg.duplicate_rate) {
            sim.deliveries.push(Delivery {
                at: t + Duration::seconds(rng.range(1, 86_400)),
                bytes: bytes.clone(),
                valid: true,
            });
        }
        sim.deliveries.push(Delivery {
            at: t,
            bytes,
            valid: true,
        });
    }
    if rng.chance(cfg.malformed_rate) {
        sim.deliveries.push(Delivery {
            at: received.with_timezone(&Utc) + Duration::seconds(30),
            bytes: malformed(&base, rng),
            valid: false,
        });
    }
}

/// A version as some portal would write it: canonical with assorted date formats and
/// normal forms, or a DVCQG record with personal data that must never travel further.
pub(crate) fn render(v: &DossierEvent, cfg: &SimConfig, rng: &mut Rng) -> Vec<u8> {
    let fmt = |t: &Option<Timestamp>, style: u64| -> Value {
        match t {
            None => Value::Null,
            Some(t) => Value::String(match style {
                0 => dvc_pulse_model::event::format_ts(t),
                1 => t
                    .with_timezone(&Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                _ => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            }),
        }
    };
    if rng.chance(cfg.dvcqg_rate) {
        let compact = |t: &Option<Timestamp>| t.map(|t| t.format("%Y%m%d%H%M%S").to_string());
        let rec = json!({
            "MaHoSo": v.dossier_id,
            "MaTTHC": v.procedure_code.replace('.', ""),
            "TenTTHC": v.procedure_name,
            "KenhThucHien": match v.channel { Channel::InPerson => 1, Channel::Online => 2, Channel::Postal => 3 },
            "NgayTiepNhan": compact(&v.received_at),
            "NgayHenTra": compact(&v.due_at),
            "NgayKetThucXuLy": compact(&v.finished_at).unwrap_or_default(),
            "NgayCapNhat": compact(&Some(v.updated_at)),
            "TrangThaiHoSo": v.status.portal_number().to_string(),
            "MaDiaBan": v.locality_code,
            "ChuHoSo": "Nguyễn Văn An",
            "SoGiayToChuHoSo": format!("0580{:08}", rng.range(0, 99_999_999)),
            "SoDienThoai": format!("09{:08}", rng.range(0, 99_999_999)),
            "Email": "nguoidan@example.vn",
            "DiaChiThuongTru": "Khu phố 1",
            "HoSoCoThanhPhanSoHoa": 1,
        });
        return serde_json::to_vec(&rec).expect("json");
    }
    let style = rng.next_u64() % 3;
    let name = v.procedure_name.as_ref().map(|n| {
        if rng.chance(0.3) {
            dvc_pulse_model::normalize::nfd(n)
        } else {
            n.clone()
        }
    });
    let rec = json!({
        "dossier_id": v.dossier_id,
        "procedure_code": v.procedure_code,
        "procedure_name": name,
        "locality_code": v.locality_code,
        "channel": v.channel.as_str(),
        "status": v.status.as_str(),
        "received_at": fmt(&v.received_at, style),
        "due_at": fmt(&v.due_at, 0),
        "finished_at": fmt(&v.finished_at, style),
        "updated_at": fmt(&Some(v.updated_at), style),
        "event_id": v.event_id,
        "source": v.source,
    });
    serde_json::to_vec(&rec).expect("json")
}

pub(crate) fn malformed(base: &DossierEvent, rng: &mut Rng) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&base.to_canonical_json()).expect("json");
    v["dossier_id"] = json!(format!("{}-bad", base.dossier_id));
    match rng.next_u64() % 6 {
        0 => return b"{\"dossier_id\": \"truncated".to_vec(),
        1 => v["status"] = json!("da_xu_ly"),
        2 => v["channel"] = json!("fax"),
        3 => v["finished_at"] = json!("2001-01-01T00:00:00+07:00"),
        4 => v["locality_code"] = json!("99999"),
        _ => {
            v.as_object_mut().expect("object").remove("procedure_code");
        }
    }
    serde_json::to_vec(&v).expect("json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimConfig {
        SimConfig {
            days: 5,
            scale: 0.5,
            ..SimConfig::default()
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let r = Reference::embedded();
        let (a, b) = (simulate(&small(), &r), simulate(&small(), &r));
        assert!(!a.deliveries.is_empty());
        assert_eq!(a.deliveries, b.deliveries);
        let c = simulate(&SimConfig { seed: 2, ..small() }, &r);
        assert_ne!(a.deliveries, c.deliveries);
    }

    #[test]
    fn deliveries_are_messy_but_valid_ones_parse() {
        let r = std::sync::Arc::new(Reference::embedded());
        let sim = simulate(
            &SimConfig {
                malformed_rate: 0.2,
                ..small()
            },
            &r,
        );
        let v = dvc_pulse_model::Validator::new(r.clone(), Default::default());
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let mut dvcqg = 0;
        for d in &sim.deliveries {
            let text = String::from_utf8_lossy(&d.bytes);
            dvcqg += text.contains("MaHoSo") as usize;
            assert_eq!(v.parse_record(&d.bytes, now).is_ok(), d.valid, "{text}");
        }
        assert!(dvcqg > 0, "some records come in DVCQG shape");
        assert!(sim.deliveries.iter().any(|d| !d.valid));
        let unique: std::collections::HashSet<_> =
            sim.deliveries.iter().map(|d| &d.bytes).collect();
        assert!(
            unique.len() < sim.deliveries.len(),
            "some records are redelivered byte for byte"
        );
    }

    #[test]
    fn the_truth_is_each_dossiers_latest_delivered_version() {
        let r = std::sync::Arc::new(Reference::embedded());
        let sim = simulate(
            &SimConfig {
                correction_rate: 0.3,
                ..small()
            },
            &r,
        );
        let v = dvc_pulse_model::Validator::new(r.clone(), Default::default());
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let mut latest = std::collections::HashMap::<String, DossierEvent>::new();
        for d in sim.deliveries.iter().filter(|d| d.valid) {
            let e = v.parse_record(&d.bytes, now).unwrap();
            match latest.get(&e.dossier_id) {
                Some(old) if !e.supersedes(old) => {}
                _ => {
                    latest.insert(e.dossier_id.clone(), e);
                }
            }
        }
        assert_eq!(latest.len(), sim.truth.len());
        for t in &sim.truth {
            let got = &latest[&t.dossier_id];
            assert_eq!(
                (got.channel, got.status, got.received_at, got.finished_at),
                (t.channel, t.status, t.received_at, t.finished_at)
            );
        }
    }
}
