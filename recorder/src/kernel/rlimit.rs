//! Open-file limit. Every kprobe attachment and every fentry link holds a
//! file descriptor, so tracing all ~1700 skb functions needs more than the
//! usual soft limit of 1024; without this, attaching stopped at about 1000
//! functions with EMFILE (measured in the 6.12 guest).

/// Raises the soft `RLIMIT_NOFILE` to at least `wanted` (and the hard limit
/// too when root may, capped by `fs.nr_open`). Returns the soft limit now in
/// force.
pub fn raise_open_files(wanted: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit fill and read a plain struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur >= wanted {
        return lim.rlim_cur;
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(lim.rlim_max);
    let target = wanted.min(nr_open.max(lim.rlim_max));
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: lim.rlim_max.max(target),
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return target;
    }
    // Not allowed to raise the hard limit: take what it allows.
    let soft = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } == 0 {
        lim.rlim_max
    } else {
        lim.rlim_cur
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_is_raised_or_kept() {
        let now = super::raise_open_files(2048);
        assert!(now >= 1024, "{now}");
        // Asking for less never lowers it.
        assert_eq!(super::raise_open_files(16), now);
    }
}
