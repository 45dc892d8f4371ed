//! Kernel addresses -> `symbol+0xoffset`, from `/proc/kallsyms`, at record
//! time, so drop locations are readable on any machine later.

use std::path::Path;

pub struct Kallsyms {
    /// (address, name), sorted by address; text symbols only.
    symbols: Vec<(u64, String)>,
}

impl Kallsyms {
    /// Reads `/proc/kallsyms`. `None` when addresses are hidden
    /// (kptr_restrict, not root) or the file is unreadable.
    pub fn load() -> Option<Self> {
        Self::from_file(Path::new("/proc/kallsyms"))
    }

    pub fn from_file(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut symbols: Vec<(u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
                let kind = parts.next()?;
                let name = parts.next()?;
                (addr != 0 && matches!(kind, "t" | "T")).then(|| (addr, name.to_string()))
            })
            .collect();
        if symbols.is_empty() {
            return None;
        }
        symbols.sort_unstable_by_key(|s| s.0);
        Some(Self { symbols })
    }

    /// `name+0xoff`, or the bare address when it precedes every symbol.
    pub fn resolve(&self, addr: u64) -> String {
        let i = self.symbols.partition_point(|s| s.0 <= addr);
        match i.checked_sub(1).map(|i| &self.symbols[i]) {
            Some((start, name)) => format!("{name}+{:#x}", addr - start),
            None => format!("{addr:#x}"),
        }
    }

    /// `name+0xoff` when a text symbol plausibly holds `addr`; `None` past
    /// the last symbol's reach (kallsyms has no sizes: no kernel function
    /// is a megabyte long, while the text after the last symbol, such as
    /// JIT-compiled BPF when `bpf_jit_kallsyms` is off, would otherwise be
    /// named after it).
    pub fn resolve_near(&self, addr: u64) -> Option<String> {
        const REACH: u64 = 1 << 20;
        let i = self.symbols.partition_point(|s| s.0 <= addr);
        let (start, name) = &self.symbols[i.checked_sub(1)?];
        (addr - start < REACH).then(|| format!("{name}+{:#x}", addr - start))
    }

    /// Every address of each text symbol name (static functions of the same
    /// name in several files have several).
    pub fn addresses_by_name(&self) -> std::collections::HashMap<&str, Vec<u64>> {
        let mut out: std::collections::HashMap<&str, Vec<u64>> = Default::default();
        for (addr, name) in &self.symbols {
            out.entry(name.as_str()).or_default().push(*addr);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_offsets_inside_symbols() {
        let dir = std::env::temp_dir().join(format!("kallsyms-test-{}", std::process::id()));
        std::fs::write(
            &dir,
            "ffffffff81000000 T _stext\nffffffff81000100 t ip_rcv\nffffffff81000200 D some_data\n",
        )
        .unwrap();
        let k = Kallsyms::from_file(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(k.resolve(0xffffffff81000104), "ip_rcv+0x4");
        assert_eq!(k.resolve(0xffffffff81000000), "_stext+0x0");
        assert_eq!(k.resolve(0x10), "0x10");
        assert_eq!(
            k.addresses_by_name().get("ip_rcv"),
            Some(&vec![0xffffffff81000100])
        );
    }
}
