//! The one data contract of nft-tracer.
//!
//! Everything that crosses a boundary is defined here and nowhere else:
//! - [`raw`]: the `#[repr(C)]` structs the eBPF programs write into the ring
//!   buffer and the configuration the recorder hands to them (`no_std`, shared
//!   with `nft-ebpf`);
//! - `columns` and `tables` (feature `std`): the Arrow/Parquet column names and
//!   schemas of a recording;
//! - `manifest` (feature `std`): the `recording.json` types;
//! - `files` (feature `std`): the recording directory's file names.
//! - `fleet` (feature `std`): where a recording goes in object storage, and
//!   `store` (feature `store`): the URLs that name that storage.
//!
//! Bump [`SCHEMA_VERSION`] and log the change in `SCHEMA_CHANGES.md` whenever
//! any of these change shape.
#![no_std]

#[cfg(feature = "std")]
extern crate std;

pub mod raw;

#[cfg(feature = "std")]
pub mod columns;
#[cfg(feature = "std")]
pub mod files;
#[cfg(feature = "std")]
pub mod fleet;
#[cfg(feature = "std")]
pub mod manifest;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "std")]
pub mod tables;

/// Version of the recording format (raw events, Parquet tables, manifest).
/// The analyzer refuses recordings with a newer version.
pub const SCHEMA_VERSION: u32 = 4;
