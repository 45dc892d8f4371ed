//! Interface names per network namespace, read with `ip -o link show` from
//! a thread that has entered the namespace (sysfs would show the recorder's
//! own namespace).

use std::path::Path;

/// `(ifindex, name)` of every interface in the namespace at `netns` (the
/// calling process's own when `None`).
pub fn list(netns: Option<&Path>) -> std::io::Result<Vec<(u32, String)>> {
    let netns = netns.map(Path::to_path_buf);
    std::thread::spawn(move || -> std::io::Result<Vec<(u32, String)>> {
        if let Some(path) = netns {
            super::netns::enter_netns(&path)?;
        }
        let out = std::process::Command::new("ip")
            .args(["-o", "link", "show"])
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(parse(&String::from_utf8_lossy(&out.stdout)))
    })
    .join()
    .map_err(|_| std::io::Error::other("interface listing thread panicked"))?
}

/// Parses `ip -o link show` lines: `5: veth-b@if4: <...> ...`.
pub fn parse(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|line| {
            let (index, rest) = line.split_once(": ")?;
            let name = rest.split([':', ' ']).next()?;
            let name = name.split('@').next()?;
            Some((index.trim().parse().ok()?, name.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_ip_link_lines() {
        let text = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue\n\
                    5: veth-b@if4: <BROADCAST,MULTICAST,UP> mtu 1500\n";
        assert_eq!(
            super::parse(text),
            vec![(1, "lo".to_string()), (5, "veth-b".to_string())]
        );
    }
}
