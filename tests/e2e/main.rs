//! End-to-end suites on the real kernel: one test binary (it compiles once),
//! one module per scenario. They need root, network namespaces and the
//! tools `scripts/setup.sh` installs; CI runs them as root.

mod analyze_recording;
mod check_cli;
mod damaged_recordings;
mod diff_recordings;
mod discover_cli;
mod fleet;
mod fleet_bench;
mod load_bench;
mod nftrace_ipv6;
mod record_filters;
mod record_load;
mod record_nftrace;
mod record_pcap_filter;
mod record_reliability;
mod record_session;
mod record_stacks;
mod record_tracepoints;
mod report_html;
mod serve_api;
mod tp_btf_receive;
mod vm;
mod vm_api;
mod vm_forward;
mod vm_multi;
