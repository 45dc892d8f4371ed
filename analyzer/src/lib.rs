//! nft-analyzer: reads nft-tracer recordings anywhere (no root, no BTF, no
//! kernel) and does the heavy work with DataFusion.
//!
//! Data flow: [`recording`] opens and checks a directory → [`catalog`]
//! registers its tables (and [`rulesets`]' chains and rules) in a DataFusion
//! session → [`queries`] holds the shipped SQL → [`traces`] and [`stats`]
//! run it and shape the results ([`result_columns`] reads their columns);
//! [`diff`] compares two recordings' traces; [`output`] and [`shell`] print
//! query results; [`report`] draws a recording or a diff as an HTML page
//! (and serves it); [`synth`] makes synthetic recordings for the benchmark.

pub mod catalog;
pub mod diff;
pub mod output;
pub mod queries;
pub mod recording;
pub mod report;
pub mod result_columns;
pub mod rulesets;
pub mod safe_read;
pub mod shell;
pub mod stats;
pub mod synth;
pub mod traces;
