//! The shipped SQL of `queries/`, compiled into the binary so the analyzer
//! runs anywhere; `nft-analyzer queries` lists them and `sql --query NAME`
//! runs one. Parameters (`$timeout_ns`, ...) are replaced by their values
//! before the SQL runs, so the text stays copyable into DuckDB.

/// A named SQL file.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! queries {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(Query {
            name: $name,
            sql: include_str!(concat!("../../queries/", $dir, $name, ".sql")),
        }),*]
    };
}

/// The query library, by name.
pub const QUERIES: &[Query] = queries!("":
    "drops",
    "rule_verdicts",
    "chain_verdicts",
    "hot_functions",
    "hop_latency",
    "flows",
    "losses",
    "loss_windows",
    "trace_events",
    "nftrace_matches",
    "stacks",
    "events_by_source",
    "events_by_probe",
    "nftrace_messages",
    "verdict_counts",
    "loss_reasons",
);

/// Helper views created in every session (`CREATE VIEW ...`).
pub const VIEWS: &[Query] = queries!("views/": "functions", "verdicts");

/// Values of the parameters the queries may use.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Idle gap after which an skb's next event starts a new trace.
    pub timeout_ns: u64,
    /// Window within which a repeated rule verdict is a duplicate.
    pub dedup_ns: u64,
    /// A free event this long after a free is another packet's.
    pub free_gap_ns: u64,
    /// How far apart in time an nftrace message and its skb event may be.
    pub match_window_ns: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            timeout_ns: 5_000_000_000,
            dedup_ns: 5_000,
            free_gap_ns: 100_000_000,
            match_window_ns: 1_000_000_000,
        }
    }
}

impl Params {
    /// `sql` with every `$name` parameter replaced by its value.
    pub fn bind(&self, sql: &str) -> String {
        sql.replace("$timeout_ns", &self.timeout_ns.to_string())
            .replace("$dedup_ns", &self.dedup_ns.to_string())
            .replace("$free_gap_ns", &self.free_gap_ns.to_string())
            .replace("$match_window_ns", &self.match_window_ns.to_string())
    }
}

pub fn find(name: &str) -> Option<&'static Query> {
    QUERIES.iter().find(|q| q.name == name)
}

/// The SQL of a query of the library, which is compiled in.
pub fn query(name: &str) -> &'static str {
    find(name)
        .unwrap_or_else(|| panic!("query {name} is compiled in"))
        .sql
}

impl Query {
    /// What the query answers: its leading comment, as one line.
    pub fn summary(&self) -> String {
        self.sql
            .lines()
            .take_while(|l| l.starts_with("--"))
            .map(|l| l.trim_start_matches('-').trim())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sql_file_is_shipped_and_documented() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../queries");
        for (sub, list) in [("", QUERIES), ("views", VIEWS)] {
            let mut on_disk: Vec<String> = std::fs::read_dir(format!("{dir}/{sub}"))
                .unwrap()
                .filter_map(|e| {
                    let name = e.unwrap().file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".sql").map(str::to_owned)
                })
                .collect();
            on_disk.sort();
            let mut shipped: Vec<String> = list.iter().map(|q| q.name.to_owned()).collect();
            shipped.sort();
            assert_eq!(on_disk, shipped, "queries/{sub}");
        }
        for q in QUERIES.iter().chain(VIEWS) {
            assert!(q.summary().len() > 20, "{} has no header comment", q.name);
        }
    }

    #[test]
    fn the_recorder_table_is_spelled_as_the_schema_says() {
        let quoted = format!("'{}'", nft_schema::tables::RECORDER_NFT_TABLE);
        for name in ["nftrace_matches", "verdicts"] {
            let q = QUERIES
                .iter()
                .chain(VIEWS)
                .find(|q| q.name == name)
                .unwrap();
            assert!(q.sql.contains(&quoted), "{name}");
        }
    }

    #[test]
    fn bind_replaces_every_parameter() {
        for q in QUERIES {
            let bound = Params::default().bind(q.sql);
            assert!(!bound.contains('$'), "{}: unbound parameter", q.name);
        }
    }
}
