//! Which functions the running kernel lets kprobes and fentry attach to:
//! ftrace's `available_filter_functions`. BTF lists functions that were
//! inlined away or marked `notrace` too; attaching to those fails, so
//! discovery drops them when this list can be read.

use std::collections::HashSet;
use std::path::PathBuf;

/// Where tracefs shows the list, newest mount point first.
pub const FILTER_FUNCTION_FILES: &[&str] = &[
    "/sys/kernel/tracing/available_filter_functions",
    "/sys/kernel/debug/tracing/available_filter_functions",
];

/// The traceable function names, and the file they came from.
pub struct Traceable {
    pub path: PathBuf,
    pub names: HashSet<String>,
}

/// Reads the first readable list; `Err` says why none could be read (no
/// tracefs, or a kernel that refuses it, like this project's host).
pub fn read() -> Result<Traceable, String> {
    let mut why = Vec::new();
    for path in FILTER_FUNCTION_FILES {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return Ok(Traceable {
                    path: PathBuf::from(path),
                    names: parse(&text),
                })
            }
            Err(e) => why.push(format!("{path}: {e}")),
        }
    }
    Err(why.join("; "))
}

/// Lines are `name` or `name [module]`; clone suffixes (`.isra.0`) are kept
/// off, since BTF names the function without them.
pub fn parse(text: &str) -> HashSet<String> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(|name| super::classify::base_name(name).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn module_tags_and_clone_suffixes_are_dropped() {
        let names = super::parse("ip_rcv\nnft_do_chain [nf_tables]\nip_rcv_core.isra.0\n");
        assert!(names.contains("ip_rcv"));
        assert!(names.contains("nft_do_chain"));
        assert!(names.contains("ip_rcv_core"));
        assert_eq!(names.len(), 3);
    }
}
