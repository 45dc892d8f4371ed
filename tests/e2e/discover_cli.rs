//! `nft-recorder discover` on the running kernel: the summary, the cache
//! file `record --functions` reads, and clear errors for bad input.

use std::process::Command;

use nft_tests::{recording_dir, workspace_bin};

fn discover(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(workspace_bin("nft-recorder"))
        .arg("discover")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn discover_writes_a_cache_of_the_running_kernels_functions() {
    let dir = recording_dir("discover-cache");
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("functions.json");
    let (code, out, err) = discover(&["--priority", "1", "--output", cache.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("by priority:  0: "), "{out}");
    let priorities = out.lines().find(|l| l.starts_with("by priority:")).unwrap();
    assert!(
        !priorities.contains("  2: "),
        "--priority 1 keeps 0 and 1: {out}"
    );
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert_eq!(file["format"], "nft-tracer-functions");
    let functions = file["functions"].as_array().unwrap();
    assert!(functions.len() > 100, "{}", functions.len());
    let ip_rcv = functions.iter().find(|f| f["name"] == "ip_rcv").unwrap();
    assert_eq!(ip_rcv["skb_pos"], 1);
    assert_eq!(ip_rcv["priority"], 0);
    assert_eq!(ip_rcv["layer"], "IPv4");
    // The summary's count is the file's.
    let count: usize = out.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(count, functions.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn discover_refuses_bad_input_clearly() {
    let (code, _, err) = discover(&["--priority", "3"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--priority"), "{err}");
    let (code, _, err) = discover(&["--btf", "/nonexistent/vmlinux.btf"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/vmlinux.btf"), "{err}");
    let dir = recording_dir("discover-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let not_btf = dir.join("not-btf");
    std::fs::write(&not_btf, b"hello").unwrap();
    let (code, _, err) = discover(&["--btf", not_btf.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not-btf"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
