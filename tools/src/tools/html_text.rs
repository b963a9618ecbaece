//! `html_text`: the readable text of HTML pages. Takes `pages` (the output of `fetch_urls`,
//! `[{"url", "body"}]`) and returns `[{"url", "title", "text"}]`: tags, scripts and styles
//! dropped, the common entities decoded, whitespace collapsed.

use serde_json::{Value, json};

use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tool;

pub struct HtmlText;

impl Tool for HtmlText {
    fn name(&self) -> &str {
        "html_text"
    }

    fn description(&self) -> &str {
        "The title and readable text of fetched HTML pages"
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["pages"], "properties": {
            "pages": {"type": "array", "items": {"type": "object",
                "properties": {"url": {"type": "string"}, "body": {"type": "string"}}}}}})
    }

    fn call(&self, args: Value, _context: StepContext) -> ActionFuture {
        Box::pin(async move {
            let pages = args.get("pages").and_then(Value::as_array).ok_or_else(|| {
                ActionError::permanent("html_text needs `pages`, a list of {url, body}")
            })?;
            let texts = pages
                .iter()
                .map(|page| {
                    let body = page.get("body").and_then(Value::as_str).unwrap_or_default();
                    json!({"url": page.get("url"), "title": title(body), "text": text(body)})
                })
                .collect();
            Ok(Value::Array(texts))
        })
    }
}

fn title(html: &str) -> Value {
    let lower = html.to_ascii_lowercase();
    let Some(open) = lower.find("<title") else { return Value::Null };
    let Some(start) = lower[open..].find('>').map(|at| open + at + 1) else { return Value::Null };
    let end = lower[start..].find("</title").map_or(html.len(), |at| start + at);
    json!(collapse(&decode(&html[start..end])))
}

/// The text outside tags, without `<script>`, `<style>` and `<head>` content.
fn text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len() / 2);
    let mut at = 0;
    while at < html.len() {
        let Some(open) = html[at..].find('<').map(|i| at + i) else {
            out.push_str(&html[at..]);
            break;
        };
        out.push_str(&html[at..open]);
        let close = html[open..].find('>').map_or(html.len(), |i| open + i + 1);
        let tag = &lower[open..close];
        let skipped = ["script", "style", "head"].iter().find(|name| {
            tag.strip_prefix('<').is_some_and(|rest| {
                rest.starts_with(*name)
                    && rest[name.len()..].starts_with(|c: char| c == '>' || c.is_whitespace())
            })
        });
        at = match skipped {
            Some(name) => {
                let end_tag = format!("</{name}");
                lower[close..].find(&end_tag).map_or(html.len(), |i| {
                    let from = close + i;
                    html[from..].find('>').map_or(html.len(), |j| from + j + 1)
                })
            }
            None => close,
        };
        out.push(' ');
    }
    collapse(&decode(&out))
}

fn decode(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_text_of_a_page() {
        fn check(html: &str, expected_title: Value, expected_text: &str) {
            assert_eq!(title(html), expected_title, "{html}");
            assert_eq!(text(html), expected_text, "{html}");
        }
        check(
            "<html><head><title>Rust 1.95 &amp; more</title><style>p{}</style></head>\
             <body><h1>Rust</h1><p>Fast&nbsp;and <b>safe</b>.</p><script>x()</script></body></html>",
            json!("Rust 1.95 & more"),
            "Rust Fast and safe .",
        );
        check("plain words", Value::Null, "plain words");
        check("<p>unclosed", Value::Null, "unclosed");
    }
}
