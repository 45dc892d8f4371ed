//! `nft-recorder`: parse arguments, then call the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NFT_TRACER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nft-recorder: error: {e:#}");
            // Bad arguments exit 2, as clap does for a flag it cannot parse.
            let bad_input = e
                .downcast_ref::<nft_recorder::record::RecordError>()
                .is_some_and(|e| e.is_bad_input())
                || e.downcast_ref::<cli::UsageError>().is_some();
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}
