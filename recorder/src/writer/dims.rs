//! The small dimension tables written next to the event segments: `probes`,
//! `drop_reasons`, `losses`, `interfaces`, `stacks`. Each is one Parquet file written atomically.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt16Array, UInt32Array, UInt64Array, UInt8Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use nft_schema::tables::{
    drop_reasons_schema, interfaces_schema, losses_schema, names, probes_schema, stacks_schema,
};
use parquet::arrow::ArrowWriter;

use super::segments::{create_private, parquet_properties, SegmentError};
use super::stacks::StackRow;

/// One row of the `probes` table.
#[derive(Clone, Debug)]
pub struct ProbeRow {
    pub probe_id: u32,
    pub kind: String,
    pub name: String,
    pub skb_arg: u8,
}

/// One row of the `losses` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LossRow {
    pub window_start_ns: u64,
    pub window_end_ns: u64,
    pub cpu: u32,
    pub probe_id: u32,
    pub reason: String,
    pub count: u64,
}

fn write_table(
    dir: &Path,
    table: &str,
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
) -> Result<(), SegmentError> {
    let name = nft_schema::files::dimension(table);
    let path = dir.join(&name);
    let tmp = dir.join(nft_schema::files::temporary(&name));
    let batch =
        RecordBatch::try_new(schema.clone(), columns).map_err(|source| SegmentError::Arrow {
            path: path.clone(),
            source,
        })?;
    let pq = |source| SegmentError::Parquet {
        path: tmp.clone(),
        source,
    };
    let mut writer =
        ArrowWriter::try_new(create_private(&tmp)?, schema, Some(parquet_properties()))
            .map_err(pq)?;
    writer.write(&batch).map_err(pq)?;
    let file = writer.into_inner().map_err(pq)?;
    file.sync_all().map_err(|source| SegmentError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &path).map_err(|source| SegmentError::Io { path, source })
}

pub fn write_probes(dir: &Path, rows: &[ProbeRow]) -> Result<(), SegmentError> {
    write_table(
        dir,
        names::PROBES,
        probes_schema(),
        vec![
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.probe_id),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.kind))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.name))),
            Arc::new(UInt8Array::from_iter_values(rows.iter().map(|r| r.skb_arg))),
        ],
    )
}

pub fn write_drop_reasons(dir: &Path, rows: &[(u32, String)]) -> Result<(), SegmentError> {
    write_table(
        dir,
        names::DROP_REASONS,
        drop_reasons_schema(),
        vec![
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
        ],
    )
}

pub fn write_losses(dir: &Path, rows: &[LossRow]) -> Result<(), SegmentError> {
    write_table(
        dir,
        names::LOSSES,
        losses_schema(),
        vec![
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.window_start_ns),
            )),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.window_end_ns),
            )),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.cpu))),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.probe_id),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.reason),
            )),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.count))),
        ],
    )
}

/// One row of the `interfaces` table.
#[derive(Clone, Debug)]
pub struct InterfaceRow {
    pub netns: u32,
    pub ifindex: u32,
    pub name: String,
    pub seen: &'static str,
}

pub fn write_interfaces(dir: &Path, rows: &[InterfaceRow]) -> Result<(), SegmentError> {
    write_table(
        dir,
        names::INTERFACES,
        interfaces_schema(),
        vec![
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.netns))),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.ifindex),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.name))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.seen))),
        ],
    )
}

pub fn write_stacks(dir: &Path, rows: &[StackRow]) -> Result<(), SegmentError> {
    write_table(
        dir,
        names::STACKS,
        stacks_schema(),
        vec![
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.stack_id),
            )),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.frame))),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.address),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.symbol.as_deref()),
            )),
        ],
    )
}
