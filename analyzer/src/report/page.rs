//! The report as one self-contained HTML file: the template, styles and
//! script from `report/assets/` (compiled into the binary, so the page
//! needs no network and no file beside it) with the report's JSON inside a
//! `<script type="application/json">` element. The script draws everything
//! with DOM text nodes, so no string from a recording is ever parsed as
//! HTML.

use super::PageData;

const TEMPLATE: &str = include_str!("assets/report.html");
const STYLE: &str = include_str!("assets/report.css");
const SCRIPT: &str = include_str!("assets/report.js");

/// JSON that cannot end the `<script>` element it sits in, whatever the
/// recording's strings hold: `<`, `>` and `&` as `\u` escapes (still the
/// same JSON).
pub fn embeddable_json(data: &PageData) -> serde_json::Result<String> {
    let json = serde_json::to_string(data)?;
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The title in the browser's tab: the recordings' names.
fn title(data: &PageData) -> String {
    let names: Vec<&str> = data.recordings.iter().map(|r| r.name.as_str()).collect();
    let what = if data.kind == "diff" {
        "diff"
    } else {
        "report"
    };
    let text = format!("nft-tracer {what}: {}", names.join(" → "));
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn html(data: &PageData) -> serde_json::Result<String> {
    let json = embeddable_json(data)?;
    Ok(TEMPLATE
        .replacen("{{TITLE}}", &title(data), 1)
        .replacen("/*{{STYLE}}*/", STYLE, 1)
        .replacen("{{DATA}}", &json, 1)
        .replacen("/*{{SCRIPT}}*/", SCRIPT, 1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_template_has_each_slot_once_and_the_script_no_closing_tag() {
        for slot in ["{{TITLE}}", "/*{{STYLE}}*/", "{{DATA}}", "/*{{SCRIPT}}*/"] {
            assert_eq!(super::TEMPLATE.matches(slot).count(), 1, "{slot}");
        }
        assert!(!super::SCRIPT.contains("</script"));
        assert!(!super::STYLE.contains("</style"));
    }
}
