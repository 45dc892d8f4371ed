//! `GET /api/nftables/{tables,chains,rules}?netns=NAME`: the live ruleset
//! of a namespace as `nft -j` lists it, with handles, and for rules the
//! rule text as `nft -a list ruleset` prints it (nft's own printer; the
//! JSON carries expressions, not text).

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;

use super::error::ApiError;
use crate::kernel::netns::{in_netns, netns_path};
use crate::sources::nftrace::table::nft;

#[derive(Clone, Copy, Debug)]
pub enum Listing {
    Tables,
    Chains,
    Rules,
}

impl Listing {
    fn kind(self) -> &'static str {
        match self {
            Listing::Tables => "table",
            Listing::Chains => "chain",
            Listing::Rules => "rule",
        }
    }
}

/// `(family, table, chain, handle)` -> rule text, from `nft -a list ruleset`.
fn rule_texts(text: &str) -> HashMap<(String, String, String, u64), String> {
    let mut out = HashMap::new();
    let (mut family, mut table, mut chain) = (String::new(), String::new(), String::new());
    for line in text.lines() {
        let l = line.trim();
        let (body, handle) = match l.rsplit_once(" # handle ") {
            Some((b, h)) => (b.trim(), h.trim().parse::<u64>().ok()),
            None => (l, None),
        };
        let words: Vec<&str> = body.split_whitespace().collect();
        match words.as_slice() {
            ["table", f, t, "{"] => (family, table) = (f.to_string(), t.to_string()),
            ["chain", c, "{"] => chain = c.to_string(),
            [first, ..] if !chain.is_empty() && handle.is_some() && *first != "chain" => {
                let key = (
                    family.clone(),
                    table.clone(),
                    chain.clone(),
                    handle.unwrap_or(0),
                );
                out.insert(key, body.to_string());
            }
            _ => {}
        }
    }
    out
}

fn list_here(what: Listing) -> Result<Vec<Value>, String> {
    let json = nft(&["-j", "-a", "list", "ruleset"], None).map_err(|e| e.to_string())?;
    let parsed: Value = serde_json::from_str(&json).map_err(|e| format!("nft -j: {e}"))?;
    let texts = match what {
        Listing::Rules => {
            rule_texts(&nft(&["-a", "list", "ruleset"], None).map_err(|e| e.to_string())?)
        }
        _ => HashMap::new(),
    };
    let items = parsed["nftables"].as_array().cloned().unwrap_or_default();
    Ok(items
        .into_iter()
        .filter_map(|item| item.get(what.kind()).cloned())
        .map(|mut obj| {
            if let Listing::Rules = what {
                let key = (
                    obj["family"].as_str().unwrap_or("").to_string(),
                    obj["table"].as_str().unwrap_or("").to_string(),
                    obj["chain"].as_str().unwrap_or("").to_string(),
                    obj["handle"].as_u64().unwrap_or(0),
                );
                if let Some(text) = texts.get(&key) {
                    obj["text"] = text.clone().into();
                }
            }
            obj
        })
        .collect())
}

/// Lists `what` in namespace `netns` (`None`: the server's own).
pub fn list(what: Listing, netns: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let path: Option<PathBuf> = match netns {
        Some(name) => {
            let p = netns_path(name);
            if !p.exists() {
                return Err(ApiError::bad_request(format!(
                    "netns {name}: {} does not exist",
                    p.display()
                )));
            }
            Some(p)
        }
        None => None,
    };
    in_netns(path, move || list_here(what))
        .map_err(|e| ApiError::bad_request(format!("netns: {e}")))?
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_text_is_found_by_table_chain_and_handle() {
        let text = "table inet filter { # handle 3\n\tchain input { # handle 1\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 22 accept # handle 4\n\t}\n}\n";
        let t = rule_texts(text);
        assert_eq!(
            t.get(&("inet".into(), "filter".into(), "input".into(), 4))
                .map(String::as_str),
            Some("tcp dport 22 accept")
        );
        assert_eq!(t.len(), 1);
    }
}
