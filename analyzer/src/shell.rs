//! `nft-analyzer sql REC` without SQL: statements read from stdin, each
//! ended by `;`, run one by one. With a terminal on stdin it is an
//! interactive shell (prompt, errors reported and the shell goes on, `\d`
//! lists the tables, `\q` quits); with a pipe, the first error stops it.

use std::io::{BufRead, Write};

use crate::catalog::Catalog;
use crate::output::{write_batches, Format};
use crate::queries::Params;

pub async fn run(
    catalog: &Catalog,
    params: &Params,
    format: Format,
    input: &mut dyn BufRead,
    interactive: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let prompt = |pending: bool| {
        if interactive {
            eprint!("{}", if pending { "  ...> " } else { "nft> " });
            let _ = std::io::stderr().flush();
        }
    };
    if interactive {
        eprintln!("SQL over the recording's tables; end statements with ';', \\d lists tables, \\q quits.");
    }
    let mut statement = String::new();
    prompt(false);
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        let trimmed = line.trim();
        if statement.is_empty() {
            match trimmed {
                "\\q" | "quit" | "exit" => break,
                "\\d" => statement.push_str(
                    "SELECT table_name, table_type FROM information_schema.tables \
                     WHERE table_schema = 'public' ORDER BY table_name;",
                ),
                "" => {
                    prompt(false);
                    continue;
                }
                _ => statement.push_str(&line),
            }
        } else {
            statement.push_str(&line);
        }
        if statement.trim_end().ends_with(';') {
            let sql = params.bind(statement.trim().trim_end_matches(';'));
            statement.clear();
            match execute(catalog, &sql, format, out).await {
                Ok(()) => {}
                Err(e) if interactive => eprintln!("error: {e:#}"),
                Err(e) => return Err(e),
            }
            prompt(false);
        } else {
            prompt(true);
        }
    }
    if !statement.trim().is_empty() {
        execute(catalog, &params.bind(statement.trim()), format, out).await?;
    }
    Ok(())
}

/// Plans and runs one statement and prints its result.
pub async fn execute(
    catalog: &Catalog,
    sql: &str,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let df = catalog.ctx.sql(sql).await.context("planning the SQL")?;
    let schema = df.schema().as_arrow().clone();
    let batches = df.collect().await.context("running the SQL")?;
    write_batches(out, &schema, &batches, format)?;
    Ok(())
}
