//! A tool-call section, for formats that gather calls between section markers (Kimi,
//! DeepSeek): where it began, the text inside it that belongs to no call, and the step that
//! reads it between calls.

use crate::engine::diag::{diagnostic, unexpected_marker};
use crate::engine::driver::{Chunk, Step};
use crate::engine::scan::{Found, MarkerSet};
use crate::engine::stray::Stray;
use crate::engine::tally::Tally;
use crate::event::EventSink;
use crate::message::DiagnosticKind;

const STRAY: &str = "text inside a tool-call section, outside any call";

/// A marker of a format that gathers its calls in sections.
pub(crate) trait SectionMarker: Copy + PartialEq {
    /// The marker that ends a section.
    const SECTION_END: Self;
    /// The marker that begins a call.
    const CALL_BEGIN: Self;

    /// The canonical spelling, for messages.
    fn text(self) -> &'static str;

    /// Whether this is one of the tool-call markers; the others are text between calls.
    fn is_tool_marker(self) -> bool;
}

/// What a step between calls met, besides text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Between {
    /// Nothing that changes the machine's state.
    Nothing,
    /// The section's end marker: the section is closed.
    SectionEnd,
    /// A call's begin marker, at this absolute offset.
    CallBegin(usize),
}

#[derive(Debug, Default)]
pub(crate) struct Section {
    /// Offset of the open section's begin marker.
    begin: Option<usize>,
    stray: Stray,
}

impl Section {
    pub(crate) fn open(&mut self, offset: usize) {
        self.begin = Some(offset);
    }

    pub(crate) fn is_open(&self) -> bool {
        self.begin.is_some()
    }

    /// Reads the section between calls up to the next tool-call marker: whitespace is
    /// ignored, other text is reported as stray once the marker ends it. The marker counts as
    /// syntax in `tally`; the section's end closes it, and any marker but a call's begin is
    /// reported as out of place.
    pub(crate) fn step<G, S>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        tally: &mut Tally,
        sink: &mut S,
    ) -> (Step, Between)
    where
        G: MarkerSet<Marker: SectionMarker>,
        S: EventSink,
    {
        let accept = G::Marker::is_tool_marker;
        let found = self.stray.read_to_marker::<G, S>(chunk, start, accept, STRAY, sink);
        let Found::Marker { at, marker, len } = found else {
            return (found.step(), Between::Nothing);
        };
        tally.count_syntax(len);
        let offset = chunk.base + at;
        let met = if marker == G::Marker::SECTION_END {
            self.begin = None;
            Between::SectionEnd
        } else if marker == G::Marker::CALL_BEGIN {
            Between::CallBegin(offset)
        } else {
            sink.emit(unexpected_marker(marker.text(), offset, "between tool calls"));
            Between::Nothing
        };
        (Step::Continue(at + len), met)
    }

    /// The input ended inside the section.
    pub(crate) fn truncated<S: EventSink>(&mut self, offset: usize, sink: &mut S) {
        self.stray.flush(STRAY, sink);
        let begin = self.begin.take().unwrap_or(offset);
        sink.emit(diagnostic(
            DiagnosticKind::Truncated,
            None,
            begin,
            "the input ended inside a tool-call section",
        ));
    }

    pub(crate) fn retained(&self) -> usize {
        self.stray.len()
    }
}
