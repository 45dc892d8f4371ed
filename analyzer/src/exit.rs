//! How a command ended, as one exit code for scripts and CI:
//! 0 complete, 1 a gate (`diff --fail-on`) found what it gates on, 2 an
//! error, 3 partial input under a gate or `--strict`. A partial result is
//! always printed as partial; without a gate or `--strict` it exits 0, so
//! a person still sees what there is.

use std::process::ExitCode;

use crate::catalog::Catalog;
use crate::diff;

pub const COMPLETE: u8 = 0;
pub const GATE_FAILED: u8 = 1;
pub const ERROR: u8 = 2;
pub const PARTIAL: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// The input had parts missing; the output said so.
    Partial,
    /// A gate found a difference it gates on, over complete input.
    GateFailed,
    /// A gate ran over partial input: it cannot pass.
    GateOnPartial,
}

impl Outcome {
    /// Complete or partial, as the catalog's recordings are; a partial one
    /// is said once more on stderr, with why.
    pub fn of(catalog: &Catalog) -> Self {
        if !catalog.is_partial() {
            return Outcome::Complete;
        }
        let reasons: Vec<&str> = catalog.incomplete().collect();
        eprintln!(
            "nft-analyzer: PARTIAL input ({} thing(s) missing, in the warnings above): \
             the results cover only what could be read",
            reasons.len()
        );
        Outcome::Partial
    }

    /// A `diff` with `--fail-on kinds` (none: no gate).
    pub fn of_gate(report: &diff::Report, kinds: &[diff::Kind], partial: bool) -> Self {
        match (kinds.is_empty(), partial) {
            (true, false) => Outcome::Complete,
            (true, true) => Outcome::Partial,
            (false, true) => {
                eprintln!(
                    "nft-analyzer: the gate fails: the input is PARTIAL (see the warnings), \
                     so no difference can be ruled out"
                );
                Outcome::GateOnPartial
            }
            (false, false) if report.has_any(kinds) => Outcome::GateFailed,
            (false, false) => Outcome::Complete,
        }
    }

    pub fn exit_code(self, strict: bool) -> ExitCode {
        ExitCode::from(match self {
            Outcome::Complete => COMPLETE,
            Outcome::Partial if strict => PARTIAL,
            Outcome::Partial => COMPLETE,
            Outcome::GateFailed => GATE_FAILED,
            Outcome::GateOnPartial => PARTIAL,
        })
    }
}
