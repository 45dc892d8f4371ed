//! `nft-analyzer diff BASE NEW`: what a change (a ruleset edit, a kernel
//! upgrade, a sysctl) did to the packets. Both recordings go through the
//! same trace pipeline as `traces` ([`profile`] aggregates them per flow,
//! path, hop and drop, after [`normalize`] made them comparable), rule
//! verdicts come from the library's `rule_verdicts` query ([`rules`] matches
//! rules across the two rulesets), [`compare`] finds the differences and
//! [`report`] prints them.

pub mod compare;
pub mod normalize;
pub mod profile;
pub mod report;
pub mod rules;

use indicatif::ProgressBar;

use crate::catalog::Catalog;
use crate::traces::{self, Filter, TracesError};
pub use compare::Tolerances;
use profile::Profiles;
pub use report::{Kind, Report};

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("diff needs exactly two recordings, got {0}")]
    NotTwo(usize),
    /// The trace pipeline or a query failed.
    #[error(transparent)]
    Traces(#[from] TracesError),
    #[error(transparent)]
    Query(#[from] crate::catalog::QueryError),
    #[error("reading query results: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Compares the two recordings of `catalog` (the first is the base).
/// With `exact_flows`, flows are full 5-tuples instead of their service
/// side (see [`normalize::flow`]).
pub async fn run(
    catalog: &Catalog,
    options: &traces::Options,
    tolerances: &Tolerances,
    exact_flows: bool,
    progress: &ProgressBar,
) -> Result<Report, DiffError> {
    let [base, new] = &catalog.recordings[..] else {
        return Err(DiffError::NotTwo(catalog.recordings.len()));
    };
    let mut profiles = Profiles {
        base_name: base.name.clone(),
        base: Default::default(),
        new: Default::default(),
        exact_flows,
    };
    traces::run(
        catalog,
        options,
        &Filter::default(),
        &mut profiles,
        progress,
    )
    .await?;
    let rules = rules::load(catalog, &base.name, &new.name).await?;
    let side = |rec: &crate::recording::Recording, p: &profile::Profile| report::Side {
        recording: rec.name.clone(),
        dir: rec.dir.display().to_string(),
        kernel: rec.manifest.kernel_release.clone(),
        backend: rec.manifest.backend.clone(),
        events: rec.manifest.events,
        traces: p.traces,
        lost_events: rec.manifest.lost_events,
        ended_cleanly: rec.manifest.ended_cleanly,
        in_flight: p.in_flight,
        incomplete_due_to_loss: p.incomplete_due_to_loss,
        incomplete: rec.incomplete.clone(),
    };
    let (base_side, new_side) = (side(base, &profiles.base), side(new, &profiles.new));
    Ok(compare::compare(
        base_side,
        new_side,
        &mut profiles.base,
        &mut profiles.new,
        rules,
        tolerances,
    ))
}
