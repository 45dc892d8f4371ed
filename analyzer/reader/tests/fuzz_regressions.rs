//! Replays the fuzzers' saved inputs on stable, without libFuzzer: every
//! file in `fuzz/regressions/<target>/` (inputs that once crashed a fuzz
//! target) and `fuzz/seeds/<target>/` (real recordings' files) goes
//! through the same call as its target, so a fixed crash stays fixed.
//!
//! The calls are fuzz/src/targets.rs itself, included by `#[path]` (it
//! uses only this crate's dependencies). The netlink target's parser is
//! the recorder's, which this crate cannot depend on (its build.rs builds
//! eBPF and it links libpcap): its file, which needs only libc, is
//! included by `#[path]` here too, as the fuzz target does. Its own unit
//! tests then run here as well.
//!
//! To fuzz: `fuzz/run.sh [SECONDS]` (nightly, cargo-fuzz).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

#[path = "../../../fuzz/src/targets.rs"]
#[allow(dead_code)]
mod targets;

#[path = "../../../recorder/src/sources/nftrace/message.rs"]
#[allow(dead_code)]
mod message;

/// `fuzz/` of the repository (this crate is `analyzer/reader`).
fn fuzz_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("fuzz"))
        .find(|f| f.join("src/targets.rs").is_file())
        .expect("the repository's fuzz/ directory");
    assert!(dir.join("seeds").is_dir(), "{}: no seeds", dir.display());
    dir
}

/// Longest one input may take: an input that once hung a target must
/// fail here, not hang the test run. The rest take milliseconds.
const DEADLINE: Duration = Duration::from_secs(10);

/// Runs `call` on every saved input of `target`, each on its own thread
/// with a deadline; returns how many there were. A panic or a hang names
/// the input.
fn replay(target: &str, call: fn(&[u8])) -> usize {
    targets::install_panic_hook();
    let mut n = 0;
    for kind in ["regressions", "seeds"] {
        for path in targets::inputs(&fuzz_dir(), kind, target) {
            let data = std::fs::read(&path).unwrap();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let run = std::panic::catch_unwind(|| call(&data));
                let _ = tx.send(run.map_err(|p| nft_reader::parquet_check::panic_text(&*p)));
            });
            match rx.recv_timeout(DEADLINE) {
                Ok(Ok(())) => {}
                Ok(Err(panic)) => panic!(
                    "{}: the {target} fuzz target's call panicked: {panic}",
                    path.display()
                ),
                // The thread is left running; the test process ends it.
                Err(_) => panic!(
                    "{}: the {target} fuzz target's call took more than {DEADLINE:?} (a hang)",
                    path.display()
                ),
            }
            n += 1;
        }
    }
    n
}

fn netlink(data: &[u8]) {
    for event in message::parse_datagram(data) {
        // The header bytes it keeps are copied out of the datagram.
        assert!(event.packet.len() <= data.len());
    }
}

#[test]
fn manifest_inputs() {
    assert!(replay("manifest", targets::manifest) > 0, "no seeds found");
}

#[test]
fn snapshot_inputs() {
    assert!(replay("snapshot", targets::snapshot) > 0, "no seeds found");
}

#[test]
fn ipc_inputs() {
    assert!(replay("ipc", targets::ipc) > 0, "no seeds found");
}

#[test]
fn segment_inputs() {
    assert!(replay("segment", targets::segment) > 0, "no seeds found");
}

#[test]
fn netlink_inputs() {
    assert!(replay("netlink", netlink) > 0, "no seeds found");
}

#[test]
fn the_real_netlink_seeds_parse() {
    // The seeds captured from the kernel are NFT_MSG_TRACE messages: the
    // replay above would pass on inputs the parser skips whole.
    for path in targets::inputs(&fuzz_dir(), "seeds", "netlink") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let events = message::parse_datagram(&data);
        assert!(!events.is_empty(), "{name}: no trace message parsed");
        assert!(
            events.iter().all(|e| !e.table.is_empty()),
            "{name}: {events:?}"
        );
    }
}
