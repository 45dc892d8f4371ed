//! The DataFusion session over one or more recordings: every table of the
//! recording format (`events`, `nftrace`, `probes`, `drop_reasons`,
//! `losses`, `interfaces`) plus the analyzer's own (`recordings`, `chains`,
//! `rules`), each with a `recording` column so recordings can be queried
//! together, and the helper views of `queries/views/`.
//!
//! Each recording's files are registered in the schema `parts`
//! (`parts.events_0`, ...); the public tables are views that union them and
//! add the `recording` column.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use nft_schema::columns::RECORDING;
use nft_schema::tables::{self, names};

use nft_reader::conform::conform;

use crate::queries;
use crate::recording::{open_all, OpenError, Recording};
use crate::rulesets::{self, RulesetError};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Ruleset(#[from] RulesetError),
    #[error("registering {what}: {source}")]
    DataFusion {
        what: String,
        source: DataFusionError,
    },
}

/// A query that failed, named (the library's name or a part of one).
#[derive(Debug, thiserror::Error)]
#[error("query {query}: {source}")]
pub struct QueryError {
    pub query: &'static str,
    pub source: DataFusionError,
}

/// How the session may use the machine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Memory DataFusion may use before it spills sorts and aggregations to
    /// disk.
    pub memory_limit: usize,
    /// Where spill files go (default: the system temp dir).
    pub spill_dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            memory_limit: 1536 << 20,
            spill_dir: None,
        }
    }
}

/// Opened recordings and the session whose tables cover them.
pub struct Catalog {
    pub ctx: SessionContext,
    pub recordings: Vec<Recording>,
    /// The local copies of recordings named by URLs (kept while the session
    /// reads them).
    pub fetched: Vec<crate::fleet::Fetched>,
}

impl Catalog {
    pub async fn open(dirs: &[PathBuf], settings: &Settings) -> Result<Self, CatalogError> {
        let recordings = open_all(dirs)?;
        let df = |what: &str| {
            let what = what.to_owned();
            move |source| CatalogError::DataFusion { what, source }
        };
        let mut runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(settings.memory_limit)));
        if let Some(dir) = &settings.spill_dir {
            runtime = runtime.with_temp_file_path(dir);
        }
        let runtime = runtime.build_arc().map_err(df("the runtime"))?;
        // No statistics from the files' footers: they are the recording's
        // word, not its data (a count would be answered from a footer
        // without reading a page), and DataFusion 55 fails an internal
        // assertion on min/max statistics of a dictionary column (a
        // recording rewritten by pyarrow; tests/e2e/damaged_recordings.rs).
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_collect_statistics(false);
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        ctx.sql("CREATE SCHEMA parts")
            .await
            .map_err(df("schema parts"))?;

        let segmented: [(&str, SchemaRef); 2] = [
            (names::EVENTS, tables::events_schema()),
            (names::NFTRACE, tables::nftrace_schema()),
        ];
        for (table, schema) in segmented {
            let mut parts = Vec::new();
            for (i, rec) in recordings.iter().enumerate() {
                let (closed, open) = match table {
                    names::EVENTS => (&rec.event_segments, &rec.open_events),
                    _ => (&rec.nftrace_segments, &rec.open_nftrace),
                };
                let mut register = |suffix: &str, provider: Arc<dyn TableProvider>| {
                    let part = format!("parts.{table}_{suffix}{i}");
                    ctx.register_table(part.as_str(), provider)
                        .map_err(df(&part))?;
                    parts.push((part, rec.name.clone()));
                    Ok::<_, CatalogError>(())
                };
                if !closed.is_empty() {
                    register("", parquet_files(closed, &schema).map_err(df(table))?)?;
                }
                if !open.is_empty() {
                    let rows = open
                        .iter()
                        .map(|b| conform(b, &schema).map_err(DataFusionError::from))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(df(table))?;
                    register(
                        "open_",
                        Arc::new(MemTable::try_new(schema.clone(), vec![rows]).map_err(df(table))?),
                    )?;
                }
            }
            union_view(&ctx, table, &schema, &parts).await?;
        }

        for table in [
            names::PROBES,
            names::DROP_REASONS,
            names::LOSSES,
            names::INTERFACES,
            names::STACKS,
        ] {
            let schema = dimension_schema(table);
            let mut parts = Vec::new();
            for (i, rec) in recordings.iter().enumerate() {
                if let Some(path) = rec.dimension(table) {
                    let part = format!("parts.{table}_{i}");
                    let provider = parquet_files(&[path], &schema).map_err(df(table))?;
                    ctx.register_table(part.as_str(), provider)
                        .map_err(df(&part))?;
                    parts.push((part, rec.name.clone()));
                }
            }
            union_view(&ctx, table, &schema, &parts).await?;
        }

        // Analyzer tables: already carry `recording`.
        let mut chain_rows = Vec::new();
        let mut rule_rows = Vec::new();
        for rec in &recordings {
            let (c, r) = rulesets::tables(rec)?;
            chain_rows.push(c);
            rule_rows.push(r);
        }
        let recordings_batch = recordings_batch(&recordings).map_err(df(names::RECORDINGS))?;
        for (table, schema, rows) in [
            (names::CHAINS, tables::chains_schema(), chain_rows),
            (names::RULES, tables::rules_schema(), rule_rows),
            (
                names::RECORDINGS,
                tables::recordings_schema(),
                vec![recordings_batch],
            ),
        ] {
            let mem = MemTable::try_new(schema, vec![rows]).map_err(df(table))?;
            ctx.register_table(table, Arc::new(mem))
                .map_err(df(table))?;
        }

        for view in queries::VIEWS {
            ctx.sql(view.sql)
                .await
                .map_err(df(&format!("view {}", view.name)))?;
        }
        Ok(Self {
            ctx,
            recordings,
            fetched: Vec::new(),
        })
    }

    /// Runs `sql` (the query called `name`, for errors) to the end.
    pub async fn collect(
        &self,
        sql: &str,
        name: &'static str,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let err = |source| QueryError {
            query: name,
            source,
        };
        self.ctx
            .sql(sql)
            .await
            .map_err(err)?
            .collect()
            .await
            .map_err(err)
    }

    /// Everything the user should know before trusting results.
    pub fn warnings(&self) -> impl Iterator<Item = &str> {
        self.recordings
            .iter()
            .flat_map(|r| r.warnings.iter().map(String::as_str))
    }

    /// Why results over these recordings are partial: damaged or missing
    /// parts, lost events, an unclean end (each also a warning). Empty:
    /// the input is complete.
    pub fn incomplete(&self) -> impl Iterator<Item = &str> {
        self.recordings
            .iter()
            .flat_map(|r| r.incomplete.iter().map(String::as_str))
    }

    /// Whether any recording is incomplete.
    pub fn is_partial(&self) -> bool {
        self.recordings.iter().any(|r| r.is_incomplete())
    }
}

