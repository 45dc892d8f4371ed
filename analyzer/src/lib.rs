//! nft-analyzer: reads nft-tracer recordings anywhere (no root, no BTF, no
//! kernel) and does the heavy work with DataFusion.
//!
//! Data flow: [`recording`] (the `nft-reader` crate) opens and checks a
//! directory → [`catalog`]
//! registers its tables (and [`rulesets`]' chains and rules) in a DataFusion
//! session → [`queries`] holds the shipped SQL → [`traces`] and [`stats`]
//! run it and shape the results ([`result_columns`] reads their columns);
//! [`diff`] compares two recordings' traces; [`output`] and [`shell`] print
//! query results ([`escape`] keeps a recording's strings from driving a
//! terminal); [`report`] draws a recording or a diff as an HTML page
//! (and serves it); [`synth`] makes synthetic recordings for the benchmark.
//! [`fleet`] copies recordings named by URLs (`s3://`, `file://`) into a
//! private local directory first, so they are opened and checked as local
//! ones.

pub mod catalog;
/// Opening and checking a recording lives in its own crate (the fuzzer
/// builds it without DataFusion); re-exported under its old paths.
pub use nft_reader::{recording, safe_read};
pub mod diff;
pub mod escape;
pub mod exit;
pub mod fleet;
pub mod output;
pub mod queries;
pub mod report;
pub mod result_columns;
pub mod rulesets;
pub mod shell;
pub mod stats;
pub mod synth;
pub mod traces;
