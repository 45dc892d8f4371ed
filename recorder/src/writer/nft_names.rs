//! Names for the nft hook's events. The eBPF side reads handles only (no
//! string copies per event); here they become table, chain and target
//! names, and a rule's position in its chain, from the ruleset snapshot
//! (`nft -j -a list ruleset`) taken at start in each traced namespace, the
//! recorder's own table, and a new listing when events refer to something
//! created since.
//! Handles are unique per table, so a rule's handle also names its chain
//! when the kernel does not pass the chain (6.4+).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nft_schema::raw::{NftPart, SkbEvent};

use crate::kernel::netns::enter_netns;
use crate::sources::nftrace::message::family_name;
use crate::sources::nftrace::table;
use serde_json::Value;

/// One table of one namespace.
#[derive(Debug, Default)]
struct Table {
    name: String,
    /// chain handle -> (name, priority of a base chain)
    chains: HashMap<u64, (String, Option<i32>)>,
    /// rule handle -> (chain name, position in the chain from 1)
    rules: HashMap<u64, (String, u32)>,
}

/// What the writer shows for one nft event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub table: Option<&'a str>,
    pub chain: Option<&'a str>,
    pub priority: Option<i32>,
    pub rule_seq: Option<u32>,
    pub target: Option<&'a str>,
}

/// Every snapshot's tables, by (netns inode, NFPROTO family, table handle).
#[derive(Debug, Default)]
pub struct NftNames {
    tables: HashMap<(u32, u8, u64), Table>,
    /// Where each traced namespace's ruleset can be listed again (None: the
    /// recorder's own namespace), to name what was created after the start
    /// snapshot.
    sources: HashMap<u32, Option<PathBuf>>,
    /// When each namespace was last listed again.
    relisted: HashMap<u32, Instant>,
}

/// A namespace is listed again at most this often.
const RELIST_EVERY: Duration = Duration::from_secs(1);

/// `NFPROTO_*` of an nft family name (the inverse of [`family_name`]).
fn family_number(name: &str) -> Option<u8> {
    [1u8, 2, 3, 5, 7, 10]
        .into_iter()
        .find(|&n| family_name(n) == name)
}

/// The netfilter hook name of `nf_hook_state.hook` for a family (IPv4/IPv6/
/// inet share the five IP hooks).
pub fn hook_name(family: u8, hook: u8) -> &'static str {
    match (family, hook) {
        (5, 0) => "ingress",
        (5, 1) => "egress",
        (3, 0) => "input",
        (3, 1) => "output",
        (_, 0) => "prerouting",
        (_, 1) => "input",
        (_, 2) => "forward",
        (_, 3) => "output",
        (_, 4) => "postrouting",
        (_, 5) => "ingress",
        _ => "unknown",
    }
}

impl NftNames {
    /// Adds the snapshot of the namespace with inode `netns`.
    pub fn add_snapshot(&mut self, netns: u32, json: &str) -> Result<(), serde_json::Error> {
        let doc: Value = serde_json::from_str(json)?;
        let items = doc["nftables"].as_array().cloned().unwrap_or_default();
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        // (family, table name) -> table handle
        let mut handles: HashMap<(u8, String), u64> = HashMap::new();
        let mut positions: HashMap<(u8, String, String), u32> = HashMap::new();
        for item in &items {
            if let Some(t) = item.get("table") {
                let (Some(f), Some(name), Some(h)) = (
                    s(t, "family").as_deref().and_then(family_number),
                    s(t, "name"),
                    t.get("handle").and_then(Value::as_u64),
                ) else {
                    continue;
                };
                handles.insert((f, name.clone()), h);
                self.tables.insert(
                    (netns, f, h),
                    Table {
                        name,
                        ..Table::default()
                    },
                );
            }
        }
        let key = |v: &Value| -> Option<(u32, u8, u64)> {
            let f = s(v, "family").as_deref().and_then(family_number)?;
            let h = *handles.get(&(f, s(v, "table")?))?;
            Some((netns, f, h))
        };
        for item in &items {
            if let Some(c) = item.get("chain") {
                let (Some(t), Some(name), Some(h)) = (
                    key(c).and_then(|k| self.tables.get_mut(&k)),
                    s(c, "name"),
                    c.get("handle").and_then(Value::as_u64),
                ) else {
                    continue;
                };
                let prio = c.get("prio").and_then(Value::as_i64).map(|p| p as i32);
                t.chains.insert(h, (name, prio));
            } else if let Some(r) = item.get("rule") {
                let (Some(k), Some(chain), Some(h)) = (
                    key(r),
                    s(r, "chain"),
                    r.get("handle").and_then(Value::as_u64),
                ) else {
                    continue;
                };
                let Some(t) = self.tables.get_mut(&k) else {
                    continue;
                };
                let f = k.1;
                let pos = positions
                    .entry((f, t.name.clone(), chain.clone()))
                    .or_insert(0);
                *pos += 1;
                t.rules.insert(h, (chain, *pos));
            }
        }
        Ok(())
    }

    /// Says where the ruleset of namespace `netns` can be listed again.
    pub fn add_source(&mut self, netns: u32, path: Option<PathBuf>) {
        self.sources.insert(netns, path);
    }

