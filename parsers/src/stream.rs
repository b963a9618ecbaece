//! The streaming parser: text in chunks, events out as soon as they are certain.

use crate::ParseOptions;
use crate::event::{EventSink, StreamEvent};
use crate::format::Format;
use crate::kimi::KimiParser;

/// Parses tagged text fed in chunks of any size (down to one character).
///
/// Folding the events of every chunk and of [`finish`](Self::finish) gives the same
/// [`Message`](crate::Message) as [`parse`](crate::parse) on the whole text.
#[derive(Debug)]
pub struct StreamParser {
    inner: KimiParser,
}

impl StreamParser {
    pub fn new(format: Format, options: &ParseOptions) -> Self {
        match format {
            Format::Kimi => Self { inner: KimiParser::new(options.tools.clone()) },
        }
    }

    /// Feeds the next chunk and returns the events it made certain.
    pub fn feed(&mut self, chunk: &str) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        self.inner.feed(chunk, &mut events);
        events
    }

    /// Feeds the next chunk, sending its events to `sink`.
    pub fn feed_into(&mut self, chunk: &str, sink: &mut impl EventSink) {
        self.inner.feed(chunk, sink);
    }

    /// Ends the input: whatever was held back is decided, open calls are closed (as truncated).
    pub fn finish(mut self) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        self.inner.finish(&mut events);
        events
    }

    /// Ends the input, sending the last events to `sink`.
    pub fn finish_into(&mut self, sink: &mut impl EventSink) {
        self.inner.finish(sink);
    }

    /// Bytes held back at the end of the last chunk because they may start a marker; never
    /// more than the longest marker.
    pub fn buffered_len(&self) -> usize {
        self.inner.buffered_len()
    }

    /// Bytes kept between chunks: held-back text plus the call being read. Bounded by the
    /// largest single call, not by the length of the stream.
    pub fn retained_bytes(&self) -> usize {
        self.inner.retained_bytes()
    }

    /// Bytes of markers consumed so far; with the message, accounts for every input byte.
    pub fn marker_bytes(&self) -> usize {
        self.inner.marker_bytes()
    }

    /// Bytes handed to the scanner so far. Linear work means this stays within the input
    /// length plus the held-back bytes scanned again at each chunk.
    pub fn scanned_bytes(&self) -> usize {
        self.inner.scanned_bytes()
    }
}
