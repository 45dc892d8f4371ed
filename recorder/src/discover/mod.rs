//! `nft-recorder discover`: every kernel function that takes a
//! `struct sk_buff *`, found in BTF (vmlinux and module BTF, or another
//! kernel's BTF file), kept when ftrace can attach to it, and classified by
//! priority and layer. The recorder's function modes choose from this list;
//! `--output` saves it as a cache file.

pub mod cache;
pub mod classify;
pub mod traceable;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::kernel::btf::{BtfError, KernelBtf};
pub use classify::{Layer, Priority};

/// Where module BTF lives, one file per loaded module.
pub const SYS_BTF_DIR: &str = "/sys/kernel/btf";

/// One traceable function with an skb parameter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredFunction {
    pub name: String,
    /// 1-based position of the `struct sk_buff *` parameter (1..=5).
    pub skb_pos: u8,
    pub priority: Priority,
    pub layer: Layer,
    /// Module that declares it; absent for vmlinux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

/// What to discover from.
#[derive(Clone, Debug, Default)]
pub struct DiscoverOptions {
    /// Another kernel's vmlinux BTF (root-less); default: the running
    /// kernel's vmlinux and module BTF.
    pub btf: Option<PathBuf>,
    /// Keep functions of this priority or more important (0 = landmarks).
    pub max_priority: Option<Priority>,
}

/// The result, with what shaped it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Discovery {
    /// BTF files read.
    pub btf_files: Vec<String>,
    /// Functions with an skb parameter in BTF, before the traceable filter.
    pub in_btf: usize,
    /// `available_filter_functions` used, or why it was not (then every
    /// BTF function is kept and attaching may still refuse some).
    pub traceable_filter: Result<String, String>,
    /// Dropped because ftrace cannot attach to them.
    pub not_traceable: usize,
    /// Sorted by priority, then name.
    pub functions: Vec<DiscoveredFunction>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error("cannot list module BTF in {dir}: {source}")]
    ModuleDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs discovery.
pub fn discover(opts: &DiscoverOptions) -> Result<Discovery, DiscoverError> {
    let running = opts.btf.is_none();
    let vmlinux = match &opts.btf {
        Some(path) => KernelBtf::from_file(path)?,
        None => KernelBtf::running()?,
    };
    let mut btf_files = vec![vmlinux.path().display().to_string()];
    let mut found = vmlinux.skb_functions(None)?;
    if running {
        for (module, path) in module_btf_files(Path::new(SYS_BTF_DIR))? {
            // A module that unloads meanwhile, or whose BTF does not parse,
            // only loses its own functions.
            match vmlinux.module(&path) {
                Ok(btf) => {
                    found.extend(btf.skb_functions(Some(&module))?);
                    btf_files.push(path.display().to_string());
                }
                Err(e) => tracing::warn!("skipping module BTF {}: {e}", path.display()),
            }
        }
    }
    // The same function can be declared in several BTF objects: keep one.
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found.dedup_by(|a, b| a.name == b.name);
    let in_btf = found.len();

    // Another kernel's BTF cannot be checked against this kernel's ftrace.
    let traceable = if running {
        traceable::read()
    } else {
        Err(format!(
            "not applied: BTF from {} is not the running kernel's",
            vmlinux.path().display()
        ))
    };
    let before = found.len();
    if let Ok(t) = &traceable {
        found.retain(|f| t.names.contains(&f.name));
    }
    let not_traceable = before - found.len();

    let mut functions: Vec<DiscoveredFunction> = found
        .into_iter()
        .map(|f| DiscoveredFunction {
            priority: classify::priority(&f.name),
            layer: classify::layer(&f.name),
            name: f.name,
            skb_pos: f.skb_pos,
            module: f.module,
        })
        .filter(|f| opts.max_priority.is_none_or(|max| f.priority <= max))
        .collect();
    functions.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
    Ok(Discovery {
        btf_files,
        in_btf,
        traceable_filter: traceable.map(|t| t.path.display().to_string()),
        not_traceable,
        functions,
    })
}

/// `(module, path)` of every module BTF file (everything but vmlinux).
fn module_btf_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, DiscoverError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // No module BTF at all (a kernel without modules).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DiscoverError::ModuleDir {
                dir: dir.to_owned(),
                source,
            })
        }
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| name != "vmlinux")
        .collect();
    out.sort();
    Ok(out)
}

impl Discovery {
    /// Counts per priority and per layer, as printed by `discover`.
    pub fn summary(&self) -> String {
        let mut by_priority: BTreeMap<Priority, usize> = BTreeMap::new();
        let mut by_layer: BTreeMap<Layer, usize> = BTreeMap::new();
        let mut by_pos: BTreeMap<u8, usize> = BTreeMap::new();
        for f in &self.functions {
            *by_priority.entry(f.priority).or_default() += 1;
            *by_layer.entry(f.layer).or_default() += 1;
            *by_pos.entry(f.skb_pos).or_default() += 1;
        }
        let mut out = format!(
            "{} functions with a struct sk_buff * parameter ({} in BTF",
            self.functions.len(),
            self.in_btf
        );
        match &self.traceable_filter {
            Ok(path) => out.push_str(&format!(
                ", {} not traceable per {path})\n",
                self.not_traceable
            )),
            Err(why) => out.push_str(&format!("; traceable filter {why})\n")),
        }
        out.push_str(&format!("BTF: {}\n", self.btf_files.join(", ")));
        out.push_str("by priority:");
        for (p, n) in &by_priority {
            out.push_str(&format!("  {p}: {n}"));
        }
        out.push_str("\nby layer:   ");
        for layer in Layer::ALL {
            if let Some(n) = by_layer.get(&layer) {
                out.push_str(&format!("  {layer}: {n}"));
            }
        }
        out.push_str("\nby skb parameter position:");
        for (p, n) in &by_pos {
            out.push_str(&format!("  {p}: {n}"));
        }
        out.push('\n');
        out
    }
}