    /// Whether the snapshots name everything `p` refers to.
    fn knows(&self, netns: u32, p: &NftPart) -> bool {
        let Some(t) = self.tables.get(&(netns, p.family, p.table_handle)) else {
            return false;
        };
        (p.chain_handle == 0 || t.chains.contains_key(&p.chain_handle))
            && (p.rule_handle == 0 || t.rules.contains_key(&p.rule_handle))
            && (p.target_handle == 0 || t.chains.contains_key(&p.target_handle))
    }

    /// Lists the ruleset again in each namespace where an event refers to
    /// a table, chain or rule the snapshots do not know (created since), so
    /// it is named from then on. At most once a second per namespace; the
    /// events before a listing keep null names. The listing runs on a
    /// short-lived thread that enters the namespace (setns is per thread:
    /// the writer's own thread stays where it is).
    pub fn refresh_unknown(&mut self, events: &[SkbEvent], nft: &[(u32, NftPart)]) {
        let mut stale: Vec<u32> = Vec::new();
        for (at, p) in nft {
            let Some(e) = events.get(*at as usize) else {
                continue;
            };
            if !stale.contains(&e.netns) && !self.knows(e.netns, p) {
                stale.push(e.netns);
            }
        }
        for netns in stale {
            let Some(path) = self.sources.get(&netns).cloned() else {
                continue;
            };
            if self
                .relisted
                .get(&netns)
                .is_some_and(|t| t.elapsed() < RELIST_EVERY)
            {
                continue;
            }
            self.relisted.insert(netns, Instant::now());
            let listed = std::thread::scope(|s| {
                s.spawn(|| -> Result<String, String> {
                    if let Some(path) = &path {
                        enter_netns(path).map_err(|e| format!("{}: {e}", path.display()))?;
                    }
                    table::nft(&["-j", "-a", "list", "ruleset"], None).map_err(|e| e.to_string())
                })
                .join()
                .unwrap_or_else(|_| Err("the listing thread panicked".into()))
            });
            let added =
                listed.and_then(|json| self.add_snapshot(netns, &json).map_err(|e| e.to_string()));
            if let Err(e) = added {
                tracing::warn!("nft hook names: listing the ruleset of netns {netns} again: {e}");
            }
        }
    }

    /// Names for an nft event seen in namespace `netns`. What the snapshots
    /// do not know (a table created after the last listing) stays `None`.
    pub fn resolve(&self, netns: u32, p: &NftPart) -> Resolved<'_> {
        let mut r = Resolved::default();
        let Some(t) = self.tables.get(&(netns, p.family, p.table_handle)) else {
            return r;
        };
        r.table = Some(&t.name);
        let by_rule = t.rules.get(&p.rule_handle).filter(|_| p.rule_handle != 0);
        let chain = t
            .chains
            .get(&p.chain_handle)
            .filter(|_| p.chain_handle != 0);
        r.chain = chain
            .map(|c| c.0.as_str())
            .or(by_rule.map(|(c, _)| c.as_str()));
        // A base chain's priority, also when the chain is known only by the
        // rule's handle (6.4+ does not pass it): the same on every kernel.
        r.priority = chain.and_then(|c| c.1).or_else(|| {
            let name = r.chain?;
            t.chains.values().find(|c| c.0 == name).and_then(|c| c.1)
        });
        r.rule_seq = by_rule.map(|(_, pos)| *pos);
        r.target = t
            .chains
            .get(&p.target_handle)
            .filter(|_| p.target_handle != 0)
            .map(|c| c.0.as_str());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = r#"{"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "fw", "handle": 7}},
        {"chain": {"family": "inet", "table": "fw", "name": "input", "handle": 1,
                   "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
        {"chain": {"family": "inet", "table": "fw", "name": "icmp_chain", "handle": 2}},
        {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 3, "expr": []}},
        {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 5, "expr": []}},
        {"rule": {"family": "inet", "table": "fw", "chain": "icmp_chain", "handle": 4, "expr": []}}
    ]}"#;

    #[test]
    fn handles_become_names_and_positions() {
        let mut n = NftNames::default();
        n.add_snapshot(42, SNAPSHOT).unwrap();
        // A rule of a regular chain, chain not passed (6.4+), jumping.
        let jump = NftPart {
            table_handle: 7,
            rule_handle: 3,
            target_handle: 2,
            family: 1,
            verdict: -3,
            ..NftPart::default()
        };
        assert_eq!(
            n.resolve(42, &jump),
            Resolved {
                table: Some("fw"),
                chain: Some("input"),
                // The base chain's, found by the rule's chain name.
                priority: Some(0),
                rule_seq: Some(1),
                target: Some("icmp_chain"),
            }
        );
        let r = n.resolve(
            42,
            &NftPart {
                rule_handle: 4,
                ..jump
            },
        );
        assert_eq!((r.chain, r.rule_seq), (Some("icmp_chain"), Some(1)));
        // A policy: no rule, the base chain passed.
        let policy = NftPart {
            table_handle: 7,
            chain_handle: 1,
            family: 1,
            verdict: 1,
            ..NftPart::default()
        };
        let r = n.resolve(42, &policy);
        assert_eq!(
            (r.chain, r.priority, r.rule_seq),
            (Some("input"), Some(0), None)
        );
        // Another namespace, another table: unknown, not misnamed.
        assert_eq!(n.resolve(43, &policy).table, None);
    }

    #[test]
    fn names_of_numbers() {
        assert_eq!(hook_name(1, 1), "input");
        assert_eq!(hook_name(2, 4), "postrouting");
        assert_eq!(family_number("ip6"), Some(10));
        assert_eq!(family_number("nope"), None);
    }
}
