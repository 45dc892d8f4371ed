//! A recording, as a library with a lifecycle. It reads as its steps:
//!
//! 1. `validate`: every argument, namespace and the BTF are checked, and
//!    the plan made, before anything is touched;
//! 2. `lock` and `outdir`: the namespaces are claimed and the output
//!    directory created (or checked safe);
//! 3. `start`: the eBPF object is loaded and the sources started in order
//!    (tracepoints, functions, nft hooks, nftrace), every outcome in one
//!    ledger; the first manifest (`end: running`) says it records;
//! 4. `run`: the drain and writer threads (`pipeline`) and the session
//!    thread that waits for a stop;
//! 5. `finish`: the sources stop in reverse (nftrace's tables first, at
//!    once), the last events are drained and the manifest gets its end.
//!
//! [`Session`] drives those steps; `nft-recorder record` and the API server
//! are its callers. The teardown holds on every path: the nftrace tables
//! have a guard that removes them on drop, the probes detach when the
//! eBPF object is dropped, and a session dropped while running stops.

pub mod finish;
pub mod lock;
pub mod options;
pub mod outdir;
pub mod pipeline;
pub mod run;
pub mod session;
pub mod start;
pub mod validate;

use std::sync::Arc;

pub use crate::filter;
pub use crate::sources::function_plan as functions;
pub use crate::sources::nft_hook::NftHooks;
pub use options::{RecordError, RecordOptions, RecordSummary};
pub use session::{CountersSnapshot, Ready, RunningSession, Session, State};

use crate::stop::StopSignal;

/// Records until `stop` is requested, the duration passes, or the byte
/// limit is reached, printing events to stdout with `--live`.
pub fn record(opts: &RecordOptions, stop: Arc<StopSignal>) -> Result<RecordSummary, RecordError> {
    let live = opts.live.then(|| crate::live::stdout_sink(stop.clone()));
    Session::start(opts.clone(), stop, live)?.wait()
}
