//! The packet path graph of a recording: every function, tracepoint and
//! nftables chain a packet passed as a node, every observed step from one to
//! the next as an edge, both counted in packets (a packet that loops through
//! a node twice counts once), and each drop as a red node of its reason after
//! the step that dropped it. Each node also keeps which flows went through
//! it, for the page's "click a node" list.

use std::collections::{BTreeMap, HashMap, HashSet};

/// foldhash: a lookup per step of every packet; SipHash was most of the
/// report's time (benches/report.rs).
type Fast = foldhash::fast::FixedState;
use std::sync::Arc;

use serde::Serialize;

use crate::traces::model::Trace;

/// What a node is; the page colours by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Function,
    Tracepoint,
    /// An nftables chain (`family table/chain`), with its hook.
    Chain,
    /// Where packets died, one node per drop reason.
    Drop,
}

/// A node's identity: its kind and name.
pub type Key = (NodeKind, Arc<str>);

/// One step of a packet's path, in time order.
pub struct Step {
    pub key: Key,
    /// ns after the trace's first event.
    pub offset_ns: u64,
    pub hook: Option<Arc<str>>,
}

/// A trace's steps: its functions and tracepoints merged in time with the
/// chains it entered (a new chain each time the nft events change chain),
/// then its drop.
pub fn steps(t: &Trace) -> Vec<Step> {
    let mut out: Vec<(Step, u8)> = t
        .functions_path
        .iter()
        .zip(t.path_offsets_ns.iter().chain(std::iter::repeat(&0)))
        .map(|(name, off)| {
            let step = Step {
                key: (probe_kind(name), name.clone()),
                offset_ns: *off,
                hook: None,
            };
            (step, 1)
        })
        .collect();
    // The kernel stamps an nftrace message when it reaches the recorder,
    // after the packet may be gone: one stamped after the last function is
    // drawn just before it (the chain ran before the packet was freed).
    let last_off = t.path_offsets_ns.last().copied();
    let mut last_chain: Option<Arc<str>> = None;
    for e in &t.nft_events {
        let (Some(table), Some(chain)) = (&e.table, &e.chain) else {
            continue;
        };
        let family = e.family.as_deref().unwrap_or("?");
        let name: Arc<str> = format!("{family} {table}/{chain}").into();
        if last_chain.as_ref() == Some(&name) {
            continue;
        }
        last_chain = Some(name.clone());
        let mut offset_ns = e.timestamp_ns.saturating_sub(t.first_seen_ns);
        let mut order = 2; // after a function of the same ns
        if let Some(last) = last_off.filter(|l| e.source == "nftrace" && offset_ns >= *l) {
            (offset_ns, order) = (last, 0);
        }
        let step = Step {
            key: (NodeKind::Chain, name),
            offset_ns,
            hook: e.hook.clone(),
        };
        out.push((step, order));
    }
    out.sort_by_key(|(s, order)| (s.offset_ns, *order)); // stable
    let mut out: Vec<Step> = out.into_iter().map(|(s, _)| s).collect();
    if let Some(reason) = &t.drop_reason {
        out.push(Step {
            key: (NodeKind::Drop, reason.as_str().into()),
            offset_ns: t.duration_ns,
            hook: None,
        });
    }
    out
}

pub fn probe_kind(name: &str) -> NodeKind {
    if name.contains(':') {
        NodeKind::Tracepoint
    } else {
        NodeKind::Function
    }
}

#[derive(Debug, Default)]
struct NodeAgg {
    packets: u64,
    /// Sum over packets of the step number where it first reached the node.
    position_sum: u64,
    hook: Option<Arc<str>>,
    /// Flow id → packets.
    flows: HashMap<u32, u64, Fast>,
    /// Drop reason → packets dropped right after this node.
    drops: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<Key, NodeAgg, Fast>,
    edges: HashMap<(Key, Key), u64, Fast>,
}

/// The graph as the page gets it.
#[derive(Debug, Serialize)]
pub struct GraphOut {
    pub nodes: Vec<NodeOut>,
    pub edges: Vec<EdgeOut>,
    /// Nodes left out (the least used) to keep the picture readable; their
    /// packets are still in every table.
    pub hidden_nodes: usize,
}

#[derive(Debug, Serialize)]
pub struct NodeOut {
    pub id: usize,
    pub kind: NodeKind,
    pub name: Arc<str>,
    pub hook: Option<Arc<str>>,
    pub packets: u64,
    pub drops: BTreeMap<String, u64>,
    /// Busiest flows through the node: (flow, packets), and how many more.
    pub flows: Vec<(String, u64)>,
    pub more_flows: usize,
    /// Mean position along the paths through it (the page's column).
    pub rank: f64,
}

#[derive(Debug, Serialize)]
pub struct EdgeOut {
    pub from: usize,
    pub to: usize,
    pub packets: u64,
}

impl Graph {
    /// Adds one trace's steps; `flow` is the trace's flow id.
    pub fn add(&mut self, steps: &[Step], flow: u32) {
        let mut seen: HashSet<&Key, Fast> = HashSet::default();
        for (position, s) in steps.iter().enumerate() {
            if !seen.insert(&s.key) {
                continue;
            }
            let n = self.nodes.entry(s.key.clone()).or_default();
            n.packets += 1;
            n.position_sum += position as u64;
            if n.hook.is_none() {
                n.hook = s.hook.clone();
            }
            *n.flows.entry(flow).or_default() += 1;
        }
        let mut seen_edges: HashSet<(&Key, &Key), Fast> = HashSet::default();
        for pair in steps.windows(2) {
            let (a, b) = (&pair[0].key, &pair[1].key);
            if seen_edges.insert((a, b)) {
                *self.edges.entry((a.clone(), b.clone())).or_default() += 1;
            }
            if b.0 == NodeKind::Drop {
                let n = self.nodes.get_mut(a).expect("added above");
                *n.drops.entry(b.1.to_string()).or_default() += 1;
            }
        }
    }

