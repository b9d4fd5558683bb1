//! The ground truth of a window, computed from the simulator's true final versions, not
//! from what the pipeline made of the deliveries: the oracle for end-to-end tests.

use chrono::NaiveDate;
use dvc_pulse_model::event::ict;
use dvc_pulse_model::{Channel, DossierEvent, Reference};
use serde::Serialize;
use std::collections::BTreeMap;

/// Received dossiers of one service in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TruthRow {
    /// Catalogue service id, or the procedure code outside the catalogue.
    pub service: String,
    /// All received.
    pub total: u64,
    /// Received online.
    pub online: u64,
    /// Received in person.
    pub in_person: u64,
    /// Received by post.
    pub postal: u64,
}

/// The truth of one window for one locality.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TruthTable {
    /// First day (ICT), inclusive.
    pub from: NaiveDate,
    /// Last day (ICT), inclusive.
    pub to: NaiveDate,
    /// Locality filter (the unit and everything under it), if any.
    pub locality: Option<String>,
    /// One row per service with dossiers, catalogue order first.
    pub rows: Vec<TruthRow>,
}

/// Counts dossiers received (status neither `new` nor `rejected`) on days `from..=to`.
pub fn window_truth(
    truth: &[DossierEvent],
    from: NaiveDate,
    to: NaiveDate,
    locality: Option<&str>,
    reference: &Reference,
) -> TruthTable {
    let mut rows: BTreeMap<(usize, String), TruthRow> = BTreeMap::new();
    let order = |s: &str| {
        reference
            .services
            .services()
            .iter()
            .position(|x| x.id == s)
            .unwrap_or(usize::MAX)
    };
    for e in truth {
        let Some(day) = e.received_at.map(|t| t.with_timezone(&ict()).date_naive()) else {
            continue;
        };
        if !e.status.is_received() || day < from || day > to {
            continue;
        }
        if let Some(code) = locality {
            if !reference
                .localities
                .ancestors(&e.locality_code)
                .contains(&code)
            {
                continue;
            }
        }
        let service = reference
            .services
            .service_for(&e.procedure_code)
            .map(|s| s.id.clone())
            .unwrap_or_else(|| e.procedure_code.clone());
        let row = rows
            .entry((order(&service), service.clone()))
            .or_insert_with(|| TruthRow {
                service,
                ..Default::default()
            });
        row.total += 1;
        match e.channel {
            Channel::Online => row.online += 1,
            Channel::InPerson => row.in_person += 1,
            Channel::Postal => row.postal += 1,
        }
    }
    TruthTable {
        from,
        to,
        locality: locality.map(str::to_string),
        rows: rows.into_values().collect(),
    }
}
