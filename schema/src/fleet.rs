//! The fleet layout: where a recording goes in object storage, so that many
//! boxes' recordings form one dataset that DataFusion, DuckDB and Spark read
//! as Hive partitions.
//!
//! ```text
//! <url>/host=<host>/date=<YYYY-MM-DD>/<recording-id>/<the recording's files>
//! ```
//!
//! `host` is the manifest's host, `date` the UTC day the recording started,
//! `recording-id` the recording directory's name. Each path segment is made
//! safe here (one segment, no `/`, no `..`), since a host name comes from a
//! box and a directory name from a user.

use std::format;
use std::prelude::rust_2021::*;

use crate::manifest::Manifest;

/// The Hive partition column of the host.
pub const HOST: &str = "host";
/// The Hive partition column of the UTC start day.
pub const DATE: &str = "date";

/// The key prefix of one recording under a fleet URL (no leading or
/// trailing `/`): `host=<host>/date=<YYYY-MM-DD>/<recording-id>`.
pub fn recording_prefix(manifest: &Manifest, recording_id: &str) -> String {
    let started_unix_ns = manifest.monotonic_to_unix_ns + manifest.started_ns as i64;
    format!(
        "{HOST}={}/{DATE}={}/{}",
        segment(&manifest.host),
        utc_date(started_unix_ns),
        segment(recording_id)
    )
}

/// The parts of a recording's prefix, read back from a key below a fleet
/// URL (`host=a/date=2026-12-03/rec/recording.json` gives
/// `("a", "2026-12-03", "rec")`). `None` when the key is not in the layout.
pub fn parse_prefix(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.split('/');
    let host = parts.next()?.strip_prefix(HOST)?.strip_prefix('=')?;
    let date = parts.next()?.strip_prefix(DATE)?.strip_prefix('=')?;
    let id = parts.next()?;
    (!host.is_empty() && date.len() == 10 && !id.is_empty()).then_some((host, date, id))
}

/// One path segment: ASCII letters, digits, `.`, `-`, `_` and `=` (the
/// partitions' `column=value`) kept, anything else `_`; never empty, `.` or
/// `..`.
pub fn segment(text: &str) -> String {
    let safe: String = text
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | '=' => c,
            _ => '_',
        })
        .collect();
    match safe.as_str() {
        "" | "." | ".." => safe.replace('.', "_") + "_",
        _ => safe,
    }
}

/// `YYYY-MM-DD` of a Unix time in ns, in UTC. Hand-written (Howard
/// Hinnant's days-to-civil) because the contract crate takes no date
/// library for one conversion.
pub fn utc_date(unix_ns: i64) -> String {
    let days = unix_ns.div_euclid(86_400_000_000_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(-1), "1969-12-31");
        // 2026-12-03T19:30:00Z, by `date -u -d @1796326200`.
        assert_eq!(utc_date(1_796_326_200 * 1_000_000_000), "2026-12-03");
        // A leap day: 2024-02-29T12:00:00Z.
        assert_eq!(utc_date(1_709_208_000 * 1_000_000_000), "2024-02-29");
    }

    #[test]
    fn segments_are_one_safe_segment() {
        assert_eq!(segment("web-1.example"), "web-1.example");
        assert_eq!(segment("a/../b"), "a_.._b");
        assert_eq!(segment(".."), "___");
        assert_eq!(segment(""), "_");
        assert_eq!(segment("é"), "_");
        assert_eq!(segment("host=a"), "host=a");
    }

    #[test]
    fn prefixes_parse_back() {
        assert_eq!(
            parse_prefix("host=a/date=2026-12-03/rec/recording.json"),
            Some(("a", "2026-12-03", "rec"))
        );
        assert_eq!(parse_prefix("a/date=2026-12-03/rec"), None);
        assert_eq!(parse_prefix("host=a/date=2026/rec"), None);
        assert_eq!(parse_prefix("host=a/date=2026-12-03"), None);
    }
}
