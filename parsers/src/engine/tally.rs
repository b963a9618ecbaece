//! The byte accounting every machine keeps, so that every input byte can be traced: the
//! non-whitespace bytes of markers and other syntax it consumed
//! ([`marker_bytes`](crate::StreamParser::marker_bytes)), and of the text it wrote itself
//! ([`generated_bytes`](crate::StreamParser::generated_bytes)). Both counts live in one value,
//! counted by one rule (whitespace never counts), whichever machine or piece of the engine
//! reads the syntax or writes the text.

use std::ops::Add;

/// What a machine has counted so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    syntax: usize,
    generated: usize,
}

impl Tally {
    /// Counts `len` non-whitespace bytes of syntax (a marker, a bracket, a keyword).
    #[inline]
    pub(crate) fn count_syntax(&mut self, len: usize) {
        self.syntax += len;
    }

    /// Takes back `len` non-whitespace bytes counted as syntax.
    pub(crate) fn uncount_syntax(&mut self, len: usize) {
        self.syntax -= len;
    }

    /// Counts `text`, which may hold whitespace, as syntax.
    pub(crate) fn count_syntax_text(&mut self, text: &str) {
        self.syntax += non_whitespace_len(text);
    }

    /// Counts text the parser wrote itself (made-up ids, names copied out of ids or taken from
    /// the declared tools, JSON around typed parameters).
    pub(crate) fn count_generated(&mut self, text: &str) {
        self.generated += non_whitespace_len(text);
    }

    /// Takes back text counted as written by the parser that is the input's own (a value
    /// inside the JSON written around it).
    pub(crate) fn uncount_generated(&mut self, text: &str) {
        self.generated -= non_whitespace_len(text);
    }

    /// The syntax counted so far.
    pub(crate) fn marker_bytes(&self) -> usize {
        self.syntax
    }

    /// The text written by the parser counted so far.
    pub(crate) fn generated_bytes(&self) -> usize {
        self.generated
    }
}

/// The tallies of two machines that read one input in turn (`auto`'s detector, then the
/// format's machine).
impl Add for Tally {
    type Output = Tally;

    fn add(self, other: Tally) -> Tally {
        Tally { syntax: self.syntax + other.syntax, generated: self.generated + other.generated }
    }
}

/// The number of bytes of `text` that are not whitespace.
pub(crate) fn non_whitespace_len(text: &str) -> usize {
    if text.is_ascii() {
        // The ASCII characters that `char::is_whitespace` counts: space, and tab to return.
        let whitespace =
            text.as_bytes().iter().filter(|&&byte| matches!(byte, b' ' | b'\t'..=b'\r'));
        return text.len() - whitespace.count();
    }
    text.chars().filter(|c| !c.is_whitespace()).map(char::len_utf8).sum()
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

    #[test]
    fn generated_text_taken_back_leaves_the_syntax_alone() {
        let mut tally = Tally::default();
        tally.count_syntax(3);
        tally.count_syntax_text("< a >");
        tally.count_generated("{\"k\": 1}");
        tally.uncount_generated("1");
        assert_eq!((tally.marker_bytes(), tally.generated_bytes()), (6, 6));
        assert_eq!(tally + tally, Tally { syntax: 12, generated: 12 });
    }
}
