//! The recording session as a library value: [`Session::start`] checks,
//! attaches and returns a [`RunningSession`] once it records; its counters
//! can be read while it runs; [`RunningSession::stop`] (or dropping it)
//! ends it with the guaranteed teardown. `record` is one caller; the API
//! server runs one per request, several in one process.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use nft_schema::tables::values;

use super::lock::lock_netns;
use super::pipeline::LiveSink;
use super::{outdir, run, start, validate, RecordError, RecordOptions, RecordSummary};
use crate::stop::StopSignal;
use nft_schema::manifest::FailureGroup;

/// A session's state, as its counters show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Recording,
    Stopping,
    Stopped,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Recording => "recording",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
        }
    }
}

/// Live counters, updated by the session's threads.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events read off the ring buffer so far.
    pub events: AtomicU64,
    /// Events lost so far (every reason; details in the `losses` table).
    pub lost: AtomicU64,
    /// Bytes of event segments on disk.
    pub bytes: AtomicU64,
    state: AtomicU8,
}

impl Counters {
    pub fn set_state(&self, state: State) {
        self.state.store(state as u8, Ordering::Release);
    }

    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            0 => State::Recording,
            1 => State::Stopping,
            _ => State::Stopped,
        }
    }
}

/// One reading of the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub state: State,
    pub events: u64,
    pub lost: u64,
    pub bytes: u64,
}

pub struct Session;

impl Session {
    /// Validates everything (nothing is touched before), takes the
    /// namespace locks, creates the output directory, attaches every
    /// source and writes the first manifest. Returns once recording; the
    /// duration counts from then. `stop` requested during the attach
    /// aborts it (nothing is left behind). `live` gets every event.
    pub fn start(
        opts: RecordOptions,
        stop: Arc<StopSignal>,
        live: Option<LiveSink>,
    ) -> Result<RunningSession, RecordError> {
        let plan = validate::validate(&opts)?;
        let locks = plan
            .nftrace_targets
            .iter()
            .map(|t| lock_netns(t.inode, &t.label, &opts.output))
            .collect::<Result<Vec<_>, _>>()?;
        let out = outdir::prepare(&opts.output)?;
        let (started, taps) = match start::start(&opts, plan, &out.path, &stop) {
            Ok(s) => s,
            Err(e) => {
                out.discard();
                return Err(e);
            }
        };
        let ready = Ready {
            dir: out.path.clone(),
            probes_attached: started.ledger.attached_count(),
            probes_failed: started.ledger.failed_count(),
            backend: started.manifest.backend.clone(),
            failures: started.ledger.failure_groups(),
        };
        let counters = Arc::new(Counters::default());
        let thread = run::spawn(
            &opts,
            started,
            taps,
            stop.clone(),
            counters.clone(),
            live,
            locks,
        );
        Ok(RunningSession {
            ready,
            counters,
            stop,
            thread: Some(thread),
        })
    }
}

/// What a session knows once it records.
#[derive(Clone, Debug)]
pub struct Ready {
    pub dir: PathBuf,
    pub probes_attached: usize,
    pub probes_failed: usize,
    /// The function backend used (`tracepoint` when none).
    pub backend: String,
    /// Attach failures grouped by reason.
    pub failures: Vec<FailureGroup>,
}

pub struct RunningSession {
    pub ready: Ready,
    counters: Arc<Counters>,
    stop: Arc<StopSignal>,
    thread: Option<JoinHandle<Result<RecordSummary, RecordError>>>,
}

impl RunningSession {
    pub fn counters(&self) -> CountersSnapshot {
        CountersSnapshot {
            state: self.counters.state(),
            events: self.counters.events.load(Ordering::Relaxed),
            lost: self.counters.lost.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
        }
    }

    /// The stop request this session obeys.
    pub fn stop_signal(&self) -> &Arc<StopSignal> {
        &self.stop
    }

    /// It ended by itself (duration, max-bytes, an error).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits until the session ends (its duration, its byte limit, or a
    /// stop request) and returns the finished recording.
    pub fn wait(mut self) -> Result<RecordSummary, RecordError> {
        let thread = self.thread.take().expect("a session is waited for once");
        thread
            .join()
            .map_err(|_| RecordError::Runtime("the session thread panicked".into()))?
    }

    /// Stops now (`end: stopped` unless something asked first).
    pub fn stop(self) -> Result<RecordSummary, RecordError> {
        self.stop.request(values::END_STOPPED);
        self.wait()
    }
}

impl Drop for RunningSession {
    /// A session dropped while running still stops with the full teardown.
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.request(values::END_STOPPED);
            let _ = thread.join();
        }
    }
}
