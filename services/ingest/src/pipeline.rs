//! Records → Kafka messages: validated events for the events topic, dead letters for the
//! rest. Shared by the gateway and the importer so both apply the same rules.

use crate::dlq::DeadLetter;
use crate::sink::{Destination, Message};
use chrono::{DateTime, Utc};
use dvc_pulse_model::Validator;
use serde::Serialize;
use std::collections::BTreeMap;

/// One rejected record, as reported to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedItem {
    /// Array index or 0-based line number.
    pub index: usize,
    /// Stable reason code.
    pub reason: &'static str,
    /// Field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// Explanation.
    pub detail: String,
}

/// The messages of a batch and what to tell the sender.
#[derive(Debug, Default)]
pub struct Processed {
    /// Accepted events.
    pub accepted: usize,
    /// Rejected records.
    pub rejected: Vec<RejectedItem>,
    /// Everything to publish, in input order.
    pub messages: Vec<Message>,
}

impl Processed {
    /// Rejections counted by reason.
    pub fn by_reason(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for r in &self.rejected {
            *m.entry(r.reason).or_default() += 1;
        }
        m
    }
}

/// Validates `records` and turns them into messages stamped `now` (the Kafka timestamp
/// workers read "today" from). `origin` names the entry point in dead letters
/// (`gateway`, `import:<file>`).
pub fn process<I, B>(
    validator: &Validator,
    records: I,
    origin: &str,
    now: DateTime<Utc>,
) -> Processed
where
    I: IntoIterator<Item = (usize, B)>,
    B: AsRef<[u8]>,
{
    let mut out = Processed::default();
    for (index, raw) in records {
        let raw = raw.as_ref();
        match validator.parse_record(raw, now) {
            Ok(event) => {
                out.accepted += 1;
                out.messages.push(Message {
                    to: Destination::Events,
                    key: Some(event.dossier_id.clone()),
                    payload: event.to_canonical_json(),
                    reason: None,
                    timestamp_ms: Some(now.timestamp_millis()),
                });
            }
            Err(rejected) => {
                let r = &rejected.rejection;
                out.rejected.push(RejectedItem {
                    index,
                    reason: r.reason.as_str(),
                    field: r.field,
                    detail: r.detail.clone(),
                });
                let dl = DeadLetter::new(&rejected, raw, origin, index, now);
                out.messages.push(Message {
                    to: Destination::DeadLetter,
                    key: rejected.dossier_id.clone(),
                    payload: serde_json::to_vec(&dl).expect("a dead letter serialises"),
                    reason: Some(r.reason.as_str()),
                    timestamp_ms: Some(now.timestamp_millis()),
                });
            }
        }
    }
    out
}
