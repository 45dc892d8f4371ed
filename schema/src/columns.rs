//! Column names of the recording's Parquet tables. No other crate spells a
//! column name: the recorder writes with these and the analyzer (and the SQL
//! in `queries/`, checked by a test) reads with them.

/// `events` table: one row per [`crate::raw::SkbEvent`].
pub mod events {
    pub const TS_NS: &str = "ts_ns";
    pub const SKB: &str = "skb";
    pub const PROBE_ID: &str = "probe_id";
    pub const KIND: &str = "kind";
    pub const CPU: &str = "cpu";
    pub const NETNS: &str = "netns";
    pub const IFINDEX: &str = "ifindex";
    pub const MARK: &str = "mark";
    pub const LEN: &str = "len";
    pub const PROTOCOL: &str = "protocol";
}

/// `probes` table: what each `probe_id` is.
pub mod probes {
    pub const PROBE_ID: &str = "probe_id";
    pub const KIND: &str = "kind";
    pub const NAME: &str = "name";
}

/// `losses` table: events that could not be delivered, per CPU and reason.
pub mod losses {
    pub const CPU: &str = "cpu";
    pub const REASON: &str = "reason";
    pub const COUNT: &str = "count";
}
