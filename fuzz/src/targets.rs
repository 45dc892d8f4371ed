//! What each fuzz target calls, in one place, so the libFuzzer targets
//! (fuzz/fuzz_targets/*.rs) and the stable replay of saved inputs
//! (analyzer/reader/tests/fuzz_regressions.rs, which includes this file by
//! `#[path]`) run exactly the same code on an input. Only the crates both
//! of them have are used: nft-reader's own dependencies (nft_reader,
//! nft_schema, arrow, parquet) and its dev-dependency tempfile.
//!
//! The netlink target is not here: its parser lives in the recorder, and
//! each side includes `recorder/src/sources/nftrace/message.rs` itself.
//!
//! Panics: the analyzer catches parquet-rs panics while checking a segment
//! (`nft_reader::parquet_check::check`) and while decoding rows (its decode
//! thread), so those are errors, not crashes. Code here runs such calls in
//! [`caught`], a catch_unwind that also tells the fuzzer's panic hook
//! ([`install_panic_hook`]) to let the panic unwind instead of aborting.
//! A panic anywhere else is a crash.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, OnceLock};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

thread_local! {
    /// How many [`caught`] calls are running on this thread.
    static CAUGHT: Cell<u32> = const { Cell::new(0) };
    /// The last panic seen inside [`caught`]: message and location.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs a panic hook that lets a panic inside [`caught`] unwind to its
/// catch_unwind quietly (recording where it happened), and hands every
/// other panic to the hook that was there before (libFuzzer's: print, then
/// abort, so the fuzzer sees a crash). libfuzzer-sys's own hook aborts on
/// every panic, even one a catch_unwind would catch, so without this the
/// analyzer's caught panics would be reported as crashes.
///
/// With NFT_FUZZ_BACKTRACE=1 a caught panic also records a backtrace
/// (slow: for reproducing one input, not for fuzzing).
///
/// NFT_FUZZ_KNOWN_PANICS (fuzzing only) lists, separated by `|`, pieces of
/// the message or location (`file.rs:line`) of panics already reported
/// and not yet fixed: those unwind too, out of the target (see
/// `nft_fuzz::run`), so that fuzzing can go on past a panic it would
/// otherwise find again within seconds. Any other panic is still a crash.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let backtrace = std::env::var_os("NFT_FUZZ_BACKTRACE").is_some_and(|v| v == "1");
        let known: Vec<String> = std::env::var("NFT_FUZZ_KNOWN_PANICS")
            .unwrap_or_default()
            .split('|')
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            let mut text = format!(
                "{}{at}",
                nft_reader::parquet_check::panic_text(info.payload())
            );
            let is_known = || known.iter().any(|k| text.contains(k.as_str()));
            if CAUGHT.with(Cell::get) == 0 && !is_known() {
                return previous(info);
            }
            if backtrace {
                text.push_str(&format!("\n{}", std::backtrace::Backtrace::force_capture()));
            }
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
        }));
    });
}

/// Runs `f` as the analyzer runs code whose panics it catches: a panic is
/// returned as an error (its message and location), not a crash.
pub fn caught<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    CAUGHT.with(|c| c.set(c.get() + 1));
    LAST_PANIC.with(|p| p.borrow_mut().take());
    let out = catch_unwind(AssertUnwindSafe(f));
    CAUGHT.with(|c| c.set(c.get() - 1));
    out.map_err(|panic| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| nft_reader::parquet_check::panic_text(&*panic))
    })
}

/// `manifest`: `recording.json` as the analyzer parses it (lossy UTF-8:
/// the file is read as a String, so only UTF-8 reaches the parser, but a
/// near-UTF-8 input still says something). A manifest that parsed must
/// also survive the recorder's own `to_json` -> `from_json` round trip.
pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(m) = nft_reader::recording::parse_manifest(&text) {
        let json = m.to_json().expect("a parsed manifest serializes");
        if let Err(e) = nft_schema::manifest::Manifest::from_json(&json) {
            panic!("a parsed manifest does not parse again after to_json: {e}\n{json}");
        }
    }
}

/// `snapshot`: the input split at its first 0 byte into the
/// `nft -j -a list ruleset` JSON and the `nft -s -a list ruleset` text
/// (lossy UTF-8 each); without a 0 byte, the whole input is both.
pub fn snapshot(data: &[u8]) {
    let (json, text) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, data),
    };
    let json = String::from_utf8_lossy(json);
    let text = String::from_utf8_lossy(text);
    let _ = nft_reader::snapshot::parse(&json, Some(&text));
    let _ = nft_reader::snapshot::rule_texts(&text);
}