fn dimension_schema(table: &str) -> SchemaRef {
    match table {
        names::PROBES => tables::probes_schema(),
        names::DROP_REASONS => tables::drop_reasons_schema(),
        names::LOSSES => tables::losses_schema(),
        names::STACKS => tables::stacks_schema(),
        _ => tables::interfaces_schema(),
    }
}

/// A table over explicit Parquet files with the schema crate's schema: an
/// older recording whose files lack a newer nullable column reads it as
/// null.
fn parquet_files(
    files: &[PathBuf],
    schema: &SchemaRef,
) -> Result<Arc<dyn TableProvider>, DataFusionError> {
    let urls = files
        .iter()
        .map(|f| literal_url(f))
        .collect::<Result<Vec<_>, _>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema.clone());
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// A file as a URL DataFusion takes literally. `ListingTableUrl::parse`
/// reads `*`, `?` and `[` in a path as a glob, so a recording named
/// `rec[1]` would read `rec1`'s files instead of its own. The path is made
/// canonical first: object_store refuses a `..` segment (`../rec`).
fn literal_url(path: &std::path::Path) -> Result<ListingTableUrl, DataFusionError> {
    let abs = std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let url = url::Url::from_file_path(&abs).map_err(|()| {
        DataFusionError::Plan(format!("{}: not a usable file path", abs.display()))
    })?;
    ListingTableUrl::try_new(url, None)
}

/// `CREATE VIEW table AS SELECT '<rec>' AS recording, * FROM part UNION ALL
/// ...`; an empty table (with the right columns) when no recording has the
/// table.
async fn union_view(
    ctx: &SessionContext,
    table: &str,
    schema: &SchemaRef,
    parts: &[(String, String)],
) -> Result<(), CatalogError> {
    let df = |source| CatalogError::DataFusion {
        what: table.to_owned(),
        source,
    };
    let mut parts = parts.to_vec();
    if parts.is_empty() {
        let empty = format!("parts.{table}_empty");
        let mem = MemTable::try_new(schema.clone(), vec![vec![]]).map_err(df)?;
        ctx.register_table(empty.as_str(), Arc::new(mem))
            .map_err(df)?;
        parts.push((empty, String::new()));
    }
    let body = parts
        .iter()
        .map(|(part, rec)| format!("SELECT {} AS {RECORDING}, * FROM {part}", sql_string(rec)))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let sql = if parts.len() == 1 && parts[0].1.is_empty() {
        format!("CREATE VIEW {table} AS SELECT * FROM ({body}) WHERE false")
    } else {
        format!("CREATE VIEW {table} AS {body}")
    };
    ctx.sql(&sql).await.map_err(df)?;
    Ok(())
}

/// A SQL string literal.
pub fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn recordings_batch(recs: &[Recording]) -> Result<RecordBatch, DataFusionError> {
    let strs = |f: &dyn Fn(&Recording) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(recs.iter().map(f)))
    };
    let u64s = |f: &dyn Fn(&Recording) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(recs.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        strs(&|r| r.name.clone()),
        strs(&|r| r.dir.display().to_string()),
        Arc::new(UInt32Array::from_iter_values(
            recs.iter().map(|r| r.manifest.schema_version),
        )),
        strs(&|r| r.manifest.tool_version.clone()),
        strs(&|r| r.manifest.host.clone()),
        strs(&|r| r.manifest.kernel_release.clone()),
        strs(&|r| r.manifest.backend.clone()),
        u64s(&|r| r.manifest.started_ns),
        Arc::new(UInt64Array::from_iter(
            recs.iter().map(|r| r.manifest.stopped_ns),
        )),
        Arc::new(Int64Array::from_iter_values(
            recs.iter().map(|r| r.manifest.monotonic_to_unix_ns),
        )),
        u64s(&|r| r.manifest.events),
        u64s(&|r| r.manifest.nftrace_events),
        u64s(&|r| r.manifest.lost_events),
        strs(&|r| r.manifest.end.clone()),
        Arc::new(BooleanArray::from_iter(
            recs.iter().map(|r| Some(r.manifest.ended_cleanly)),
        )),
        strs(&|r| r.manifest.command_line.join(" ")),
    ];
    Ok(RecordBatch::try_new(tables::recordings_schema(), columns)?)
}
