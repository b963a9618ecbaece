//! HTML as the dashboard writes it. Everything shown may come from a model, a tool or another
//! program (names, outputs, errors, reasons), so text reaches a page only through [`Text`],
//! which escapes it for element content and attribute values alike; the pieces every page
//! shares (the frame, a status, an instant, a value cut to size) are written here once.

use std::fmt::{self, Display, Write as _};

use taskflow_store::Timestamp;

use crate::sessions::{Notice, Session};

/// Text escaped for HTML: element content or a double- or single-quoted attribute value.
pub struct Text<'a>(pub &'a str);

impl Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'', '\0']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                b'\'' => "&#39;",
                _ => "\u{fffd}",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// Escapes `text`.
pub fn text(text: &str) -> Text<'_> {
    Text(text)
}

/// Text as a query-string value (percent-encoded; escape it again inside an attribute).
pub fn query_value(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            _ => {
                let _ = write!(encoded, "%{byte:02X}");
            }
        }
    }
    encoded
}

/// What a status looks like besides its color: an icon (hidden from screen readers, which read
/// the word next to it).
pub fn icon(status: &str) -> &'static str {
    match status {
        "queued" => "◷",
        "running" => "▶",
        "waiting" => "⏸",
        "blocked" => "⛔",
        "succeeded" | "fired" => "✓",
        "failed" => "✗",
        "cancelled" => "⊘",
        "lost" => "?",
        "stalled" => "⚠",
        "skipped" => "↷",
        "missed" => "⌀",
        "gated" | "buffered" => "⧗",
        _ => "·",
    }
}

/// A status as a badge: icon and word, colored by the stylesheet from `data-status`.
pub fn status(status: &str) -> String {
    format!(
        "<span class=\"status\" data-status=\"{s}\"><span class=\"icon\" aria-hidden=\"true\">{}</span> \
         <span class=\"word\">{s}</span></span>",
        icon(status),
        s = text(status)
    )
}

/// An instant, to the second, in UTC; the whole instant in `datetime` (and as a tooltip).
pub fn time(at: Timestamp) -> String {
    let full = at.to_string();
    let shown = full.get(..19).map(|s| s.replace('T', " ")).unwrap_or_else(|| full.clone());
    format!("<time datetime=\"{full}\" title=\"{full}\">{shown}</time>")
}

/// An optional instant, or a dash.
pub fn maybe_time(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "–".to_owned(), time)
}

/// How long from `from` to `to`, in the largest units that say it (`1h 2m`, `3.4s`, `120ms`).
pub fn duration(from: Timestamp, to: Timestamp) -> String {
    let ms = (to.as_millis() - from.as_millis()).max(0);
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h {}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// `value` cut to at most `max` characters (on a character boundary), and whether it was.
pub fn cut(value: &str, max: usize) -> (&str, bool) {
    match value.char_indices().nth(max) {
        Some((at, _)) => (&value[..at], true),
        None => (value, false),
    }
}

/// A page of the dashboard: its frame (title, navigation, who is logged in, a notice) around
/// `main`.
pub struct Page<'a> {
    pub title: &'a str,
    /// Which navigation link is this page's: `flows` or `schedules`.
    pub section: &'a str,
    pub session: &'a Session,
    /// The owner whose flows it shows.
    pub owner: &'a str,
    /// Whether serve has tokens (then a logout button is shown).
    pub logged_in: bool,
    pub notice: Option<Notice>,
    /// Attributes of `<body>` the script reads (`data-page`, `data-flow-id`), already escaped.
    pub body_data: String,
}

impl Page<'_> {
    pub fn render(&self, main: &str) -> String {
        let link = |href: &str, section: &str, label: &str| {
            let current = if self.section == section { " aria-current=\"page\"" } else { "" };
            format!("<a href=\"{href}\"{current}>{label}</a>")
        };
        let logout = if self.logged_in {
            format!(
                "<form method=\"post\" action=\"/logout\" class=\"inline\">{}\
                 <button type=\"submit\">Log out</button></form>",
                csrf_field(self.session)
            )
        } else {
            String::new()
        };
        let notice = match &self.notice {
            Some(notice) => format!(
                "<p class=\"notice{}\" role=\"{}\">{}</p>",
                if notice.is_error { " error" } else { "" },
                if notice.is_error { "alert" } else { "status" },
                text(&notice.text)
            ),
            None => String::new(),
        };
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · taskflow</title>\
             <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"{css}\">\
             <script src=\"{js}\" defer></script></head>\
             <body {data}><a class=\"skip\" href=\"#main\">Skip to content</a>\
             <header><nav aria-label=\"Main\"><span class=\"brand\">taskflow</span>{flows}{schedules}</nav>\
             <span class=\"who\">owner <strong>{owner}</strong>{logout}</span></header>\
             <main id=\"main\" tabindex=\"-1\">{notice}{main}</main>\
             <p class=\"live\" id=\"live\" role=\"status\" aria-live=\"polite\"></p></body></html>\n",
            title = text(self.title),
            css = super::assets::CSS_PATH,
            js = super::assets::JS_PATH,
            data = self.body_data,
            flows = link("/", "flows", "Flows"),
            schedules = link("/schedules", "schedules", "Schedules"),
            owner = text(self.owner),
        )
    }
}

/// The hidden field that carries the session's CSRF token in a form that changes something.
pub fn csrf_field(session: &Session) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", text(&session.csrf))
}

/// A form that changes something: `fields` and one button, posted to `action`.
pub fn action_form(session: &Session, action: &str, fields: &str, button: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}{fields}\
         <button type=\"submit\">{button}</button></form>",
        text(action),
        csrf_field(session)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        let check = |raw: &str, expected: &str| assert_eq!(text(raw).to_string(), expected);
        check("plain", "plain");
        check("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;");
        check("a \"b\" 'c' & d", "a &quot;b&quot; &#39;c&#39; &amp; d");
        check("\0x", "\u{fffd}x");
        check("ünï", "ünï");
    }

    #[test]
    fn values_are_cut_on_character_boundaries() {
        assert_eq!(cut("héllo", 2), ("hé", true));
        assert_eq!(cut("héllo", 5), ("héllo", false));
        assert_eq!(cut("", 3), ("", false));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query_value("nightly@2026-01-01T00:00:00Z"),
            "nightly%402026-01-01T00%3A00%3A00Z"
        );
        assert_eq!(query_value("a b&c"), "a%20b%26c");
    }

    #[test]
    fn durations_in_the_units_that_say_them() {
        let check = |ms: i64, expected: &str| {
            assert_eq!(duration(Timestamp::from_millis(0), Timestamp::from_millis(ms)), expected)
        };
        check(120, "120ms");
        check(3_400, "3.4s");
        check(62_000, "1m 2s");
        check(3_720_000, "1h 2m");
        check(-5, "0ms");
    }
}
