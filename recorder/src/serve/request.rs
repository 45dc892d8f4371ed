//! The body of `POST /api/sessions`: the fields the replaced tool's users
//! send (`session_id`, `mode`, `max_functions`, `pcap_filter`) plus every
//! `record` option, checked strictly (unknown fields are refused) and
//! turned into `RecordOptions`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::error::ApiError;
use crate::filter::FilterArgs;
use crate::record::functions::{BackendChoice, Mode};
use crate::record::{NftHooks, RecordOptions};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub session_id: String,
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default)]
    pub max_functions: usize,
    /// A pcap-filter expression (`record --filter`); empty: none.
    #[serde(default)]
    pub pcap_filter: String,
    #[serde(default)]
    pub netns: Vec<String>,
    pub src_ip: Option<String>,
    pub dst_ip: Option<String>,
    pub host: Option<String>,
    pub src_port: Option<String>,
    pub dst_port: Option<String>,
    pub port: Option<String>,
    pub proto: Option<String>,
    pub mark: Option<String>,
    #[serde(default)]
    pub tracepoints: Vec<String>,
    pub backend: Option<String>,
    /// Seconds.
    pub duration: Option<f64>,
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub ring: bool,
    #[serde(default)]
    pub stack: bool,
    pub nft_hooks: Option<String>,
    #[serde(default)]
    pub no_nftrace: bool,
}

fn default_mode() -> String {
    "full".into()
}

/// `[A-Za-z0-9_.-]{1,64}`, and not `.` or `..` (it names a directory).
pub fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && id != "."
        && id != "..";
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "session id {id:?}: 1 to 64 characters of A-Z a-z 0-9 _ . -"
        )))
    }
}

fn choice<T: clap::ValueEnum>(field: &str, value: &str) -> Result<T, ApiError> {
    T::from_str(value, true).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        ApiError::bad_request(format!(
            "{field} {value:?}: expected one of {}",
            names.join(", ")
        ))
    })
}

impl SessionRequest {
    /// Parses a body; every error is a 400 that says what is wrong.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let req: Self = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
        check_id(&req.session_id)?;
        Ok(req)
    }

    pub fn mode(&self) -> Result<Mode, ApiError> {
        choice("mode", &self.mode)
    }

    /// The options of a recording into `data/<session_id>`.
    pub fn options(&self, data: &Path) -> Result<RecordOptions, ApiError> {
        let mut o = RecordOptions::new(data.join(&self.session_id));
        o.mode = self.mode()?;
        o.max_functions = self.max_functions;
        o.netns = self.netns.clone();
        o.filter = FilterArgs {
            src_ip: self.src_ip.clone(),
            dst_ip: self.dst_ip.clone(),
            host: self.host.clone(),
            src_port: self.src_port.clone(),
            dst_port: self.dst_port.clone(),
            port: self.port.clone(),
            proto: self.proto.clone(),
            mark: self.mark.clone(),
            pcap: Some(self.pcap_filter.trim().to_string()).filter(|e| !e.is_empty()),
        };
        o.tracepoints = self.tracepoints.clone();
        if let Some(b) = &self.backend {
            o.backend = choice::<BackendChoice>("backend", b)?;
        }
        if let Some(h) = &self.nft_hooks {
            o.nft_hooks = choice::<NftHooks>("nft_hooks", h)?;
        }
        if let Some(d) = self.duration {
            if !(d.is_finite() && d > 0.0) {
                return Err(ApiError::bad_request(format!(
                    "duration {d}: must be a positive number of seconds"
                )));
            }
            o.duration = Some(Duration::from_secs_f64(d));
        }
        if self.ring && self.max_bytes.is_none() {
            return Err(ApiError::bad_request("ring: needs max_bytes"));
        }
        o.max_bytes = self.max_bytes;
        o.ring = self.ring;
        o.stacks = self.stack;
        o.nftrace = !self.no_nftrace;
        o.command_line = vec![
            "nft-recorder".into(),
            "serve".into(),
            format!("session {}", self.session_id),
        ];
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_guide_body_parses_and_bad_ones_say_why() {
        let body = br#"{"session_id": "multi_trace_001", "mode": "multi", "max_functions": 500, "pcap_filter": ""}"#;
        let req = SessionRequest::parse(body).unwrap();
        let o = req.options(Path::new("/var/lib/nft-tracer")).unwrap();
        assert_eq!(o.mode, Mode::Multi);
        assert_eq!(o.max_functions, 500);
        assert_eq!(o.output, Path::new("/var/lib/nft-tracer/multi_trace_001"));
        for (bad, why) in [
            (
                &br#"{"session_id": "a", "colour": 1}"#[..],
                "unknown field `colour`",
            ),
            (br#"{"session_id": "../x"}"#, "session id"),
            (br#"{"session_id": ""}"#, "session id"),
            (br#"{"session_id": "a""#, "request body"),
        ] {
            let e = SessionRequest::parse(bad).unwrap_err();
            assert!(e.message.contains(why), "{}", e.message);
        }
        let req = SessionRequest::parse(br#"{"session_id": "a", "mode": "fast"}"#).unwrap();
        let e = req.options(Path::new("/d")).unwrap_err();
        assert!(
            e.message.contains("expected one of nft, full, multi"),
            "{}",
            e.message
        );
    }
}
