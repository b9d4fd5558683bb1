//! From bytes to a validated canonical event, or to a rejection with a stable reason.
//!
//! A body is one JSON object, a JSON array of objects, or NDJSON; each record is either
//! canonical (contract field names) or a DVCQG sync record (`MaHoSo`, ...). Anything
//! outside the contract or the DVCQG mapping is dropped here and never travels further.

use crate::dvcqg;
use crate::event::{Channel, DossierEvent, Status, Timestamp};
use crate::normalize;
use crate::reason::{Reason, Rejection};
use crate::reference::Reference;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;

mod decode;
mod record;

pub use decode::decode_event;
pub(crate) use record::{Record, Scalar};
use std::time::Duration;

/// The contract's field names, in contract order.
pub const CANONICAL_FIELDS: [&str; 14] = [
    "dossier_id",
    "procedure_code",
    "procedure_name",
    "locality_code",
    "agency",
    "channel",
    "status",
    "received_at",
    "due_at",
    "finished_at",
    "updated_at",
    "event_id",
    "source",
    // Not a contract field: kept so a redacted DVCQG payload can say where it came from.
    "shape",
];

/// Limits and tolerances of validation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidatorConfig {
    /// Largest accepted record, in bytes of compact JSON.
    pub max_record_bytes: usize,
    /// How far past the gateway's clock `received_at` may be (clock skew).
    #[serde(with = "crate::settings::duration")]
    pub future_tolerance: Duration,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        Self {
            max_record_bytes: 64 * 1024,
            future_tolerance: Duration::from_secs(600),
        }
    }
}

/// Which input shape a record had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Contract field names.
    Canonical,
    /// A national-portal (DVCQG) sync record.
    Dvcqg,
}

/// A record that failed validation, with what may safely travel to the dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Why.
    pub rejection: Rejection,
    /// The input shape, when the record was a JSON object.
    pub shape: Option<Shape>,
    /// The record restricted to contract (or DVCQG-mapping) fields; `None` when the bytes
    /// could not be read as a JSON object, since personal data cannot be told apart then.
    pub redacted: Option<Map<String, Value>>,
    /// The dossier id, when one could be read.
    pub dossier_id: Option<String>,
}

/// The outcome of parsing one record.
pub type Parsed = Result<DossierEvent, Box<Rejected>>;

/// Validates records against the contract and the reference data.
#[derive(Debug, Clone)]
pub struct Validator {
    reference: Arc<Reference>,
    config: ValidatorConfig,
}

impl Validator {
    /// A validator over the given reference data.
    pub fn new(reference: Arc<Reference>, config: ValidatorConfig) -> Self {
        Self { reference, config }
    }

    /// The reference data.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Parses and validates one record; `now` is the receiving side's clock.
    ///
    /// The fast path reads the record once into typed, borrowed fields ([`Record`]): a
    /// flat object of strings, nulls and unsigned integers without escapes by a scan of
    /// its bytes, any other through serde; a
    /// record neither can read goes through `serde_json::Value` for the precise reason,
    /// and a rejected one is read again only to redact it for the dead-letter topic.
    pub fn parse_record(&self, raw: &[u8], now: DateTime<Utc>) -> Parsed {
        // The SIMD check first (most records are valid, most of them ASCII); the
        // standard one says where invalid bytes start.
        let text = simdutf8::basic::from_utf8(raw)
            .or_else(|_| std::str::from_utf8(raw))
            .map_err(|e| {
                bare(Rejection::record(
                    Reason::InvalidUtf8,
                    format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                ))
            })?;
        self.parse_text(text, now)
    }

    /// [`Validator::parse_record`] of a record already known to be UTF-8 (a reader that
    /// checked a whole block of lines at once).
    pub fn parse_text(&self, text: &str, now: DateTime<Utc>) -> Parsed {
        let mut e = DossierEvent::empty();
        self.parse_text_into(text, now, &mut e).map(|()| e)
    }

    /// [`Validator::parse_text`] into `out`, reusing the room of its strings: a reader
    /// that folds each event and goes on to the next allocates nothing per record. After
    /// an error, `out` holds no event worth reading.
    pub fn parse_text_into(
        &self,
        text: &str,
        now: DateTime<Utc>,
        out: &mut DossierEvent,
    ) -> Result<(), Box<Rejected>> {
        let mut record = Record::default();
        let read = match record.read_flat(text) {
            Some(_) => Ok(()),
            None => {
                record = Record::default();
                record.read(text)
            }
        };
        match read {
            Ok(()) => self
                .validate(&record, text.len(), now, out)
                .map_err(|(shape, rejection)| rejected(text, shape, rejection)),
            Err(_) => self.parse_value(text, text.len(), now, out),
        }
    }

