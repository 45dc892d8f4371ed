//! The teardown guard of the one piece of kernel state that outlives the
//! recorder's file descriptors: its `inet nft_tracer` table. Probes detach
//! when their descriptors close, even after SIGKILL; a table stays until
//! someone deletes it. The guard deletes it from every namespace it was
//! installed in when dropped, on every path (a normal stop, where the
//! receive threads already removed it and it finds nothing, an error, a
//! panic unwinding), and [`remove_every_table`] does it for a second
//! Ctrl-C that exits the process at once.

use std::path::PathBuf;
use std::sync::Mutex;

use super::table;
use crate::kernel::netns::in_netns;

/// Namespaces (`None`: the recorder's own) whose table a live guard
/// covers, process-wide, with the guard's id.
static INSTALLED: Mutex<Vec<(u64, Option<PathBuf>)>> = Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub struct TableGuard {
    id: u64,
    targets: Vec<Option<PathBuf>>,
}

impl TableGuard {
    /// Covers `targets` from now on (before the tables are created, so a
    /// failure half-way through still removes what was made).
    pub fn new(targets: Vec<Option<PathBuf>>) -> Self {
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        installed.extend(targets.iter().map(|t| (id, t.clone())));
        Self { id, targets }
    }

    /// Removes the table wherever it still is; returns what failed.
    pub fn remove_now(&self) -> Vec<String> {
        remove_in(&self.targets)
    }
}

impl Drop for TableGuard {
    fn drop(&mut self) {
        for e in self.remove_now() {
            tracing::error!("removing the recorder's nftables table: {e}");
        }
        let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        installed.retain(|(id, _)| *id != self.id);
    }
}

/// Removes the recorder's table from every namespace any live guard of
/// this process covers. For an exit that cannot wait for the guards.
pub fn remove_every_table() -> Vec<String> {
    let targets: Vec<Option<PathBuf>> = INSTALLED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    remove_in(&targets)
}

/// One thread per namespace (`in_netns`): entering a namespace changes the
/// calling thread, and the caller's must stay where it is.
fn remove_in(targets: &[Option<PathBuf>]) -> Vec<String> {
    targets
        .iter()
        .cloned()
        .filter_map(|target| {
            match in_netns(target, || {
                table::remove().map(drop).map_err(|e| e.to_string())
            }) {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(e) => Some(e.to_string()),
            }
        })
        .collect()
}
