#!/usr/bin/env bash
# Installs everything nft-tracer's build and tests need on a fresh Debian 12
# (bookworm) x86_64 machine, as root. Idempotent: each step checks first and
# skips what is already there, so a second run takes about a second.
#
# Versions: Rust-side tools and Python packages are pinned exactly below.
# Debian packages come from the machine's fixed suites (bookworm,
# bookworm-security, bookworm-backports for QEMU), whose versions only move
# with Debian point and security releases; pinning exact .deb versions would
# break the day the archive drops the old one. `scripts/setup.sh --versions`
# prints what is installed.
set -euo pipefail

BPF_LINKER_VERSION=0.10.3   # loads nightly's own libLLVM 22 at run time
CARGO_FUZZ_VERSION=0.13.1   # the fuzzer's driver (fuzz/run.sh), built with stable
DUCKDB_VERSION=1.5.6
PYARROW_VERSION=26.0.1
MOTO_VERSION=5.2.1         # a real S3-protocol server on loopback (fleet tests)
NIGHTLY=nightly             # the machine's installed nightly (LLVM 22); never updated

# Debian packages from bookworm.
APT_PACKAGES=(
  nftables        # nft: rulesets in tests, `nft monitor trace` as an oracle
  iproute2        # ip netns, veth
  iputils-ping    # traffic
  iperf3          # traffic and benchmarks
  netcat-openbsd  # traffic
  curl            # the API tests' HTTP client (docs/api.md's own calls)
  tcpdump         # oracle for packet counts and --filter
  libpcap-dev     # --filter: pcap-filter expressions compiled by libpcap (the pcap crate)
  bpftool         # inspect what is loaded (tests: nothing left behind)
  kmod            # modprobe
  busybox-static  # QEMU harness guest userland
  cpio            # QEMU harness initramfs
  xz-utils        # Debian 6.12 modules are .ko.xz
  zstd
  binutils        # objcopy: the QEMU kernels' BTF for root-less tests
  chromium        # the HTML reports' tests: a real browser, headless
)
# From bookworm-backports: bookworm's qemu-system 7.2 conflicts with the
# preinstalled qemu-utils 10.x (see ../shared/PLATFORM.md).
BACKPORTS_PACKAGES=(qemu-system-x86)

log() { printf 'setup: %s\n' "$*" >&2; }

if [[ ${1:-} == --versions ]]; then
  dpkg-query -W "${APT_PACKAGES[@]}" "${BACKPORTS_PACKAGES[@]}" 2>/dev/null || true
  bpf-linker --version 2>/dev/null || echo "bpf-linker missing"
  cargo fuzz --version 2>/dev/null || echo "cargo-fuzz missing"
  python3 -c 'import duckdb, pyarrow; print("duckdb", duckdb.__version__, "pyarrow", pyarrow.__version__)' 2>/dev/null || echo "duckdb/pyarrow missing"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: run as root (it installs Debian packages; the tests load eBPF)" >&2
  exit 1
fi

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

# --- Debian packages -------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
mapfile -t need < <(missing_packages "${APT_PACKAGES[@]}")
mapfile -t need_bpo < <(missing_packages "${BACKPORTS_PACKAGES[@]}")
if (( ${#need[@]} + ${#need_bpo[@]} > 0 )); then
  if (( ${#need_bpo[@]} > 0 )) && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding bookworm-backports (for ${need_bpo[*]})"
    cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  log "apt-get update"
  apt-get update -qq
  if (( ${#need[@]} > 0 )); then
    log "installing ${need[*]}"
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  if (( ${#need_bpo[@]} > 0 )); then
    log "installing ${need_bpo[*]} from bookworm-backports"
    apt-get install -y -qq --no-install-recommends -t bookworm-backports "${need_bpo[@]}" >/dev/null
  fi
else
  log "Debian packages: present"
fi

# --- Python oracles (DuckDB, pyarrow read recordings back) -----------------
if python3 -c "import duckdb, pyarrow, sys; sys.exit(not (duckdb.__version__ == '$DUCKDB_VERSION' and pyarrow.__version__ == '$PYARROW_VERSION'))" 2>/dev/null; then
  log "duckdb $DUCKDB_VERSION, pyarrow $PYARROW_VERSION: present"
else
  log "installing duckdb==$DUCKDB_VERSION pyarrow==$PYARROW_VERSION"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "duckdb==$DUCKDB_VERSION" "pyarrow==$PYARROW_VERSION"
fi

# --- An S3-protocol server for the fleet tests (moto's server mode) --------
if python3 -c "import moto, flask, boto3, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  log "moto $MOTO_VERSION: present"
else
  log "installing moto[server]==$MOTO_VERSION"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "moto[server]==$MOTO_VERSION"
fi

# --- Rust: nightly rust-src and bpf-linker for the eBPF crate ---------------
if ! command -v cargo >/dev/null; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if rustup component list --toolchain "$NIGHTLY" --installed 2>/dev/null | grep -q '^rust-src'; then
  log "rust-src ($NIGHTLY): present"
else
  log "adding rust-src to $NIGHTLY"
  rustup component add rust-src --toolchain "$NIGHTLY"
fi
if [[ $(bpf-linker --version 2>/dev/null) == "bpf-linker $BPF_LINKER_VERSION" ]]; then
  log "bpf-linker $BPF_LINKER_VERSION: present"
else
  # 0.10.3's default feature (rust-llvm-22) loads rustc's own libLLVM, so it
  # always matches the nightly that emits the bitcode (about 1.5 min).
  log "building bpf-linker $BPF_LINKER_VERSION with $NIGHTLY"
  cargo "+$NIGHTLY" install "bpf-linker@$BPF_LINKER_VERSION" --locked --quiet
fi

if [[ $(cargo fuzz --version 2>/dev/null) == "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
  log "cargo-fuzz $CARGO_FUZZ_VERSION: present"
else
  log "building cargo-fuzz $CARGO_FUZZ_VERSION (about 1.5 min)"
  cargo install "cargo-fuzz@$CARGO_FUZZ_VERSION" --locked --quiet
fi

# --- Kernel interfaces the tests use -----------------------------------------
mountpoint -q /sys/kernel/tracing 2>/dev/null || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
mountpoint -q /sys/fs/bpf 2>/dev/null || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true

log "done"
