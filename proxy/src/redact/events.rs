//! An event stream the proxy passes on without rewriting it (another path's, such as a legacy
//! completion streamed from `/v1/completions`), when the proxy has the upstream key: its chunks
//! carry text that clients join as the chat path's do, so each chunk goes through a
//! [`DeltaRedactor`]. The stream passes as it came, byte for byte, an event (a block of lines
//! up to a blank line) at a time: only an event whose text changed is written anew (its other
//! fields kept, its comments first). What is held goes out in a chunk of its own before
//! `[DONE]`, or at the end, before what followed the last blank line (no event, to a client).

use serde_json::{Map, Value};
use taskflow_providers::ApiKey;

use super::Stage;
use super::deltas::DeltaRedactor;
use crate::chunk::{template, write_chunk};
use crate::sse::{Item, Reader, write_comment, write_event};

pub(crate) struct EventRedactor {
    /// What came after the last event.
    pending: Vec<u8>,
    /// How much of `pending` was looked at for the blank line that ends an event.
    scanned: usize,
    /// The line being scanned is empty so far.
    line_empty: bool,
    events: Reader,
    deltas: DeltaRedactor,
    /// What a chunk of the proxy's own copies from the upstream's last.
    template: Map<String, Value>,
}

impl EventRedactor {
    pub(crate) fn new(key: ApiKey) -> Self {
        Self {
            pending: Vec::new(),
            scanned: 0,
            line_empty: true,
            events: Reader::default(),
            deltas: DeltaRedactor::new(key),
            template: Map::new(),
        }
    }

    /// Where the first event of `pending` ends (after its blank line), once it does (`ended`:
    /// no more bytes come). Lines end with LF, CRLF or CR, as the [`Reader`] reads them: a CR
    /// waits for the byte after it, so that an event ends after its whole line end.
    fn event_end(&mut self, ended: bool) -> Option<usize> {
        while let Some(&byte) = self.pending.get(self.scanned) {
            if byte == b'\r' && self.scanned + 1 == self.pending.len() && !ended {
                return None;
            }
            self.scanned += 1;
            if byte != b'\n' && byte != b'\r' {
                self.line_empty = false;
                continue;
            }
            if byte == b'\r' && self.pending.get(self.scanned) == Some(&b'\n') {
                self.scanned += 1;
            }
            if std::mem::replace(&mut self.line_empty, true) {
                return Some(self.scanned);
            }
        }
        None
    }

    /// Takes the events `pending` holds whole.
    fn events(&mut self, ended: bool, out: &mut Vec<u8>) {
        while let Some(end) = self.event_end(ended) {
            let rest = self.pending.split_off(end);
            let event = std::mem::replace(&mut self.pending, rest);
            self.scanned = 0;
            self.event(&event, out);
        }
    }

    /// One event's bytes (ending with its blank line), read for its chunk.
    fn event(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut items = Vec::new();
        self.events.feed(bytes, &mut items);
        let Some(Item::Event(event)) = items.last() else { return out.extend_from_slice(bytes) };
        let Some(data) = &event.data else { return out.extend_from_slice(bytes) };
        if data.trim_ascii() == b"[DONE]" {
            self.write_held(out);
            return out.extend_from_slice(bytes);
        }
        let Ok(Value::Object(mut chunk)) = serde_json::from_slice::<Value>(data) else {
            return out.extend_from_slice(bytes);
        };
        if let Some(template) = template(&chunk) {
            self.template = template;
        }
        if !self.deltas.chunk(&mut chunk) {
            return out.extend_from_slice(bytes);
        }
        for item in &items {
            if let Item::Comment(line) = item {
                write_comment(out, line);
            }
        }
        write_event(out, &event.fields, Value::Object(chunk).to_string().as_bytes());
    }

    fn write_held(&mut self, out: &mut Vec<u8>) {
        let mut choices = Vec::new();
        self.deltas.finish(&mut choices);
        write_chunk(&self.template, choices, out);
    }
}

impl Stage for EventRedactor {
    fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        self.events(false, &mut out);
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.events(true, &mut out);
        self.write_held(&mut out);
        out.append(&mut self.pending);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-upstream-SECRET-123";

    /// `stream` through an event redactor in chunks of `size`.
    fn redacted(stream: &[u8], size: usize) -> Vec<u8> {
        let mut redactor = EventRedactor::new(ApiKey::new(KEY).unwrap());
        let mut out = Vec::new();
        for chunk in stream.chunks(size) {
            out.extend(redactor.push(chunk));
        }
        out.extend(redactor.finish());
        out
    }

    #[test]
    fn a_stream_without_the_key_passes_byte_for_byte_in_any_chunking() {
        let streams: [&[u8]; 5] = [
            b"event: message\r\nid: 1\r\ndata: {\"choices\": [{\"text\": \"Hi\"}]}\r\n\r\n: ping\r\r",
            b"data: {\"choices\": [{\"text\": \"a\"}]}\n\ndata: [DONE]\n\n",
            b"\xEF\xBB\xBFdata: \xf0\x9f\n\n\n\ndata:x\ndata: {\"a\": 1}\n\ndata: cut",
            b"{\"data\": [{\"id\": \"m\"}]}",
            b"",
        ];
        for stream in streams {
            for size in 1..=stream.len().max(1) {
                assert_eq!(
                    redacted(stream, size),
                    stream,
                    "{:?} in chunks of {size}",
                    String::from_utf8_lossy(stream)
                );
            }
        }
    }

    #[test]
    fn the_key_spelled_across_events_is_taken_out_and_the_rest_passes_as_it_came() {
        let piece = |text: &str| {
            format!("data: {{\"choices\": [{{\"index\": 0, \"text\": \"{text}\"}}]}}\r\n\r\n")
        };
        let stream = [
            ": ping\r\n\r\n".to_owned(),
            piece("key sk-upstr"),
            piece("eam-SECRET-1"),
            piece("23 ok"),
            "data: [DONE]\r\n\r\n".to_owned(),
        ]
        .concat();
        for size in 1..=stream.len() {
            let out = String::from_utf8(redacted(stream.as_bytes(), size)).unwrap();
            let expected = [
                ": ping\r\n\r\n".to_owned(),
                "data: {\"choices\":[{\"index\":0,\"text\":\"key \"}]}\n\n".to_owned(),
                "data: {\"choices\":[{\"index\":0,\"text\":\"\"}]}\n\n".to_owned(),
                "data: {\"choices\":[{\"index\":0,\"text\":\"[redacted] ok\"}]}\n\n".to_owned(),
                "data: [DONE]\r\n\r\n".to_owned(),
            ]
            .concat();
            assert_eq!(out, expected, "in chunks of {size}");
        }
    }
}
