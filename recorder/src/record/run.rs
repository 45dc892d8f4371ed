//! Step 3 of a recording: the drain and writer threads, and the session
//! thread that watches them, the clock and the stop request, and writes
//! losses as they happen (a recording cut short by SIGKILL still says what
//! it lost). When asked to stop it hands over to `finish`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nft_schema::manifest::Manifest;
use nft_schema::raw::PROBE_FUNCTION_BASE;
use nft_schema::tables::values;

use super::finish;
use super::lock::NetnsLock;
use super::pipeline::{self, Live, LiveSink, WriterLimits, WriterResult};
use super::session::{Counters, State};
use super::start::{Started, Taps};
use super::{RecordError, RecordOptions, RecordSummary};
use crate::drain::{loss_reason_name, DrainError, LossCounters};
use crate::kernel::clock::monotonic_ns;
use crate::stop::StopSignal;
use crate::writer::dims::{self, LossRow};
use crate::writer::manifest::write_manifest;
use crate::writer::segments::SegmentError;

/// Reads the kernel's loss counters and turns increases into `losses` rows.
pub struct LossSampler {
    counters: LossCounters,
    /// Only attached probes can count losses: their slots are read, not
    /// all. Functions share one bucket (`PROBE_FUNCTION_BASE`).
    probes: Vec<u32>,
    previous: BTreeMap<(u32, u32, &'static str), u64>,
    pub window_start: u64,
    pub rows: Vec<LossRow>,
}

impl LossSampler {
    fn new(counters: LossCounters, probes: Vec<u32>, started_ns: u64) -> Self {
        Self {
            counters,
            probes,
            previous: BTreeMap::new(),
            window_start: started_ns,
            rows: Vec::new(),
        }
    }

    /// Returns whether anything new was lost since the last sample.
    pub fn sample(&mut self) -> Result<bool, DrainError> {
        let now = monotonic_ns();
        let before = self.rows.len();
        for l in self.counters.read(&self.probes)? {
            let key = (l.cpu, l.probe_id, loss_reason_name(l.reason));
            let seen = self.previous.insert(key, l.count).unwrap_or(0);
            if l.count > seen {
                self.rows.push(LossRow {
                    window_start_ns: self.window_start,
                    window_end_ns: now,
                    cpu: l.cpu,
                    probe_id: l.probe_id,
                    reason: key.2.to_string(),
                    count: l.count - seen,
                });
            }
        }
        self.window_start = now;
        Ok(self.rows.len() != before)
    }

