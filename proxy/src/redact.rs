//! The upstream key (`--api-key-env`) taken out of everything the proxy sends back: an upstream
//! may echo it in an error body, in an error event of a `200` stream, in an answer, on any path.
//! Whole bodies go through [`ApiKey::redact_bytes`] (the key as it is, or escaped in a JSON
//! string); a streamed body through a [`Redactor`], which finds the key though the stream cuts
//! it between two chunks.
//!
//! The bytes are not all a client reads of an event stream: it joins the texts of a choice's
//! chunks, so a key an upstream spells a few characters per event reaches it whole though no
//! event holds it. Those texts go through a [`DeltaRedactor`] (`deltas.rs`), which reads them
//! as the client joins them: in the chat path's rewriter, and for another path's event stream
//! in an [`EventRedactor`] (`events.rs`), before the bytes go through the [`Redactor`].

mod deltas;
mod events;

pub(crate) use deltas::DeltaRedactor;
use events::EventRedactor;

use axum::BoxError;
use axum::body::{Body, Bytes};
use futures_util::{Stream, StreamExt};
use taskflow_providers::ApiKey;

/// The longest form in which [`ApiKey::redact_bytes`] finds a key, per byte of the key: a
/// character written as a JSON `\u` escape of four hex digits, six bytes.
const LONGEST_FORM_PER_BYTE: usize = 6;

/// Redacts a stream chunk by chunk. What may still be the start of the key (after the last line
/// end, at most its longest form) is held until the next chunk; keys hold no line end, so a
/// stream of lines (SSE) is held back not at all.
pub(crate) struct Redactor {
    key: ApiKey,
    held: Vec<u8>,
}

/// What a streamed body goes through on its way to the client, chunk by chunk.
pub(crate) trait Stage {
    /// Takes the next chunk; returns what may go out now.
    fn push(&mut self, chunk: &[u8]) -> Vec<u8>;

    /// The stream ended: what was held.
    fn finish(&mut self) -> Vec<u8>;
}

impl Redactor {
    pub(crate) fn new(key: ApiKey) -> Self {
        Self { key, held: Vec::new() }
    }
}

impl Stage for Redactor {
    fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(chunk);
        // A key found escaped is decoded as UTF-8 with the text around it: a character the
        // chunk cut waits for its end, and what is held starts at a character's start.
        let cut_character = self.held.split_off(self.held.len() - incomplete_end(&self.held));
        let mut out = self.key.redact_bytes(&self.held);
        let line_start = out.iter().rposition(|&byte| byte == b'\n').map_or(0, |at| at + 1);
        let longest = LONGEST_FORM_PER_BYTE * self.key.expose().len();
        let mut cut = line_start.max(out.len().saturating_sub(longest));
        while cut > line_start && cut < out.len() && is_continuation(out[cut]) {
            cut -= 1;
        }
        self.held = out.split_off(cut);
        self.held.extend(cut_character);
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        let held = std::mem::take(&mut self.held);
        self.key.redact_bytes(&held)
    }
}

/// A whole body without `key`, when the proxy has one; and whether it held it.
pub(crate) fn without_key(key: Option<&ApiKey>, body: Bytes) -> (Bytes, bool) {
    let Some(key) = key else { return (body, false) };
    let redacted = key.redact_bytes(&body);
    if redacted[..] == body[..] { (body, false) } else { (Bytes::from(redacted), true) }
}

/// A streamed body as the client gets it: without `key`, when the proxy has one. `events`: the
/// body is an event stream the proxy does not rewrite, whose chunks' texts are read too.
pub(crate) fn client_body<E>(
    key: Option<&ApiKey>,
    body: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
    events: bool,
) -> Body
where
    E: Into<BoxError> + Send + 'static,
{
    let Some(key) = key else { return Body::from_stream(body) };
    let bytes = Redactor::new(key.clone());
    if events {
        Body::from_stream(through(bytes, through(EventRedactor::new(key.clone()), body)))
    } else {
        Body::from_stream(through(bytes, body))
    }
}

/// `body` through `stage`; a failure ends the stream, after what `stage` let out.
fn through<E>(
    stage: impl Stage + Send + 'static,
    body: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
) -> impl Stream<Item = Result<Bytes, E>> + Send + 'static
where
    E: Send + 'static,
{
    let state = (Box::pin(body), Some(stage));
    futures_util::stream::unfold(state, |(mut body, mut stage)| async move {
        let active = stage.as_mut()?;
        loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    let out = active.push(&chunk);
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), (body, stage)));
                    }
                }
                Some(Err(failure)) => return Some((Err(failure), (body, None))),
                None => return Some((Ok(Bytes::from(active.finish())), (body, None))),
            }
        }
    })
}

fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// How many bytes at the end of `bytes` are a UTF-8 character not complete yet.
fn incomplete_end(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if !is_continuation(byte) {
            let length = match byte {
                0xF0.. => 4,
                0xE0.. => 3,
                0xC0.. => 2,
                _ => 1,
            };
            return if length > back { back } else { 0 };
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `body` through a redactor in chunks of `size`; also checks that lines go out at once.
    fn streamed(key: &ApiKey, body: &[u8], size: usize) -> Vec<u8> {
        let mut redactor = Redactor::new(key.clone());
        let mut out = Vec::new();
        for chunk in body.chunks(size) {
            let now = redactor.push(chunk);
            if chunk.ends_with(b"\n") {
                assert!(redactor.held.is_empty(), "a line ended: nothing is held");
            }
            out.extend(now);
        }
        out.extend(redactor.finish());
        out
    }

    #[test]
    fn the_key_is_taken_out_however_the_stream_is_cut() {
        let key = ApiKey::new("sk-upstream-SECRET-123").unwrap();
        let escaped: String =
            key.expose().chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
        // (body, what the client gets)
        let cases = [
            (
                "data: {\"error\": \"invalid key sk-upstream-SECRET-123\"}\n\n".to_owned(),
                "data: {\"error\": \"invalid key [redacted]\"}\n\n".to_owned(),
            ),
            (
                format!("{{\"m\": \"{escaped}\", \"é\": 1}}"),
                "{\"m\": \"[redacted]\", \"é\": 1}".to_owned(),
            ),
            (
                "{\"m\": \"sk\\u002dupstream-SECRET-123 x\"}".to_owned(),
                "{\"m\": \"[redacted] x\"}".to_owned(),
            ),
            (
                format!("{{\"é\": \"{escaped}\", \"ü\": \"€😀\"}}"),
                "{\"é\": \"[redacted]\", \"ü\": \"€😀\"}".to_owned(),
            ),
            (
                "no key, but sk-upstream-SECRET-12 and ü".to_owned(),
                "no key, but sk-upstream-SECRET-12 and ü".to_owned(),
            ),
        ];
        for (body, expected) in cases {
            for size in 1..=body.len() {
                let out = streamed(&key, body.as_bytes(), size);
                assert_eq!(String::from_utf8(out).unwrap(), expected, "in chunks of {size}");
            }
        }
    }
}
