//! `Format::Auto`: the format is told by the first marker that only one format writes.
//!
//! Until then the text is content (or reasoning inside `<think>`), streamed as it arrives.
//! At that marker the parser of the format it names takes over from the marker on, with the
//! same offsets and think state, so the result is what that format's parser gives for the
//! rest. A JSON object without `<|python_tag|>` names no format (JSON content is not a call
//! unless the format is known to say so), so auto never reads bare Llama 3 calls.

use nom::branch::alt;
use nom::bytes::streaming::tag;
use nom::combinator::value;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::ParseOptions;
use crate::engine::driver::{Chunk, Driver, Machine, Step};
use crate::engine::scan::{Found, MarkerSet, Scan, read_to_marker};
use crate::engine::tally::Tally;
use crate::engine::text::TextOut;
use crate::event::EventSink;
use crate::format::Format;
use crate::one_format::Inner;

/// A marker that tells the format, or a think tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opener {
    Format(Format),
    /// Qwen3-Coder's `<function=` outside `<tool_call>`.
    BareFunction,
    ThinkOpen,
    ThinkClose,
}

#[inline]
fn opener(input: &str) -> IResult<&str, Opener> {
    use Opener::Format as F;
    alt((
        preceded(
            tag("<|"),
            alt((
                value(
                    F(Format::Kimi),
                    alt((
                        tag("tool_calls_section_begin|>"),
                        tag("tool_call_section_begin|>"),
                        tag("tool_call_begin|>"),
                    )),
                ),
                value(F(Format::Llama3), tag("python_tag|>")),
                value(F(Format::Harmony), alt((tag("channel|>"), tag("start|>")))),
            )),
        ),
        value(
            F(Format::DeepseekV3),
            preceded(tag("<｜tool▁call"), alt((tag("s▁begin｜>"), tag("▁begin｜>")))),
        ),
        value(F(Format::Hermes), tag("<tool_call>")),
        value(Opener::BareFunction, tag("<function=")),
        value(F(Format::MinimaxM2), tag("<minimax:tool_call>")),
        value(Opener::ThinkOpen, tag("<think>")),
        value(Opener::ThinkClose, tag("</think>")),
        value(F(Format::Mistral), alt((tag("[TOOL_CALLS]"), tag("[THINK]")))),
    ))
    .parse(input)
}

#[derive(Debug)]
struct Openers;

impl MarkerSet for Openers {
    type Marker = Opener;
    const STARTS: &'static [u8] = b"<[";
    const SPELLINGS: &'static [&'static str] = &[
        "<|tool_calls_section_begin|>",
        "<|tool_call_section_begin|>",
        "<|tool_call_begin|>",
        "<|python_tag|>",
        "<|channel|>",
        "<|start|>",
        "<｜tool▁calls▁begin｜>",
        "<｜tool▁call▁begin｜>",
        "<tool_call>",
        "<function=",
        "<minimax:tool_call>",
        "<think>",
        "</think>",
        "[TOOL_CALLS]",
        "[THINK]",
    ];

    #[inline]
    fn recognize(input: &str) -> Scan<Opener> {
        Scan::from_result(input, opener(input))
    }
}

/// Reads text until an opener, then stops there.
#[derive(Debug, Default)]
struct Detector {
    text: TextOut,
    decided: Option<Opener>,
    tally: Tally,
}

impl Machine for Detector {
    fn step<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let (out, opens) = (self.text, self.text.opens());
        let accept = |m| m != Opener::ThinkOpen || opens;
        let found = read_to_marker::<Openers>(chunk, start, accept, |text, _| out.emit(text, sink));
        let Found::Marker { at, marker, len } = found else { return found.step() };
        match marker {
            Opener::ThinkOpen => self.text.open(),
            Opener::ThinkClose => self.text.close("</think>", "<think>", chunk.base + at, sink),
            _ => {
                self.decided = Some(marker);
                return Step::HandOver(at);
            }
        }
        self.tally.count_syntax(len);
        Step::Continue(at + len)
    }

    fn end<S: EventSink>(&mut self, _offset: usize, _sink: &mut S) {}

    fn retained(&self) -> usize {
        0
    }

    fn tally(&self) -> Tally {
        self.tally
    }
}

/// The parser of `Format::Auto`: the detector, then the parser of the format it found.
#[derive(Debug)]
pub(crate) struct Auto {
    options: ParseOptions,
    detector: Driver<Detector>,
    inner: Option<Inner>,
}

impl Auto {
    pub(crate) fn new(options: &ParseOptions) -> Self {
        Self { options: options.clone(), detector: Driver::new(Detector::default()), inner: None }
    }

    pub(crate) fn feed<S: EventSink>(&mut self, chunk: &str, sink: &mut S) {
        if let Some(inner) = &mut self.inner {
            return inner.feed(chunk, sink);
        }
        self.detector.feed(chunk, sink);
        self.hand_over(sink);
    }

    pub(crate) fn finish<S: EventSink>(&mut self, sink: &mut S) {
        if self.inner.is_none() {
            self.detector.drain(sink);
            self.hand_over(sink);
        }
        match &mut self.inner {
            Some(inner) => inner.finish(sink),
            None => self.detector.finish(sink),
        }
    }

    /// Once the detector found its marker, the format's parser reads from there on.
    fn hand_over<S: EventSink>(&mut self, sink: &mut S) {
        let Some(opener) = self.detector.machine.decided else { return };
        let (rest, offset) = self.detector.take_pending();
        let text = self.detector.machine.text;
        let mut inner = match opener {
            Opener::Format(format) => Inner::new(format, &self.options, text, offset),
            _ => Inner::bare_function(&self.options, text, offset),
        };
        inner.feed(&rest, sink);
        self.inner = Some(inner);
    }

    /// The format found so far.
    pub(crate) fn detected(&self) -> Option<Format> {
        self.inner.as_ref().map(Inner::detected)
    }

    pub(crate) fn buffered_len(&self) -> usize {
        self.inner.as_ref().map_or(self.detector.buffered_len(), Inner::buffered_len)
    }

    pub(crate) fn retained_bytes(&self) -> usize {
        self.detector.retained_bytes() + self.inner.as_ref().map_or(0, Inner::retained_bytes)
    }

    pub(crate) fn tally(&self) -> Tally {
        self.detector.tally() + self.inner.as_ref().map_or(Tally::default(), Inner::tally)
    }

    pub(crate) fn scanned_bytes(&self) -> usize {
        self.detector.scanned_bytes() + self.inner.as_ref().map_or(0, Inner::scanned_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::scan::check_spellings;

    #[test]
    fn every_spelling_is_recognized() {
        check_spellings::<Openers>();
    }
}
