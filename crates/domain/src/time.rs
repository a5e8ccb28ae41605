//! Timestamps are stored as microseconds since the Unix epoch (portable across SQLite and
//! PostgreSQL) and shown as RFC 3339 strings.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Microseconds since the Unix epoch, the stored form of every timestamp.
pub type Micros = i64;

/// The current time in stored form.
pub fn now_micros() -> Micros {
    Utc::now().timestamp_micros()
}

/// Formats a stored timestamp as RFC 3339 (UTC, microsecond precision).
pub fn to_rfc3339(micros: Micros) -> String {
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 string into stored form.
pub fn parse_rfc3339(s: &str) -> Option<Micros> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        let t = 1_700_000_000_123_456;
        assert_eq!(to_rfc3339(t), "2023-11-14T22:13:20.123456Z");
        assert_eq!(parse_rfc3339(&to_rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20.123456+01:00"), Some(t));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
