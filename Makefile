# The two commands of the README, and the steps they are made of.
#   make demo   set up, build, and run the built-in demo
#   make test   set up, lint, build, and run every test (what CI runs)
# Everything runs as root: set-up installs packages, the tests load eBPF and
# make network namespaces.

CARGO ?= cargo
# One profile for lint, build and test, so dependencies compile once.
PROFILE := --release

.PHONY: demo test setup build lint fmt-check clippy clippy-ebpf unit-and-e2e

demo: setup build
	scripts/demo.sh

test: setup lint build unit-and-e2e

setup:
	scripts/setup.sh

build:
	$(CARGO) build $(PROFILE) --locked

lint: fmt-check clippy clippy-ebpf

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy $(PROFILE) --locked --workspace --exclude nft-ebpf --all-targets -- -D warnings

# The eBPF crate only builds for the BPF target with nightly.
clippy-ebpf:
	$(CARGO) +nightly clippy $(PROFILE) --locked -p nft-ebpf --target bpfel-unknown-none \
		-Z build-std=core -- -D warnings

unit-and-e2e:
	$(CARGO) test $(PROFILE) --locked --workspace --exclude nft-ebpf
