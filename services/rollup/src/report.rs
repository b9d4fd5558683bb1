//! Number formats of the Vietnamese report annexes.

/// A percentage as the annexes write it: decimal comma, at most two decimals, trailing
/// zeros dropped, `-` without dossiers (`87,76%`, `89,6%`, `100%`, `-`).
pub fn vi_rate(part: i64, total: i64) -> String {
    if total == 0 {
        return "-".into();
    }
    // Round half up on exact integers, not on a float that may sit just below .5.
    let hundredths = (part as i128 * 10_000 * 2 + total as i128) / (total as i128 * 2);
    let (int, frac) = (hundredths / 100, hundredths % 100);
    let frac = format!("{frac:02}");
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{int}%")
    } else {
        format!("{int},{frac}%")
    }
}

#[cfg(test)]
mod tests {
    use super::vi_rate;

    #[test]
    fn formats_like_the_annexes() {
        assert_eq!(vi_rate(172, 196), "87,76%");
        assert_eq!(vi_rate(112, 125), "89,6%");
        assert_eq!(vi_rate(6, 6), "100%");
        assert_eq!(vi_rate(8685, 8725), "99,54%");
        assert_eq!(vi_rate(0, 0), "-");
        assert_eq!(vi_rate(0, 7), "0%");
        assert_eq!(vi_rate(1, 8), "12,5%");
        assert_eq!(vi_rate(1, 200), "0,5%");
    }
}
