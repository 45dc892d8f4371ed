//! `nft-recorder check` on the running kernel: one line per capability, the
//! reason on every "no", and nothing left in the kernel afterwards.

use std::path::Path;
use std::process::Command;

use nft_tests::{kernel_lock, run, workspace_bin};

fn check_output() -> (i32, String) {
    let out = Command::new(workspace_bin("nft-recorder"))
        .arg("check")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `name yes|no detail` -> (yes, detail).
fn line<'a>(report: &'a str, name: &str) -> (bool, &'a str) {
    let l = report
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{report}"));
    let mut words = l.split_whitespace();
    words.next();
    let yes = match words.next() {
        Some("yes") => true,
        Some("no") => false,
        other => panic!("{name}: expected yes/no, got {other:?}"),
    };
    let detail = l
        .split_once(if yes { "yes" } else { "no" })
        .unwrap()
        .1
        .trim();
    (yes, detail)
}

#[test]
fn check_reports_every_capability_with_reasons() {
    let _kernel = kernel_lock();
    let (code, report) = check_output();
    assert_eq!(code, 0, "{report}");
    // Every kernel nft-tracer supports has BTF and tp_btf, and nf_tables.
    assert!(line(&report, "btf").0, "{report}");
    assert!(line(&report, "tp_btf").0, "{report}");
    assert!(line(&report, "nftrace").0, "{report}");
    // The nf_tables layout for the nft hooks, wherever nf_tables' BTF is.
    let (yes, layout) = line(&report, "nft_layout");
    assert!(yes && layout.contains("__nft_trace_packet("), "{report}");
    // kprobe agrees with the kernel's own kprobe PMU (the host here has
    // none; the Debian kernels in QEMU have one).
    let kprobe_pmu = Path::new("/sys/bus/event_source/devices/kprobe/type").exists();
    assert_eq!(line(&report, "kprobe").0, kprobe_pmu, "{report}");
    for name in [
        "btf",
        "tp_btf",
        "kprobe",
        "kprobe.multi",
        "fentry",
        "nftrace",
    ] {
        let (yes, detail) = line(&report, name);
        assert!(!detail.is_empty(), "{name} has no detail/reason:\n{report}");
        if !yes {
            assert!(detail.len() > 20, "{name}: reason too thin: {detail}");
        }
    }
    assert!(report.contains("--backend auto would use:"), "{report}");
}

#[test]
fn check_leaves_no_program_in_the_kernel() {
    let _kernel = kernel_lock();
    let (code, report) = check_output();
    assert_eq!(code, 0, "{report}");
    let progs = run("bpftool", &["prog", "show"]).unwrap();
    let progs = String::from_utf8_lossy(&progs.stdout);
    for name in ["tp_skb_arg0", "kprobe_skb_1", "fentry_skb_1", "nft_kpm_chk"] {
        assert!(
            !progs.contains(name),
            "{name} still loaded after check:\n{progs}"
        );
    }
}
