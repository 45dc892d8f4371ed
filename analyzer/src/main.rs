//! `nft-analyzer`: parse arguments, then call the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nft-analyzer: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
