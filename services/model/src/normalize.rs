//! Normalisation of what portals really send: three date formats, NFC or NFD text,
//! codes with stray spaces or without their dot.

use crate::event::{Timestamp, ict};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use std::borrow::Cow;
use std::sync::LazyLock;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// `s` in NFC, borrowed when it already is: ASCII, or text the Unicode quick check
/// proves normalised (most portal text), skips the normalisation entirely.
pub fn nfc(s: &str) -> Cow<'_, str> {
    if s.is_ascii() || is_nfc_quick(s.chars()) == IsNormalized::Yes {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfc().collect())
    }
}

/// `s` without leading and trailing white space: [`str::trim`], with the common case of
/// nothing to trim (an ASCII letter, digit or sign at both ends) decided by two bytes.
#[inline]
pub fn trim(s: &str) -> &str {
    match s.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

/// Trims and converts to NFC. Returns `None` for text that is empty after trimming.
/// Borrowed when the trimmed text already is NFC.
pub fn text(s: &str) -> Option<Cow<'_, str>> {
    let t = trim(s);
    if t.is_empty() {
        return None;
    }
    // NFC first: an NFD string may end in a combining mark that trim must not split.
    match nfc(t) {
        Cow::Borrowed(b) => Some(Cow::Borrowed(b.trim())).filter(|b| !b.is_empty()),
        Cow::Owned(o) => {
            let o = o.trim();
            (!o.is_empty()).then(|| Cow::Owned(o.to_string()))
        }
    }
}

/// A code: trimmed, NFC, with inner white space removed (`"1. 001193"` → `"1.001193"`).
/// Borrowed when there was nothing to change.
pub fn code(s: &str) -> Option<Cow<'_, str>> {
    if s.is_ascii() {
        // Byte by byte: the ASCII white space of `char::is_whitespace` is tab to
        // carriage return, and space.
        if !s.bytes().any(|b| matches!(b, b' ' | b'\t'..=b'\r')) {
            return (!s.is_empty()).then_some(Cow::Borrowed(s));
        }
        let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        return (!t.is_empty()).then_some(Cow::Owned(t));
    }
    let n = nfc(s);
    if n.is_empty() {
        return None;
    }
    if !n.chars().any(char::is_whitespace) {
        return Some(n);
    }
    let t: String = n.chars().filter(|c| !c.is_whitespace()).collect();
    (!t.is_empty()).then_some(Cow::Owned(t))
}

/// A national procedure code. Systems drop the dot: `1001193` becomes `1.001193`.
pub fn procedure_code(s: &str) -> Option<Cow<'_, str>> {
    let c = code(s)?;
    if c.len() == 7 && c.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Cow::Owned(format!("{}.{}", &c[..1], &c[1..])));
    }
    Some(c)
}

/// Parses a date or date-time in any format the portals use, as an instant in ICT.
///
/// Accepted: RFC 3339 / ISO 8601 with offset or `Z`; ISO 8601 without offset (ICT);
/// `yyyyMMddHHmmss` (ICT); `d/M/yyyy` (leading zeros optional) with optional
/// `HH:mm[:ss]` (ICT); `yyyy-MM-dd` (ICT midnight). A time without offset is
/// Asia/Ho_Chi_Minh. Years have four digits.
pub fn datetime(s: &str) -> Option<Timestamp> {
    let t = datetime_any_year(s)?;
    // Four-digit years only: `05/06/24` is not the year 24, and past 9999 is no date.
    // (Compared as instants: reading the year back would convert every date again.)
    static YEARS: LazyLock<(Timestamp, Timestamp)> = LazyLock::new(|| {
        let start = |y| local(NaiveDate::from_ymd_opt(y, 1, 1)?.and_hms_opt(0, 0, 0)?);
        (start(1000).expect("valid"), start(10_000).expect("valid"))
    });
    (YEARS.0 <= t && t < YEARS.1).then_some(t)
}

