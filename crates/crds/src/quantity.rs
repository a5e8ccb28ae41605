//! Kubernetes resource quantities: validation and the canonical form the API server stores.
//!
//! Objects written by the original (Go) operator carry quantities in Go's canonical form (`1000m` is stored as
//! `1`, half of `1Gi` as `512Mi`). Writing the same form keeps a re-applied pod template byte-identical, so
//! adopting those objects does not roll the pods.

/// Exact value in nano units (10^-9), enough for every quantity Kubernetes keeps.
pub type Nanos = i128;

/// How a quantity was written, which decides how it is printed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, ... (powers of 1024).
    BinarySi,
    /// `m`, `k`, `M`, ... or no suffix.
    DecimalSi,
    /// `e3`, `E-2`, ...
    DecimalExponent,
}

const NANO: Nanos = 1_000_000_000;

/// Parses a quantity into its exact value (nano units, rounded up below a nano) and format, or says why it is not
/// one (the grammar of the Kubernetes `Quantity` type).
pub fn parse(s: &str) -> Result<(Nanos, Format), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let negative = match bytes[0] {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };
    let num_start = i;
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
        i += 1;
    }
    let number = &s[num_start..i];
    let suffix = &s[i..];
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err("it does not start with a number".into());
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let (multiplier_num, multiplier_den, format): (Nanos, Nanos, Format) = match suffix {
        "" => (1, 1, Format::DecimalSi),
        "n" => (1, NANO, Format::DecimalSi),
        "u" => (1, 1_000_000, Format::DecimalSi),
        "m" => (1, 1_000, Format::DecimalSi),
        "k" => (1_000, 1, Format::DecimalSi),
        "M" => (1_000_000, 1, Format::DecimalSi),
        "G" => (1_000_000_000, 1, Format::DecimalSi),
        "T" => (1_000_000_000_000, 1, Format::DecimalSi),
        "P" => (1_000_000_000_000_000, 1, Format::DecimalSi),
        "E" => (1_000_000_000_000_000_000, 1, Format::DecimalSi),
        "Ki" => (1 << 10, 1, Format::BinarySi),
        "Mi" => (1 << 20, 1, Format::BinarySi),
        "Gi" => (1 << 30, 1, Format::BinarySi),
        "Ti" => (1 << 40, 1, Format::BinarySi),
        "Pi" => (1 << 50, 1, Format::BinarySi),
        "Ei" => (1 << 60, 1, Format::BinarySi),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| {
                format!("{e:?} is not a unit (use m, k, M, G, Ki, Mi, Gi, ... or an exponent)")
            })?;
            if !(-18..=18).contains(&exp) {
                return Err(format!("the exponent {exp} is out of range"));
            }
            if exp >= 0 {
                (10i128.pow(exp as u32), 1, Format::DecimalExponent)
            } else {
                (1, 10i128.pow((-exp) as u32), Format::DecimalExponent)
            }
        }
        other => {
            return Err(format!(
                "{other:?} is not a unit (use m, k, M, G, Ki, Mi, Gi, ... or an exponent)"
            ));
        }
    };
    // value = digits / 10^frac_len * num / den, in nanos, rounded up (as Kubernetes rounds up sub-nano values).
    let frac_len = frac_part.len() as u32;
    if int_part.len() + frac_part.len() > 30 {
        return Err("it has too many digits".into());
    }
    let digits: Nanos = format!("{int_part}{frac_part}")
        .parse()
        .map_err(|_| "it is not a number")?;
    let numerator = digits
        .checked_mul(multiplier_num)
        .and_then(|v| v.checked_mul(NANO))
        .ok_or("it is too large")?;
    let denominator = multiplier_den * 10i128.pow(frac_len);
    let mut value = numerator / denominator + Nanos::from(numerator % denominator != 0);
    if value > Nanos::from(i64::MAX) * NANO {
        return Err("it is too large".into());
    }
    if negative {
        value = -value;
    }
    Ok((value, format))
}

/// Whether `s` is a valid quantity.
pub fn is_valid(s: &str) -> bool {
    parse(s).is_ok()
}

/// The value in milli units, rounded up (Go's `MilliValue`).
pub fn milli(nanos: Nanos) -> Nanos {
    let q = nanos / 1_000_000;
    if nanos % 1_000_000 > 0 {
        q + 1
    } else {
        q
    }
}

/// The canonical text of `s`, as Go's `Quantity.String()` prints it (and the API server stores it).
pub fn canonical(s: &str) -> Result<String, String> {
    let (value, format) = parse(s)?;
    Ok(format_value(value, format))
}

/// Prints a value in `format`, canonically.
pub fn format_value(value: Nanos, format: Format) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.abs();
    if format == Format::BinarySi && abs >= 1024 * NANO && abs % NANO == 0 {
        let mut n = abs / NANO;
        let mut exp = 0;
        while exp < 6 && n % 1024 == 0 {
            n /= 1024;
            exp += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
        return format!("{sign}{n}{suffix}");
    }
    // Base-10 exponent (a multiple of 3) as large as keeps the mantissa whole.
    let mut exp: i32 = -9;
    let mut mantissa = abs;
    while mantissa != 0 && mantissa % 1000 == 0 && exp < 18 {
        mantissa /= 1000;
        exp += 3;
    }
    if mantissa == 0 {
        return "0".into();
    }
    let suffix = match (format, exp) {
        (Format::DecimalExponent, 0) => String::new(),
        (Format::DecimalExponent, e) => format!("e{e}"),
        (_, -9) => "n".into(),
        (_, -6) => "u".into(),
        (_, -3) => "m".into(),
        (_, 0) => String::new(),
        (_, 3) => "k".into(),
        (_, 6) => "M".into(),
        (_, 9) => "G".into(),
        (_, 12) => "T".into(),
        (_, 15) => "P".into(),
        (_, _) => "E".into(),
    };
    format!("{sign}{mantissa}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_match_go() {
        for (input, expected) in [
            ("1000m", "1"),
            ("500m", "500m"),
            ("1", "1"),
            ("1.5", "1500m"),
            ("0.1", "100m"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("200Mi", "200Mi"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1G", "1G"),
            ("100M", "100M"),
            ("512", "512"),
            ("1e3", "1e3"),
            ("0", "0"),
            ("-1", "-1"),
        ] {
            assert_eq!(canonical(input).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn half_of_a_memory_limit_is_printed_as_go_does() {
        // The shared-memory volume gets half the memory limit, formatted as a binary quantity.
        let half =
            |s: &str| format_value(milli(parse(s).unwrap().0) / 2 * 1_000_000, Format::BinarySi);
        assert_eq!(half("1Gi"), "512Mi");
        assert_eq!(half("1024Mi"), "512Mi");
        assert_eq!(half("1G"), "500000000");
        assert_eq!(half("3Gi"), "1536Mi");
    }

    #[test]
    fn invalid_quantities_say_why() {
        for bad in ["", "abc", "1x", "1.2.3", "--1", "1Gb", "e3"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("1Gb").unwrap_err().contains("not a unit"));
    }
}
