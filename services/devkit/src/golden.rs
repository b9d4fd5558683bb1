//! Golden scenarios: events made to add up to a given report table (e.g. a published
//! annex), wrapped in every kind of mess the real data has. The expected answer is the
//! table itself, so a pipeline that reproduces it handled the mess.

use crate::generate::{SimConfig, malformed, render};
use crate::rng::Rng;
use chrono::{Duration, NaiveDate, TimeZone};
use dvc_pulse_model::event::{Timestamp, ict};
use dvc_pulse_model::reference::Level;
use dvc_pulse_model::{Channel, DossierEvent, Reference, Status};

/// One row of the target table: a catalogue service id, its total and online counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRow {
    /// Catalogue service id (used as the procedure code of its dossiers).
    pub service: String,
    /// Dossiers received in the window.
    pub total: u64,
    /// Of which online.
    pub online: u64,
}

/// What the scenario produced.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// NDJSON lines in delivery order.
    pub lines: Vec<Vec<u8>>,
    /// Lines made malformed on purpose.
    pub malformed: usize,
    /// Byte-identical redeliveries.
    pub duplicates: usize,
    /// Versions delivered after a newer version of their dossier.
    pub stale: usize,
}

fn local(day: NaiveDate, secs: i64) -> Timestamp {
    ict()
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"))
        .unwrap()
        + Duration::seconds(secs)
}

fn communes(reference: &Reference, unit: &str) -> Vec<String> {
    let mut v: Vec<String> = reference
        .localities
        .legacy
        .units_under(unit)
        .filter(|u| u.level == Level::Commune)
        .map(|u| u.code.clone())
        .collect();
    v.sort();
    v
}

/// Events whose windows for `locality`, `from..=to`, grouped by service, are `target`
/// exactly; plus noise that must not count: other days, a neighbouring `other` unit,
/// never-received dossiers, malformed lines.
pub fn scenario(
    target: &[TargetRow],
    from: NaiveDate,
    to: NaiveDate,
    locality: &str,
    other: &str,
    reference: &Reference,
    seed: u64,
) -> Scenario {
    let mut b = Builder {
        rng: Rng::new(seed),
        render_cfg: SimConfig {
            dvcqg_rate: 0.15,
            ..SimConfig::default()
        },
        serial: 0,
        out: Scenario::default(),
        late: Vec::new(),
        here: communes(reference, locality),
        there: communes(reference, other),
        from,
        to,
    };
    for row in target {
        b.target_row(row);
    }
    let services: Vec<&str> = target.iter().map(|r| r.service.as_str()).collect();
    for k in 0..400 {
        b.noise(k, &services);
    }
    let Builder { mut out, late, .. } = b;
    out.lines.extend(late);
    out
}

/// A scenario being written: the delivery order, and the late dossiers that go last.
struct Builder {
    rng: Rng,
    render_cfg: SimConfig,
    serial: u64,
    out: Scenario,
    late: Vec<Vec<u8>>,
    here: Vec<String>,
    there: Vec<String>,
    from: NaiveDate,
    to: NaiveDate,
}

impl Builder {
    fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// The dossiers of one target row: `total` received in the window, `online` of them online.
    fn target_row(&mut self, row: &TargetRow) {
        let (from, to, days) = (self.from, self.to, self.days());
        for i in 0..row.total {
            let rng = &mut self.rng;
            let channel = if i < row.online {
                Channel::Online
            } else if rng.chance(0.2) {
                Channel::Postal
            } else {
                Channel::InPerson
            };
            let day = from + Duration::days(rng.range(0, days - 1));
            let mut received = local(day, rng.range(7 * 3600, 17 * 3600));
            // Window edges, which portals often write in UTC.
            if i % 97 == 1 {
                received = local(from, 30);
            } else if i % 97 == 2 {
                received = local(to, 86_399);
            }
            let commune = rng.pick(&self.here).clone();
            let status = *rng.pick(&[Status::Processing, Status::Processed, Status::Returned]);
            self.dossier(&row.service, channel, received, &commune, status);
        }
    }