/// An RFC 3339 instant with its offset (`yyyy-MM-ddTHH:mm:ss[.f](Z|±HH:mm)`, the
/// contract's own form), read digit by digit, in ICT; `None` for any other text, which
/// chrono's RFC 3339 parser then reads (a test holds the two to the same instants).
pub fn rfc3339_fast(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let zoned = b.last() == Some(&b'Z')
        || (b.len() >= 6 && matches!(b[b.len() - 6], b'+' | b'-') && b[b.len() - 3] == b':');
    if !zoned || b.get(10) != Some(&b'T') {
        return None;
    }
    common_forms(b)
}

fn datetime_any_year(s: &str) -> Option<Timestamp> {
    let s = trim(s);
    common_forms(s.as_bytes()).or_else(|| any_form(s))
}

/// Every accepted format through chrono's parsers, one after the other.
fn any_form(s: &str) -> Option<Timestamp> {
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&ict()));
    }
    // ISO 8601 with a space instead of `T`, or a compact offset.
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&ict()));
        }
    }
    if s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit()) {
        return local(NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?);
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%d/%m/%Y %H:%M:%S",
        "%d/%m/%Y %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return local(t);
        }
    }
    for f in ["%d/%m/%Y", "%Y-%m-%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return local(d.and_hms_opt(0, 0, 0)?);
        }
    }
    None
}

