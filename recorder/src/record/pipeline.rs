//! The two threads behind a recording: the drain thread empties the ring
//! buffer into chunks; the writer thread turns chunks into batches and
//! segments. A bounded channel between them bounds memory: when the writer
//! falls behind, the drain thread blocks, the kernel's ring buffer fills,
//! and the programs count what they cannot deliver.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nft_schema::raw::{NftPart, SkbEvent};

use super::session::Counters;
use crate::drain::{DrainError, Drained, EventReader};
use crate::stop::StopSignal;
use crate::writer::batch::{events_batch, Names};
use crate::writer::quota::Quota;
use crate::writer::segments::{SegmentError, SegmentWriter};

/// Events per chunk handed from the drain thread to the writer.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight at most: bounds the recorder's memory.
const CHANNEL_CHUNKS: usize = 32;
/// The drain looks at the ring buffer at least this often: the programs
/// wake it only every `ProbeConfig::ring_wakeup_bytes`, so at low rates
/// this is what bounds an event's way to `--live`.
const RING_POLL: Duration = Duration::from_millis(20);

pub enum WriterMsg {
    Events(Drained),
}

/// Limits the writer enforces.
#[derive(Clone, Debug)]
pub struct WriterLimits {
    pub flush_interval: Duration,
    pub segment_interval: Duration,
    pub segment_rows: u64,
    pub max_bytes: Option<u64>,
    /// With `max_bytes`: delete the oldest segments instead of stopping.
    pub ring: bool,
}

/// What the writer thread reports at the end.
#[derive(Debug, Default)]
pub struct WriterResult {
    pub rows: u64,
    pub segments: Vec<String>,
    pub deleted_segments: Vec<String>,
    pub bytes_on_disk: u64,
    pub hit_max_bytes: bool,
    /// Events that arrived after `--max-bytes` was reached and were not
    /// written: counted as losses, never dropped silently.
    pub dropped_after_limit: u64,
}

/// One event as the live sinks see it.
pub struct LiveEvent<'a> {
    pub event: &'a SkbEvent,
    /// The nft hook's part (chain, rule, verdict) of its events.
    pub nft: Option<&'a NftPart>,
    pub probe: &'a str,
}

/// Live events (`--live`, the API's WebSocket), called on the drain thread
/// for each event. Returns false to be dropped (its reader went away); the
/// recording goes on.
pub type LiveSink = Box<dyn FnMut(&LiveEvent<'_>) -> bool + Send>;

/// A live sink and the probe names it shows.
pub struct Live {
    pub sink: LiveSink,
    pub probes: HashMap<u32, String>,
}

/// Callback the writer calls after each segment is closed, so the manifest
/// lists it.
pub type OnSegment = Box<dyn FnMut(&[String]) + Send>;

pub fn spawn_drain(
    mut reader: EventReader,
    tx: SyncSender<WriterMsg>,
    stop: Arc<AtomicBool>,
    live: Option<Live>,
    counters: Arc<Counters>,
) -> JoinHandle<Result<u64, DrainError>> {
    std::thread::Builder::new()
        .name("nft-drain".into())
        .spawn(move || {
            let mut live = live;
            let fd = reader.as_raw_fd();
            let mut chunk = Drained::with_capacity(CHUNK);
            let mut total = 0u64;
            let mut last_send = Instant::now();
            loop {
                let stopping = stop.load(Ordering::Acquire);
                if !stopping {
                    wait_readable(fd, RING_POLL);
                }
                let n = reader.drain_into(&mut chunk)?;
                if let Some(l) = live.as_mut() {
                    if !publish(l, &chunk, chunk.len() - n) {
                        live = None;
                    }
                }
                total += n as u64;
                counters.events.fetch_add(n as u64, Ordering::Relaxed);
                // Hand over full chunks at once, partial ones at least every
                // 200 ms so the writer's flush interval holds.
                if chunk.len() >= CHUNK
                    || (!chunk.is_empty() && last_send.elapsed() >= Duration::from_millis(200))
                    || (stopping && !chunk.is_empty())
                {
                    let full = std::mem::replace(&mut chunk, Drained::with_capacity(CHUNK));
                    if tx.send(WriterMsg::Events(full)).is_err() {
                        break; // writer gone (error); it reports why
                    }
                    last_send = Instant::now();
                }
                if stopping && n == 0 {
                    break;
                }
            }
            Ok(total)
        })
        .expect("spawn drain thread")
}

/// Hands the events of `chunk` from `first` on to the live sink, each with
/// its nft part; false when the sink wants no more.
fn publish(l: &mut Live, chunk: &Drained, first: usize) -> bool {
    let mut parts = chunk
        .nft
        .iter()
        .filter(|(at, _)| *at as usize >= first)
        .peekable();
    chunk.events[first..].iter().enumerate().all(|(k, event)| {
        let at = (first + k) as u32;
        let nft = parts.next_if(|(i, _)| *i == at).map(|(_, p)| p);
        let probe = l.probes.get(&event.probe_id).map_or("?", String::as_str);
        (l.sink)(&LiveEvent { event, nft, probe })
    })
}

fn wait_readable(fd: RawFd, timeout: Duration) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; an error or timeout just returns.
    unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
}