    /// The `k`-th dossier that must not count: outside the window, in the neighbouring
    /// unit, never received, or malformed.
    fn noise(&mut self, k: usize, services: &[&str]) {
        let (from, to, days) = (self.from, self.to, self.days());
        let rng = &mut self.rng;
        let service = *rng.pick(services);
        let channel = *rng.pick(&Channel::ALL);
        let inside = |rng: &mut Rng| local(from + Duration::days(rng.range(0, days - 1)), 36_000);
        let (received, commune, status) = match k % 4 {
            // Just outside the window, some a second past its edges.
            0 => {
                let edge = [local(from, -1), local(to, 86_400)][rng.range(0, 1) as usize];
                let day = [
                    from - Duration::days(rng.range(1, 10)),
                    to + Duration::days(rng.range(1, 10)),
                ][rng.range(0, 1) as usize];
                let t = if k % 8 == 0 {
                    edge
                } else {
                    local(day, rng.range(0, 86_399))
                };
                (t, rng.pick(&self.here).clone(), Status::Processing)
            }
            // The neighbouring unit, inside the window.
            1 => (inside(rng), rng.pick(&self.there).clone(), Status::Received),
            // Never received: still new, or not accepted.
            2 => (
                inside(rng),
                rng.pick(&self.here).clone(),
                *rng.pick(&[Status::New, Status::Rejected]),
            ),
            _ => (inside(rng), rng.pick(&self.here).clone(), Status::Received),
        };
        if k % 4 == 3 {
            // Malformed: never counts, whatever it claims.
            let base = DossierEvent {
                dossier_id: format!("M{k:05}"),
                procedure_code: service.to_string(),
                procedure_name: None,
                locality_code: commune,
                agency: None,
                channel,
                status,
                received_at: Some(received),
                due_at: None,
                finished_at: None,
                updated_at: received,
                event_id: None,
                source: None,
            };
            self.out.lines.push(malformed(&base, &mut self.rng));
            self.out.malformed += 1;
            return;
        }
        self.dossier(service, channel, received, &commune, status);
    }

    /// One dossier's versions, with the mess real feeds have: a mis-keyed first version,
    /// versions out of order, a redelivery, or the whole dossier arriving late.
    fn dossier(
        &mut self,
        service: &str,
        channel: Channel,
        received: Timestamp,
        commune: &str,
        final_status: Status,
    ) {
        self.serial += 1;
        let first = DossierEvent {
            dossier_id: format!("G{:06}", self.serial),
            procedure_code: service.to_string(),
            procedure_name: None,
            locality_code: commune.to_string(),
            agency: None,
            channel,
            status: Status::Received,
            received_at: Some(received),
            due_at: Some(received + Duration::days(7)),
            finished_at: None,
            updated_at: received,
            event_id: None,
            source: Some("golden".into()),
        };
        let (rng, cfg) = (&mut self.rng, &self.render_cfg);
        let mut last = first.clone();
        last.status = final_status;
        last.updated_at = received + Duration::hours(rng.range(2, 24 * 9));
        if matches!(final_status, Status::Processed | Status::Returned) {
            last.finished_at = Some(last.updated_at);
        }
        let mut lines: Vec<Vec<u8>> = Vec::new();
        // A mis-keyed first version (channel or procedure), corrected by the later ones.
        if rng.chance(0.04) {
            let mut wrong = first.clone();
            wrong.updated_at = received - Duration::minutes(1);
            if rng.chance(0.5) {
                wrong.channel = if channel == Channel::Online {
                    Channel::InPerson
                } else {
                    Channel::Online
                };
            } else {
                wrong.procedure_code = "DA06-16".into();
            }
            lines.push(render(&wrong, cfg, rng));
        }
        lines.push(render(&first, cfg, rng));
        let last_line = render(&last, cfg, rng);
        // Out of order: the newest version first, the older one after it (stale).
        if rng.chance(0.10) {
            let older = lines.pop().expect("first");
            lines.push(last_line.clone());
            lines.push(older);
            self.out.stale += 1;
        } else {
            lines.push(last_line.clone());
        }
        if rng.chance(0.05) {
            lines.push(last_line);
            self.out.duplicates += 1;
        }
        // Late first versions: the whole dossier arrives after everything else.
        if rng.chance(0.05) {
            self.late.extend(lines)
        } else {
            self.out.lines.extend(lines)
        }
    }
}