    /// The slow path, through `serde_json::Value`: says why the bytes are not a JSON
    /// object, and validates one when the typed read refused it anyway.
    fn parse_value(
        &self,
        text: &str,
        len: usize,
        now: DateTime<Utc>,
        out: &mut DossierEvent,
    ) -> Result<(), Box<Rejected>> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            bare(Rejection::record(
                Reason::MalformedJson,
                format!("not JSON: line {} column {}", e.line(), e.column()),
            ))
        })?;
        let Value::Object(map) = &value else {
            return Err(bare(Rejection::record(
                Reason::NotAnObject,
                format!("a record must be a JSON object, not {}", kind(&value)),
            )));
        };
        self.validate(&Record::from_map(map), len, now, out)
            .map_err(|(shape, rejection)| rejected(text, shape, rejection))
    }

    /// Validates the fields of one record of `len` bytes into `out`.
    fn validate(
        &self,
        record: &Record,
        len: usize,
        now: DateTime<Utc>,
        out: &mut DossierEvent,
    ) -> Result<(), (Shape, Rejection)> {
        let shape = if dvcqg::is_dvcqg(record) {
            Shape::Dvcqg
        } else {
            Shape::Canonical
        };
        if len > self.config.max_record_bytes {
            return Err((
                shape,
                Rejection::record(
                    Reason::OversizeRecord,
                    format!(
                        "{len} bytes, over the {}-byte limit",
                        self.config.max_record_bytes
                    ),
                ),
            ));
        }
        match shape {
            Shape::Canonical => self.canonical(record, out),
            Shape::Dvcqg => dvcqg::to_event(record, &self.reference).map(|e| *out = e),
        }
        .and_then(|()| self.check(out, now))
        .map_err(|r| (shape, r))
    }

    /// The contract's fields of `m`, into `e`.
    fn canonical(&self, m: &Record, e: &mut DossierEvent) -> Result<(), Rejection> {
        let dossier_id = required(m, "dossier_id", normalize::code)?;
        let procedure_code = required(m, "procedure_code", normalize::procedure_code)?;
        let locality_code = required(m, "locality_code", normalize::code)?;
        let channel_text = required(m, "channel", normalize::code)?;
        let channel = Channel::parse(&channel_text).ok_or_else(|| {
            Rejection::field(
                Reason::UnknownChannel,
                "channel",
                format!("{channel_text:?} is not online, in_person or postal"),
            )
        })?;
        let status_text = required(m, "status", normalize::code)?;
        let status = Status::parse(&status_text).ok_or_else(|| {
            Rejection::field(
                Reason::UnknownStatus,
                "status",
                format!("{status_text:?} is not a contract status"),
            )
        })?;
        let updated_at = date(m, "updated_at", false)?.ok_or_else(|| {
            Rejection::field(Reason::MissingField, "updated_at", "updated_at is required")
        })?;
        set(&mut e.dossier_id, &dossier_id);
        set(&mut e.procedure_code, &procedure_code);
        set_optional(
            &mut e.procedure_name,
            optional(m, "procedure_name", normalize::text)?,
        );
        set(&mut e.locality_code, &locality_code);
        set_optional(&mut e.agency, optional(m, "agency", normalize::text)?);
        (e.channel, e.status) = (channel, status);
        e.received_at = date(m, "received_at", false)?;
        e.due_at = date(m, "due_at", true)?;
        e.finished_at = date(m, "finished_at", true)?;
        e.updated_at = updated_at;
        set_optional(&mut e.event_id, optional(m, "event_id", normalize::code)?);
        set_optional(&mut e.source, optional(m, "source", normalize::text)?);
        Ok(())
    }

    /// Rules between fields, against the clock, and against the reference data.
    fn check(&self, e: &mut DossierEvent, now: DateTime<Utc>) -> Result<(), Rejection> {
        self.map_by_name(e);
        let limit = now + self.config.future_tolerance;
        match e.received_at {
            None if e.status != Status::New => {
                return Err(Rejection::field(
                    Reason::MissingField,
                    "received_at",
                    "received_at is required unless the status is new",
                ));
            }
            Some(r) => {
                if let Some(f) = e.finished_at.filter(|f| *f < r) {
                    return Err(Rejection::field(
                        Reason::FinishedBeforeReceived,
                        "finished_at",
                        format!(
                            "finished {} before received {}",
                            crate::event::format_ts(&f),
                            crate::event::format_ts(&r)
                        ),
                    ));
                }
                if let Some(d) = e.due_at.filter(|d| *d < r) {
                    return Err(Rejection::field(
                        Reason::DueBeforeReceived,
                        "due_at",
                        format!(
                            "due {} before received {}",
                            crate::event::format_ts(&d),
                            crate::event::format_ts(&r)
                        ),
                    ));
                }
                if r > limit {
                    return Err(Rejection::field(
                        Reason::ReceivedInFuture,
                        "received_at",
                        format!(
                            "received {} is after the gateway clock {}",
                            crate::event::format_ts(&r),
                            crate::event::format_ts(&now.fixed_offset())
                        ),
                    ));
                }
            }
            None => {}
        }
        self.not_in_future(e, now, limit)?;
        if !self.reference.localities.contains(&e.locality_code) {
            return Err(Rejection::field(
                Reason::UnknownLocality,
                "locality_code",
                format!(
                    "{:?} is not a statistics-office code of the current or pre-2025 units",
                    e.locality_code
                ),
            ));
        }
        Ok(())
    }
}

