//! The dead-letter record: what was rejected, why, and as much of it as may be kept.

use chrono::{DateTime, Utc};
use dvc_pulse_model::event::format_ts;
use dvc_pulse_model::parse::{Rejected, Shape};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One message of the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Stable reason code.
    pub reason: String,
    /// Contract (or DVCQG) field at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Human-readable explanation (never quotes personal data).
    pub detail: String,
    /// `canonical` or `dvcqg`; absent when the bytes were not a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
    /// The record restricted to known fields; absent when it could not be read as JSON,
    /// since personal data cannot be told apart then.
    #[serde(default)]
    pub payload: Option<Map<String, Value>>,
    /// SHA-256 of the original bytes, to match the record with the sender's copy.
    pub payload_sha256: String,
    /// Size of the original bytes.
    pub payload_bytes: usize,
    /// `gateway` or `import:<file name>`.
    pub origin: String,
    /// Position in the request or file (array index or 0-based line).
    pub index: usize,
    /// When the record was rejected.
    pub rejected_at: String,
}

impl DeadLetter {
    /// Builds the record for a valid-looking message refused after the gateway (by a
    /// worker: not an event, or beyond the horizon). The payload is a canonical event, so
    /// it holds no personal data and is kept whole when it is a JSON object.
    pub fn for_message(
        reason: &str,
        detail: &str,
        raw: &[u8],
        origin: &str,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            reason: reason.to_string(),
            field: None,
            detail: detail.to_string(),
            shape: Some("canonical".to_string()),
            payload: serde_json::from_slice::<Value>(raw)
                .ok()
                .and_then(|v| match v {
                    Value::Object(m) => Some(m),
                    _ => None,
                }),
            payload_sha256: hex::encode(Sha256::digest(raw)),
            payload_bytes: raw.len(),
            origin: origin.to_string(),
            index: 0,
            rejected_at: format_ts(&now.fixed_offset()),
        }
    }

    /// Builds the record for a rejected input.
    pub fn new(
        rejected: &Rejected,
        raw: &[u8],
        origin: &str,
        index: usize,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            reason: rejected.rejection.reason.as_str().to_string(),
            field: rejected.rejection.field.map(str::to_string),
            detail: rejected.rejection.detail.clone(),
            shape: rejected.shape.map(|s| match s {
                Shape::Canonical => "canonical".to_string(),
                Shape::Dvcqg => "dvcqg".to_string(),
            }),
            payload: rejected.redacted.clone(),
            payload_sha256: hex::encode(Sha256::digest(raw)),
            payload_bytes: raw.len(),
            origin: origin.to_string(),
            index,
            rejected_at: format_ts(&now.fixed_offset()),
        }
    }
}
