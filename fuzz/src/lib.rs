//! Shared code of the fuzz targets: [`targets`] (what each target calls,
//! also replayed on stable by analyzer/reader/tests/fuzz_regressions.rs)
//! and a cap on single allocations.
//!
//! Why the cap: the targets are built without a sanitizer
//! (`--sanitizer none`, see run.sh), and libFuzzer's `-malloc_limit_mb`
//! works only through a sanitizer's malloc hooks, so without one a single
//! huge allocation (a length field read from the input) goes unseen until
//! the pages are touched, or forever when they are not (a zeroed `Vec` of
//! terabytes). [`CappedAlloc`] makes every allocation larger than
//! `-malloc_limit_mb` (or `-rss_limit_mb` when that is not given, libFuzzer's
//! own rule; 2048 MB when neither is) print its size and a backtrace and
//! abort, which libFuzzer reports as a crash and saves the input.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub mod targets;

/// The largest single allocation, in bytes (set from the command line by
/// [`init`]).
static LIMIT: AtomicUsize = AtomicUsize::new(2048 << 20);
static TRIPPED: AtomicBool = AtomicBool::new(false);

pub struct CappedAlloc;

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

impl CappedAlloc {
    fn check(size: usize) {
        if size > LIMIT.load(Ordering::Relaxed) && !TRIPPED.swap(true, Ordering::SeqCst) {
            // Allocating here is fine: these are small and pass the check.
            eprintln!(
                "==nft-fuzz== out-of-memory: a single allocation of {size} bytes, more than \
                 the {} MB limit (-malloc_limit_mb)\n{}",
                LIMIT.load(Ordering::Relaxed) >> 20,
                std::backtrace::Backtrace::force_capture()
            );
            std::process::abort();
        }
    }
}

unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// Runs one target's call on an input. With NFT_FUZZ_KNOWN_PANICS set, a
/// known panic that unwinds out of it ends this input quietly (see
/// [`targets::install_panic_hook`]; other panics abort in the hook before
/// they get here).
pub fn run(data: &[u8], call: fn(&[u8])) {
    if known_panics() {
        let _ = std::panic::catch_unwind(|| call(data));
    } else {
        call(data);
    }
}

fn known_panics() -> bool {
    static KNOWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KNOWN.get_or_init(|| std::env::var_os("NFT_FUZZ_KNOWN_PANICS").is_some_and(|v| !v.is_empty()))
}

/// Once per fuzzer process, after libFuzzer's own initialization (the
/// `init:` block of `fuzz_target!`): the allocation cap from the command
/// line, and the panic hook of [`targets::install_panic_hook`].
pub fn init() {
    let flag = |name: &str| {
        std::env::args().find_map(|a| {
            a.strip_prefix(name)?
                .strip_prefix('=')?
                .parse::<usize>()
                .ok()
        })
    };
    let mb = flag("-malloc_limit_mb")
        .filter(|mb| *mb > 0)
        .or_else(|| flag("-rss_limit_mb").filter(|mb| *mb > 0));
    if let Some(mb) = mb {
        LIMIT.store(mb << 20, Ordering::Relaxed);
    }
    targets::install_panic_hook();
}
