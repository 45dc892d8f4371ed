//! Struct field offsets from BTF (btf-rs). aya-ebpf applies no CO-RE
//! relocations, so every offset the programs use is looked up here, in the
//! running kernel's BTF (or another kernel's BTF file), and handed to them in
//! `ProbeConfig`. Nothing is hard-coded per kernel.

use std::path::{Path, PathBuf};

use btf_rs::{Btf, Type};
use nft_schema::raw::{KernelOffsets, OFFSET_MISSING};

/// Where the running kernel exposes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "cannot read BTF from {path}: {source} (is the kernel built with CONFIG_DEBUG_INFO_BTF?)"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: btf_rs::Error,
    },
    #[error("BTF has no struct {0}")]
    NoStruct(String),
    #[error("BTF struct {strukt} has no field {field}")]
    NoField { strukt: String, field: String },
    #[error("BTF field {strukt}.{field} is a bitfield; only byte-aligned fields can be read")]
    Bitfield { strukt: String, field: String },
    #[error("BTF lookup failed: {0}")]
    Btf(#[from] btf_rs::Error),
}

/// A tracepoint that passes an skb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkbTracepoint {
    /// BTF name, e.g. `netif_receive_skb`, `kfree_skb`.
    pub name: String,
    /// Position of the `struct sk_buff *` among the tracepoint's arguments.
    pub skb_arg: u8,
}

/// A kernel function that takes a `struct sk_buff *`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkbFunction {
    pub name: String,
    /// 1-based position of the first `struct sk_buff *` parameter (1..=5:
    /// the registers a kprobe or fentry program can read).
    pub skb_pos: u8,
    /// The module whose BTF declares it; `None` for vmlinux.
    pub module: Option<String>,
}

/// Highest parameter position function programs read the skb from.
pub const MAX_SKB_POS: u8 = 5;

/// A parsed BTF file and the lookups the recorder needs from it.
pub struct KernelBtf {
    btf: Btf,
    path: PathBuf,
}

impl KernelBtf {
    /// The running kernel's BTF.
    pub fn running() -> Result<Self, BtfError> {
        Self::from_file(Path::new(VMLINUX_BTF))
    }

