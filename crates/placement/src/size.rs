//! Byte sizes: `24GiB`, `300 KiB`, `1.5GB`, `4096`.

use crate::PlacementError;

/// Parses a byte size: a number (fractions allowed) and an optional unit, binary
/// (`B`, `KiB`, `MiB`, `GiB`, `TiB`) or decimal (`KB`, `MB`, `GB`, `TB`), case-insensitive.
/// Fractional bytes are rounded down.
///
/// ```
/// assert_eq!(qload_placement::parse_size("1.5KiB").unwrap(), 1536);
/// assert_eq!(qload_placement::parse_size("2 GB").unwrap(), 2_000_000_000);
/// ```
pub fn parse_size(text: &str) -> Result<u64, PlacementError> {
    let bad = |reason: &str| PlacementError::BadSize {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad("no number"));
    }
    let mult: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(bad("unknown unit; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB")),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
        return Err(bad("not a number"));
    }
    if int.len() > 20 || frac.len() > 9 {
        return Err(bad("too many digits"));
    }
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad("not a number"))?
    };
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad("not a number"))?
    };
    let frac_scale = 10u128.pow(frac.len() as u32);
    let bytes = int * mult + frac_value * mult / frac_scale;
    u64::try_from(bytes).map_err(|_| bad("larger than 2^64 bytes"))
}

/// `512 B`, `1.5 KiB`, `3.2 MiB`, ...: binary units, one decimal.
pub fn format_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("300KiB").unwrap(), 300 * 1024);
        assert_eq!(parse_size(" 24 GiB ").unwrap(), 24 << 30);
        assert_eq!(parse_size("24gib").unwrap(), 24 << 30);
        assert_eq!(parse_size("1TiB").unwrap(), 1 << 40);
        assert_eq!(parse_size("64GB").unwrap(), 64_000_000_000);
        assert_eq!(parse_size("0.5MiB").unwrap(), 512 * 1024);
        assert_eq!(parse_size(".25KiB").unwrap(), 256);
        assert_eq!(parse_size("1.5B").unwrap(), 1);
        assert_eq!(parse_size("16777215TiB").unwrap(), 16_777_215 << 40);
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            "",
            "GiB",
            "1.2.3GiB",
            "12 parsecs",
            "-1GiB",
            "1e9",
            "99999999999999999999999",
            "16777216TiB",
            ".",
        ] {
            assert!(matches!(parse_size(bad), Err(PlacementError::BadSize { .. })), "{bad}");
        }
        let msg = parse_size("3 furlongs").unwrap_err().to_string();
        assert!(msg.contains("unknown unit") && msg.contains("3 furlongs"), "{msg}");
    }

    #[test]
    fn formatting() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(24 << 30), "24.0 GiB");
    }
}
