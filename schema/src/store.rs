//! A fleet URL turned into an object store and a key prefix, the same for
//! the recorder's push and the analyzer's reads:
//! `s3://bucket/prefix` (configured from the usual `AWS_*` variables:
//! `AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP` for a local server) or
//! `file:///dir` (a local or mounted directory).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::aws::AmazonS3ConfigKey::Client;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};

use std::format;
use std::prelude::rust_2021::*;
use std::string::String;

/// A URL this crate cannot open.
#[derive(Debug)]
pub struct UrlError {
    pub url: String,
    pub why: String,
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.url, self.why)
    }
}

impl std::error::Error for UrlError {}

/// Whether an argument names object storage rather than a local path.
pub fn is_url(arg: &str) -> bool {
    arg.starts_with("s3://") || arg.starts_with("file://")
}

/// An opened fleet URL.
pub struct Destination {
    pub store: Arc<dyn ObjectStore>,
    /// The key prefix under the store (the URL's path).
    pub prefix: Path,
    /// The URL as given, without a trailing `/`.
    pub url: String,
    /// The store's own URL (`s3://bucket`, `file:///dir`): keys are below it.
    pub root: String,
    /// The directory of a `file://` store: object ETags there say nothing
    /// about content, so objects are hashed from here.
    pub local_root: Option<std::path::PathBuf>,
}

/// Opens `url`. A request that has no answer within `request_timeout`
/// fails, and each is retried with exponential backoff for up to
/// `retry_timeout` before it fails for good. `create` makes a `file://` directory
/// that is not there (a push); a reader is told it is missing instead.
pub fn open(
    url: &str,
    request_timeout: Duration,
    retry_timeout: Duration,
    create: bool,
) -> Result<Destination, UrlError> {
    let bad = |why: String| UrlError {
        url: url.to_string(),
        why,
    };
    let trimmed = url.trim_end_matches('/').to_string();
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket".into()));
        }
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: 10,
            retry_timeout,
        };
        // Client options go in as config keys: `with_client_options` would
        // drop what `from_env` read (AWS_ALLOW_HTTP among them).
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry)
            .with_config(Client(ClientConfigKey::ConnectTimeout), "5s")
            .with_config(
                Client(ClientConfigKey::Timeout),
                format!("{}ms", request_timeout.as_millis()),
            )
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let prefix = Path::parse(path).map_err(|e| bad(e.to_string()))?;
        return Ok(Destination {
            store: Arc::new(store),
            prefix,
            url: trimmed,
            root: format!("s3://{bucket}"),
            local_root: None,
        });
    }
    if let Some(dir) = url.strip_prefix("file://") {
        if !dir.starts_with('/') {
            return Err(bad("a file:// URL needs an absolute path".into()));
        }
        if create {
            std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
        } else if !std::path::Path::new(dir).is_dir() {
            return Err(bad("no such directory".into()));
        }
        let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(e.to_string()))?;
        return Ok(Destination {
            store: Arc::new(store),
            prefix: Path::default(),
            url: trimmed,
            root: format!("file://{}", dir.trim_end_matches('/')),
            local_root: Some(dir.into()),
        });
    }
    Err(bad("expected s3://BUCKET/PREFIX or file:///DIR".into()))
}
