//! Arrow schemas of the recording's tables, one function per table.

use std::prelude::rust_2021::*;

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::columns::{events, losses, probes};

/// Names of the tables (and the file stems of their Parquet files).
pub mod names {
    pub const EVENTS: &str = "events";
    pub const PROBES: &str = "probes";
    pub const LOSSES: &str = "losses";
}

fn cached(cell: &'static OnceLock<SchemaRef>, build: fn() -> Schema) -> SchemaRef {
    cell.get_or_init(|| Arc::new(build())).clone()
}

/// `events`: one row per skb seen at one probe. Flat columns, no bags.
pub fn events_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        Schema::new(vec![
            Field::new(events::TS_NS, DataType::UInt64, false),
            Field::new(events::SKB, DataType::UInt64, false),
            Field::new(events::PROBE_ID, DataType::UInt32, false),
            Field::new(events::KIND, DataType::UInt8, false),
            Field::new(events::CPU, DataType::UInt32, false),
            Field::new(events::NETNS, DataType::UInt32, false),
            Field::new(events::IFINDEX, DataType::UInt32, false),
            Field::new(events::MARK, DataType::UInt32, false),
            Field::new(events::LEN, DataType::UInt32, false),
            Field::new(events::PROTOCOL, DataType::UInt16, false),
        ])
    })
}

/// `probes`: the dimension table behind `events.probe_id`.
pub fn probes_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        Schema::new(vec![
            Field::new(probes::PROBE_ID, DataType::UInt32, false),
            Field::new(probes::KIND, DataType::Utf8, false),
            Field::new(probes::NAME, DataType::Utf8, false),
        ])
    })
}

/// `losses`: every event that could not be delivered, counted.
pub fn losses_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        Schema::new(vec![
            Field::new(losses::CPU, DataType::UInt32, false),
            Field::new(losses::REASON, DataType::Utf8, false),
            Field::new(losses::COUNT, DataType::UInt64, false),
        ])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_unique_per_table() {
        for schema in [events_schema(), probes_schema(), losses_schema()] {
            let mut names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let n = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), n, "{schema:?}");
        }
    }
}
