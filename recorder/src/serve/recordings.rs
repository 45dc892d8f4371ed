//! `GET /api/recordings` and `GET /api/recordings/{id}/archive`: the
//! finished recordings under `--data`, and one as a tar stream to copy it
//! off the box. The tar is written on a blocking thread into a bounded
//! channel, so a large recording never sits in memory.

use std::io::Write;
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use serde_json::{json, Value};

use super::error::ApiError;
use nft_schema::manifest::{Manifest, MANIFEST_FILE};

/// Every directory under `data` with a manifest, newest first.
pub fn list(data: &Path) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(data) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, Value)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join(MANIFEST_FILE)).ok()?;
            let m = Manifest::from_json(&text).ok()?;
            let started = (m.started_ns as i64 + m.monotonic_to_unix_ns).max(0) as u64;
            let v = json!({
                "id": e.file_name().to_string_lossy(),
                "host": m.host,
                "kernel_release": m.kernel_release,
                "mode": m.mode,
                "backend": m.backend,
                "started_unix_ns": started,
                "events": m.events,
                "nftrace_events": m.nftrace_events,
                "lost_events": m.lost_events,
                "end": m.end,
                "ended_cleanly": m.ended_cleanly,
            });
            Some((started, v))
        })
        .collect();
    out.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    out.into_iter().map(|(_, v)| v).collect()
}

/// A `Write` that hands what it is given to the response body.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::other("the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn write_tar(dir: &Path, id: &str, out: ChannelWriter) -> std::io::Result<()> {
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(256 << 10, out));
    tar.follow_symlinks(false);
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    names.sort();
    for path in names {
        let name = Path::new(id).join(path.file_name().unwrap_or_default());
        tar.append_path_with_name(&path, name)?;
    }
    tar.into_inner()?.flush()
}

/// The recording `id` under `data` as a tar stream (`<id>/<file>`).
pub fn archive(data: &Path, id: &str) -> Result<Body, ApiError> {
    let dir = data.join(id);
    let meta = std::fs::symlink_metadata(&dir)
        .map_err(|_| ApiError::not_found(format!("no recording {id}")))?;
    if !meta.is_dir() || !dir.join(MANIFEST_FILE).exists() {
        return Err(ApiError::not_found(format!("no recording {id}")));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let id = id.to_string();
    tokio::task::spawn_blocking(move || {
        let err_tx = tx.clone();
        if let Err(e) = write_tar(&dir, &id, ChannelWriter(tx)) {
            let _ = err_tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok(Body::from_stream(stream))
}