/// The forms most records carry, read digit by digit: RFC 3339 (`yyyy-MM-ddTHH:mm:ss`,
/// a fraction of up to nine digits, `Z` or `±HH:mm`), the same without an offset and
/// with `T` or a space (ICT), and `yyyyMMddHHmmss` (ICT). `None` for anything else
/// (leap seconds, lowercase, other widths...), which [`any_form`] then reads: a test
/// holds that this path never reads a text apart from it.
fn common_forms(b: &[u8]) -> Option<Timestamp> {
    let num = |r: std::ops::Range<usize>| digits(b.get(r)?);
    if b.len() == 14 {
        return local(naive(fields(b, [0, 4, 6, 8, 10, 12])?, 0)?);
    }
    if b.len() < 19 || [b[4], b[7], b[13], b[16]] != *b"--::" || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    let (mut i, mut nano) = (19, 0);
    if b.get(i) == Some(&b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        nano = num(i + 1..i + 1 + digits)? * 10u32.pow(9 - digits as u32);
        i += 1 + digits;
    }
    let t = naive(fields(b, [0, 5, 8, 11, 14, 17])?, nano)?;
    let offset = match &b[i..] {
        [] => return local(t),
        _ if b[10] != b'T' => return None,
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (pair(b, i + 1)?, pair(b, i + 4)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = (oh * 3600 + om * 60) as i32;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    at_offset(t, offset)
}

/// Year, month, day, hour, minute and second from the digits of `b` at `at` (four for
/// the year, two for the others; `b` holds at least 14 bytes and these fit in it, as
/// both callers check), `None` if any is not a digit. Straight-line code: every date of
/// every record goes through here.
#[inline(always)]
fn fields(b: &[u8], at: [usize; 6]) -> Option<[u32; 6]> {
    let mut bad = false;
    let mut two = |i: usize| {
        let (hi, lo) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
        bad |= (hi > 9) | (lo > 9);
        u32::from(hi) * 10 + u32::from(lo)
    };
    let year = two(at[0]) * 100 + two(at[0] + 2);
    let f = [
        year,
        two(at[1]),
        two(at[2]),
        two(at[3]),
        two(at[4]),
        two(at[5]),
    ];
    (!bad).then_some(f)
}

/// The two ASCII digits at `i` of `b` as a number.
#[inline(always)]
fn pair(b: &[u8], i: usize) -> Option<u32> {
    let (hi, lo) = (
        b.get(i)?.wrapping_sub(b'0'),
        b.get(i + 1)?.wrapping_sub(b'0'),
    );
    (hi <= 9 && lo <= 9).then(|| u32::from(hi) * 10 + u32::from(lo))
}

/// The number the ASCII digits `d` write (at most nine), `None` if any is not a digit.
#[inline]
fn digits(d: &[u8]) -> Option<u32> {
    let (mut n, mut bad) = (0u32, false);
    for &c in d {
        let x = c.wrapping_sub(b'0');
        bad |= x > 9;
        n = n.wrapping_mul(10).wrapping_add(u32::from(x));
    }
    (!bad).then_some(n)
}

/// A date and time of day from year, month, day, hour, minute and second; `None` past
/// second 59 (leap seconds are left to chrono's parsers), for a year before 1000 (also
/// left to them, and refused after), or for a day that does not exist.
fn naive([y, mo, d, h, mi, sec]: [u32; 6], nano: u32) -> Option<NaiveDateTime> {
    if sec > 59 || y < 1000 {
        return None;
    }
    NaiveDate::from_ymd_opt(y as i32, mo, d)?.and_hms_nano_opt(h, mi, sec, nano)
}

fn local(t: NaiveDateTime) -> Option<Timestamp> {
    at_offset(t, ICT_SECONDS)
}

/// Seconds east of UTC of Asia/Ho_Chi_Minh.
const ICT_SECONDS: i32 = 7 * 3600;

/// The instant of `t` read at `offset` seconds east of UTC (less than a day either way),
/// in ICT: the UTC day and second by arithmetic, what `from_local_datetime` computes
/// for a fixed offset without its general path (this runs for every date of every
/// record).
fn at_offset(t: NaiveDateTime, offset: i32) -> Option<Timestamp> {
    let second = t.num_seconds_from_midnight() as i32 - offset;
    let (date, second) = match second {
        s if s < 0 => (t.date().pred_opt()?, s + 86_400),
        s if s >= 86_400 => (t.date().succ_opt()?, s - 86_400),
        s => (t.date(), s),
    };
    let time = NaiveTime::from_num_seconds_from_midnight_opt(second as u32, t.nanosecond())?;
    Some(DateTime::from_naive_utc_and_offset(
        NaiveDateTime::new(date, time),
        ict(),
    ))
}

/// Trimmed text, inner spaces kept (dates such as `05/06/2024 08:30`).
pub fn code_keep_space(s: &str) -> Option<Cow<'_, str>> {
    let t = trim(s);
    (!t.is_empty()).then_some(Cow::Borrowed(t))
}

/// True for a date without a time of day (`d/M/yyyy` of any width, `yyyy-MM-dd`).
pub fn is_bare_date(s: &str) -> bool {
    let s = trim(s);
    // At most `dd/mm/yyyy`: anything longer carries a time (and skips the two parses).
    s.len() <= 10
        && (NaiveDate::parse_from_str(s, "%d/%m/%Y").is_ok()
            || NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok())
}

/// Canonical decomposition (NFD), as some source systems store Vietnamese text.
pub fn nfd(s: &str) -> String {
    s.nfd().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::format_ts;
    use chrono::{FixedOffset, TimeZone};

    fn f(s: &str) -> String {
        format_ts(&datetime(s).unwrap_or_else(|| panic!("{s} should parse")))
    }

    #[test]
    fn the_three_portal_formats_agree() {
        let want = "2024-06-05T08:30:00+07:00";
        assert_eq!(f("20240605083000"), want);
        assert_eq!(f("2024-06-05T08:30:00+07:00"), want);
        assert_eq!(f("2024-06-05T01:30:00Z"), want);
        assert_eq!(f("2024-06-05T08:30:00"), want);
        assert_eq!(f("2024-06-05 08:30:00"), want);
        assert_eq!(f("05/06/2024 08:30"), want);
        assert_eq!(f("05/06/2024 08:30:00"), want);
        assert_eq!(f("05/06/2024"), "2024-06-05T00:00:00+07:00");
        assert_eq!(f("2024-06-05"), "2024-06-05T00:00:00+07:00");
    }

    #[test]
    fn day_and_month_without_leading_zeros() {
        assert_eq!(f("5/6/2024"), "2024-06-05T00:00:00+07:00");
        assert_eq!(f("5/6/2024 8:30"), "2024-06-05T08:30:00+07:00");
        assert!(is_bare_date("5/6/2024") && is_bare_date("05/06/2024"));
        assert!(!is_bare_date("5/6/2024 08:30"));
    }

    #[test]
    fn years_have_four_digits() {
        for s in [
            "05/06/24",
            "5/6/24",
            "10000-01-01T00:00:00+07:00",
            "0999-01-01",
            // The year read in ICT: 10000 here, 0999 below.
            "9999-12-31T20:00:00-05:00",
            "1000-01-01T05:00:00+14:00",
        ] {
            assert!(datetime(s).is_none(), "{s:?} should not parse");
        }
        assert_eq!(f("31/12/9999"), "9999-12-31T00:00:00+07:00");
        assert_eq!(f("9999-12-31T16:59:59Z"), "9999-12-31T23:59:59+07:00");
        assert_eq!(f("1000-01-01T00:00:00+07:00"), "1000-01-01T00:00:00+07:00");
        assert_eq!(f("0999-12-31T17:00:00Z"), "1000-01-01T00:00:00+07:00");
    }

    #[test]
    fn utc_late_evening_is_the_next_ict_day() {
        assert_eq!(f("2024-07-05T18:00:00Z"), "2024-07-06T01:00:00+07:00");
    }

    #[test]
    fn impossible_dates_are_refused() {
        for s in [
            "",
            "yesterday",
            "31/02/2024",
            "20241301000000",
            "2024-13-01",
            "05-06-2024",
        ] {
            assert!(datetime(s).is_none(), "{s:?} should not parse");
        }
    }

    #[test]
    fn the_fast_path_agrees_with_full_normalisation() {
        for s in [
            "Hồ sơ",
            "Ho so",
            "Thành Hải",
            "Phường 1",
            "\u{1ea0}",
            "a\u{0301}",
            "Ha\u{0300}\u{0323}",
        ] {
            let full: String = s.nfc().collect();
            assert_eq!(nfc(s), full, "{s:?}");
            assert_eq!(nfc(&nfd(s)), full, "{s:?} from NFD");
        }
        assert!(
            matches!(nfc("Thành Hải"), Cow::Borrowed(_)),
            "NFC text is not copied"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// The digit-by-digit path reads exactly what chrono's parsers read, and leaves
        /// them whatever it is unsure of.
        #[test]
        fn the_common_forms_read_as_chrono_reads_them(
            y in 0u32..10_000, mo in 0u32..14, d in 0u32..33, h in 0u32..25, mi in 0u32..61,
            sec in 0u32..62, frac in proptest::option::of(0u32..1_000_000_000),
            width in 1usize..11, zone in proptest::sample::select(vec![
                "Z", "z", "+07:00", "-05:30", "+23:59", "+24:00", "+07:60", "+0700", "", " ",
            ]),
            sep in proptest::sample::select(vec!["T", "t", " ", ""]),
        ) {
            let frac = frac.map(|f| format!(".{f:0>9}7")[..=width].to_string()).unwrap_or_default();
            let s = if sep.is_empty() {
                format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{sec:02}")
            } else {
                format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{sec:02}{frac}{zone}")
            };
            let fast = common_forms(s.as_bytes());
            let slow = any_form(&s);
            // The contract's decoder: the fast read, when it reads, is chrono's RFC 3339.
            if let Some(t) = rfc3339_fast(&s) {
                let chrono = DateTime::parse_from_rfc3339(&s).ok().map(|c| c.with_timezone(&ict()));
                proptest::prop_assert_eq!(Some(t), chrono, "{}", s);
                proptest::prop_assert_eq!(*t.offset(), ict());
            }
            if let Some(t) = fast {
                proptest::prop_assert_eq!(Some(t), slow, "{}", s);
            }
            // The 14-digit form carries neither fraction nor zone.
            let plain = sec < 60 && y >= 1000 && (sep.is_empty() || (frac.len() < 11
                && matches!(sep, "T" | " ")
                && (zone.is_empty() || (sep == "T" && matches!(zone, "Z" | "+07:00" | "-05:30" | "+23:59")))));
            proptest::prop_assert_eq!(fast.is_some(), plain && slow.is_some(), "{}", s);
        }

        /// With any one byte changed (a letter, a sign, a space, the bytes either side of
        /// the digits), the digit-by-digit path still reads only what chrono reads.
        #[test]
        fn a_changed_byte_is_read_as_chrono_reads_it(
            y in 1000u32..10_000, mo in 1u32..13, d in 1u32..29, h in 0u32..24,
            zone in proptest::sample::select(vec!["Z", "+07:00", "-05:30", ""]),
            frac in proptest::sample::select(vec!["", ".5", ".123456789"]),
            compact in proptest::bool::ANY, at in 0usize..40,
            byte in proptest::sample::select(b"a/:-.+Z T0123456789".iter().copied()
                .chain([b'0' - 1, b'9' + 1]).collect::<Vec<u8>>()),
        ) {
            let mut s = if compact {
                format!("{y:04}{mo:02}{d:02}{h:02}3059")
            } else {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:30:59{frac}{zone}")
            }.into_bytes();
            if let Some(b) = s.get_mut(at) {
                *b = byte;
            }
            let s = String::from_utf8(s).expect("ASCII");
            if let Some(t) = common_forms(s.as_bytes()) {
                proptest::prop_assert_eq!(Some(t), any_form(&s), "{}", s);
            }
        }
    }

    #[test]
    fn trim_is_str_trim() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "ab",
            " ab ",
            "a\t",
            "\u{a0}a",
            "a\u{2003}",
            "1 2",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// The offset arithmetic gives chrono's instant, in ICT.
        #[test]
        fn an_offset_is_applied_as_chrono_applies_it(
            day in 365_000i32..3_652_000, second in 0u32..86_400, nano in 0u32..1_000_000_000,
            offset in -86_399i32..86_400,
        ) {
            let t = NaiveDate::from_num_days_from_ce_opt(day).unwrap()
                .and_time(NaiveTime::from_num_seconds_from_midnight_opt(second, nano).unwrap());
            let want = FixedOffset::east_opt(offset).unwrap().from_local_datetime(&t).single()
                .map(|w| w.with_timezone(&ict()));
            let got = at_offset(t, offset);
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(got.map(|g| *g.offset()), Some(ict()));
        }
    }

    #[test]
    fn the_portal_forms_take_the_digit_by_digit_path() {
        for s in [
            "2024-06-05T08:30:00+07:00",
            "2024-06-05T01:30:00.5Z",
            "2024-06-05 08:30:00",
            "20240605083000",
        ] {
            assert!(common_forms(s.as_bytes()).is_some(), "{s}");
            assert_eq!(common_forms(s.as_bytes()), any_form(s), "{s}");
        }
        // The contract's decoder reads only forms with their offset.
        for s in [
            "2024-06-05T08:30:00+07:00",
            "2024-06-05T01:30:00.5Z",
            "2024-06-05T08:30:00-05:30",
        ] {
            assert!(rfc3339_fast(s).is_some(), "{s}");
        }
        for s in [
            "2024-06-05 08:30:00+07:00",
            "2024-06-05T08:30:00",
            "20240605083000",
            "2024-06-05T08:30:60Z",
        ] {
            assert!(rfc3339_fast(s).is_none(), "{s}");
        }
    }

    /// The ASCII path of `code` removes what `char::is_whitespace` removes.
    #[test]
    fn ascii_codes_lose_the_same_white_space() {
        for b in 0u8..128 {
            let s = format!(" 1.{}001193", b as char);
            let want: String = s.chars().filter(|c| !c.is_whitespace()).collect();
            assert_eq!(code(&s).as_deref(), Some(want.as_str()), "byte {b}");
        }
        assert_eq!(code(" \u{b}\t"), None);
        assert!(matches!(code("1.001193"), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn text_is_nfc_and_trimmed() {
        let nfd = "Đăng ky\u{301} khai sinh ";
        assert_eq!(text(nfd).unwrap(), "Đăng ký khai sinh");
        assert_eq!(text("   "), None);
    }

    #[test]
    fn procedure_codes_get_their_dot_back() {
        assert_eq!(procedure_code(" 1001193 ").unwrap(), "1.001193");
        assert_eq!(procedure_code("1.001193").unwrap(), "1.001193");
        assert_eq!(procedure_code("1. 001193").unwrap(), "1.001193");
        assert_eq!(procedure_code("DA06-02").unwrap(), "DA06-02");
    }
}
