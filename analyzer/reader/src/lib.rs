//! nft-reader: a recording is untrusted input (copied from another box,
//! often by someone else, and gated on in CI). This crate opens one and
//! checks everything it will read before anything reads it: the manifest
//! (size cap, schema version), every segment's footer and page headers,
//! the tables, the ruleset snapshots, only regular files inside the
//! directory. What is damaged is left out and named, and the recording
//! says it is incomplete. The analyzer reads only what this crate listed.
//!
//! Data flow: [`recording`] opens a directory through [`segments`],
//! [`parquet_check`] (with [`thrift_compact`] for page headers), [`ipc`]
//! (schema 3's open segments) and [`snapshot`], collecting [`notes`];
//! [`safe_read`] opens files; [`conform`] brings old batches to the
//! current schema.

pub mod conform;
pub mod ipc;
pub mod notes;
pub mod parquet_check;
pub mod recording;
pub mod safe_read;
pub mod segments;
pub mod snapshot;
pub mod thrift_compact;