    /// Any kernel's BTF file (for example one extracted from a Debian
    /// package), so discovery can run root-less against other kernels.
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        Self::opened(path, Btf::from_file(path))
    }

    /// A module's split BTF (`/sys/kernel/btf/<module>`) over this base.
    pub fn module(&self, path: &Path) -> Result<Self, BtfError> {
        Self::opened(path, Btf::from_split_file(path, &self.btf))
    }

    fn opened(path: &Path, btf: Result<Btf, btf_rs::Error>) -> Result<Self, BtfError> {
        let btf = btf.map_err(|source| BtfError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            btf,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every function (BTF `FUNC`) of this BTF object (for a module: its own
    /// functions only) with a `struct sk_buff *` among its first
    /// [`MAX_SKB_POS`] parameters, tagged with `module`.
    pub fn skb_functions(&self, module: Option<&str>) -> Result<Vec<SkbFunction>, BtfError> {
        use fallible_iterator::FallibleIterator;
        let mut out = Vec::new();
        let mut iter = self.btf.type_iter();
        while let Some(ty) = iter.next()? {
            let Type::Func(func) = &ty else { continue };
            let Ok(Type::FuncProto(proto)) = self.btf.resolve_chained_type(func) else {
                continue;
            };
            let Some(pos) = proto
                .parameters
                .iter()
                .take(MAX_SKB_POS as usize)
                .position(|p| self.is_struct_ptr(p, "sk_buff"))
            else {
                continue;
            };
            let Ok(name) = self.btf.resolve_name(func) else {
                continue;
            };
            out.push(SkbFunction {
                name,
                skb_pos: pos as u8 + 1,
                module: module.map(str::to_string),
            });
        }
        Ok(out)
    }

    /// Byte offset of `path` (dot-separated, e.g. `ns.inum`) inside struct
    /// `strukt`. Members of anonymous structs and unions are searched too,
    /// since the kernel nests many fields in them (`sk_buff.dev` is one).
    pub fn field_offset(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let (bits, width) = self.field_bits(strukt, path)?;
        if width != 0 || !bits.is_multiple_of(8) {
            return Err(BtfError::Bitfield {
                strukt: strukt.to_string(),
                field: path.to_string(),
            });
        }
        Ok(bits / 8)
    }

    /// Bit offset of `path` inside struct `strukt`, and its width when it
    /// is a bitfield (0 when it is a whole member).
    pub fn field_bits(&self, strukt: &str, path: &str) -> Result<(u32, u32), BtfError> {
        let mut current = self.find_struct(strukt)?;
        let mut total_bits = 0u32;
        let mut owner = strukt.to_string();
        let mut parts = path.split('.').peekable();
        while let Some(field) = parts.next() {
            let (bits, member_type, width) =
                self.find_member(&current, field)?
                    .ok_or_else(|| BtfError::NoField {
                        strukt: owner.clone(),
                        field: field.to_string(),
                    })?;
            total_bits += bits;
            if parts.peek().is_none() {
                return Ok((total_bits, width));
            }
            current = self
                .as_struct(member_type)
                .ok_or_else(|| BtfError::NoStruct(format!("{owner}.{field}")))?;
            owner = format!("{owner}.{field}");
        }
        Err(BtfError::NoField {
            strukt: strukt.to_string(),
            field: path.to_string(),
        })
    }

    /// The parameters of function `name` (a BTF `FUNC`), each as the name
    /// of the struct it points to (`nft_traceinfo`) or `""` for anything
    /// else; `None` when this BTF has no such function.
    pub fn function_struct_params(&self, name: &str) -> Result<Option<Vec<String>>, BtfError> {
        for ty in self.btf.resolve_types_by_name(name).unwrap_or_default() {
            let Type::Func(func) = &ty else { continue };
            let Ok(Type::FuncProto(proto)) = self.btf.resolve_chained_type(func) else {
                continue;
            };
            let params = proto
                .parameters
                .iter()
                .map(|p| self.pointed_struct(p).unwrap_or_default())
                .collect();
            return Ok(Some(params));
        }
        Ok(None)
    }

    /// The struct a parameter points to, through qualifiers.
    fn pointed_struct(&self, ty: &dyn btf_rs::BtfType) -> Option<String> {
        let mut seen_ptr = false;
        for t in self.btf.chained_type_iter(ty) {
            match &t {
                Type::Ptr(_) if !seen_ptr => seen_ptr = true,
                Type::Const(_) | Type::Volatile(_) | Type::Restrict(_) | Type::TypeTag(_) => {}
                Type::Struct(s) if seen_ptr => return self.btf.resolve_name(s).ok(),
                _ => return None,
            }
        }
        None
    }

    /// Offsets of every field the eBPF programs read. A field the kernel
    /// does not have becomes `OFFSET_MISSING` and is listed in the second
    /// value, so callers can say what will be absent.
    pub fn kernel_offsets(&self) -> Result<(KernelOffsets, Vec<String>), BtfError> {
        let mut missing = Vec::new();
        let mut get = |strukt: &str, path: &str| match self.field_offset(strukt, path) {
            Ok(off) => Ok(off),
            Err(BtfError::NoField { .. } | BtfError::Bitfield { .. }) => {
                missing.push(format!("{strukt}.{path}"));
                Ok(OFFSET_MISSING)
            }
            Err(e) => Err(e),
        };
        let offsets = KernelOffsets {
            skb_len: get("sk_buff", "len")?,
            skb_mark: get("sk_buff", "mark")?,
            skb_protocol: get("sk_buff", "protocol")?,
            skb_dev: get("sk_buff", "dev")?,
            skb_head: get("sk_buff", "head")?,
            skb_network_header: get("sk_buff", "network_header")?,
            dev_ifindex: get("net_device", "ifindex")?,
            dev_nd_net: get("net_device", "nd_net")?,
            net_inum: get("net", "ns.inum")?,
            skb_sk: get("sk_buff", "sk")?,
            sk_net: get("sock", "__sk_common.skc_net")?,
            skb_mac_header: get("sk_buff", "mac_header")?,
            skb_tail: get("sk_buff", "tail")?,
            skb_data: get("sk_buff", "data")?,
        };
        Ok((offsets, missing))
    }

    /// Every tracepoint whose BTF prototype (`btf_trace_<name>` typedef)
    /// takes a `struct sk_buff *`, with the skb's argument position (not
    /// counting the hidden `void *__data`), sorted by name.
    pub fn skb_tracepoints(&self) -> Result<Vec<SkbTracepoint>, BtfError> {
        use fallible_iterator::FallibleIterator;
        let mut out = Vec::new();
        let mut iter = self.btf.type_iter();
        while let Some(ty) = iter.next()? {
            let Type::Typedef(td) = &ty else { continue };
            let Ok(name) = self.btf.resolve_name(td) else {
                continue;
            };
            let Some(tp) = name.strip_prefix("btf_trace_") else {
                continue;
            };
            let Ok(Type::Ptr(ptr)) = self.btf.resolve_chained_type(td) else {
                continue;
            };
            let Ok(Type::FuncProto(proto)) = self.btf.resolve_chained_type(&ptr) else {
                continue;
            };
            let skb_arg = proto
                .parameters
                .iter()
                .skip(1)
                .position(|p| self.is_struct_ptr(p, "sk_buff"));
            if let Some(skb_arg) = skb_arg {
                out.push(SkbTracepoint {
                    name: tp.to_string(),
                    skb_arg: skb_arg as u8,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `enum skb_drop_reason` of this kernel: (value, name without the
    /// `SKB_DROP_REASON_` prefix). Empty on kernels before drop reasons.
    pub fn drop_reasons(&self) -> Result<Vec<(u32, String)>, BtfError> {
        for ty in self
            .btf
            .resolve_types_by_name("skb_drop_reason")
            .unwrap_or_default()
        {
            if let Type::Enum(e) = ty {
                let mut out = Vec::with_capacity(e.members.len());
                for m in &e.members {
                    let name = self.btf.resolve_name(m)?;
                    let name = name.strip_prefix("SKB_DROP_REASON_").unwrap_or(&name);
                    out.push((m.val(), name.to_string()));
                }
                return Ok(out);
            }
        }
        Ok(Vec::new())
    }

    /// True when `ty` (a parameter) is a pointer to struct `name`, through
    /// qualifiers.
    fn is_struct_ptr(&self, ty: &dyn btf_rs::BtfType, name: &str) -> bool {
        self.pointed_struct(ty).is_some_and(|n| n == name)
    }

    fn find_struct(&self, name: &str) -> Result<btf_rs::Struct, BtfError> {
        for ty in self.btf.resolve_types_by_name(name).unwrap_or_default() {
            if let Type::Struct(s) = ty {
                if !s.members.is_empty() {
                    return Ok(s);
                }
            }
        }
        Err(BtfError::NoStruct(name.to_string()))
    }

    /// Follows typedefs and qualifiers to a struct or union.
    fn as_struct(&self, ty: Type) -> Option<btf_rs::Struct> {
        let mut ty = ty;
        for _ in 0..16 {
            match ty {
                Type::Struct(s) | Type::Union(s) => return Some(s),
                Type::Typedef(_) | Type::Const(_) | Type::Volatile(_) | Type::Restrict(_) => {
                    ty = self.btf.resolve_chained_type(ty.as_btf_type()?).ok()?;
                }
                _ => return None,
            }
        }
        None
    }

    /// Finds `field` in `s`, descending into anonymous members. Returns the
    /// bit offset from the start of `s`, the member's type, and its
    /// bitfield width (0: not a bitfield).
    fn find_member(
        &self,
        s: &btf_rs::Struct,
        field: &str,
    ) -> Result<Option<(u32, Type, u32)>, BtfError> {
        for member in &s.members {
            let name = self.btf.resolve_name(member).unwrap_or_default();
            let ty = self.btf.resolve_chained_type(member)?;
            if name == field {
                let width = member.bitfield_size().unwrap_or(0);
                return Ok(Some((member.bit_offset(), ty, width)));
            }
            if name.is_empty() {
                if let Some(inner) = self.as_struct(ty) {
                    if let Some((bits, t, w)) = self.find_member(&inner, field)? {
                        return Ok(Some((member.bit_offset() + bits, t, w)));
                    }
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Runs against the BTF of the machine running the tests; every kernel
    // nft-tracer supports has BTF at this path.
    fn running() -> KernelBtf {
        KernelBtf::running().expect("the test machine's kernel has BTF")
    }

    #[test]
    fn sk_buff_offsets_are_found_including_anonymous_members() {
        let btf = running();
        let (offsets, missing) = btf.kernel_offsets().unwrap();
        assert!(missing.is_empty(), "missing: {missing:?}");
        // `dev` lives in an anonymous union inside an anonymous struct; it
        // follows next/prev (two pointers) on every kernel since 4.x.
        assert_eq!(offsets.skb_dev, 16);
        assert!(offsets.skb_len > offsets.skb_dev && offsets.skb_len < 256);
        assert_ne!(offsets.net_inum, OFFSET_MISSING);
    }

    #[test]
    fn skb_tracepoints_are_discovered_with_their_argument() {
        let tps = running().skb_tracepoints().unwrap();
        let arg = |name: &str| tps.iter().find(|t| t.name == name).map(|t| t.skb_arg);
        for name in [
            "netif_receive_skb",
            "netif_rx",
            "napi_gro_receive_entry",
            "net_dev_queue",
            "net_dev_start_xmit",
            "net_dev_xmit",
            "kfree_skb",
            "consume_skb",
            "skb_copy_datagram_iovec",
        ] {
            assert_eq!(arg(name), Some(0), "{name} in {tps:?}");
        }
        // tcp_retransmit_skb(sk, skb): the skb is the second argument.
        assert_eq!(arg("tcp_retransmit_skb"), Some(1));
        // A tracepoint without an skb is not listed.
        assert_eq!(arg("sched_switch"), None);
    }

    #[test]
    fn drop_reasons_come_from_the_kernel_enum() {
        let reasons = running().drop_reasons().unwrap();
        let name = |code: u32| reasons.iter().find(|r| r.0 == code).map(|r| r.1.as_str());
        assert!(name(0).is_some(), "{reasons:?}");
        assert!(
            reasons.iter().any(|r| r.1 == "NOT_SPECIFIED"),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.1 == "NETFILTER_DROP"),
            "{reasons:?}"
        );
    }

    #[test]
    fn unknown_struct_and_field_are_clear_errors() {
        let btf = running();
        let e = btf.field_offset("no_such_struct_xyz", "len").unwrap_err();
        assert_eq!(e.to_string(), "BTF has no struct no_such_struct_xyz");
        let e = btf.field_offset("sk_buff", "no_such_field").unwrap_err();
        assert_eq!(
            e.to_string(),
            "BTF struct sk_buff has no field no_such_field"
        );
    }

    #[test]
    fn missing_btf_file_says_so() {
        let e = KernelBtf::from_file(Path::new("/nonexistent/vmlinux"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/vmlinux"), "{e}");
    }
}
