//! The API's bearer token: read from the token file, or made (32 random
//! bytes, hex) and written there with mode 0600 when the file does not
//! exist. Compared in constant time.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::ServeError;

pub struct Token(String);

impl Token {
    pub fn load_or_create(path: &Path) -> Result<Self, ServeError> {
        let err = |why: String| ServeError::Token {
            path: path.to_owned(),
            why,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) => {
                if !meta.is_file() {
                    return Err(err("is not a regular file".into()));
                }
                if meta.mode() & 0o077 != 0 {
                    return Err(err(format!(
                        "mode {:o}: others can read the token; chmod 600 it",
                        meta.mode() & 0o777
                    )));
                }
                let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
                let token = text.trim().to_string();
                if token.len() < 16 {
                    return Err(err("holds fewer than 16 characters".into()));
                }
                Ok(Self(token))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| err(e.to_string()))?;
                let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
                    .map_err(|e| err(e.to_string()))?;
                writeln!(file, "{token}").map_err(|e| err(e.to_string()))?;
                Ok(Self(token))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// Whether `header` (an `Authorization` value) carries this token.
    pub fn accepts(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let (a, b) = (given.trim().as_bytes(), self.0.as_bytes());
        // Constant time over the token's length: no early exit on the
        // first differing byte.
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}