/// `ipc`: an open `.arrows` segment (schema 3 and older) as
/// `Recording::open` reads it (`read_stream_bytes` catches arrow-ipc's
/// panics itself: damage, so it runs in [`caught`], and a panic that still
/// comes out of it is a crash), then its batches brought to the events and
/// nftrace schemas as the analyzer does (`conform`, in the catalog and in
/// the decode thread; the catalog does not catch panics, so one there is a
/// crash here).
pub fn ipc(data: &[u8]) {
    let (batches, _damage) = match caught(|| nft_reader::ipc::read_stream_bytes(data)) {
        Ok(read) => read,
        Err(panic) => panic!("read_stream_bytes panicked: {panic}"),
    };
    let schemas = [
        nft_schema::tables::events_schema(),
        nft_schema::tables::nftrace_schema(),
    ];
    for batch in &batches {
        for schema in &schemas {
            let _ = nft_reader::conform::conform(batch, schema);
        }
    }
}

/// Rows per batch, as the analyzer's decode thread reads them.
const BATCH_ROWS: usize = 64 * 1024;

const SEGMENT: &str = "events-000001.parquet";

/// One recording directory per process, its manifest listing one closed
/// segment; [`segment`] rewrites the segment for every input. A Mutex:
/// the stable replay runs tests on several threads.
fn segment_dir() -> &'static Mutex<tempfile::TempDir> {
    static DIR: OnceLock<Mutex<tempfile::TempDir>> = OnceLock::new();
    DIR.get_or_init(|| {
        // Never removed (a static is not dropped): under the test's
        // target/tmp when replayed by cargo test, else under TMPDIR (run.sh
        // points it into fuzz/target and cleans it up).
        let mut builder = tempfile::Builder::new();
        builder.prefix("nft-fuzz-segment-");
        let dir = match option_env!("CARGO_TARGET_TMPDIR") {
            Some(tmp) => builder.tempdir_in(tmp),
            None => builder.tempdir(),
        }
        .expect("a temp dir for the segment target");
        let manifest = nft_schema::manifest::Manifest {
            schema_version: nft_schema::SCHEMA_VERSION,
            segments: vec![SEGMENT.into()],
            ended_cleanly: true,
            end: "duration".into(),
            ..Default::default()
        };
        std::fs::write(
            dir.path().join(nft_schema::manifest::MANIFEST_FILE),
            manifest.to_json().expect("the manifest serializes"),
        )
        .expect("the manifest is written");
        Mutex::new(dir)
    })
}

/// `segment`: the input as a recording's only event segment, opened by
/// `Recording::open` (which must not panic: a damaged segment is left out
/// and named in `incomplete`), then every segment it accepted read row by
/// row as the analyzer's decode thread reads it, in [`caught`]: there a
/// parquet-rs panic is an error, and what counts are aborts, running out
/// of memory and hangs.
pub fn segment(data: &[u8]) {
    let dir = segment_dir().lock().unwrap_or_else(|e| e.into_inner());
    let path = dir.path().join(SEGMENT);
    std::fs::write(&path, data).expect("the segment is written");
    // parquet_check::check catches its own panics; the hook must let them
    // unwind, so Recording::open runs in `caught` too, and any panic that
    // still comes out of it is a crash.
    let rec = match caught(|| nft_reader::recording::Recording::open(dir.path())) {
        Ok(Ok(rec)) => rec,
        Ok(Err(e)) => panic!("Recording::open refused a recording with a valid manifest: {e}"),
        Err(panic) => panic!("Recording::open panicked: {panic}"),
    };
    let named = rec.incomplete.iter().any(|note| note.contains(SEGMENT));
    assert!(
        rec.event_segments == [path.clone()] || named,
        "the segment was neither accepted nor named as damaged: {:?}",
        rec.incomplete
    );
    for segment in &rec.event_segments {
        let _ = caught(|| read_rows(segment));
    }
}

/// Every row of a Parquet segment, each batch conformed to the events
/// schema, as the analyzer's decode thread does (it projects to the
/// columns traces need; here every column is decoded).
fn read_rows(path: &Path) -> Result<usize, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| e.to_string())?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| e.to_string())?;
    let schema = nft_schema::tables::events_schema();
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        rows += batch.num_rows();
        nft_reader::conform::conform(&batch, &schema).map_err(|e| e.to_string())?;
    }
    Ok(rows)
}

/// The directory of one target's saved inputs (`seeds`, `regressions`)
/// under `fuzz/`, and the files in it, sorted; none when it is missing.
pub fn inputs(fuzz_dir: &Path, kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir.join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}
