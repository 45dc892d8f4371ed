#!/usr/bin/env python3
"""Oracle for the shipped query library: runs every queries/*.sql in DuckDB
over the same recording files and compares the rows with what nft-analyzer
(DataFusion) returns for `sql REC --query NAME --format csv`.

usage: duckdb_queries.py ANALYZER RECORDING QUERIES_DIR

DuckDB gets the same tables as the analyzer: the Parquet files with a
`recording` column, and the analyzer-derived `rules`/`chains`/`recordings`
tables exported by the analyzer itself (they are inputs here, not results).
Prints one line per query and exits 1 on any difference.
"""
import csv
import io
import math
import os
import re
import subprocess
import sys

import duckdb

PARAMS = {"$timeout_ns": "5000000000", "$dedup_ns": "5000", "$free_gap_ns": "100000000", "$match_window_ns": "1000000000"}


def bind(sql):
    for k, v in PARAMS.items():
        sql = sql.replace(k, v)
    return sql


def analyzer_csv(analyzer, rec, *args):
    out = subprocess.run([analyzer, "sql", rec, *args, "--format", "csv"],
                         check=True, capture_output=True, text=True).stdout
    return list(csv.reader(io.StringIO(out)))


def norm(v):
    """A cell as comparable text: numbers as floats with 6 significant
    digits (for sorting), empty = null."""
    if v is None or v == "":
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    s = str(v)
    try:
        f = float(s)
        if math.isfinite(f):
            return f"{f:.6g}"
    except ValueError:
        pass
    return s


def same_cell(a, b, tol=0.0):
    """Equal, or numbers equal within 1e-6 relative (0.01 absolute, or `tol`
    if larger): the two engines interpolate percentiles in different float
    orders."""
    if a == b:
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=max(0.01, tol))
    except ValueError:
        return False


PERCENTILE = re.compile(r"p\d+_(\w+)")


def cell_tolerances(cols, row):
    """Per-column absolute tolerance for one row. DataFusion's percentile_cont
    quantises the interpolation weight to 1e-6 (percentile_cont.rs,
    INTERPOLATION_PRECISION) and casts back to the integer type, so a
    percentile can be off by 1e-6 of (upper - lower) <= 1e-6 of the row's
    `max_<unit>` for non-negative values, plus 1 ns; DuckDB interpolates
    exactly. Elsewhere: none beyond same_cell's."""
    tols = [0.0] * len(cols)
    for i, col in enumerate(cols):
        m = PERCENTILE.fullmatch(col)
        if m and f"max_{m.group(1)}" in cols:
            try:
                top = abs(float(row[cols.index(f"max_{m.group(1)}")]))
            except ValueError:
                continue
            tols[i] = 1e-6 * top + 0.002
    return tols


def same_rows(ours, duck, cols):
    return len(ours) == len(duck) and all(
        len(a) == len(b) and all(same_cell(x, y, t) for x, y, t in zip(a, b, cell_tolerances(cols, b)))
        for a, b in zip(ours, duck))


def raw(v):
    """A cell as text for the tolerant comparison (null = empty)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def main():
    analyzer, rec, qdir = sys.argv[1:4]
    name = os.path.basename(os.path.abspath(rec))
    con = duckdb.connect()
    lit = "'" + name.replace("'", "''") + "'"
    for table in ["events", "nftrace"]:
        files = sorted(f for f in os.listdir(rec) if re.fullmatch(table + r"-\d+\.parquet", f))
        if files:
            paths = ", ".join("'" + os.path.join(rec, f) + "'" for f in files)
            con.sql(f"CREATE VIEW {table} AS SELECT {lit} AS recording, * FROM read_parquet([{paths}])")
        else:
            raise SystemExit(f"{rec}: no {table} segments")
    for table in ["probes", "drop_reasons", "losses", "interfaces"]:
        con.sql(f"CREATE VIEW {table} AS SELECT {lit} AS recording, * "
                f"FROM read_parquet('{os.path.join(rec, table + '.parquet')}')")
    # Only with `record --stack`.
    stacks = os.path.join(rec, "stacks.parquet")
    if os.path.exists(stacks):
        con.sql(f"CREATE VIEW stacks AS SELECT {lit} AS recording, * FROM read_parquet('{stacks}')")
    else:
        con.sql("CREATE TABLE stacks (recording VARCHAR, stack_id UINTEGER, frame USMALLINT, "
                "address UBIGINT, symbol VARCHAR)")
    for table in ["rules", "chains", "recordings"]:
        rows = analyzer_csv(analyzer, rec, f"SELECT * FROM {table}")
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"nt-oracle-{os.getpid()}-{table}.csv")
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(rows)
        con.sql(f"CREATE TABLE {table} AS SELECT * FROM read_csv('{path}', header=true, "
                f"nullstr='', all_varchar=false)")
        os.remove(path)
    for view in sorted(os.listdir(os.path.join(qdir, "views"))):
        con.sql(open(os.path.join(qdir, "views", view)).read())

    failed = 0
    for file in sorted(f for f in os.listdir(qdir) if f.endswith(".sql")):
        query = file[:-4]
        sql = bind(open(os.path.join(qdir, file)).read())
        duck = con.sql(sql)
        cols = duck.columns
        key = lambda r: tuple(norm(v) for v in r)
        duck_rows = sorted((tuple(raw(v) for v in r) for r in duck.fetchall()), key=key)
        ours = analyzer_csv(analyzer, rec, "--query", query)
        header, body = ours[0], ours[1:]
        our_rows = sorted((tuple(r) for r in body), key=key)
        if header != cols:
            print(f"{query}: columns differ: analyzer {header}, duckdb {cols}")
            failed += 1
        elif not same_rows(our_rows, duck_rows, cols):
            print(f"{query}: rows differ ({len(our_rows)} analyzer, {len(duck_rows)} duckdb)")
            for a, b in zip(our_rows, duck_rows):
                if not same_rows([a], [b], cols):
                    print(f"  analyzer {a}\n  duckdb   {b}")
                    break
            failed += 1
        else:
            print(f"{query}: {len(our_rows)} rows equal")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
