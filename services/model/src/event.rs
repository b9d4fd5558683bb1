//! The canonical dossier event and its version order.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Asia/Ho_Chi_Minh is UTC+7 all year (no DST since 1975), so a fixed offset is exact.
pub fn ict() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("valid offset")
}

/// How a dossier was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Received through an online portal.
    Online,
    /// Received at a one-stop desk.
    InPerson,
    /// Received by post.
    Postal,
}

impl Channel {
    /// All channels, in contract order.
    pub const ALL: [Channel; 3] = [Channel::Online, Channel::InPerson, Channel::Postal];

    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Online => "online",
            Channel::InPerson => "in_person",
            Channel::Postal => "postal",
        }
    }

    /// Parses the contract's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Dossier status: the national portal's statuses 1 to 10, in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 1: filed, not yet received.
    New,
    /// 2: received.
    Received,
    /// 3: not accepted.
    Rejected,
    /// 4: being processed.
    Processing,
    /// 5: supplement requested from the applicant.
    SupplementRequested,
    /// 6: awaiting fees.
    AwaitingFees,
    /// 7: withdrawn by the applicant.
    Withdrawn,
    /// 8: processing stopped.
    Stopped,
    /// 9: processed.
    Processed,
    /// 10: result returned.
    Returned,
}

impl Status {
    /// All statuses in the national portal's order (index + 1 = portal number).
    pub const ALL: [Status; 10] = [
        Status::New,
        Status::Received,
        Status::Rejected,
        Status::Processing,
        Status::SupplementRequested,
        Status::AwaitingFees,
        Status::Withdrawn,
        Status::Stopped,
        Status::Processed,
        Status::Returned,
    ];

    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Received => "received",
            Status::Rejected => "rejected",
            Status::Processing => "processing",
            Status::SupplementRequested => "supplement_requested",
            Status::AwaitingFees => "awaiting_fees",
            Status::Withdrawn => "withdrawn",
            Status::Stopped => "stopped",
            Status::Processed => "processed",
            Status::Returned => "returned",
        }
    }

    /// Parses the contract's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The national portal's number, 1 to 10.
    pub fn portal_number(self) -> u8 {
        // Declared in the portal's order: the discriminant is the index in `ALL`.
        self as u8 + 1
    }

    /// From the national portal's number, 1 to 10.
    pub fn from_portal_number(n: u64) -> Option<Self> {
        (1..=10).contains(&n).then(|| Self::ALL[n as usize - 1])
    }

    /// Counted as a received dossier (everything but `new` and `rejected`).
    pub fn is_received(self) -> bool {
        !matches!(self, Status::New | Status::Rejected)
    }
}

/// A timestamp of the contract: an instant, written in ICT (+07:00).
pub type Timestamp = DateTime<FixedOffset>;

/// One version of one dossier, as it travels on the `dossier-events` topic.
///
/// Invariants (enforced by [`crate::parse`]): text is NFC and trimmed, times carry the
/// +07:00 offset, `received_at` is present unless the status is `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DossierEvent {
    /// Unique dossier id (the Kafka key).
    pub dossier_id: String,
    /// National procedure code, e.g. `1.001193`.
    pub procedure_code: String,
    /// Procedure name as the source wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure_name: Option<String>,
    /// Statistics-office code of the commune, district or province.
    pub locality_code: String,
    /// Handling agency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// Reception channel.
    pub channel: Channel,
    /// Current status.
    pub status: Status,
    /// When the dossier was received.
    #[serde(default, with = "ts_opt", skip_serializing_if = "Option::is_none")]
    pub received_at: Option<Timestamp>,
    /// Due date promised to the applicant.
    #[serde(default, with = "ts_opt", skip_serializing_if = "Option::is_none")]
    pub due_at: Option<Timestamp>,
    /// When processing finished.
    #[serde(default, with = "ts_opt", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// When this version was made; the latest wins.
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
    /// Producer's event id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Producing system, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl DossierEvent {
    /// A placeholder with nothing allocated, for a parser to fill
    /// ([`crate::Validator::parse_text_into`]); not a valid event itself.
    pub fn empty() -> Self {
        Self {
            dossier_id: String::new(),
            procedure_code: String::new(),
            procedure_name: None,
            locality_code: String::new(),
            agency: None,
            channel: Channel::Online,
            status: Status::New,
            received_at: None,
            due_at: None,
            finished_at: None,
            updated_at: DateTime::<Utc>::UNIX_EPOCH.with_timezone(&ict()),
            event_id: None,
            source: None,
        }
    }

    /// The canonical JSON bytes: fixed field order, ICT offsets; byte-identical
    /// redeliveries of one version therefore compare equal.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a DossierEvent always serialises")
    }

    /// The version order key: later `updated_at` wins, a tie goes to the later status.
    pub fn version_key(&self) -> (DateTime<Utc>, Status) {
        (self.updated_at.with_timezone(&Utc), self.status)
    }

    /// True when `self` is a newer version than `other` of the same dossier.
    pub fn supersedes(&self, other: &DossierEvent) -> bool {
        self.version_key() > other.version_key()
    }
}

