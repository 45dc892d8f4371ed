//! Kernel clocks, as the eBPF programs see them (`bpf_ktime_get_ns` is
//! CLOCK_MONOTONIC), so userspace timestamps line up with event timestamps.

/// Nanoseconds of `clock` (CLOCK_MONOTONIC, CLOCK_REALTIME, ...).
pub fn now_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Kernel CLOCK_MONOTONIC ns: the clock of every event's `ts_ns`.
pub fn monotonic_ns() -> u64 {
    now_ns(libc::CLOCK_MONOTONIC) as u64
}
