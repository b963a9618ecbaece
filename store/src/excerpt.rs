//! Input quoted in an error message, cut short: an error about a megabyte of text stays one
//! line, and says how long the text was. [`shorten`] does the same for a whole message whose
//! text came from elsewhere (a parser's error naming a field it read).

use std::borrow::Cow;

/// How many characters of a text an error shows.
const SHOWN: usize = 60;

/// `text` as an error shows it: its characters escaped as `{:?}` escapes them (without the
/// quotes), the first 60 of them and `…` when there are more.
pub fn excerpt(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(SHOWN).collect();
    let mut shown = head.escape_debug().to_string();
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
}

/// `text` quoted as an error shows it: `"…"` around its [`excerpt`], and how many characters
/// it has when it was cut.
pub fn quoted(text: &str) -> String {
    let count = text.chars().count();
    if count > SHOWN {
        format!("\"{}\" ({count} characters)", excerpt(text))
    } else {
        format!("\"{}\"", excerpt(text))
    }
}

/// `message` whole when it has at most `keep` characters; else its first `keep` and
/// `… (N characters)`.
pub fn shorten(message: &str, keep: usize) -> Cow<'_, str> {
    match message.char_indices().nth(keep) {
        None => Cow::Borrowed(message),
        Some((end, _)) => {
            Cow::Owned(format!("{}… ({} characters)", &message[..end], message.chars().count()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &str) {
        assert_eq!(quoted(text), expected, "{text:?}");
    }

    #[test]
    fn a_text_is_shown_escaped_and_cut_after_sixty_characters() {
        check("", r#""""#);
        check("digest", r#""digest""#);
        check("a\nb\0c\"", r#""a\nb\0c\"""#);
        check(&"x".repeat(60), &format!("\"{}\"", "x".repeat(60)));
        check(&"x".repeat(2_000_000), &format!("\"{}…\" (2000000 characters)", "x".repeat(60)));
        // Characters, not bytes: a cut never splits one.
        check(&"é".repeat(61), &format!("\"{}…\" (61 characters)", "é".repeat(60)));
    }

    #[test]
    fn a_message_past_its_length_is_cut_where_a_character_ends() {
        assert_eq!(shorten("short", 5), "short");
        assert_eq!(shorten("longer", 5), "longe… (6 characters)");
        assert_eq!(shorten("ééé", 2), "éé… (3 characters)");
        assert_eq!(shorten("", 0), "");
    }
}
