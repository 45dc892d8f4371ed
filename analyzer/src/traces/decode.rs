//! A recording's events (the columns traces need), decoded on their own
//! thread, in file order. The thread's end is explicit: its last message
//! says the events are complete, so a decoder that panics (parquet-rs
//! still has panics on malformed pages) or stops early is an error for
//! the caller, never a silent end of data that `traces`, `stats` and
//! `diff` would report as complete.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use arrow::array::RecordBatch;
use nft_schema::tables::events_schema;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::assemble::{Rows, ROW_COLUMNS};
use super::TracesError;
use crate::recording::Recording;
use crate::result_columns::Interner;
use nft_reader::conform::conform;

/// Rows per decoded batch.
const BATCH_ROWS: usize = 64 * 1024;

/// One message from the decoding thread: rows, an error, or `Ok(None)`:
/// every event was decoded.
pub type Decoded = Result<Option<Rows>, TracesError>;

/// The next rows; `Ok(None)` once every event is decoded. The thread
/// ending any other way is an error.
pub fn next(rx: &Receiver<Decoded>) -> Result<Option<Rows>, TracesError> {
    rx.recv().unwrap_or_else(|_| {
        Err(TracesError::Decode(
            "the decoding thread stopped before the end of the events".into(),
        ))
    })
}

/// Starts decoding `rec`'s events.
pub fn decode(rec: &Recording) -> Receiver<Decoded> {
    let segments = rec.event_segments.clone();
    let open = rec.open_events.clone();
    on_thread(move |tx| read_all(&segments, open, tx))
}

/// Runs `work` on the decoding thread and sends its end: `Ok(None)` when
/// it returns, its panic's message as an error when it panics.
pub fn on_thread(
    work: impl FnOnce(&SyncSender<Decoded>) -> Flow + Send + 'static,
) -> Receiver<Decoded> {
    let (tx, rx) = sync_channel(4);
    let spawned = std::thread::Builder::new()
        .name("events-decode".into())
        .spawn(move || {
            let end = match catch_unwind(AssertUnwindSafe(|| work(&tx))) {
                Ok(Flow::Done) => Ok(None),
                Ok(Flow::Stopped) => return, // the reader went away or an error was sent
                Err(panic) => Err(TracesError::Decode(format!(
                    "the decoder panicked: {}",
                    panic_message(&*panic)
                ))),
            };
            let _ = tx.send(end);
        });
    if let Err(e) = spawned {
        let (tx, rx) = sync_channel(1);
        let _ = tx.send(Err(TracesError::Read {
            path: "(decoding thread)".into(),
            source: e,
        }));
        return rx;
    }
    rx
}

/// How the decoding work ended (a panic aside).
pub enum Flow {
    /// Every event was sent.
    Done,
    /// An error was sent, or the receiver is gone.
    Stopped,
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// The events schema cut down to [`ROW_COLUMNS`]: the other columns are
/// not decoded at all.
fn row_schema() -> Result<arrow::datatypes::SchemaRef, TracesError> {
    let schema = events_schema();
    let indices = ROW_COLUMNS
        .iter()
        .map(|name| schema.index_of(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TracesError::Arrow)?;
    Ok(std::sync::Arc::new(
        schema.project(&indices).map_err(TracesError::Arrow)?,
    ))
}

fn read_all(segments: &[PathBuf], open: Vec<RecordBatch>, tx: &SyncSender<Decoded>) -> Flow {
    let schema = match row_schema() {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Err(e));
            return Flow::Stopped;
        }
    };
    let mut interner = Interner::default();
    let mut send = |batch: Result<RecordBatch, TracesError>| {
        let rows = batch.and_then(|b| {
            let b = conform(&b, &schema).map_err(TracesError::Arrow)?;
            Ok(Rows::new(&b, &mut interner)?)
        });
        let failed = rows.is_err();
        tx.send(rows.map(Some)).is_ok() && !failed
    };
    for path in segments {
        let reader = match segment_reader(path) {
            Ok(r) => r,
            Err(e) => {
                send(Err(e));
                return Flow::Stopped;
            }
        };
        for batch in reader {
            if !send(batch.map_err(TracesError::Arrow)) {
                return Flow::Stopped;
            }
        }
    }
    for batch in open {
        if !send(Ok(batch)) {
            return Flow::Stopped;
        }
    }
    Flow::Done
}

fn segment_reader(
    path: &Path,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, TracesError> {
    let parquet_err = |source| TracesError::ReadParquet {
        path: path.to_path_buf(),
        source,
    };
    let file = crate::safe_read::open_regular(path).map_err(|source| TracesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), ROW_COLUMNS.iter().copied());
    builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(parquet_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_decoder_is_an_error_not_the_end() {
        let rx = on_thread(|_| panic!("malformed page"));
        let Err(e) = next(&rx) else {
            panic!("a panicking decoder gave rows or an end")
        };
        let e = e.to_string();
        assert!(e.contains("the decoder panicked: malformed page"), "{e}");
    }

    #[test]
    fn a_decoder_that_stops_without_its_end_is_an_error() {
        let (tx, rx) = sync_channel::<Decoded>(1);
        drop(tx);
        let Err(e) = next(&rx) else {
            panic!("a closed channel gave rows or an end")
        };
        let e = e.to_string();
        assert!(e.contains("stopped before the end"), "{e}");
    }

    #[test]
    fn a_finished_decoder_says_so() {
        let rx = on_thread(|_| Flow::Done);
        assert!(matches!(next(&rx), Ok(None)));
    }
}