impl Validator {
    /// A procedure code the catalogue does not know, whose name is a catalogue service's
    /// name: the event takes that service's id as its code (the name stays as sent).
    fn map_by_name(&self, e: &mut DossierEvent) {
        let services = &self.reference.services;
        if services.service_for(&e.procedure_code).is_some() {
            return;
        }
        if let Some(s) = e
            .procedure_name
            .as_deref()
            .and_then(|n| services.service_named(n))
        {
            set(&mut e.procedure_code, &s.id);
        }
    }

    /// `finished_at` and `updated_at` no later than the clock plus the tolerance: a
    /// version from the future would win over every correction and keep the newest-event
    /// gauge from ever ageing. `limit` is `now` plus the tolerance.
    fn not_in_future(
        &self,
        e: &DossierEvent,
        now: DateTime<Utc>,
        limit: DateTime<Utc>,
    ) -> Result<(), Rejection> {
        let after = |what: &str, t: &Timestamp| {
            format!(
                "{what} {} is after the gateway clock {}",
                crate::event::format_ts(t),
                crate::event::format_ts(&now.fixed_offset())
            )
        };
        if let Some(f) = e.finished_at.filter(|f| *f > limit) {
            return Err(Rejection::field(
                Reason::FinishedInFuture,
                "finished_at",
                after("finished", &f),
            ));
        }
        if e.updated_at > limit {
            return Err(Rejection::field(
                Reason::UpdatedInFuture,
                "updated_at",
                after("updated", &e.updated_at),
            ));
        }
        Ok(())
    }
}

/// A UTF-8 byte-order mark (what Excel and many Windows tools write first).
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `bytes` without a leading UTF-8 byte-order mark.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// Splits a request body or file into records: one JSON object, a JSON array, or NDJSON.
///
/// A leading byte-order mark is ignored. Each record comes with its index: the array
/// position, or the 0-based line number.
/// A body that is none of these comes back whole as record 0, so that parsing it yields
/// the precise reason (`invalid_utf8`, `malformed_json`, ...).
pub fn split_body(body: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let body = strip_bom(body);
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Vec::new();
    }
    match trimmed[0] {
        b'[' => match serde_json::from_slice::<Vec<Value>>(trimmed) {
            Ok(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i, serde_json::to_vec(&v).expect("a Value serialises")))
                .collect(),
            Err(_) => vec![(0, trimmed.to_vec())],
        },
        b'{' if serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).is_ok() => {
            vec![(0, trimmed.to_vec())]
        }
        _ => body
            .split(|b| *b == b'\n')
            .enumerate()
            .filter_map(|(i, line)| {
                let line = line.trim_ascii();
                (!line.is_empty()).then(|| (i, line.to_vec()))
            })
            .collect(),
    }
}

fn kind(v: &Value) -> &'static str {
    Scalar::of(v).kind()
}

