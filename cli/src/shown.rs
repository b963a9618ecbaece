//! Text that others wrote (a step's error, a command's stderr, a flow's goal, a client's
//! denial reason, a tool's result), as a terminal may show it. A control character reaching the
//! terminal raw could clear the screen, retitle the window, move the cursor over what was
//! printed before or forge a line of its own; each is written as an escape (`\u{1b}`) instead.
//! JSON output needs none of this: its strings escape control characters already.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character but the line break escaped.
pub(crate) fn shown(text: &str) -> Cow<'_, str> {
    escaped(text, |c| c == '\n')
}

/// `text` with every control character but the line break and the tab escaped: prose, such as
/// a model's answer, which may indent with tabs.
pub(crate) fn shown_prose(text: &str) -> Cow<'_, str> {
    escaped(text, |c| c == '\n' || c == '\t')
}

fn escaped(text: &str, kept: fn(char) -> bool) -> Cow<'_, str> {
    let escape = |c: char| c.is_control() && !kept(c);
    // In UTF-8 every control character has a byte below 0x20, 0x7f, or 0xc2 (C1's lead byte).
    let suspect = |byte: &u8| *byte < 0x20 || *byte == 0x7f || *byte == 0xc2;
    if !text.as_bytes().iter().any(suspect) || !text.chars().any(escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' if escape(c) => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &str, prose: &str) {
        assert_eq!(shown(text), expected, "{text:?}");
        assert_eq!(shown_prose(text), prose, "{text:?}");
    }

    #[test]
    fn control_characters_are_written_as_escapes() {
        check("exit 1", "exit 1", "exit 1");
        check("line one\nline two", "line one\nline two", "line one\nline two");
        check("a\tb", "a\\tb", "a\tb");
        check(
            "\x1b[2J\x1b]0;owned\x07fake",
            "\\u{1b}[2J\\u{1b}]0;owned\\u{7}fake",
            "\\u{1b}[2J\\u{1b}]0;owned\\u{7}fake",
        );
        check("ok\rforged", "ok\\rforged", "ok\\rforged");
        // C1 controls and DEL too; other text, wide or not, as it is.
        check("\u{9b}31m\u{7f}日報", "\\u{9b}31m\\u{7f}日報", "\\u{9b}31m\\u{7f}日報");
    }
}
