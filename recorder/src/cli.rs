//! Command-line interface of `nft-recorder`: every subcommand and flag is
//! documented here, which is also what `--help` prints.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "nft-recorder",
    version,
    about = "Record what the Linux kernel does to packets, into compact Parquet recordings",
    long_about = "Record what the Linux kernel does to packets: kernel functions, tracepoints, \
                  nftables chains and rule verdicts, and drops with their reason, into a \
                  recording directory of zstd Parquet files. Analyse it anywhere with nft-analyzer."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Record packets into a recording directory (tracepoints, nftrace,
    /// kernel functions, nftables hooks).
    #[command(disable_help_flag = false)]
    Record {
        /// Anything after `record`; not parsed yet.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
    /// List the kernel functions that take a `struct sk_buff *`, from BTF,
    /// with their priority and layer.
    Discover {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
    /// Say what the running kernel allows for each backend (BTF, tp_btf
    /// tracepoints, kprobe, kprobe.multi, fentry, nftrace), by trying each for
    /// real.
    ///
    /// Exits 0 when at least tracepoints work, 1 otherwise. Needs root for
    /// the eBPF checks.
    Check,
}

/// Exit code of a subcommand that is not built yet.
const NOT_BUILT: u8 = 2;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check => {
            let report = nft_recorder::check::run();
            print!("{}", report.render());
            Ok(if report.auto_backend().is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Record { .. } => not_built("record", "recorder part 1 (issue 3)"),
        Command::Discover { .. } => not_built("discover", "recorder part 2 (issue 5)"),
    }
}

fn not_built(name: &str, by: &str) -> anyhow::Result<ExitCode> {
    eprintln!("nft-recorder {name}: not built yet (comes with {by})");
    Ok(ExitCode::from(NOT_BUILT))
}
