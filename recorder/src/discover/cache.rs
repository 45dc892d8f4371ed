//! The function cache `discover --output FILE` writes and
//! `record --functions FILE` reads: the discovered list (name, skb
//! parameter position, priority, layer) as JSON, so a recording can skip
//! discovery or use a hand-edited list.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DiscoveredFunction;

/// Tells a cache file apart from other JSON.
pub const FORMAT: &str = "nft-tracer-functions";
/// Bumped when the file's shape changes.
pub const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct CacheFile {
    pub format: String,
    pub version: u32,
    /// `uname -r` of the kernel discovery ran on, or the BTF file's path.
    pub kernel: String,
    pub functions: Vec<DiscoveredFunction>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a function cache written by `nft-recorder discover --output`: {reason}"
    )]
    Format { path: PathBuf, reason: String },
}

pub fn write(
    path: &Path,
    kernel: &str,
    functions: &[DiscoveredFunction],
) -> Result<(), CacheError> {
    let file = CacheFile {
        format: FORMAT.into(),
        version: VERSION,
        kernel: kernel.into(),
        functions: functions.to_vec(),
    };
    let text = serde_json::to_string_pretty(&file).expect("the cache serialises");
    std::fs::write(path, text + "\n").map_err(|source| CacheError::Io {
        path: path.to_owned(),
        source,
    })
}

pub fn read(path: &Path) -> Result<CacheFile, CacheError> {
    let text = std::fs::read_to_string(path).map_err(|source| CacheError::Io {
        path: path.to_owned(),
        source,
    })?;
    let format = |reason: String| CacheError::Format {
        path: path.to_owned(),
        reason,
    };
    let file: CacheFile = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
    if file.format != FORMAT {
        return Err(format(format!("format is {:?}", file.format)));
    }
    if file.version > VERSION {
        return Err(format(format!(
            "version {} is newer than this recorder's {VERSION}",
            file.version
        )));
    }
    if let Some(f) = file
        .functions
        .iter()
        .find(|f| !(1..=5).contains(&f.skb_pos))
    {
        return Err(format(format!(
            "{} has skb_pos {}, outside 1..=5",
            f.name, f.skb_pos
        )));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::Layer;

    #[test]
    fn round_trip_and_bad_files() {
        let dir = std::env::temp_dir().join(format!("nft-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("functions.json");
        let f = DiscoveredFunction {
            name: "ip_rcv".into(),
            skb_pos: 1,
            priority: 0,
            layer: Layer::IPv4,
            module: None,
        };
        write(&path, "6.1.0", std::slice::from_ref(&f)).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.functions, vec![f]);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("\"layer\": \"IPv4\""));

        std::fs::write(
            &path,
            "{\"format\":\"x\",\"version\":1,\"kernel\":\"\",\"functions\":[]}",
        )
        .unwrap();
        assert!(read(&path)
            .unwrap_err()
            .to_string()
            .contains("format is \"x\""));
        std::fs::write(&path, "not json").unwrap();
        assert!(read(&path)
            .unwrap_err()
            .to_string()
            .contains("not a function cache"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
