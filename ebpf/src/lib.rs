//! Library target so the recorder can name this crate as a build-dependency
//! (cargo rebuilds the recorder when it changes); the programs are in main.rs.
#![no_std]
