//! What the agent tools share about talking to a model: arguments read into a typed struct,
//! so a call with bad arguments gets a precise error back instead of a crash, and a bound on
//! what one call returns.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::process::Kept;
use crate::step::ActionError;

/// The arguments of a call to `tool`, read into `T`; a mismatch is an error for the model.
pub(super) fn arguments<T: DeserializeOwned>(tool: &str, args: Value) -> Result<T, ActionError> {
    serde_json::from_value(args)
        .map_err(|error| ActionError::permanent(format!("{tool}: bad arguments: {error}")))
}

/// The most bytes a tool returns to the model from one file, page or command.
pub(crate) const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// `text` cut to `limit` bytes at a character boundary, with a note when it was cut.
pub(crate) fn truncated(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    with_cut_note(&text[..end], (text.len() - end) as u64)
}

/// What was kept of the head of a command's output, as text, with the note of [`truncated`]
/// when bytes were dropped; a character the limit cut in two is dropped with them.
pub(super) fn kept_text(kept: &Kept) -> String {
    if kept.dropped == 0 {
        return String::from_utf8_lossy(&kept.bytes).into_owned();
    }
    let end = match std::str::from_utf8(&kept.bytes) {
        Err(error) if error.error_len().is_none() => error.valid_up_to(),
        _ => kept.bytes.len(),
    };
    let more = kept.dropped + (kept.bytes.len() - end) as u64;
    with_cut_note(&String::from_utf8_lossy(&kept.bytes[..end]), more)
}

/// What was kept of the end of a command's output, as text, after a note of how many bytes
/// before it are not shown when some were dropped; a character the cut split is dropped too.
pub(super) fn kept_tail_text(kept: &Kept) -> String {
    if kept.dropped == 0 {
        return String::from_utf8_lossy(&kept.bytes).into_owned();
    }
    // UTF-8 continuation bytes (0b10xx_xxxx) at the start belong to a character cut in two.
    let start = kept.bytes.iter().take(3).take_while(|byte| *byte & 0xc0 == 0x80).count();
    let more = kept.dropped + start as u64;
    format!("[… {more} earlier bytes not shown]\n{}", String::from_utf8_lossy(&kept.bytes[start..]))
}

/// `text` and a note that `more` bytes after it are not shown.
fn with_cut_note(text: &str, more: u64) -> String {
    format!("{text}\n[… {more} more bytes not shown]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_text_says_how_much_is_not_shown() {
        // (the text, the limit, what is shown)
        let cases = [
            ("abc", 3, "abc"),
            ("abcdef", 3, "abc\n[… 3 more bytes not shown]"),
            ("aé", 2, "a\n[… 2 more bytes not shown]"),
        ];
        for (text, limit, shown) in cases {
            assert_eq!(truncated(text, limit), shown, "{text:?} {limit}");
        }
    }

    #[test]
    fn kept_output_reads_like_cut_text() {
        // (the bytes kept, those dropped, what is shown)
        let cases: [(&[u8], u64, &str); 4] = [
            (b"abc", 0, "abc"),
            (b"abc", 5, "abc\n[… 5 more bytes not shown]"),
            // `é` cut in two by the limit: its first byte goes with the rest.
            (b"a\xc3", 1, "a\n[… 2 more bytes not shown]"),
            (b"\xff\xc3", 1, "\u{fffd}\u{fffd}\n[… 1 more bytes not shown]"),
        ];
        for (bytes, dropped, shown) in cases {
            let kept = Kept { bytes: bytes.to_vec(), dropped };
            assert_eq!(kept_text(&kept), shown, "{bytes:?} {dropped}");
        }
    }

    #[test]
    fn a_kept_tail_says_how_much_before_it_is_not_shown() {
        // (the bytes kept, those dropped, what is shown)
        let cases: [(&[u8], u64, &str); 3] = [
            (b"error: x", 0, "error: x"),
            (b"error: x", 5, "[\u{2026} 5 earlier bytes not shown]\nerror: x"),
            // The end of `é` cut from its start: it goes with what is not shown.
            (b"\xa9 fails", 5, "[\u{2026} 6 earlier bytes not shown]\n fails"),
        ];
        for (bytes, dropped, shown) in cases {
            let kept = Kept { bytes: bytes.to_vec(), dropped };
            assert_eq!(kept_tail_text(&kept), shown, "{bytes:?} {dropped}");
        }
    }
}
