//! `nft-analyzer report`, `diff --format html` and `serve` on real
//! recordings of the firewall scenario, read back from a real browser
//! (Debian's Chromium, headless) with no network: the page's scripts ran
//! without a console line, its graph has a node for every probe that saw a
//! packet, its verdict and drop tables equal the library's queries (and
//! `stats`), the diff page marks the rule whose verdict changed, and
//! `serve`'s API answers the traces `traces --format json` writes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

use nft_tests::browser::{self, elements, Element};
use nft_tests::{kernel_lock, record_scenario, run_bin, workspace_bin, Netns, TwoHosts, FIREWALL};
use serde_json::Value;

/// Where a test run leaves its screenshots when asked
/// (`NFT_TRACER_SCREENSHOTS=docs/` refreshes the README's picture).
const SCREENSHOT_DIR: &str = "NFT_TRACER_SCREENSHOTS";

fn sql_rows(rec: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["sql", rec];
    all.extend_from_slice(args);
    all.extend(["--format", "json"]);
    run_bin("nft-analyzer", all)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn number(text: &str) -> u64 {
    text.trim()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {text:?}"))
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Loads a report with the network gone: the page must stand alone.
fn load_offline(html: &Path) -> String {
    let offline = Netns::new("nonet").unwrap();
    offline.exec("ip", &["link", "set", "lo", "down"]).unwrap();
    let loaded = browser::load(&file_url(html), Some(&offline.name));
    assert!(loaded.console.is_empty(), "console: {:#?}", loaded.console);
    let body = &elements(&loaded.dom, "body")[0];
    assert_eq!(
        body.attr("data-ready"),
        Some("1"),
        "the script did not finish"
    );
    assert_eq!(body.attr("data-errors"), None, "{}", body.text());
    loaded.dom
}

fn screenshot(html: &Path, name: &str) {
    let offline = Netns::new("noshot").unwrap();
    let png = html.with_extension("png");
    browser::screenshot(&file_url(html), Some(&offline.name), &png, 1400, 2000);
    let variance = browser::pixel_variance(&png);
    assert!(
        variance > 100.0,
        "{name}: a blank screenshot (variance {variance})"
    );
    if let Ok(dir) = std::env::var(SCREENSHOT_DIR) {
        std::fs::copy(&png, Path::new(&dir).join(name)).unwrap();
    }
}

/// (source, table, chain, handle, type, verdict) → packets, from the page's
/// verdict table.
/// A rule verdict's identity: source, family, table, chain, handle,
/// position, type, verdict.
type VerdictKey = [String; 8];

fn page_verdicts(dom: &str) -> BTreeMap<VerdictKey, u64> {
    let mut out = BTreeMap::new();
    for row in elements(dom, "tr")
        .iter()
        .filter(|r| r.has_class("rule-row"))
    {
        let key = |v: &str| {
            let a = |n: &str| row.attr(n).unwrap_or("").to_owned();
            [
                a("data-source"),
                a("data-family"),
                a("data-table"),
                a("data-chain"),
                a("data-handle"),
                a("data-position"),
                a("data-type"),
                v.to_owned(),
            ]
        };
        for cell in elements(&row.inner, "td") {
            if let Some(v) = cell.attr("data-verdict") {
                let n = number(&cell.text());
                if n > 0 {
                    *out.entry(key(v)).or_default() += n;
                }
            }
        }
    }
    out
}

fn query_verdicts(rec: &str) -> BTreeMap<VerdictKey, u64> {
    let mut out = BTreeMap::new();
    let s = |r: &Value, k: &str| match &r[k] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    for r in sql_rows(rec, &["--query", "rule_verdicts"]) {
        let verdict = if r["verdict"].is_null() {
            "-".into()
        } else {
            s(&r, "verdict")
        };
        let key = [
            s(&r, "source"),
            s(&r, "family"),
            s(&r, "table"),
            s(&r, "chain"),
            s(&r, "rule_handle"),
            s(&r, "rule_position"),
            s(&r, "type"),
            verdict,
        ];
        *out.entry(key).or_default() += r["packets"].as_u64().unwrap();
    }
    out
}

fn check_recording_page(rec: &str, dom: &str) {
    // A node for every probe that saw a packet.
    let nodes: Vec<Element> = elements(dom, "g")
        .into_iter()
        .filter(|g| g.has_class("node"))
        .collect();
    let names: BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| n.attr("data-name").map(str::to_owned))
        .collect();
    let probes: BTreeSet<String> = sql_rows(rec, &["SELECT DISTINCT probe FROM events"])
        .iter()
        .map(|r| r["probe"].as_str().unwrap().to_owned())
        .collect();
    assert!(probes.len() >= 4, "{probes:?}");
    let missing: Vec<_> = probes.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "probes with no node: {missing:?} (nodes {names:?})"
    );
    assert!(
        nodes.iter().any(|n| n.attr("data-kind") == Some("chain")),
        "no chain node"
    );
    let drop_node = nodes
        .iter()
        .find(|n| n.attr("data-name") == Some("NETFILTER_DROP"))
        .expect("a drop node");
    assert_eq!(drop_node.attr("data-kind"), Some("drop"));
    // The verdict table is the rule_verdicts query, cell by cell.
    let page = page_verdicts(dom);
    assert!(!page.is_empty());
    assert_eq!(page, query_verdicts(rec));
    // The drop table is the drops query, which `stats` prints.
    let stats = run_bin("nft-analyzer", ["stats", rec]);
    let drops_stats = stats
        .split("== drops")
        .nth(1)
        .unwrap()
        .split("\n== ")
        .next()
        .unwrap();
    let drop_rows: Vec<Element> = elements(dom, "tr")
        .into_iter()
        .filter(|r| r.has_class("drop-row"))
        .collect();
    let queried = sql_rows(rec, &["--query", "drops"]);
    assert_eq!(drop_rows.len(), queried.len());
    for (row, q) in drop_rows.iter().zip(&queried) {
        assert_eq!(row.attr("data-reason"), q["drop_reason"].as_str());
        assert_eq!(row.attr("data-drops").map(number), q["drops"].as_u64());
        let line = drops_stats
            .lines()
            .find(|l| {
                l.contains(q["drop_reason"].as_str().unwrap())
                    && l.contains(q["location_sym"].as_str().unwrap())
            })
            .unwrap_or_else(|| panic!("stats has no line for {q}: {drops_stats}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(
            cells.contains(&q["drops"].to_string().as_str()),
            "{line} vs {q}"
        );
    }
    // The viewer says what its sample holds: here, every trace.
    let note = elements(dom, "p")
        .into_iter()
        .find(|p| p.attr("data-sample").is_some())
        .expect("a sample note");
    let traces: Value = serde_json::from_str(&run_bin(
        "nft-analyzer",
        ["traces", rec, "--format", "json"],
    ))
    .unwrap();
    let name = note.attr("data-sample").unwrap().to_owned();
    let n = traces["summary"]["traces"].as_u64().unwrap();
    assert_eq!(note.text(), format!("{name}: all {n} traces"));
    // A rule comment with markup and the template's slot names is text.
    assert!(
        elements(dom, "u").is_empty(),
        "a <u> of a rule comment became an element"
    );
    assert!(
        elements(dom, "td")
            .iter()
            .any(|td| td.text().contains(HOSTILE)),
        "the rule comment is shown as it is"
    );
    assert!(
        elements(dom, "ol")
            .iter()
            .any(|o| o.attr("data-trace").is_some()),
        "no timeline shown"
    );
}

/// A comment that would break a page that pasted strings into HTML or
/// looked for its template's slots in the data.
const HOSTILE: &str = "</script><u>x</u> /*{{SCRIPT}}*/ {{DATA}} &amp;";

#[test]
fn report_diff_and_serve_in_a_real_browser() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(216).unwrap();
    let netns = [hosts.a.name.as_str(), hosts.b.name.as_str()];
    let rule = "icmp type echo-request counter accept";
    let firewall = FIREWALL.replace(rule, &format!("{rule} comment \"{HOSTILE}\""));
    assert_ne!(firewall, FIREWALL);
    let accept = firewall.replace("9 : drop", "9 : accept");
    let (base, _) = record_scenario(&hosts, "report-base", &netns, &firewall);
    let (switched, _) = record_scenario(&hosts, "report-accept", &netns, &accept);
    drop(hosts);
    let [base_s, switched_s] = [&base, &switched].map(|d| d.to_str().unwrap().to_owned());

    let html = base.with_extension("html");
    run_bin(
        "nft-analyzer",
        ["report", &base_s, "-o", html.to_str().unwrap()],
    );
    let dom = load_offline(&html);
    check_recording_page(&base_s, &dom);
    screenshot(&html, "report.png");

    // The diff page marks the rule whose drop became an accept.
    let diff_html = base.with_extension("diff.html");
    let out = Command::new(workspace_bin("nft-analyzer"))
        .args([
            "diff",
            &base_s,
            &switched_s,
            "--min-count",
            "1",
            "--format",
            "html",
            "-o",
        ])
        .arg(&diff_html)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = load_offline(&diff_html);
    let pairs: Vec<Element> = elements(&dom, "tr")
        .into_iter()
        .filter(|r| r.has_class("rule-pair"))
        .collect();
    let pair = |text: &str| {
        pairs
            .iter()
            .find(|p| p.attr("data-rule").is_some_and(|t| t.contains(text)))
            .unwrap_or_else(|| panic!("no row for the rule with {text:?}"))
    };
    let vmap = pair("9 : accept");
    assert!(vmap.has_class("changed"), "{vmap:?}");
    let icmp = pair("echo-request");
    assert!(
        !icmp.has_class("changed"),
        "an unchanged rule is not marked: {icmp:?}"
    );
    assert!(
        elements(&dom, "tr")
            .iter()
            .any(|r| r.has_class("difference") && r.attr("data-kind") == Some("verdict-change")),
        "no verdict-change listed"
    );
    screenshot(&diff_html, "diff.png");

    serve_answers_like_traces(&base_s);
}

