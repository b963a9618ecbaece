//! Server-sent events read from the upstream's bytes the way the proxy needs them, which a
//! general SSE client does not give: an event's data stays bytes (an event that is not UTF-8,
//! such as a cut emoji, is passed on as it came instead of ending the stream); its other fields
//! (`event:`, `id:`, `retry:`) are kept as they came, to go on with it; and a comment line
//! (`: ping`, the keep-alive a server sends while a model thinks) is an item of its own, passed
//! on at once, so that clients and the proxies between see the connection alive. Lines end with
//! LF, CRLF or CR, in any chunking (WHATWG HTML, "Parsing an event stream").

/// What the upstream's stream holds, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Item {
    /// A comment line as it came (with its `:`), without its line end.
    Comment(Vec<u8>),
    Event(Event),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Event {
    /// The values of its `data` lines joined by `\n`; `None` when it had no `data` line.
    pub data: Option<Vec<u8>>,
    /// Its other field lines as they came, each ended by `\n`.
    pub fields: Vec<u8>,
}

impl Event {
    /// Writes the event as it came: its fields, its data.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        match &self.data {
            Some(data) => write_event(out, &self.fields, data),
            None => {
                out.extend_from_slice(&self.fields);
                out.push(b'\n');
            }
        }
    }
}

/// Writes an event of `fields` (field lines, each ended by `\n`) and `data`.
pub(crate) fn write_event(out: &mut Vec<u8>, fields: &[u8], data: &[u8]) {
    out.extend_from_slice(fields);
    for line in data.split(|&byte| byte == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Writes a comment line (`line` starts with its `:`) as a block of its own.
pub(crate) fn write_comment(out: &mut Vec<u8>, line: &[u8]) {
    out.extend_from_slice(line);
    out.extend_from_slice(b"\n\n");
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads a stream's bytes, chunk by chunk, into [`Item`]s. An event not ended by a blank line
/// when the stream ends is not one (as every SSE client reads it).
#[derive(Debug, Default)]
pub(crate) struct Reader {
    /// A line not ended yet.
    line: Vec<u8>,
    event: Event,
    /// The last line ended with a CR: an LF right after it ends no other line.
    after_cr: bool,
    /// A line was read (a BOM may only start the stream).
    started: bool,
}

impl Reader {
    /// Reads `bytes`; appends the items they complete to `items`.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], items: &mut Vec<Item>) {
        while let Some(&first) = bytes.first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                bytes = &bytes[1..];
                continue;
            }
            match bytes.iter().position(|&byte| byte == b'\n' || byte == b'\r') {
                Some(at) => {
                    self.line.extend_from_slice(&bytes[..at]);
                    self.after_cr = bytes[at] == b'\r';
                    bytes = &bytes[at + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.take_line(&line, items);
                }
                None => {
                    self.line.extend_from_slice(bytes);
                    return;
                }
            }
        }
    }

    fn take_line(&mut self, mut line: &[u8], items: &mut Vec<Item>) {
        if !std::mem::replace(&mut self.started, true) {
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            if event != Event::default() {
                items.push(Item::Event(event));
            }
            return;
        }
        if line[0] == b':' {
            items.push(Item::Comment(line.to_vec()));
            return;
        }
        let (name, value) = match line.iter().position(|&byte| byte == b':') {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        if name == b"data" {
            match &mut self.event.data {
                Some(data) => {
                    data.push(b'\n');
                    data.extend_from_slice(value);
                }
                None => self.event.data = Some(value.to_vec()),
            }
        } else {
            self.event.fields.extend_from_slice(line);
            self.event.fields.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(fields: &[u8], data: Option<&[u8]>) -> Item {
        Item::Event(Event { data: data.map(<[u8]>::to_vec), fields: fields.to_vec() })
    }

    fn comment(line: &str) -> Item {
        Item::Comment(line.as_bytes().to_vec())
    }

    /// The items of `stream` fed whole, in chunks of every size, and byte by byte.
    fn read_in_every_chunking(stream: &[u8]) -> Vec<Item> {
        let read = |size: usize| {
            let mut reader = Reader::default();
            let mut items = Vec::new();
            for chunk in stream.chunks(size) {
                reader.feed(chunk, &mut items);
            }
            items
        };
        let whole = read(stream.len().max(1));
        for size in 1..stream.len() {
            assert_eq!(
                read(size),
                whole,
                "in chunks of {size}: {:?}",
                String::from_utf8_lossy(stream)
            );
        }
        whole
    }

    #[test]
    fn events_comments_and_fields_are_read_as_they_came() {
        // (stream, items)
        let cases: [(&[u8], Vec<Item>); 9] = [
            (b"data: {\"a\": 1}\n\n", vec![event(b"", Some(b"{\"a\": 1}"))]),
            (
                b"data:x\r\n\r\ndata: y\r\rdata:  z\n\n",
                vec![event(b"", Some(b"x")), event(b"", Some(b"y")), event(b"", Some(b" z"))],
            ),
            (b"data: one\ndata:\ndata: two\n\n", vec![event(b"", Some(b"one\n\ntwo"))]),
            // Comments come at once, even within an event.
            (
                b": ping\n\n: ping\ndata: hi\n: mid\n\n",
                vec![
                    comment(": ping"),
                    comment(": ping"),
                    comment(": mid"),
                    event(b"", Some(b"hi")),
                ],
            ),
            (
                b"event: message\nid: 7\ndata: hi\nretry: 10\n\n",
                vec![event(b"event: message\nid: 7\nretry: 10\n", Some(b"hi"))],
            ),
            (b"id: 8\n\n\n\n", vec![event(b"id: 8\n", None)]),
            // Data that is not UTF-8 stays bytes.
            (
                b"data: \xf0\x9f\n\ndata: ok\n\n",
                vec![event(b"", Some(b"\xf0\x9f")), event(b"", Some(b"ok"))],
            ),
            (
                b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n",
                vec![event(b"", Some(b"a")), event(b"\xEF\xBB\xBFdata: b\n", None)],
            ),
            // An event the stream cut before its blank line is not one.
            (b"data: a\n\ndata: cut", vec![event(b"", Some(b"a"))]),
        ];
        for (stream, items) in cases {
            assert_eq!(
                read_in_every_chunking(stream),
                items,
                "{:?}",
                String::from_utf8_lossy(stream)
            );
        }
    }

    #[test]
    fn events_are_written_back_as_they_came() {
        let stream = b"event: message\nid: 7\ndata: a\ndata: b\n\nid: 8\n\n";
        let mut out = Vec::new();
        for item in read_in_every_chunking(stream) {
            let Item::Event(event) = item else { panic!("{item:?}") };
            event.write(&mut out);
        }
        assert_eq!(out, stream);
    }
}
