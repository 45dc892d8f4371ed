# The two commands of the README, and the steps they are made of.
#   make demo   set up, build, and run the built-in demo
#   make test   set up, lint, build, run every test, and fuzz briefly (what CI runs)
# Everything runs as root: set-up installs packages, the tests load eBPF and
# make network namespaces.

CARGO ?= cargo

.PHONY: demo test setup build build-release lint fmt-check clippy clippy-ebpf unit-and-e2e fuzz-smoke

demo: setup build-release
	scripts/demo.sh

test: setup lint build unit-and-e2e fuzz-smoke

setup:
	scripts/setup.sh

# Tests use the dev profile: DataFusion compiles in about 4.5 min there and
# about 19 min with --release on 2 cores (docs/benchmarks.md).
build:
	$(CARGO) build --locked

build-release:
	$(CARGO) build --release --locked

lint: fmt-check clippy clippy-ebpf

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --locked --workspace --exclude nft-ebpf --all-targets -- -D warnings

# The eBPF crate only builds for the BPF target with nightly.
clippy-ebpf:
	$(CARGO) +nightly clippy --release --locked -p nft-ebpf --target bpfel-unknown-none \
		-Z build-std=core -- -D warnings

# A bounded run of every fuzz target (nightly, cargo-fuzz; fuzz/run.sh):
# FUZZ_SECONDS each, seeded with real recordings' files and the inputs that
# once crashed (fuzz/seeds, fuzz/regressions). An unoptimized build (2.5 min
# instead of 7 on 2 cores): a short run looks for shallow bugs; the long
# runs (docs/analyzer.md#the-fuzzer) use the optimized one.
FUZZ_SECONDS ?= 20
fuzz-smoke:
	CARGO_BUILD_JOBS=$${CARGO_BUILD_JOBS:-2} NFT_FUZZ_PROFILE=dev fuzz/run.sh $(FUZZ_SECONDS)

unit-and-e2e:
	$(CARGO) test --locked --workspace --exclude nft-ebpf