    /// The `max_nodes` busiest nodes, the edges between them, and each
    /// node's `max_flows` busiest flows (named by `flow_name`).
    pub fn output(
        &self,
        max_nodes: usize,
        max_flows: usize,
        flow_name: impl Fn(u32) -> String,
    ) -> GraphOut {
        let mut keys: Vec<&Key> = self.nodes.keys().collect();
        keys.sort_by(|a, b| {
            let (na, nb) = (&self.nodes[*a], &self.nodes[*b]);
            nb.packets.cmp(&na.packets).then_with(|| a.cmp(b))
        });
        let hidden_nodes = keys.len().saturating_sub(max_nodes);
        keys.truncate(max_nodes);
        let ids: HashMap<&Key, usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let mut edges: Vec<EdgeOut> = self
            .edges
            .iter()
            .filter_map(|((a, b), packets)| {
                Some(EdgeOut {
                    from: *ids.get(a)?,
                    to: *ids.get(b)?,
                    packets: *packets,
                })
            })
            .collect();
        edges.sort_by_key(|e| (e.from, e.to));
        let positions: Vec<f64> = keys
            .iter()
            .map(|k| {
                let n = &self.nodes[*k];
                n.position_sum as f64 / n.packets as f64
            })
            .collect();
        let ranks = ranks(&positions, &edges);
        let nodes = keys
            .iter()
            .enumerate()
            .map(|(id, key)| {
                let agg = &self.nodes[*key];
                let mut flows: Vec<(u32, u64)> = agg.flows.iter().map(|(f, c)| (*f, *c)).collect();
                flows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let more_flows = flows.len().saturating_sub(max_flows);
                flows.truncate(max_flows);
                NodeOut {
                    id,
                    kind: key.0,
                    name: key.1.clone(),
                    hook: agg.hook.clone(),
                    packets: agg.packets,
                    drops: agg.drops.clone(),
                    flows: flows.into_iter().map(|(f, c)| (flow_name(f), c)).collect(),
                    more_flows,
                    rank: ranks[id],
                }
            })
            .collect();
        GraphOut {
            nodes,
            edges,
            hidden_nodes,
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.nodes.keys()
    }
}

/// A row for each node: the longest path to it over the edges that go
/// forward in packet order, where a node's place in that order is the mean
/// step at which packets first reach it. Edges against that order (loops,
/// a packet coming back to a function) are drawn as arcs and do not push
/// rows down, so the picture reads top to bottom as packets go.
fn ranks(positions: &[f64], edges: &[EdgeOut]) -> Vec<f64> {
    let n = positions.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| positions[*a].total_cmp(&positions[*b]).then(a.cmp(b)));
    let mut place = vec![0; n];
    for (i, v) in order.iter().enumerate() {
        place[*v] = i;
    }
    let mut forward: Vec<Vec<usize>> = vec![Vec::new(); n];
    for e in edges {
        if place[e.from] < place[e.to] {
            forward[e.from].push(e.to);
        }
    }
    let mut rank = vec![0f64; n];
    for &v in &order {
        for &w in &forward[v] {
            rank[w] = rank[w].max(rank[v] + 1.0);
        }
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        (probe_kind(name), name.into())
    }

    fn steps_of(names: &[&str]) -> Vec<Step> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Step {
                key: key(n),
                offset_ns: i as u64,
                hook: None,
            })
            .collect()
    }

    #[test]
    fn packets_count_once_per_node_and_edge_and_ranks_follow_the_path() {
        let mut g = Graph::default();
        g.add(&steps_of(&["a", "b", "c", "b", "c"]), 0);
        g.add(&steps_of(&["a", "c"]), 1);
        let out = g.output(10, 10, |f| format!("flow{f}"));
        let by_name = |n: &str| out.nodes.iter().find(|x| &*x.name == n).unwrap();
        assert_eq!(by_name("a").packets, 2);
        assert_eq!(by_name("b").packets, 1);
        assert_eq!(by_name("c").packets, 2);
        let edge = |a: &str, b: &str| {
            out.edges
                .iter()
                .find(|e| e.from == by_name(a).id && e.to == by_name(b).id)
                .map(|e| e.packets)
        };
        assert_eq!(
            edge("b", "c"),
            Some(1),
            "a loop's edge counts its packet once"
        );
        assert_eq!(edge("a", "c"), Some(1));
        assert_eq!(edge("c", "b"), Some(1));
        assert_eq!(
            (by_name("a").rank, by_name("b").rank, by_name("c").rank),
            (0.0, 1.0, 2.0)
        );
        assert_eq!(
            by_name("c").flows,
            vec![("flow0".into(), 1), ("flow1".into(), 1)]
        );
    }

    #[test]
    fn the_least_used_nodes_are_hidden_and_said_so() {
        let mut g = Graph::default();
        g.add(&steps_of(&["a", "b"]), 0);
        g.add(&steps_of(&["a"]), 0);
        let out = g.output(1, 10, |f| f.to_string());
        assert_eq!(out.nodes.len(), 1);
        assert_eq!(&*out.nodes[0].name, "a");
        assert_eq!(out.hidden_nodes, 1);
        assert!(out.edges.is_empty());
    }
}
