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

impl<'a> Record<'a> {
    /// Reads `text` the quick way when it is a flat object whose values are strings,
    /// `null` or unsigned integers, with no escape and no control character anywhere
    /// (so no white space but spaces): what portals and the gateway write; returns the
    /// keys it met, for a reader that must refuse unknown or repeated ones. Anything else
    /// (escapes, tabs or line breaks, other numbers, booleans, nesting, malformed text)
    /// is `None` with the record left partly filled; the caller then starts over with
    /// [`Record::read`]. A test holds that the two agree wherever this one reads.
    pub(crate) fn read_flat(&mut self, text: &'a str) -> Option<Keys> {
        let b = text.as_bytes();
        // One pass the compiler vectorises; after it, a string ends at its next quote.
        if b.iter()
            .fold(false, |odd, &c| odd | (c == b'\\') | (c < 0x20))
        {
            return None;
        }
        let mut i = skip_spaces(b, 0);
        if b.get(i) != Some(&b'{') {
            return None;
        }
        i = skip_spaces(b, i + 1);
        let mut keys = Keys::default();
        if b.get(i) == Some(&b'}') {
            return only_spaces(b, i + 1).map(|()| keys);
        }
        loop {
            let key = quoted(text, i)?;
            i = skip_spaces(b, i + key.len() + 2);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_spaces(b, i + 1);
            let (value, len) = scalar(text, i)?;
            match slot(key) {
                Some(at) => {
                    keys.repeated |= keys.slots & (1 << at) != 0;
                    keys.slots |= 1 << at;
                    self.slots[at] = Some(value);
                }
                None => keys.others = true,
            }
            i = skip_spaces(b, i + len);
            match b.get(i)? {
                b',' => i = skip_spaces(b, i + 1),
                b'}' => return only_spaces(b, i + 1).map(|()| keys),
                _ => return None,
            }
        }
    }
}

/// The keys a quick read met: the slots filled (bit `i` for slot `i`), whether a key
/// came twice, and whether any key has no slot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Keys {
    pub(crate) slots: u32,
    pub(crate) repeated: bool,
    pub(crate) others: bool,
}

/// The contents of the string that opens at byte `i` of `text`, which has no escapes: up
/// to the next quote, looked for eight bytes at a time.
#[inline]
fn quoted(text: &str, i: usize) -> Option<&str> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let b = text.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut end = i + 1;
    let close = loop {
        let Some(word) = b.get(end..end + 8) else {
            break end + b[end..].iter().position(|&c| c == b'"')?;
        };
        // A byte of `x` is zero where the word has a quote; the lowest such byte is the
        // lowest one whose high bit survives here.
        let x =
            u64::from_le_bytes(word.try_into().expect("eight bytes")) ^ (ONES * u64::from(b'"'));
        let zero = x.wrapping_sub(ONES) & !x & (ONES << 7);
        if zero != 0 {
            break end + zero.trailing_zeros() as usize / 8;
        }
        end += 8;
    };
    // Quotes are ASCII, so both ends are character boundaries.
    Some(&text[i + 1..close])
}

/// The first position from `i` on that is not a space.
#[inline]
fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// `Some` when nothing but spaces follows position `i`.
#[inline]
fn only_spaces(b: &[u8], i: usize) -> Option<()> {
    (skip_spaces(b, i) == b.len()).then_some(())
}