fn bare(rejection: Rejection) -> Box<Rejected> {
    Box::new(Rejected {
        rejection,
        shape: None,
        redacted: None,
        dossier_id: None,
    })
}

/// A rejection with what may travel to the dead-letter topic: the record is read once
/// more, as a `Value`, to keep its contract (or DVCQG-mapping) fields only.
fn rejected(text: &str, shape: Shape, rejection: Rejection) -> Box<Rejected> {
    let map = match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let redacted = match shape {
        Shape::Canonical => redact(&map, &CANONICAL_FIELDS),
        Shape::Dvcqg => redact(&map, &dvcqg::MAPPED_FIELDS),
    };
    let id_field = match shape {
        Shape::Dvcqg => "MaHoSo",
        Shape::Canonical => "dossier_id",
    };
    let dossier_id = redacted
        .get(id_field)
        .and_then(|v| Scalar::of(v).text().map(Cow::into_owned));
    Box::new(Rejected {
        rejection,
        shape: Some(shape),
        redacted: Some(redacted),
        dossier_id,
    })
}

/// `to` set to `text`, in the room it already has.
fn set(to: &mut String, text: &str) {
    to.clear();
    to.push_str(text);
}

/// An optional field set to `text`, in the room it already has.
fn set_optional(to: &mut Option<String>, text: Option<Cow<'_, str>>) {
    match (to.as_mut(), text) {
        (Some(room), Some(t)) => set(room, &t),
        (None, Some(t)) => *to = Some(t.into_owned()),
        (_, None) => *to = None,
    }
}

fn redact(m: &Map<String, Value>, keep: &[&str]) -> Map<String, Value> {
    const MAX: usize = 1024;
    m.iter()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) if s.len() > MAX => {
                    let cut = (0..=MAX)
                        .rev()
                        .find(|i| s.is_char_boundary(*i))
                        .unwrap_or(0);
                    Value::String(format!("{}…", &s[..cut]))
                }
                Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => v.clone(),
                // Nested structures are not part of any contract field.
                _ => Value::String(format!("<{}>", kind(v))),
            };
            (k.clone(), v)
        })
        .collect()
}

/// A normaliser: trimmed, NFC text (borrowed when nothing changes), `None` when blank.
pub(crate) type Norm = for<'s> fn(&'s str) -> Option<Cow<'s, str>>;

/// A required string field: absent, null or blank is `missing_field`; not a string is
/// `invalid_field`.
#[inline]
pub(crate) fn required<'a>(
    m: &'a Record,
    f: &'static str,
    norm: Norm,
) -> Result<Cow<'a, str>, Rejection> {
    optional(m, f, norm)?
        .ok_or_else(|| Rejection::field(Reason::MissingField, f, format!("{f} is required")))
}

/// An optional string field; blank counts as absent.
#[inline]
pub(crate) fn optional<'a>(
    m: &'a Record,
    f: &'static str,
    norm: Norm,
) -> Result<Option<Cow<'a, str>>, Rejection> {
    match m.get(f) {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Text(s)) => Ok(norm(s)),
        Some(v) => Err(Rejection::field(
            Reason::InvalidField,
            f,
            format!("{f} must be a string, not {}", v.kind()),
        )),
    }
}

/// A date field in any portal format. A date without a time is the start of that day,
/// or its end for deadlines and completions (`end_of_day`), so a same-day due date or
/// completion written as a bare date is not "before received".
pub(crate) fn date(
    m: &Record,
    f: &'static str,
    end_of_day: bool,
) -> Result<Option<Timestamp>, Rejection> {
    date_of(
        f,
        optional(m, f, normalize::code_keep_space)?.as_deref(),
        end_of_day,
    )
}

/// [`date`] of a field's trimmed text, already read (`None` when absent or blank).
pub(crate) fn date_of(
    f: &'static str,
    text: Option<&str>,
    end_of_day: bool,
) -> Result<Option<Timestamp>, Rejection> {
    let Some(text) = text else {
        return Ok(None);
    };
    let t = normalize::datetime(text).ok_or_else(|| {
        Rejection::field(
            Reason::InvalidDate,
            f,
            format!("{f} {text:?} is not a date in any accepted format"),
        )
    })?;
    Ok(Some(if end_of_day && normalize::is_bare_date(text) {
        t + chrono::Duration::seconds(86399)
    } else {
        t
    }))
}

#[cfg(test)]
mod tests;
