//! `nft-analyzer`: parse arguments, then call the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use nft_analyzer::{escape, exit};

/// mimalloc, not glibc's malloc: building traces allocates and frees
/// millions of small vectors and strings, and glibc's free lists cost a
/// fifth of `traces` (perf; docs/benchmarks.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (the crate names no constant for it; it is 15 in
/// both mimalloc v2 and v3's `mi_option_e`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Keep freed memory instead of returning it to the OS 10 ms later:
    // `traces` frees and reallocates the same few hundred MiB all along, and
    // the kernel zeroing the pages again cost a tenth of the time
    // (docs/benchmarks.md). Peak memory is unchanged; memory is not handed
    // back before exit.
    // SAFETY: a plain option store, before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let args = cli::Cli::parse();
    // A panic anywhere (parquet-rs still has panics on malformed input,
    // and DataFusion re-raises a worker's panic on the caller) becomes an
    // error with exit 2, never a crash and never a result.
    // The hook only keeps the panic's text: a panic caught on purpose
    // (a damaged part left out) says nothing more than its warning.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        let text = format!("a panic{at}: {}", panic_text(info.payload()));
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
    }));
    let run = std::panic::catch_unwind(|| cli::run(args));
    match run {
        Ok(Ok(code)) => code,
        // A reader that went away (`| head`) is not an error.
        Ok(Err(e)) if broken_pipe(&e) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("nft-analyzer: error: {}", escape::terminal(&said_once(&e)));
            ExitCode::from(exit::ERROR)
        }
        Err(_) => {
            let panic = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).take();
            eprintln!(
                "nft-analyzer: error: internal error ({}); the input may be damaged, and no \
                 result was given",
                escape::terminal(&panic.unwrap_or_else(|| "a panic".into()))
            );
            ExitCode::from(exit::ERROR)
        }
    }
}

/// The last panic's text and place, for the error line.
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// The error and its causes on one line, each said once: many errors
/// (ours and DataFusion's) repeat their cause in their own message, and
/// printing the whole chain said DataFusion's message up to four times.
fn said_once(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(text.trim()) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause.to_string().contains("Broken pipe (os error 32)")
    })
}