/// The value at byte `i` of `text` and its length in bytes: a string, `null`, or an
/// unsigned integer that fits `u64` as serde reads it (`0` or no leading zero).
#[inline]
fn scalar(text: &str, i: usize) -> Option<(Scalar<'_>, usize)> {
    let b = &text.as_bytes()[i..];
    match b.first()? {
        b'"' => quoted(text, i).map(|s| (Scalar::Text(Cow::Borrowed(s)), s.len() + 2)),
        b'n' => b.starts_with(b"null").then_some((Scalar::Null, 4)),
        b'0'..=b'9' => {
            let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let next = b.get(digits);
            if (b[0] == b'0' && digits > 1) || matches!(next, Some(b'.' | b'e' | b'E')) {
                return None;
            }
            let n: u64 = text[i..i + digits].parse().ok()?;
            Some((Scalar::Number(n.into()), digits))
        }
        _ => None,
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
    use proptest::prelude::{Strategy, any, prop};
    use proptest::sample::Index;

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

    /// Both reads of `text`: the quick scan (`None` when it declines) and serde's.
    fn both(text: &str) -> (Option<Record<'_>>, serde_json::Result<Record<'_>>) {
        let mut quick = Record::default();
        let quick = quick.read_flat(text).map(|_| quick);
        let mut full = Record::default();
        let full = full.read(text).map(|()| full);
        (quick, full)
    }

    fn same_fields(a: &Record, b: &Record) -> bool {
        CANONICAL_FIELDS
            .iter()
            .chain(MAPPED_FIELDS.iter())
            .all(|f| a.get(f) == b.get(f))
    }

    #[test]
    fn the_quick_read_takes_flat_records_and_leaves_the_rest() {
        for flat in [
            r#"{"dossier_id":"HCM-1","status":"new","due_at":null,"ChuHoSo":"Nguyễn Văn A"}"#,
            r#" { "dossier_id" :"a" , "dossier_id":"b",   "MaHoSo": 20240605, "x":0 }  "#,
            "{}",
            "{\"agency\":\"\",\"TenTTHC\":\"Hồ sơ 😀 \u{7f}\",\"received_at\":null}",
        ] {
            let (quick, full) = both(flat);
            let (quick, full) = (quick.expect(flat), full.expect(flat));
            assert!(same_fields(&quick, &full), "{flat}");
        }
        for other in [
            r#"{"dossier_id":"a\u00e9"}"#,
            "{\"dossier_id\":\"a\",\n\"status\":\"new\"}",
            r#"{"MaHoSo":-1}"#,
            r#"{"MaHoSo":1.5}"#,
            r#"{"MaHoSo":1e3}"#,
            r#"{"MaHoSo":012}"#,
            r#"{"MaHoSo":18446744073709551616}"#,
            r#"{"x":true}"#,
            r#"{"x":{"y":"z"}}"#,
            "{\"x\":\"tab\there\"}",
            r#"{"x":"a"} {}"#,
            r#"{"x":"a",}"#,
            r#"{"x" "a"}"#,
            r#"{"x":nul}"#,
            r#"{"x":nullx}"#,
            r#"["x"]"#,
            r#"{"x":"a""#,
            "",
        ] {
            assert!(both(other).0.is_none(), "{other}");
        }
    }

    /// Pieces of records, plain and tricky, for the property below.
    fn piece() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "{",
            "}",
            ",",
            ":",
            " ",
            "\t",
            "\n",
            "\r",
            "\u{b}",
            "\"",
            "\\",
            "\\\"",
            "\\u00e9",
            "\u{1}",
            "null",
            "nul",
            "true",
            "12",
            "-1.5e3",
            "[",
            "]",
            "\"dossier_id\"",
            "\"status\"",
            "\"MaHoSo\"",
            "\"due_at\"",
            "\"x\"",
            "\"Hồ sơ\"",
            "\"\"",
            "\"Ho\u{0302}\"",
            "\"a b\"",
            "é",
            "0",
            "01",
            ".",
            "e",
            "-",
            "18446744073709551616",
        ])
        .prop_map(str::to_string)
    }

    /// Whether JSON reads `n` as an unsigned integer that fits `u64`.
    fn is_number(n: &str) -> bool {
        n.bytes().all(|c| c.is_ascii_digit())
            && n.parse::<u64>().is_ok()
            && (n == "0" || !n.starts_with('0'))
    }

    /// A flat record of plain strings, nulls and unsigned integers, spaced any way.
    fn flat_record() -> impl Strategy<Value = String> {
        let field = (
            prop::sample::select(vec!["dossier_id", "status", "MaHoSo", "x", "Hồ"]),
            prop::option::of("[a-zA-Z0-9 ./:+ồé-]{0,12}|[0-9]{1,20}"),
            "[ ]{0,2}",
        );
        prop::collection::vec(field, 0..8).prop_map(|fields| {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v, ws)| {
                    let v = match v {
                        None => "null".to_string(),
                        // A number when it can be one, a string otherwise.
                        Some(n) if is_number(n) => n.clone(),
                        Some(v) => format!("\"{v}\""),
                    };
                    format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}")
                })
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// A flat record is always read the quick way, to what serde reads.
        #[test]
        fn flat_records_take_the_quick_read(text in flat_record()) {
            let (quick, full) = both(&text);
            let quick = quick.unwrap_or_else(|| panic!("declined {text:?}"));
            proptest::prop_assert!(same_fields(&quick, &full.unwrap()), "{text:?}");
        }

        /// Wherever the quick read takes a text (a flat record with characters taken out
        /// and pieces, plain or tricky, put in anywhere), serde reads it too, to the same
        /// fields.
        #[test]
        fn the_quick_read_agrees_with_serde(
            text in flat_record(),
            edits in prop::collection::vec((any::<Index>(), prop::option::of(piece())), 0..3),
        ) {
            let mut text = text;
            for (at, piece) in edits {
                let at = at.index(text.len() + 1);
                match piece {
                    _ if !text.is_char_boundary(at) => {}
                    Some(piece) => text.insert_str(at, &piece),
                    None if at < text.len() => drop(text.remove(at)),
                    None => {}
                }
            }
            if let (Some(quick), full) = both(&text) {
                let full = full.unwrap_or_else(|e| panic!("serde refused {text:?}: {e}"));
                proptest::prop_assert!(same_fields(&quick, &full), "{text:?}");
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
