//! The machinery every format's parser is built from.
//!
//! Each format is an incremental state machine over the text ([`driver::Machine`]); the
//! [`driver::Driver`] feeds it chunk by chunk and keeps back only a possible marker start.
//! The pieces here are what the formats have in common: finding markers with nom's streaming
//! combinators ([`scan`]), content and `<think>` reasoning ([`text`]), the life of a tool call
//! and its argument checks ([`call`]), JSON arguments read while tracking strings, where a
//! marker inside a string is in doubt ([`json_args`]), `{"name", "arguments"}` objects
//! ([`envelope`]), parameters written as tagged key/value pairs and typed by the tool's schema
//! ([`params`]), text that fits nowhere ([`stray`]) and the diagnostics themselves ([`diag`]).

pub(crate) mod call;
pub(crate) mod diag;
pub(crate) mod driver;
pub(crate) mod envelope;
pub(crate) mod json_args;
pub(crate) mod params;
pub(crate) mod scan;
pub(crate) mod section;
pub(crate) mod stray;
pub(crate) mod text;

/// The number of bytes of `text` that are not whitespace: what a format's syntax counts
/// toward [`marker_bytes`](crate::StreamParser::marker_bytes).
pub(crate) fn non_whitespace_len(text: &str) -> usize {
    if text.is_ascii() {
        // The ASCII characters that `char::is_whitespace` counts: space, and tab to return.
        let whitespace =
            text.as_bytes().iter().filter(|&&byte| matches!(byte, b' ' | b'\t'..=b'\r'));
        return text.len() - whitespace.count();
    }
    text.chars().filter(|c| !c.is_whitespace()).map(char::len_utf8).sum()
}

/// Whether `name` can be a tool's name: letters, digits, `_`, `-` and `.`.
pub(crate) fn is_tool_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_whitespace_is_counted_as_char_is_whitespace_says() {
        for text in
            ["", "a b\tc\nd\re\u{b}f\u{c}", "日本 語", "a\u{a0}b\u{2003}c", "  ", "<｜tool▁sep｜>"]
        {
            let expected: usize =
                text.chars().filter(|c| !c.is_whitespace()).map(char::len_utf8).sum();
            assert_eq!(non_whitespace_len(text), expected, "{text:?}");
        }
    }
}
