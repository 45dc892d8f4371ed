//! The recording directory's grammar: every file name a recording holds is
//! made and parsed here, for the recorder that writes them and the analyzer
//! that reads them.
//!
//! | file | name |
//! | --- | --- |
//! | manifest | `recording.json` ([`crate::manifest::MANIFEST_FILE`]) |
//! | closed segment of a table | `<table>-NNNNNN.parquet` |
//! | part of the open segment | `<table>-NNNNNN.part-KKKKKK.parquet` |
//! | open segment (schema 3 and older) | `<table>-NNNNNN.arrows` |
//! | dimension table | `<table>.parquet` |
//! | ruleset snapshot | `ruleset-<label>-<start\|stop>.<json\|nft>` |
//! | being written | any of these + `.tmp` |

use std::format;
use std::prelude::rust_2021::*;

/// When a ruleset snapshot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Start,
    Stop,
}

impl When {
    pub const BOTH: [When; 2] = [When::Start, When::Stop];

    pub fn name(self) -> &'static str {
        match self {
            When::Start => "start",
            When::Stop => "stop",
        }
    }
}

/// A ruleset snapshot's form: `nft -j` JSON, or the rule text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Json,
    Text,
}

impl Form {
    pub const BOTH: [Form; 2] = [Form::Json, Form::Text];

    pub fn ext(self) -> &'static str {
        match self {
            Form::Json => "json",
            Form::Text => "nft",
        }
    }
}

/// The newest schema version whose interrupted recordings kept their open
/// segment as an Arrow IPC stream (`<table>-NNNNNN.arrows`); from version 4
/// on it is Parquet parts, and a `.arrows` file is not part of a recording.
pub const LAST_SCHEMA_WITH_ARROWS: u32 = 3;

/// `<table>-NNNNNN.parquet`.
pub fn segment(table: &str, index: u32) -> String {
    format!("{table}-{index:06}.parquet")
}

/// `<table>-NNNNNN.part-KKKKKK.parquet`: part `part` of segment `index`.
pub fn part(table: &str, index: u32, part: u32) -> String {
    format!("{table}-{index:06}.part-{part:06}.parquet")
}

/// `<table>.parquet`.
pub fn dimension(table: &str) -> String {
    format!("{table}.parquet")
}

/// `ruleset-<label>-<when>.<ext>`.
pub fn ruleset(label: &str, when: When, form: Form) -> String {
    format!("ruleset-{label}-{}.{}", when.name(), form.ext())
}

/// The temporary name a file is written under before its rename.
pub fn temporary(name: &str) -> String {
    format!("{name}.tmp")
}

/// What a file in a recording directory is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum File<'a> {
    Segment {
        table: &'a str,
        index: u32,
    },
    Part {
        table: &'a str,
        index: u32,
        part: u32,
    },
    LegacyOpenSegment {
        table: &'a str,
        index: u32,
    },
    Ruleset {
        label: &'a str,
        when: When,
        form: Form,
    },
    Dimension {
        table: &'a str,
    },
    Temporary,
    Other,
}

fn number(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `<table>-NNNNNN` -> (table, index).
fn table_index(stem: &str) -> Option<(&str, u32)> {
    let (table, index) = stem.rsplit_once('-')?;
    let table_ok = !table.is_empty() && table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    table_ok.then_some(())?;
    Some((table, number(index)?))
}

fn ruleset_file(name: &str) -> Option<File<'_>> {
    let rest = name.strip_prefix("ruleset-")?;
    let (stem, ext) = rest.rsplit_once('.')?;
    let form = Form::BOTH.into_iter().find(|f| f.ext() == ext)?;
    let (label, when) = stem.rsplit_once('-')?;
    let when = When::BOTH.into_iter().find(|w| w.name() == when)?;
    // Labels are what `tables::ruleset_label` makes: a name from a
    // manifest with anything else (`/`, `..`) is not a snapshot of this
    // recording, and must not be opened.
    let plain = label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (!label.is_empty() && plain).then_some(File::Ruleset { label, when, form })
}

/// Parses a file name of a recording directory.
pub fn parse(name: &str) -> File<'_> {
    if name.ends_with(".tmp") {
        return File::Temporary;
    }
    if let Some(f) = ruleset_file(name) {
        return f;
    }
    if let Some(stem) = name.strip_suffix(".arrows") {
        if let Some((table, index)) = table_index(stem) {
            return File::LegacyOpenSegment { table, index };
        }
    }
    let Some(stem) = name.strip_suffix(".parquet") else {
        return File::Other;
    };
    if let Some((segment, part)) = stem.split_once(".part-") {
        return match (table_index(segment), number(part)) {
            (Some((table, index)), Some(part)) => File::Part { table, index, part },
            _ => File::Other,
        };
    }
    if let Some((table, index)) = table_index(stem) {
        return File::Segment { table, index };
    }
    let dimension = !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if dimension {
        File::Dimension { table: stem }
    } else {
        File::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_that_climb_out_are_not_snapshots() {
        for name in [
            "ruleset-../../etc/passwd-start.json",
            "ruleset-a/b-stop.nft",
            "ruleset-..-start.json",
        ] {
            assert_eq!(parse(name), File::Other, "{name}");
        }
    }

    #[test]
    fn every_name_made_here_parses_back() {
        assert_eq!(segment("events", 3), "events-000003.parquet");
        assert_eq!(
            parse(&segment("events", 3)),
            File::Segment {
                table: "events",
                index: 3
            }
        );
        assert_eq!(
            parse(&part("nftrace", 1, 12)),
            File::Part {
                table: "nftrace",
                index: 1,
                part: 12
            }
        );
        assert_eq!(
            parse(&dimension("drop_reasons")),
            File::Dimension {
                table: "drop_reasons"
            }
        );
        let r = ruleset("my-ns_1", When::Stop, Form::Text);
        assert_eq!(r, "ruleset-my-ns_1-stop.nft");
        assert_eq!(
            parse(&r),
            File::Ruleset {
                label: "my-ns_1",
                when: When::Stop,
                form: Form::Text
            }
        );
        assert_eq!(
            parse("events-000002.arrows"),
            File::LegacyOpenSegment {
                table: "events",
                index: 2
            }
        );
        assert_eq!(parse(&temporary(&segment("events", 1))), File::Temporary);
        for other in [
            "recording.json",
            "events-.parquet",
            "events-00a1.parquet",
            "events-000001.part-.parquet",
            "ruleset-x-middle.json",
            "Events.parquet",
            "notes.txt",
        ] {
            assert!(
                matches!(parse(other), File::Other),
                "{other}: {:?}",
                parse(other)
            );
        }
    }
}