    pub fn total(&self) -> u64 {
        self.rows.iter().map(|l| l.count).sum()
    }
}

/// A recording while it runs: what the session thread owns.
pub struct Running {
    pub started: Started,
    pub manifest: Arc<Mutex<Manifest>>,
    pub losses: LossSampler,
    /// Taken when joined.
    pub drain: Option<JoinHandle<Result<u64, DrainError>>>,
    pub drain_stop: Arc<AtomicBool>,
    pub writer: Option<JoinHandle<Result<WriterResult, SegmentError>>>,
    pub counters: Arc<Counters>,
    /// Held until the tables are gone.
    pub locks: Vec<NetnsLock>,
}

/// Starts the drain and writer threads and the session thread.
pub fn spawn(
    opts: &RecordOptions,
    mut started: Started,
    taps: Taps,
    stop: Arc<StopSignal>,
    counters: Arc<Counters>,
    live: Option<LiveSink>,
    locks: Vec<NetnsLock>,
) -> JoinHandle<Result<RecordSummary, RecordError>> {
    let manifest = Arc::new(Mutex::new(started.manifest.clone()));
    let (tx, rx) = pipeline::channel();
    let live = live.map(|sink| Live {
        sink,
        probes: started.names.probes.clone(),
    });
    let drain_stop = Arc::new(AtomicBool::new(false));
    let drain = pipeline::spawn_drain(taps.reader, tx, drain_stop.clone(), live, counters.clone());
    let on_segment_manifest = manifest.clone();
    let on_segment_dir = started.dir.clone();
    let writer = pipeline::spawn_writer(
        started.dir.clone(),
        std::mem::take(&mut started.names),
        WriterLimits {
            flush_interval: opts.flush_interval,
            segment_interval: opts.segment_interval,
            segment_rows: opts.segment_rows,
            max_bytes: opts.max_bytes,
            ring: opts.ring,
        },
        rx,
        stop.clone(),
        Box::new(move |segments| {
            let mut m = on_segment_manifest
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            m.segments = segments.to_vec();
            if let Err(e) = write_manifest(&on_segment_dir, &m) {
                tracing::error!("updating the manifest: {e}");
            }
        }),
        counters.clone(),
    );
    let probes: Vec<u32> = started
        .ledger
        .rows()
        .iter()
        .map(|p| p.probe_id)
        .filter(|&id| id <= PROBE_FUNCTION_BASE)
        .collect();
    let losses = LossSampler::new(taps.losses, probes, started.manifest.started_ns);
    let running = Running {
        started,
        manifest,
        losses,
        drain: Some(drain),
        drain_stop,
        writer: Some(writer),
        counters,
        locks,
    };
    let deadline = opts.duration.map(|d| Instant::now() + d);
    std::thread::Builder::new()
        .name("nft-session".into())
        .spawn(move || {
            let mut running = running;
            let reason = watch(&mut running, &stop, deadline);
            finish::finish(running, reason)
        })
        .expect("spawn session thread")
}

fn ended<T>(h: &Option<JoinHandle<T>>) -> bool {
    h.as_ref().is_none_or(JoinHandle::is_finished)
}

/// Waits for a reason to stop; returns it (the manifest's `end`).
fn watch(r: &mut Running, stop: &StopSignal, deadline: Option<Instant>) -> String {
    r.counters.set_state(State::Recording);
    let mut tick = Instant::now();
    let mut overload = Overload::default();
    loop {
        if stop.requested() {
            return stop.reason().unwrap_or_else(|| values::END_SIGNAL.into());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop.request(values::END_DURATION);
            continue;
        }
        if ended(&r.drain) || ended(&r.writer) {
            // Its error, from the join, is what `finish` records.
            stop.request("error: a recorder thread stopped");
            continue;
        }
        std::thread::sleep(Duration::from_millis(50));
        if tick.elapsed() >= Duration::from_secs(1) {
            match write_new_losses(r) {
                Ok(lost) => overload.second(lost, r.losses.total()),
                Err(e) => stop.request(&format!("{}{e}", values::END_ERROR_PREFIX)),
            }
            tick = Instant::now();
        }
    }
}

/// Says in the log when losses start, go on (once a second) and stop, so
/// an operator sees an overload while it happens, not only in the
/// recording afterwards.
#[derive(Default)]
struct Overload {
    /// Seconds in a row with losses.
    seconds: u64,
}

impl Overload {
    fn second(&mut self, lost_now: u64, total: u64) {
        if lost_now > 0 {
            self.seconds += 1;
            tracing::warn!(
                "losing events: {lost_now} in the last second, {total} in all \
                 (counted in the recording; to lose fewer: filters, fewer probes, \
                 a bigger --ringbuf-size)"
            );
        } else if self.seconds > 0 {
            tracing::warn!(
                "no more losses after {} s of them, {total} in all",
                self.seconds
            );
            self.seconds = 0;
        }
    }
}

/// Samples the loss counters and writes what is new; returns how many
/// events were lost since the last sample.
fn write_new_losses(r: &mut Running) -> Result<u64, RecordError> {
    let before = r.losses.total();
    if !r.losses.sample()? {
        return Ok(0);
    }
    let lost = r.losses.total();
    r.counters.lost.store(lost, Ordering::Relaxed);
    dims::write_losses(&r.started.dir, &r.losses.rows)?;
    let mut m = r.manifest.lock().unwrap_or_else(|e| e.into_inner());
    m.lost_events = lost;
    write_manifest(&r.started.dir, &m)?;
    Ok(lost - before)
}
