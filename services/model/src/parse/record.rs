//! One JSON record read once, typed and borrowing: the contract's and the DVCQG mapping's
//! fields land in fixed slots, strings without escapes point into the input, and every
//! other key is skipped unread (it never becomes a value, so personal data is never held).

use super::CANONICAL_FIELDS;
use crate::dvcqg::MAPPED_FIELDS;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::fmt;

const SLOTS: usize = CANONICAL_FIELDS.len() + MAPPED_FIELDS.len();

/// A field's JSON value, as far as validation looks at it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Null,
    Text(Cow<'a, str>),
    Number(Number),
    Bool,
    Array,
    Object,
}

impl Scalar<'_> {
    /// How an error message names the value's JSON type.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool => "a boolean",
            Scalar::Number(_) => "a number",
            Scalar::Text(_) => "a string",
            Scalar::Array => "an array",
            Scalar::Object => "an object",
        }
    }

    /// A string, or a number written as text (DVCQG systems send both).
    pub(crate) fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Scalar::Text(s) => Some(Cow::Borrowed(s)),
            Scalar::Number(n) => Some(Cow::Owned(n.to_string())),
            _ => None,
        }
    }

    /// The same view of an already parsed value.
    pub(crate) fn of(v: &Value) -> Scalar<'_> {
        match v {
            Value::Null => Scalar::Null,
            Value::Bool(_) => Scalar::Bool,
            Value::Number(n) => Scalar::Number(n.clone()),
            Value::String(s) => Scalar::Text(Cow::Borrowed(s)),
            Value::Array(_) => Scalar::Array,
            Value::Object(_) => Scalar::Object,
        }
    }
}

/// The fields of one JSON object that validation reads. A key sent twice keeps its last
/// value, as `serde_json::Value` does.
#[derive(Debug, Default)]
pub(crate) struct Record<'a> {
    slots: [Option<Scalar<'a>>; SLOTS],
}

/// The slot of a field: its place in [`CANONICAL_FIELDS`] then [`MAPPED_FIELDS`]
/// (a test holds the two in step). A `match` rather than a scan: it runs for every key
/// of every record, and inlined so that a lookup by a field's literal name folds away.
#[inline]
fn slot(key: &str) -> Option<usize> {
    Some(match key {
        "dossier_id" => 0,
        "procedure_code" => 1,
        "procedure_name" => 2,
        "locality_code" => 3,
        "agency" => 4,
        "channel" => 5,
        "status" => 6,
        "received_at" => 7,
        "due_at" => 8,
        "finished_at" => 9,
        "updated_at" => 10,
        "event_id" => 11,
        "source" => 12,
        "shape" => 13,
        "MaHoSo" => 14,
        "MaTTHC" => 15,
        "TenTTHC" => 16,
        "KenhThucHien" => 17,
        "NgayTiepNhan" => 18,
        "NgayHenTra" => 19,
        "NgayKetThucXuLy" => 20,
        "TrangThaiHoSo" => 21,
        "DonViXuLy" => 22,
        "MaDiaBan" => 23,
        "NgayCapNhat" => 24,
        _ => return None,
    })
}

impl<'a> Record<'a> {
    /// The value of field `f`, when the record has that key (`Some(Null)` for `null`).
    #[inline]
    pub(crate) fn get(&self, f: &str) -> Option<&Scalar<'a>> {
        self.slots[slot(f)?].as_ref()
    }

    /// The record's fields out of an already parsed object (the slow path).
    pub(crate) fn from_map(m: &'a Map<String, Value>) -> Self {
        let mut r = Record::default();
        for (k, v) in m {
            if let Some(i) = slot(k) {
                r.slots[i] = Some(Scalar::of(v));
            }
        }
        r
    }
}

impl<'a> Record<'a> {
    /// Reads `text` (one JSON object, nothing after it) into this record, in place: a
    /// record is large, and moving it out of the deserializer costs more than filling it.
    pub(crate) fn read(&mut self, text: &'a str) -> serde_json::Result<()> {
        let mut de = serde_json::Deserializer::from_str(text);
        de::Deserializer::deserialize_map(&mut de, Fill(self))?;
        de.end()
    }
}

impl<'de> Deserialize<'de> for Record<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut r = Record::default();
        d.deserialize_map(Fill(&mut r))?;
        Ok(r)
    }
}

/// Fills a record's slots from a JSON object.
struct Fill<'r, 'de>(&'r mut Record<'de>);

impl<'de> Visitor<'de> for Fill<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Slot(i)) = map.next_key()? {
            match i {
                Some(i) => self.0.slots[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A key, read as the slot it fills (never copied).
struct Slot(Option<usize>);

impl<'de> Deserialize<'de> for Slot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Slot;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<Slot, E> {
                Ok(Slot(slot(k)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Owned(s.to_string())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Owned(s)))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Number(n.into()))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Scalar<'de>, E> {
        // As `serde_json::Value` reads it.
        Ok(Number::from_f64(n).map_or(Scalar::Null, Scalar::Number))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typed_read_agrees_with_value() {
        for raw in [
            r#"{"dossier_id":"A\u00e9","status":"new","x":{"deep":[1,2]},"due_at":null}"#,
            r#"{"MaHoSo":20240605,"NgayTiepNhan":20240605083000,"TenTTHC":1.5e3,"a":[true]}"#,
            r#"{"dossier_id":"a","dossier_id":"b","agency":["x"],"source":{"k":1},"event_id":false}"#,
        ] {
            let typed: Record = serde_json::from_str(raw).unwrap();
            let value: Value = serde_json::from_str(raw).unwrap();
            let Value::Object(m) = &value else {
                unreachable!()
            };
            let slow = Record::from_map(m);
            for f in CANONICAL_FIELDS.iter().chain(MAPPED_FIELDS.iter()) {
                assert_eq!(typed.get(f), slow.get(f), "{f} of {raw}");
            }
        }
    }

    #[test]
    fn every_field_has_its_own_slot_in_list_order() {
        let fields: Vec<&str> = CANONICAL_FIELDS
            .iter()
            .chain(MAPPED_FIELDS.iter())
            .copied()
            .collect();
        assert_eq!(fields.len(), SLOTS);
        for (i, f) in fields.iter().enumerate() {
            assert_eq!(slot(f), Some(i), "{f}");
        }
        assert_eq!(slot("ChuHoSo"), None);
        assert_eq!(slot("Dossier_id"), None);
    }

    #[test]
    fn escaped_text_is_owned_and_plain_text_borrowed() {
        let raw = r#"{"dossier_id":"plain","agency":"tab\there"}"#;
        let r: Record = serde_json::from_str(raw).unwrap();
        assert!(matches!(
            r.get("dossier_id"),
            Some(Scalar::Text(Cow::Borrowed("plain")))
        ));
        assert!(matches!(r.get("agency"), Some(Scalar::Text(Cow::Owned(s))) if s == "tab\there"));
        assert!(r.get("status").is_none());
    }
}
