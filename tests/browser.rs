//! Debian's Chromium, headless, for the report tests: load a page with no
//! network at all (inside a fresh network namespace, loopback down unless a
//! server there is the point), let its scripts run, and read back the DOM,
//! a screenshot, and every console line it printed. Plus the small HTML
//! reading the tests need (start tags' attributes and their text), so they
//! check the DOM as the browser built it.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// What a page left after its scripts ran.
pub struct Loaded {
    pub dom: String,
    /// `CONSOLE` lines of Chromium's log from the page: it writes none, so
    /// any is a message or an uncaught error.
    pub console: Vec<String>,
}

fn chromium(netns: Option<&str>, args: &[&str]) -> std::process::Output {
    let profile = tempdir("chromium-profile");
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "chromium"]);
            c
        }
        None => Command::new("chromium"),
    };
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args);
    let out = cmd
        .output()
        .expect("run chromium (scripts/setup.sh installs it)");
    let _ = std::fs::remove_dir_all(&profile);
    out
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("nt-{tag}-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Loads `url` (in `netns` when given) and returns the DOM after its
/// scripts ran (virtual time lets timers and rendering settle).
pub fn load(url: &str, netns: Option<&str>) -> Loaded {
    let out = chromium(netns, &["--virtual-time-budget=5000", "--dump-dom", url]);
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        // Chromium's own pages (chrome://) log too, e.g. about fonts offline.
        .filter(|l| l.contains(":CONSOLE") && !l.contains("source: chrome://"))
        .map(str::to_owned)
        .collect();
    Loaded {
        dom: String::from_utf8(out.stdout).expect("a UTF-8 DOM"),
        console,
    }
}

/// Takes a `width`×`height` screenshot of `url` into `png`.
pub fn screenshot(url: &str, netns: Option<&str>, png: &Path, width: u32, height: u32) {
    let shot = format!("--screenshot={}", png.display());
    let size = format!("--window-size={width},{height}");
    let out = chromium(netns, &["--virtual-time-budget=5000", &shot, &size, url]);
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The variance of a PNG's grey levels (0 for a blank page).
pub fn pixel_variance(png_path: &Path) -> f64 {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let grey: Vec<f64> = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| p.iter().take(3).map(|v| *v as f64).sum::<f64>() / p.len().min(3) as f64)
        .collect();
    let mean = grey.iter().sum::<f64>() / grey.len() as f64;
    grey.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / grey.len() as f64
}

/// An element as the DOM dump has it: its start tag's attributes and its
/// text (tags stripped, entities decoded).
#[derive(Debug, Clone)]
pub struct Element {
    pub attrs: HashMap<String, String>,
    pub inner: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
    pub fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_whitespace().any(|x| x == class))
    }
    pub fn text(&self) -> String {
        text(&self.inner)
    }
}

pub fn decode(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Text content of an HTML fragment.
pub fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    decode(&out)
}

fn parse_attrs(tag: &str) -> HashMap<String, String> {
    let mut attrs = HashMap::new();
    let mut rest = tag;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq]
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("");
        let value_start = eq + 2;
        let Some(len) = rest[value_start..].find('"') else {
            break;
        };
        attrs.insert(
            name.to_owned(),
            decode(&rest[value_start..value_start + len]),
        );
        rest = &rest[value_start + len + 1..];
    }
    attrs
}

/// Every `<name ...>` element (not nested in one of its own kind, which is
/// how the report's rows, cells and nodes are), in document order.
pub fn elements(html: &str, name: &str) -> Vec<Element> {
    let open = format!("<{name} ");
    let open_bare = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(start) = next_of(html, at, &open, &open_bare) {
        let Some(end_of_tag) = html[start..].find('>') else {
            break;
        };
        let tag = &html[start + 1..start + end_of_tag];
        let body_start = start + end_of_tag + 1;
        let body_end = html[body_start..]
            .find(&close)
            .map(|e| body_start + e)
            .unwrap_or(html.len());
        out.push(Element {
            attrs: parse_attrs(tag),
            inner: html[body_start..body_end].to_owned(),
        });
        at = body_start;
    }
    out
}

fn next_of(html: &str, at: usize, a: &str, b: &str) -> Option<usize> {
    match (html[at..].find(a), html[at..].find(b)) {
        (Some(x), Some(y)) => Some(at + x.min(y)),
        (Some(x), None) | (None, Some(x)) => Some(at + x),
        (None, None) => None,
    }
}

/// The element with `id="id"` (its first `name` element).
pub fn by_id(html: &str, name: &str, id: &str) -> Option<Element> {
    elements(html, name)
        .into_iter()
        .find(|e| e.attr("id") == Some(id))
}