/// The clock, injectable so tests control "now".
pub type Clock = std::sync::Arc<dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync>;

/// Formats a timestamp the canonical way: RFC 3339, +07:00, seconds unless sub-second.
pub fn format_ts(t: &Timestamp) -> String {
    t.with_timezone(&ict())
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A timestamp of the contract read from its text, as events decode it: the contract's
/// own form digit by digit, anything else by chrono's RFC 3339 parser (its error says
/// what is wrong); in ICT.
pub(crate) fn read_ts(s: &str) -> Result<Timestamp, chrono::ParseError> {
    if let Some(t) = crate::normalize::rfc3339_fast(s) {
        return Ok(t);
    }
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&ict()))
}

mod ts {
    use super::*;
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ts(t))
    }

    /// Read from the text in place (no string is allocated): the contract's own form
    /// digit by digit, anything else by chrono's RFC 3339 parser, whose error a bad
    /// timestamp reports.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        d.deserialize_str(Rfc3339)
    }

    pub(super) struct Rfc3339;

    impl Visitor<'_> for Rfc3339 {
        type Value = Timestamp;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an RFC 3339 timestamp")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Timestamp, E> {
            read_ts(s).map_err(de::Error::custom)
        }
    }
}

mod ts_opt {
    use super::*;
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_ts(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        d.deserialize_option(Maybe)
    }

    struct Maybe;

    impl<'de> Visitor<'de> for Maybe {
        type Value = Option<Timestamp>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an RFC 3339 timestamp or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(super::ts::Rfc3339).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's timestamps decode without allocating, and as before: null or
    /// absent optional ones are none, a leap second goes through chrono, a bad one fails.
    #[test]
    fn timestamps_decode_fast_and_as_chrono_does() {
        let e: DossierEvent = serde_json::from_str(
            r#"{"dossier_id":"A","procedure_code":"1.001193","locality_code":"00004","channel":"online","status":"received","received_at":"2016-12-31T23:59:60Z","due_at":null,"updated_at":"2024-06-05T01:30:00.5Z"}"#,
        )
        .unwrap();
        assert_eq!(format_ts(&e.updated_at), "2024-06-05T08:30:00.500+07:00");
        assert_eq!(e.received_at.map(|t| t.timestamp()), Some(1483228799));
        assert_eq!((e.due_at, e.finished_at), (None, None));
        let bad = serde_json::from_str::<DossierEvent>(
            r#"{"dossier_id":"A","procedure_code":"1","locality_code":"1","channel":"online","status":"new","updated_at":"2024-06-05 08:30"}"#,
        );
        assert!(bad.is_err());
    }

    #[test]
    fn status_numbers_follow_the_portal_order() {
        assert_eq!(Status::New.portal_number(), 1);
        assert_eq!(Status::Returned.portal_number(), 10);
        assert_eq!(Status::from_portal_number(3), Some(Status::Rejected));
        assert_eq!(Status::from_portal_number(0), None);
        assert_eq!(Status::from_portal_number(11), None);
        assert!(Status::Processing > Status::Received);
        for (i, s) in Status::ALL.into_iter().enumerate() {
            assert_eq!(s.portal_number() as usize, i + 1, "{s:?}");
            assert_eq!(Status::from_portal_number(i as u64 + 1), Some(s));
        }
    }

    #[test]
    fn received_excludes_new_and_rejected() {
        let received: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| s.is_received())
            .collect();
        assert_eq!(received.len(), 8);
        assert!(!Status::New.is_received() && !Status::Rejected.is_received());
    }
}
