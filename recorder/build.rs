//! Builds the eBPF programs (`ebpf/`, package `nft-ebpf`) with nightly for
//! bpfel-unknown-none and leaves the object in OUT_DIR, where
//! `src/ebpf_object.rs` embeds it. Needs `bpf-linker` and the nightly
//! `rust-src` component: `scripts/setup.sh` installs both.
fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ebpf")
        .canonicalize()?;
    let root = root.to_str().expect("workspace path is UTF-8");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "nft-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
}
