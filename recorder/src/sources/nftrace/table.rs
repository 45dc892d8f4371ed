//! The recorder's temporary nftables table: base chains on prerouting and
//! output at the lowest priority (so they run before every user chain) that
//! `meta nftrace set 1` for packets passing the recorder's filter. The kernel
//! then emits a trace message for every rule, return and policy the packet
//! meets in every later chain. Created and removed with the `nft` tool; a
//! table left by a killed recorder is removed at the next start.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::filter::FilterArgs;

/// Name of the recorder's table (family `inet`). One recorder per network
/// namespace (`record::lock`): a second one would remove the first one's
/// table.
pub const TABLE: &str = nft_schema::tables::RECORDER_NFT_TABLE;

/// Lowest possible chain priority (NF_IP_PRI_FIRST).
const FIRST: i64 = i32::MIN as i64;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("running nft: {0} (is nftables installed?)")]
    Spawn(std::io::Error),
    #[error("nft {what} failed: {stderr}")]
    Nft { what: String, stderr: String },
}

/// Runs `nft` with `args` (and `stdin` as a script when given) in the
/// calling thread's network namespace.
pub fn nft(args: &[&str], stdin: Option<&str>) -> Result<String, TableError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(TableError::Spawn)?;
    if let (Some(script), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(script.as_bytes())
            .map_err(TableError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(TableError::Spawn)?;
    if !out.status.success() {
        return Err(TableError::Nft {
            what: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn addr_expr(dir: &str, value: &str) -> String {
    let addr = value.split('/').next().unwrap_or(value);
    let family = match addr.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => "ip6",
        _ => "ip",
    };
    format!("{family} {dir} {value}")
}

/// What the recorder's table marks for tracing, and which of the marked
/// packets' messages are kept.
#[derive(Clone, Debug, Default)]
pub struct Marking {
    /// One nft match per rule ([`filter_rules`]): the flag filters.
    pub rules: Vec<String>,
    /// `--filter`: nft has no match for a pcap-filter expression, so the
    /// table marks what the flags allow and the receiver keeps a message
    /// only when libpcap's own matcher accepts the headers it carries.
    pub expression: Option<String>,
}

/// The marking for the recorder's filter.
pub fn marking(f: &FilterArgs) -> Marking {
    Marking {
        rules: filter_rules(f),
        expression: f.pcap.clone(),
    }
}

/// The match expressions equivalent to the recorder's filter, as one
/// alternative per rule (`--host` and `--port` match either direction, so
/// they multiply into several rules). Values were validated by
/// `filter::parse_filter` before this runs.
pub fn filter_rules(f: &FilterArgs) -> Vec<String> {
    let mut fixed: Vec<String> = Vec::new();
    if let Some(p) = &f.proto {
        let name = match p.to_ascii_lowercase().as_str() {
            "icmpv6" | "icmp6" => "ipv6-icmp".to_string(),
            other => other.to_string(),
        };
        fixed.push(format!("meta l4proto {name}"));
    }
    if let Some(v) = &f.src_ip {
        fixed.push(addr_expr("saddr", v));
    }
    if let Some(v) = &f.dst_ip {
        fixed.push(addr_expr("daddr", v));
    }
    if let Some(v) = &f.src_port {
        fixed.push(format!("th sport {v}"));
    }
    if let Some(v) = &f.dst_port {
        fixed.push(format!("th dport {v}"));
    }
    if let Some(v) = &f.mark {
        fixed.push(format!("meta mark {v}"));
    }
    let hosts: Vec<String> = match &f.host {
        Some(v) => vec![addr_expr("saddr", v), addr_expr("daddr", v)],
        None => vec![String::new()],
    };
    let ports: Vec<String> = match &f.port {
        Some(v) => vec![format!("th sport {v}"), format!("th dport {v}")],
        None => vec![String::new()],
    };
    let mut rules = Vec::new();
    for h in &hosts {
        for p in &ports {
            let mut parts = fixed.clone();
            parts.extend([h.clone(), p.clone()].into_iter().filter(|s| !s.is_empty()));
            parts.push("meta nftrace set 1".into());
            rules.push(parts.join(" "));
        }
    }
    rules
}

/// The script that creates the table.
pub fn create_script(rules: &[String]) -> String {
    let mut s = format!("add table inet {TABLE}\n");
    for (chain, hook) in [("pre", "prerouting"), ("out", "output")] {
        s.push_str(&format!(
            "add chain inet {TABLE} {chain} {{ type filter hook {hook} priority {FIRST}; policy accept; }}\n"
        ));
        for r in rules {
            s.push_str(&format!("add rule inet {TABLE} {chain} {r}\n"));
        }
    }
    s
}

/// Removes the table if it exists (a leftover from a killed recorder, or
/// ours at exit). Returns whether there was one.
pub fn remove() -> Result<bool, TableError> {
    let tables = nft(&["list", "tables"], None)?;
    if !tables
        .lines()
        .any(|l| l.trim() == format!("table inet {TABLE}"))
    {
        return Ok(false);
    }
    match nft(&["delete", "table", "inet", TABLE], None) {
        Ok(_) => Ok(true),
        // Removed in between by the teardown guard or the receive thread:
        // both remove it, whichever comes first.
        Err(TableError::Nft { stderr, .. }) if stderr.contains("No such file or directory") => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

pub fn create(rules: &[String]) -> Result<(), TableError> {
    nft(&["-f", "-"], Some(&create_script(rules))).map(|_| ())
}

/// The table as `nft -j -a list table` prints it (handles included).
pub fn list_json() -> Result<String, TableError> {
    nft(&["-j", "-a", "list", "table", "inet", TABLE], None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_nft_matches() {
        assert_eq!(
            filter_rules(&FilterArgs::default()),
            vec!["meta nftrace set 1"]
        );
        let rules = filter_rules(&FilterArgs {
            host: Some("10.0.0.1".into()),
            proto: Some("tcp".into()),
            port: Some("443".into()),
            ..Default::default()
        });
        assert_eq!(rules.len(), 4);
        assert!(rules.contains(
            &"meta l4proto tcp ip daddr 10.0.0.1 th sport 443 meta nftrace set 1".to_string()
        ));
        let v6 = filter_rules(&FilterArgs {
            src_ip: Some("fd00::/64".into()),
            proto: Some("icmpv6".into()),
            ..Default::default()
        });
        assert_eq!(
            v6,
            vec!["meta l4proto ipv6-icmp ip6 saddr fd00::/64 meta nftrace set 1"]
        );
        let script = create_script(&v6);
        assert!(script.contains("hook prerouting priority -2147483648"));
        assert!(script.contains("add rule inet nft_tracer out meta l4proto ipv6-icmp"));
    }
}
