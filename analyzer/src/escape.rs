//! Strings from a recording (chain and rule names, rule text, interface,
//! host, the manifest's end) are someone else's bytes. Printed raw, an
//! escape sequence would drive the reader's terminal, a newline would
//! forge a line of a report, and a backtick would end a Markdown code
//! span. Every output for people passes them through here: control and
//! bidirectional-override characters are shown (`\x1b`, `\n`,
//! `\u{202e}`), not sent. JSON, CSV and Parquet outputs escape by their
//! own rules and keep the strings as they are.

use std::borrow::Cow;
use std::fmt;

/// `s` with every control or bidi-override character written out.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && needs_escape(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Displays a string escaped for a terminal, honouring width and
/// alignment (`{:<44}`).
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&terminal(self.0))
    }
}

/// `s` as Markdown text in a table cell: escaped for a terminal, and the
/// characters Markdown would read as syntax backslashed.
pub fn markdown_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in terminal(s).chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '~' | '&' | '!'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `s` as a Markdown code span: fenced with one backtick more than the
/// longest run inside it, so a backtick in a rule's text cannot end it
/// (CommonMark 6.1); `|` is backslashed for tables, and control characters
/// are written out.
pub fn markdown_code(s: &str) -> String {
    let shown = terminal(s).replace('|', "\\|");
    let longest = shown.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if shown.starts_with('`') || shown.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{shown}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_sent() {
        assert_eq!(terminal("fw/input"), "fw/input");
        assert_eq!(terminal("a\x1b[31mred\nb\u{7}"), "a\\x1b[31mred\\nb\\x07");
        assert_eq!(terminal("x\u{202e}y\u{9b}"), "x\\u{202e}y\\x9b");
        assert_eq!(format!("[{:<6}]", Shown("a\nb")), "[a\\nb  ]");
    }

    #[test]
    fn markdown_cannot_be_broken_out_of() {
        assert_eq!(markdown_code("tcp dport 22"), "`tcp dport 22`");
        assert_eq!(markdown_code("a `b` c"), "``a `b` c``");
        assert_eq!(markdown_code("`x"), "`` `x ``");
        assert_eq!(markdown_code("a|b\nc"), "`a\\|b\\nc`");
        assert_eq!(markdown_text("**x** <b>"), "\\*\\*x\\*\\* \\<b\\>");
    }
}
