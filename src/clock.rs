//! Wall-clock timestamps as RFC 3339 text, and the two timestamp formats
//! providers send back (RFC 3339 reset times, HTTP dates in `retry-after`),
//! with `jiff` doing the calendar arithmetic.

use std::time::SystemTime;

use jiff::Timestamp;
use jiff::fmt::rfc2822;

/// Now, as `2026-11-21T18:30:45.123456Z` (UTC, microseconds).
pub fn now_rfc3339() -> String {
    format_timestamp(Timestamp::now())
}

pub fn format_rfc3339(time: SystemTime) -> String {
    // Only times beyond jiff's range (±9999 years) fail; the epoch is a
    // recognisable placeholder, as it was before jiff.
    format_timestamp(Timestamp::try_from(time).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Fixed microseconds keep records the same width and sortable as text;
/// jiff truncates rather than rounds, so a record never claims a later time.
fn format_timestamp(timestamp: Timestamp) -> String {
    format!("{timestamp:.6}")
}

/// Parses what `format_rfc3339` writes, with or without a fraction and with
/// `Z` or a numeric offset such as `+00:00`, to seconds since the epoch, for
/// durations, benchmarks and providers' reset times.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    let timestamp: Timestamp = text.parse().ok()?;
    Some(timestamp.as_duration().as_secs_f64())
}

/// Parses an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's
/// IMF-fixdate) to seconds since the epoch.
pub fn parse_http_date(text: &str) -> Option<f64> {
    // A server that names the wrong weekday still means the date it gives;
    // waiting on it beats retrying at once into another rate limit.
    static PARSER: rfc2822::DateTimeParser = rfc2822::DateTimeParser::new().relaxed_weekday(true);
    let timestamp = PARSER.parse_timestamp(text).ok()?;
    Some(timestamp.as_duration().as_secs_f64())
}

/// Seconds since the epoch, now.
pub fn now_epoch() -> f64 {
    Timestamp::now().as_duration().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn formats_and_parses_a_known_instant() {
        let instant = UNIX_EPOCH + Duration::from_micros(1_795_285_845_123_456);
        let text = format_rfc3339(instant);
        assert_eq!(text, "2026-11-21T18:30:45.123456Z");
        let parsed = parse_rfc3339(&text).unwrap();
        assert!((parsed - 1_795_285_845.123_456).abs() < 1e-5);
    }

    #[test]
    fn formats_whole_seconds_with_six_digits_and_truncates_nanoseconds() {
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let instant = UNIX_EPOCH + Duration::from_nanos(1_999_999_999);
        assert_eq!(format_rfc3339(instant), "1970-01-01T00:00:01.999999Z");
    }

    #[test]
    fn now_is_formatted_like_any_other_time_and_parses_back() {
        let text = now_rfc3339();
        assert_eq!(text.len(), "2026-11-21T18:30:45.123456Z".len());
        assert!(text.ends_with('Z'));
        let parsed = parse_rfc3339(&text).unwrap();
        assert!((now_epoch() - parsed).abs() < 60.0);
    }

    #[test]
    fn parses_rfc3339_without_fraction_and_with_offsets() {
        assert_eq!(parse_rfc3339("2026-11-21T18:30:45Z"), Some(1_795_285_845.0));
        assert_eq!(
            parse_rfc3339("2026-11-21T18:30:45+00:00"),
            Some(1_795_285_845.0)
        );
        assert_eq!(
            parse_rfc3339("2026-11-21T20:30:45.5+02:00"),
            Some(1_795_285_845.5)
        );
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for text in [
            "",
            "   ",
            "yesterday",
            "2026-11-21",
            // Without an offset the instant is unknown.
            "2026-11-21T18:30:45",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-21T25:00:00Z",
            "2026-11-21T18:30:45.123456Z trailing",
            "Sun, 06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text:?}");
        }
    }

    #[test]
    fn parses_http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777.0)
        );
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480.0)
        );
        // 1994-11-06 was a Sunday; the date still counts.
        assert_eq!(
            parse_http_date("Mon, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777.0)
        );
    }

    #[test]
    fn rejects_what_is_not_an_http_date() {
        for text in [
            "",
            "yesterday",
            "120",
            "2015-10-21T07:28:00Z",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "Wed, 21 Foo 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 25:28:00 GMT",
            "Wed, 21 Oct 2015 07:28:00 GMT junk",
        ] {
            assert_eq!(parse_http_date(text), None, "{text:?}");
        }
    }

    #[test]
    fn handles_leap_days() {
        let instant = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&format_rfc3339(instant)[..10], "2000-02-29");
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400.0));
        assert_eq!(parse_rfc3339("2100-02-29T00:00:00Z"), None);
    }
}
