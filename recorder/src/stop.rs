//! One stop request shared by everything that may end a recording: a
//! signal, `--duration`, `--max-bytes`, a closed `--live` pipe, the session
//! API, a thread that failed. The first reason given is the one the
//! manifest's `end` records; later requests only confirm the stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct StopSignal {
    requested: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for the stop; the first caller's `reason` wins.
    pub fn request(&self, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason.to_string());
        }
        self.requested.store(true, Ordering::Release);
    }

    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Why the stop was asked for, once it was.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins() {
        let s = StopSignal::new();
        assert!(!s.requested());
        assert_eq!(s.reason(), None);
        s.request("duration");
        s.request("signal");
        assert!(s.requested());
        assert_eq!(s.reason().as_deref(), Some("duration"));
    }
}
