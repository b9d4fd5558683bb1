//! Stable reason codes for rejected records. The codes are an API: never rename one.

use serde::Serialize;
use std::fmt;

/// Why a record was rejected. `as_str` is the stable machine code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// The bytes are not JSON (or a CSV row could not be read).
    MalformedJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// The record is larger than the configured limit.
    OversizeRecord,
    /// A required field is absent, null or empty.
    MissingField,
    /// A field has the wrong JSON type.
    InvalidField,
    /// A date could not be read in any accepted format.
    InvalidDate,
    /// The status is not one of the ten contract statuses.
    UnknownStatus,
    /// The channel is not `online`, `in_person` or `postal`.
    UnknownChannel,
    /// The locality code is in neither the current nor the pre-2025 unit set.
    UnknownLocality,
    /// A DVCQG record carries no locality and its agency is not in the agencies table.
    UnknownAgency,
    /// `finished_at` is before `received_at`.
    FinishedBeforeReceived,
    /// `due_at` is before `received_at`.
    DueBeforeReceived,
    /// `received_at` is more than 10 minutes after the gateway's clock.
    ReceivedInFuture,
    /// `finished_at` is more than the future tolerance after the gateway's clock.
    FinishedInFuture,
    /// `updated_at` is more than the future tolerance after the gateway's clock: it would
    /// win over every later correction.
    UpdatedInFuture,
    /// The event's day is older than the worker's late-data horizon.
    BeyondHorizon,
}

impl Reason {
    /// Every reason, in catalogue order.
    pub const ALL: [Reason; 17] = [
        Reason::InvalidUtf8,
        Reason::MalformedJson,
        Reason::NotAnObject,
        Reason::OversizeRecord,
        Reason::MissingField,
        Reason::InvalidField,
        Reason::InvalidDate,
        Reason::UnknownStatus,
        Reason::UnknownChannel,
        Reason::UnknownLocality,
        Reason::UnknownAgency,
        Reason::FinishedBeforeReceived,
        Reason::DueBeforeReceived,
        Reason::ReceivedInFuture,
        Reason::FinishedInFuture,
        Reason::UpdatedInFuture,
        Reason::BeyondHorizon,
    ];

    /// The stable machine code.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::MalformedJson => "malformed_json",
            Reason::NotAnObject => "not_an_object",
            Reason::OversizeRecord => "oversize_record",
            Reason::MissingField => "missing_field",
            Reason::InvalidField => "invalid_field",
            Reason::InvalidDate => "invalid_date",
            Reason::UnknownStatus => "unknown_status",
            Reason::UnknownChannel => "unknown_channel",
            Reason::UnknownLocality => "unknown_locality",
            Reason::UnknownAgency => "unknown_agency",
            Reason::FinishedBeforeReceived => "finished_before_received",
            Reason::DueBeforeReceived => "due_before_received",
            Reason::ReceivedInFuture => "received_in_future",
            Reason::FinishedInFuture => "finished_in_future",
            Reason::UpdatedInFuture => "updated_in_future",
            Reason::BeyondHorizon => "beyond_horizon",
        }
    }

    /// Parses a machine code.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// True when a JSON Schema validator can see this problem too; the others need the
    /// reference data, the clock, byte-level checks or comparisons between fields.
    pub fn is_structural(self) -> bool {
        matches!(
            self,
            Reason::InvalidUtf8
                | Reason::MalformedJson
                | Reason::NotAnObject
                | Reason::MissingField
                | Reason::InvalidField
                | Reason::InvalidDate
                | Reason::UnknownStatus
                | Reason::UnknownChannel
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected record: the reason code, the field at fault and a human-readable detail.
///
/// `detail` only ever quotes values of contract fields, never personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The stable reason code.
    pub reason: Reason,
    /// The contract field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// A short explanation for people.
    pub detail: String,
}

impl Rejection {
    /// A rejection about one field.
    pub fn field(reason: Reason, field: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            field: Some(field),
            detail: detail.into(),
        }
    }

    /// A rejection about the record as a whole.
    pub fn record(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            field: None,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{} ({}): {}", self.reason, field, self.detail),
            None => write!(f, "{}: {}", self.reason, self.detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "duplicate code {r}");
            assert_eq!(Reason::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
