//! How the dashboard shows sizes and times to people.

use yatai_domain::time::{now_micros, to_rfc3339};

/// Bytes in human units: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A stored time relative to now: `just now`, `5 minutes ago`, `3 days ago`.
pub fn relative(micros: i64) -> String {
    let secs = (now_micros() - micros) / 1_000_000;
    let (n, unit) = match secs {
        s if s < 45 => return "just now".into(),
        s if s < 3600 => ((s + 30) / 60, "minute"),
        s if s < 86_400 => ((s + 1800) / 3600, "hour"),
        s if s < 30 * 86_400 => ((s + 43_200) / 86_400, "day"),
        _ => return to_rfc3339(micros)[..10].to_string(),
    };
    let n = n.max(1);
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// A stored time in full, for tooltips: `2026-11-25 12:30:34 UTC`.
pub fn exact(micros: i64) -> String {
    let t = to_rfc3339(micros);
    format!("{} {} UTC", &t[..10], &t[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(relative(now_micros()), "just now");
        assert_eq!(relative(now_micros() - 5 * 60 * 1_000_000), "5 minutes ago");
        assert_eq!(relative(now_micros() - 3600 * 1_000_000), "1 hour ago");
        assert_eq!(exact(1_700_000_000_000_000), "2023-11-14 22:13:20 UTC");
    }
}
