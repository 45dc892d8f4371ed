//! Recordings in object storage (`s3://…`, `file://…`), read with the same
//! checks as local ones.
//!
//! A URL names one recording (its manifest is right below it) or a fleet
//! prefix holding many in the fleet layout (`nft_schema::fleet`):
//! `…/host=<host>/date=<day>/<id>/`. Narrowing the URL (`…/host=web1/`,
//! `…/host=web1/date=2026-12-03/`) reads only those recordings: the prefix
//! is the partition filter.
//!
//! Each recording found is copied into a private directory of this run
//! (`0700`, removed at exit), laid out the same way, and then opened like
//! any local recording: the reader's checks of manifests, schema versions,
//! segments and pages read whole local files, and copying keeps them the
//! same for remote data. The cost is that every file of the chosen
//! recordings is read once; SQL filters do not prune downloads.

mod fetch;

use std::path::PathBuf;

pub use fetch::Fetched;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Url(#[from] nft_schema::store::UrlError),
    #[error("{url}: {why}")]
    Store { url: String, why: String },
    #[error(
        "{url}: no recording there (no {} below it)",
        nft_schema::manifest::MANIFEST_FILE
    )]
    Empty { url: String },
    #[error("a private copy of {url}: {source}")]
    Local { url: String, source: std::io::Error },
}

/// The recording arguments with every URL replaced by the local copies of
/// the recordings it names; keep it alive while they are read.
pub struct Resolved {
    pub dirs: Vec<PathBuf>,
    pub fetched: Vec<Fetched>,
}

impl Resolved {
    /// A message about a local copy, with the copy's path put back as the
    /// URL it came from.
    pub fn in_urls(&self, text: &str) -> String {
        self.fetched.iter().fold(text.to_string(), |t, f| {
            t.replace(&f.root().display().to_string(), &f.url)
        })
    }
}

/// Resolves every argument: local paths stay, URLs are fetched.
pub async fn resolve(args: &[PathBuf]) -> Result<Resolved, FleetError> {
    let mut dirs = Vec::new();
    let mut fetched = Vec::new();
    for arg in args {
        match arg.to_str().filter(|a| nft_schema::store::is_url(a)) {
            Some(url) => {
                let f = fetch::fetch(url).await?;
                dirs.extend(f.recordings.iter().cloned());
                fetched.push(f);
            }
            None => dirs.push(arg.clone()),
        }
    }
    Ok(Resolved { dirs, fetched })
}