pub fn channel() -> (SyncSender<WriterMsg>, Receiver<WriterMsg>) {
    sync_channel(CHANNEL_CHUNKS)
}

/// `--max-bytes`: with `--ring`, deletes the oldest segments until the
/// recording fits; without, asks the recorder to stop (what is written
/// stays; what comes after is counted as lost).
fn enforce_quota(
    segments: &mut SegmentWriter,
    quota: &mut Quota,
    max: u64,
    ring: bool,
    (result, on_segment): (&mut WriterResult, &mut OnSegment),
    stop: &StopSignal,
) -> Result<(), SegmentError> {
    while quota.used(segments) > max && !result.hit_max_bytes {
        if !ring {
            result.hit_max_bytes = true;
            stop.request(nft_schema::tables::values::END_MAX_BYTES);
            break;
        }
        match segments.remove_oldest(&mut *on_segment)? {
            Some(name) => result.deleted_segments.push(name),
            None => break,
        }
    }
    Ok(())
}

pub fn spawn_writer(
    dir: PathBuf,
    mut names: Names,
    limits: WriterLimits,
    rx: Receiver<WriterMsg>,
    stop: Arc<StopSignal>,
    mut on_segment: OnSegment,
    counters: Arc<Counters>,
) -> JoinHandle<Result<WriterResult, SegmentError>> {
    std::thread::Builder::new()
        .name("nft-writer".into())
        .spawn(move || {
            let mut segments = SegmentWriter::new(&dir);
            let mut quota = Quota::new(&dir);
            let mut result = WriterResult::default();
            let mut last_flush = Instant::now();
            let mut segment_started = Instant::now();
            loop {
                let msg = rx.recv_timeout(limits.flush_interval.min(Duration::from_millis(250)));
                match msg {
                    Ok(WriterMsg::Events(events)) => {
                        if result.hit_max_bytes {
                            result.dropped_after_limit += events.len() as u64;
                        } else if !events.is_empty() {
                            if segments.open_rows() == 0 {
                                segment_started = Instant::now();
                            }
                            names.nft.refresh_unknown(&events.events, &events.nft);
                            let batch = events_batch(&events.events, &events.nft, &names).map_err(
                                |source| SegmentError::Arrow {
                                    path: dir.clone(),
                                    source,
                                },
                            )?;
                            segments.write(&batch)?;
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if last_flush.elapsed() >= limits.flush_interval {
                    segments.flush()?;
                    last_flush = Instant::now();
                }
                let rotate = segments.open_rows() >= limits.segment_rows
                    || segments.parts_full()
                    || (segments.open_rows() > 0
                        && segment_started.elapsed() >= limits.segment_interval);
                if rotate {
                    segments.rotate()?;
                    on_segment(&segments.closed());
                }
                counters
                    .bytes
                    .store(segments.bytes_on_disk(), Ordering::Relaxed);
                if let Some(max) = limits.max_bytes {
                    let r = (&mut result, &mut on_segment);
                    enforce_quota(&mut segments, &mut quota, max, limits.ring, r, &stop)?;
                }
            }
            if segments.closed().is_empty()
                && !segments.is_open()
                && result.deleted_segments.is_empty()
            {
                // No event at all: still write the (empty) table, so every
                // recording has the same shape for readers.
                let empty = arrow::record_batch::RecordBatch::new_empty(
                    nft_schema::tables::events_schema(),
                );
                segments.write(&empty)?;
            }
            segments.rotate()?;
            result.rows = segments.rows_written();
            result.segments = segments.closed();
            result.bytes_on_disk = segments.bytes_on_disk();
            on_segment(&result.segments);
            Ok(result)
        })
        .expect("spawn writer thread")
}