/// One request with curl: status and body.
fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

fn serve_answers_like_traces(rec: &str) {
    let mut server = Command::new(workspace_bin("nft-analyzer"))
        .args(["serve", rec, "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    let base = loop {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0,
            "serve exited"
        );
        if let Some(rest) = line.strip_prefix("serving ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_owned();
        }
    };
    let result = std::panic::catch_unwind(|| {
        let all: Value = serde_json::from_str(&run_bin(
            "nft-analyzer",
            ["traces", rec, "--format", "json"],
        ))
        .unwrap();
        let traces = all["traces"].as_array().unwrap();
        for t in [&traces[0], traces.last().unwrap()] {
            let (code, body) = get(&format!("{base}/api/trace/{}", t["trace_id"]));
            assert_eq!(code, 200, "{body}");
            assert_eq!(&serde_json::from_str::<Value>(&body).unwrap(), t);
        }
        let (code, _) = get(&format!("{base}/api/trace/999999"));
        assert_eq!(code, 404);
        let (code, _) = get(&format!("{base}/api/trace/x"));
        assert_eq!(code, 400);
        let (code, body) = get(&format!("{base}/api/traces?verdict=drop&limit=1000"));
        assert_eq!(code, 200, "{body}");
        let dropped: Value = serde_json::from_str(&body).unwrap();
        let want: Vec<&Value> = traces
            .iter()
            .filter(|t| t["stats"]["final_verdict"] == "drop")
            .collect();
        assert!(!want.is_empty());
        assert_eq!(
            dropped["traces"]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            want
        );
        // The served page, in the browser, from the server.
        let loaded = browser::load(&format!("{base}/"), None);
        assert!(loaded.console.is_empty(), "{:#?}", loaded.console);
        assert_eq!(
            elements(&loaded.dom, "body")[0].attr("data-ready"),
            Some("1")
        );
        // Its viewer searches the whole recording through /api/traces.
        let loaded = browser::load(&format!("{base}/#search-all"), None);
        assert!(loaded.console.is_empty(), "{:#?}", loaded.console);
        let body = &elements(&loaded.dom, "body")[0];
        assert_eq!(body.attr("data-errors"), None, "{}", body.text());
        let searched: usize = body
            .attr("data-searched")
            .expect("the search ran")
            .parse()
            .unwrap();
        assert_eq!(searched, traces.len().min(200));
    });
    let _ = server.kill();
    let _ = server.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
