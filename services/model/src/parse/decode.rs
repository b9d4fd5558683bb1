//! Canonical events off the events topic: the byte scan reads the flat, plain text the
//! gateway writes; serde's derived reader takes everything else and gives the errors.

use super::record::{Record, Scalar};
use crate::event::{Channel, DossierEvent, Status, Timestamp, read_ts};

/// The slots of the contract's fields, `dossier_id` to `source` (not `shape`, nor the
/// DVCQG names: the event denies unknown fields).
const EVENT_SLOTS: u32 = (1 << 13) - 1;

/// Decodes one canonical event exactly as `serde_json::from_slice::<DossierEvent>` does
/// (a test holds the two to the same events): the quick way when the text is a flat
/// object of the contract's fields alone, each once, with plain strings and nulls.
pub fn decode_event(bytes: &[u8]) -> serde_json::Result<DossierEvent> {
    match quick(bytes) {
        Some(event) => Ok(event),
        None => serde_json::from_slice(bytes),
    }
}

/// The event, when the byte scan reads it and every field has the type and form serde
/// would accept; `None` leaves the decision (and the error) to serde.
fn quick(bytes: &[u8]) -> Option<DossierEvent> {
    let text = simdutf8::basic::from_utf8(bytes).ok()?;
    let mut r = Record::default();
    let keys = r.read_flat(text)?;
    if keys.repeated || keys.others || keys.slots & !EVENT_SLOTS != 0 {
        return None;
    }
    Some(DossierEvent {
        dossier_id: required(&r, "dossier_id")?.to_string(),
        procedure_code: required(&r, "procedure_code")?.to_string(),
        procedure_name: optional(&r, "procedure_name")?.map(str::to_string),
        locality_code: required(&r, "locality_code")?.to_string(),
        agency: optional(&r, "agency")?.map(str::to_string),
        channel: Channel::parse(required(&r, "channel")?)?,
        status: Status::parse(required(&r, "status")?)?,
        received_at: optional_ts(&r, "received_at")?,
        due_at: optional_ts(&r, "due_at")?,
        finished_at: optional_ts(&r, "finished_at")?,
        updated_at: read_ts(required(&r, "updated_at")?).ok()?,
        event_id: optional(&r, "event_id")?.map(str::to_string),
        source: optional(&r, "source")?.map(str::to_string),
    })
}

/// A field that must be a string.
fn required<'r>(r: &'r Record, field: &str) -> Option<&'r str> {
    match r.get(field)? {
        Scalar::Text(s) => Some(s),
        _ => None,
    }
}

/// An optional string: absent or null is `Some(None)`; any other type declines.
fn optional<'r>(r: &'r Record, field: &str) -> Option<Option<&'r str>> {
    match r.get(field) {
        None | Some(Scalar::Null) => Some(None),
        Some(Scalar::Text(s)) => Some(Some(s)),
        Some(_) => None,
    }
}

/// An optional timestamp: absent or null is `Some(None)`; text that is not one declines.
fn optional_ts(r: &Record, field: &str) -> Option<Option<Timestamp>> {
    optional(r, field)?
        .map(|s| read_ts(s).ok())
        .map_or(Some(None), |t| t.map(Some))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASE: &str = r#"{"dossier_id":"H000123","procedure_code":"1.001193","procedure_name":"Đăng ký khai sinh","locality_code":"00004","agency":"UBND phường","channel":"online","status":"processing","received_at":"2026-11-02T08:15:00+07:00","due_at":"2026-11-09T17:00:00+07:00","finished_at":null,"updated_at":"2026-11-03T10:00:00.250+07:00","event_id":"e-1","source":"portal"}"#;

    /// Keys the edits use: the contract's (with `shape`), a DVCQG name, one neither has.
    const OTHER_KEYS: [&str; 2] = ["MaHoSo", "note"];
    const KEY_COUNT: usize = super::super::CANONICAL_FIELDS.len() + OTHER_KEYS.len();

    fn key(k: usize) -> &'static str {
        let mut all = super::super::CANONICAL_FIELDS.iter().chain(&OTHER_KEYS);
        all.nth(k).expect("a key's index")
    }

    /// Values the edits set: valid and invalid enums and timestamps, other types.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_string()),
            Just("12".to_string()),
            Just("true".to_string()),
            Just("[]".to_string()),
            Just(r#""online""#.to_string()),
            Just(r#""in_person""#.to_string()),
            Just(r#""Online""#.to_string()),
            Just(r#""returned""#.to_string()),
            Just(r#""new""#.to_string()),
            Just(r#""2024-06-05T01:30:00.5Z""#.to_string()),
            Just(r#""2016-12-31T23:59:60Z""#.to_string()),
            Just(r#""2024-02-30T08:00:00+07:00""#.to_string()),
            Just(r#""2024-06-05 08:30""#.to_string()),
            Just(r#""2024-06-05T08:30:00-05:00""#.to_string()),
            Just(r#""a\"b""#.to_string()),
            "[a-zA-Z0-9 .àễ-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        ]
    }

    /// One edit of the base text: a field removed, set (added at the end when new, so a
    /// contract key may come twice) or the text cut short.
    #[derive(Debug, Clone)]
    enum Edit {
        Remove(usize),
        Set(usize, String),
        Append(usize, String),
        Cut(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (0..KEY_COUNT).prop_map(Edit::Remove),
            (0..KEY_COUNT, value()).prop_map(|(k, v)| Edit::Set(k, v)),
            (0..KEY_COUNT, value()).prop_map(|(k, v)| Edit::Append(k, v)),
            (0..BASE.len()).prop_map(Edit::Cut),
        ]
    }

    fn edited(edits: &[Edit]) -> String {
        let mut fields: Vec<(String, String)> = serde_json::from_str::<serde_json::Value>(BASE)
            .unwrap()
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        let mut cut = None;
        for e in edits {
            match e {
                Edit::Remove(k) => fields.retain(|(f, _)| f != key(*k)),
                Edit::Set(k, v) => match fields.iter_mut().find(|(f, _)| f == key(*k)) {
                    Some(slot) => slot.1 = v.clone(),
                    None => fields.push((key(*k).to_string(), v.clone())),
                },
                Edit::Append(k, v) => fields.push((key(*k).to_string(), v.clone())),
                Edit::Cut(at) => cut = Some(*at),
            }
        }
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let text = format!("{{{}}}", body.join(","));
        match cut {
            Some(at) => text.chars().take(at).collect(),
            None => text,
        }
    }

    #[test]
    fn the_gateway_form_takes_the_quick_way() {
        let e = quick(BASE.as_bytes()).expect("read quickly");
        assert_eq!(
            Ok(&e),
            serde_json::from_str::<DossierEvent>(BASE)
                .as_ref()
                .map_err(|_| ())
        );
        let canonical = e.to_canonical_json();
        assert_eq!(quick(&canonical), Some(e));
    }

    #[test]
    fn what_serde_refuses_gets_serde_s_error() {
        let unknown = BASE.replace("\"source\"", "\"origin\"");
        let err = decode_event(unknown.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("unknown field `origin`"), "{err}");
        let twice = BASE.replace("}", r#","status":"new"}"#);
        let err = decode_event(twice.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("duplicate field `status`"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Wherever the quick way reads an event, serde reads the same one.
        #[test]
        fn the_quick_way_agrees_with_serde(edits in prop::collection::vec(edit(), 0..4)) {
            let text = edited(&edits);
            let serde = serde_json::from_str::<DossierEvent>(&text).ok();
            if let Some(e) = quick(text.as_bytes()) {
                prop_assert_eq!(Some(e), serde, "{}", text);
            }
        }
    }
}
