//! Printing query results: an aligned table for people, CSV and JSON (one
//! object per line) for tools.

use std::io::Write;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema};
use arrow::error::ArrowError;
use arrow::util::pretty::pretty_format_batches;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Writes `batches` (with columns `schema`, for an empty result) to `out` in
/// `format`.
pub fn write_batches(
    out: &mut dyn Write,
    schema: &Schema,
    batches: &[RecordBatch],
    format: Format,
) -> Result<(), ArrowError> {
    let empty = [RecordBatch::new_empty(Arc::new(schema.clone()))];
    // An empty result still has a header (CSV) and column names (table).
    let batches = if batches.is_empty() {
        &empty[..]
    } else {
        batches
    };
    let batches = batches.iter().map(plain).collect::<Result<Vec<_>, _>>()?;
    let batches = batches.as_slice();
    match format {
        Format::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
                writeln!(out, "(no rows; columns: {})", names.join(", "))?;
            } else {
                let shown = batches.iter().map(shown).collect::<Result<Vec<_>, _>>()?;
                writeln!(out, "{}", pretty_format_batches(&shown)?)?;
            }
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            for b in batches {
                writer.write(b)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
        }
    }
    Ok(())
}

/// The batch with dictionary columns decoded to their value type (the CSV
/// writer does not take dictionaries).
fn plain(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        match field.data_type() {
            DataType::Dictionary(_, value) => {
                columns.push(cast(col, value)?);
                fields.push(
                    field
                        .as_ref()
                        .clone()
                        .with_data_type(value.as_ref().clone()),
                );
            }
            _ => {
                columns.push(col.clone());
                fields.push(field.as_ref().clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// The batch with its string cells escaped for a terminal
/// ([`crate::escape`]): a rule's text cannot send escape sequences or
/// forge rows.
fn shown(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .map(|col| match col.as_any().downcast_ref::<StringArray>() {
            Some(strings) => Arc::new(
                strings
                    .iter()
                    .map(|v| v.map(|v| crate::escape::terminal(v).into_owned()))
                    .collect::<StringArray>(),
            ) as ArrayRef,
            None => col.clone(),
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns)
}

/// Query results as JSON objects, one per row, nulls kept (the HTML report
/// embeds them).
pub fn json_rows(
    batches: &[RecordBatch],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        for b in batches {
            writer.write(&plain(b)?)?;
        }
        writer.finish()?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf).map_err(|e| ArrowError::JsonError(e.to_string()))
}
