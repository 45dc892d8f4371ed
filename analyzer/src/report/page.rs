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

/// The template's slots, in the order they appear in it.
const SLOTS: [&str; 4] = ["{{TITLE}}", "/*{{STYLE}}*/", "{{DATA}}", "/*{{SCRIPT}}*/"];

pub fn html(data: &PageData) -> serde_json::Result<String> {
    let json = embeddable_json(data)?;
    let title = title(data);
    let values = [title.as_str(), STYLE, json.as_str(), SCRIPT];
    // Slots are looked for in the template only, never in what filled the
    // ones before: a rule comment saying `{{DATA}}` stays text.
    let mut out = String::with_capacity(TEMPLATE.len() + STYLE.len() + json.len() + SCRIPT.len());
    let mut rest = TEMPLATE;
    for (slot, value) in SLOTS.iter().zip(values) {
        let at = rest
            .find(slot)
            .expect("the template has every slot, in order");
        out.push_str(&rest[..at]);
        out.push_str(value);
        rest = &rest[at + slot.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_template_has_each_slot_once_and_the_script_no_closing_tag() {
        let mut last = 0;
        for slot in super::SLOTS {
            assert_eq!(super::TEMPLATE.matches(slot).count(), 1, "{slot}");
            let at = super::TEMPLATE.find(slot).unwrap();
            assert!(at >= last, "{slot} out of order");
            last = at;
        }
        assert!(!super::SCRIPT.contains("</script"));
        assert!(!super::STYLE.contains("</style"));
    }
}
