//! The streaming parser: text in chunks, events out as soon as they are certain. It picks
//! the machine of the format asked for (or the auto-detector) and drives it.

use crate::ParseOptions;
use crate::auto::Auto;
use crate::deepseek;
use crate::engine::tally::Tally;
use crate::engine::text::TextOut;
use crate::event::{EventSink, StreamEvent};
use crate::format::Format;
use crate::harmony;
use crate::kimi;
use crate::llama3;
use crate::mistral;
use crate::one_format::Inner;
use crate::tagged::{Dialect, MinimaxTags, ToolCallTags};

impl Format {
    /// The length in bytes of the format's longest marker: a streaming parser never holds
    /// back more than this less one byte between chunks.
    pub fn longest_marker(self) -> usize {
        match self {
            Format::Kimi => kimi::LONGEST_MARKER,
            Format::Hermes | Format::Qwen3Coder | Format::Glm45 => ToolCallTags::LONGEST_MARKER,
            Format::MinimaxM2 => MinimaxTags::LONGEST_MARKER,
            Format::DeepseekV3 | Format::DeepseekV31 => deepseek::LONGEST_MARKER,
            Format::Mistral => mistral::LONGEST_MARKER,
            Format::Llama3 => llama3::LONGEST_MARKER,
            Format::Harmony => harmony::LONGEST_MARKER,
            Format::Auto => {
                Format::ALL.iter().map(|format| format.longest_marker()).max().unwrap_or(0)
            }
        }
    }
}

#[derive(Debug)]
enum Parser {
    Fixed(Inner),
    Auto(Auto),
}

/// Parses tagged text fed in chunks of any size (down to one character).
///
/// Folding the events of every chunk and of [`finish`](Self::finish) gives the same
/// [`Message`](crate::Message) as [`parse`](crate::parse) on the whole text.
#[derive(Debug)]
pub struct StreamParser {
    format: Format,
    parser: Parser,
}

impl StreamParser {
    pub fn new(format: Format, options: &ParseOptions) -> Self {
        let parser = match format {
            Format::Auto => Parser::Auto(Auto::new(options)),
            format => Parser::Fixed(Inner::new(format, options, TextOut::default(), 0)),
        };
        Self { format, parser }
    }

    /// The format being read: the one asked for, or with [`Format::Auto`] the one its
    /// markers told (`None` until one did). For Hermes, Qwen3-Coder and GLM, which one parser
    /// reads, it is the format of the first call's shape.
    pub fn format(&self) -> Option<Format> {
        match &self.parser {
            Parser::Fixed(inner) => Some(match self.format {
                Format::Hermes | Format::Qwen3Coder | Format::Glm45 => self.format,
                _ => inner.detected(),
            }),
            Parser::Auto(auto) => auto.detected(),
        }
    }

    /// Feeds the next chunk and returns the events it made certain.
    pub fn feed(&mut self, chunk: &str) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        self.feed_into(chunk, &mut events);
        events
    }

    /// Feeds the next chunk, sending its events to `sink`.
    pub fn feed_into(&mut self, chunk: &str, sink: &mut impl EventSink) {
        match &mut self.parser {
            Parser::Fixed(inner) => inner.feed(chunk, sink),
            Parser::Auto(auto) => auto.feed(chunk, sink),
        }
    }

    /// Ends the input: whatever was held back is decided, open calls are closed (as truncated).
    pub fn finish(mut self) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        self.finish_into(&mut events);
        events
    }

    /// Ends the input, sending the last events to `sink`.
    pub fn finish_into(&mut self, sink: &mut impl EventSink) {
        match &mut self.parser {
            Parser::Fixed(inner) => inner.finish(sink),
            Parser::Auto(auto) => auto.finish(sink),
        }
    }

    /// Bytes held back at the end of the last chunk because they may start a marker; fewer
    /// than [`Format::longest_marker`].
    pub fn buffered_len(&self) -> usize {
        match &self.parser {
            Parser::Fixed(inner) => inner.buffered_len(),
            Parser::Auto(auto) => auto.buffered_len(),
        }
    }

    /// Bytes kept between chunks: held-back text plus the call being read. Bounded by the
    /// largest single call, not by the length of the stream: stray text and a harmony header
    /// are held up to 64 KiB, and the text of a call known to have no name goes out as read.
    pub fn retained_bytes(&self) -> usize {
        match &self.parser {
            Parser::Fixed(inner) => inner.retained_bytes(),
            Parser::Auto(auto) => auto.retained_bytes(),
        }
    }

    /// Non-whitespace bytes of markers and other format syntax consumed so far (what carries
    /// no text of its own); with the message, accounts for every non-whitespace input byte.
    pub fn marker_bytes(&self) -> usize {
        self.tally().marker_bytes()
    }

    /// Non-whitespace bytes of text the parser wrote itself so far, not found in the input:
    /// ids made up for formats that write none (`call_0`), names taken out of an id or from
    /// the declared tools, and the JSON written around typed parameters. With
    /// [`marker_bytes`](Self::marker_bytes) and the message, accounts for every byte of both.
    pub fn generated_bytes(&self) -> usize {
        self.tally().generated_bytes()
    }

    fn tally(&self) -> Tally {
        match &self.parser {
            Parser::Fixed(inner) => inner.tally(),
            Parser::Auto(auto) => auto.tally(),
        }
    }

    /// Bytes handed to the scanner so far. Linear work means this stays within the input
    /// length plus the held-back bytes scanned again at each chunk.
    pub fn scanned_bytes(&self) -> usize {
        match &self.parser {
            Parser::Fixed(inner) => inner.scanned_bytes(),
            Parser::Auto(auto) => auto.scanned_bytes(),
        }
    }
}
