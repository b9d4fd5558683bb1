//! Per-service calibration: dossiers per commune per day and the online share.
//!
//! Volumes come from the Phan Rang–Tháp Chàm annex (05/6–05/7/2024, 16 communes, 31
//! days: seed 001); services the seeds show below 50% online (criminal-record
//! certificates at 0% in seed 000) keep their low rates, so alerts have work to do.

/// Calibration of one catalogue service.
#[derive(Debug, Clone, Copy)]
pub struct ServiceProfile {
    /// Catalogue id.
    pub service_id: &'static str,
    /// Mean dossiers per commune per day.
    pub per_commune_daily: f64,
    /// Share received online.
    pub online_rate: f64,
    /// Days from reception to the due date.
    pub due_days: i64,
}

const fn p(
    service_id: &'static str,
    per_commune_daily: f64,
    online_rate: f64,
    due_days: i64,
) -> ServiceProfile {
    ServiceProfile {
        service_id,
        per_commune_daily,
        online_rate,
        due_days,
    }
}

/// The calibration table (services of the built-in catalogue).
pub const PROFILES: &[ServiceProfile] = &[
    p("DA06-01", 0.01, 0.50, 3),
    p("DA06-02", 196.0 / 496.0, 0.8776, 7),
    p("DA06-03", 1156.0 / 496.0, 0.9991, 7),
    p("DA06-04", 187.0 / 496.0, 0.9893, 3),
    p("DA06-05", 6.0 / 496.0, 1.0, 1),
    p("DA06-06", 5045.0 / 496.0, 1.0, 1),
    p("DA06-07", 790.0 / 496.0, 1.0, 2),
    p("DA06-08", 12.0 / 496.0, 1.0, 1),
    p("DA06-09", 0.01, 0.30, 10),
    p("DA06-10", 125.0 / 496.0, 0.896, 3),
    p("DA06-11", 340.0 / 496.0, 1.0, 1),
    p("DA06-12", 168.0 / 496.0, 1.0, 1),
    p("DA06-13", 195.0 / 496.0, 1.0, 5),
    p("DA06-14", 361.0 / 496.0, 1.0, 5),
    p("DA06-15", 144.0 / 496.0, 1.0, 5),
    p("DA06-16", 0.30, 0.62, 8),
    p("DA06-17", 0.02, 0.40, 3),
    p("DA06-18", 0.20, 0.05, 10),
    p("DA06-19", 0.50, 0.45, 5),
    p("DA06-20", 0.30, 0.35, 5),
    p("DA06-21", 0.20, 0.90, 10),
    p("DA06-22", 0.10, 0.55, 20),
    p("DA06-23", 0.10, 0.70, 7),
    p("DA06-24", 0.10, 0.65, 3),
    p("QD422-01", 193.0 / 496.0, 1.0, 3),
];

/// Procedures outside the catalogue still flow (and must be counted, never dropped):
/// real national codes of procedures that are not essential services (a vehicle
/// inspection, a civil-aviation procedure).
pub const OTHER_PROCEDURES: &[(&str, &str, f64, f64)] = &[
    (
        "1.000010",
        "Thủ tục kiểm định phương tiện giao thông",
        0.05,
        0.2,
    ),
    (
        "1.004412",
        "Thủ tục trong lĩnh vực hàng không dân dụng",
        0.03,
        0.6,
    ),
];
