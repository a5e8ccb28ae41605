//! Streaming a stored archive as an HTTP response, with byte ranges as RFC 9110 gives them.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use yatai_domain::Error;

use crate::AppState;

/// What a `Range` header asks of an object of a known size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No range, or one that is ignored (another unit, bad syntax, several ranges): the whole
    /// object with 200 (RFC 9110 §14.2: a server may ignore Range, and must ignore an invalid one).
    Whole,
    /// One satisfiable range: 206 with these bytes.
    Part(std::ops::Range<u64>),
    /// A valid range that starts past the end (or a zero suffix): 416 with `bytes */SIZE`.
    Unsatisfiable,
}

/// Reads a `Range` header value against an object of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> RangeAnswer {
    // The range unit is case-insensitive (RFC 9110 §14.1).
    let value = value.trim();
    let Some(spec) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| &value[6..])
    else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeAnswer::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim(), b.trim()) {
        ("", n) => match number(n) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if size == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Part(size.saturating_sub(n)..size),
            None => RangeAnswer::Whole,
        },
        (a, "") => match number(a) {
            Some(first) if first < size => RangeAnswer::Part(first..size),
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Whole,
        },
        (a, b) => match (number(a), number(b)) {
            (Some(first), Some(last)) if first > last => RangeAnswer::Whole,
            (Some(first), Some(_)) if first >= size => RangeAnswer::Unsatisfiable,
            (Some(first), Some(last)) => RangeAnswer::Part(first..(last + 1).min(size)),
            _ => RangeAnswer::Whole,
        },
    }
}

/// Streams a stored object as a response: 200 with Content-Length, 206 for a satisfiable
/// `Range`, 416 for an unsatisfiable one.
pub async fn stream_object(
    state: &AppState,
    key: &str,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => {
            let size = state
                .objects
                .size(key)
                .await?
                .ok_or_else(|| Error::NotFound("the archive is missing from storage".into()))?;
            match parse_range(r, size) {
                RangeAnswer::Whole => None,
                RangeAnswer::Part(range) => Some(range),
                RangeAnswer::Unsatisfiable => {
                    return Ok((
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        [
                            (header::CONTENT_RANGE, format!("bytes */{size}")),
                            (header::ACCEPT_RANGES, "bytes".to_string()),
                        ],
                    )
                        .into_response());
                }
            }
        }
        None => None,
    };
    let partial = range.is_some();
    let reader = state.objects.get(key, range).await?;
    let len = reader.range.end - reader.range.start;
    let mut response = (
        if partial {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        },
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::ACCEPT_RANGES, "bytes".to_string()),
        ],
        axum::body::Body::from_stream(reader.stream),
    )
        .into_response();
    if partial {
        let value = format!(
            "bytes {}-{}/{}",
            reader.range.start,
            reader.range.end - 1,
            reader.total_size
        );
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            value
                .parse()
                .map_err(|_| Error::Internal("bad Content-Range".into()))?,
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAnswer::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Part(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-1000", 100), Part(0..100));
        assert_eq!(parse_range("bytes=95-1000", 100), Part(95..100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(
            parse_range("bytes=9-0", 100),
            Whole,
            "reversed is invalid: ignored"
        );
        assert_eq!(
            parse_range("bytes=0-1,5-6", 100),
            Whole,
            "several ranges: served whole"
        );
        assert_eq!(
            parse_range("items=0-1", 100),
            Whole,
            "another unit: ignored"
        );
        assert_eq!(parse_range("bytes=x-y", 100), Whole, "garbage: ignored");
        assert_eq!(parse_range("bytes=+1-2", 100), Whole);
        assert_eq!(parse_range("bytes=", 100), Whole);
    }
}
