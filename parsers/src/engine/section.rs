//! A tool-call section, for formats that gather calls between section markers (Kimi,
//! DeepSeek): where it began, the text inside it that belongs to no call, and how a machine
//! moves in and out of it (its opening, the step between calls, a call's begin and end),
//! written once for every such machine ([`SectionMachine`]).

use crate::engine::call::Calls;
use crate::engine::diag::{diagnostic, unexpected_marker};
use crate::engine::driver::{Chunk, Step};
use crate::engine::scan::{Found, MarkerSet};
use crate::engine::stray::{Place, Stray};
use crate::event::EventSink;
use crate::message::DiagnosticKind;

const STRAY: Place = Place::outside("text inside a tool-call section, outside any call");

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

type Marker<M> = <<M as SectionMachine>::Markers as MarkerSet>::Marker;

/// A machine whose calls may sit in sections: the states it moves between as sections and
/// calls open and close, and its parts that the moves change.
pub(crate) trait SectionMachine {
    type Markers: MarkerSet<Marker: SectionMarker>;
    type State;

    /// Outside any section and call.
    const TEXT: Self::State;
    /// Inside a section, between calls.
    const SECTION: Self::State;
    /// A call's first state, after its begin marker.
    const CALL: Self::State;

    /// The machine's state, its section, and its calls (which hold its tally).
    fn parts(&mut self) -> (&mut Self::State, &mut Section, &mut Calls);

    /// A section begins at the marker at `offset`.
    fn open_section(&mut self, offset: usize) {
        let (state, section, _) = self.parts();
        section.begin = Some(offset);
        *state = Self::SECTION;
    }

    /// A call begins at the marker at `offset`.
    fn begin_call(&mut self, offset: usize) {
        let (state, _, calls) = self.parts();
        calls.begin(offset);
        *state = Self::CALL;
    }

    /// The call ended: back between calls if a section is open, else in text.
    fn after_call(&mut self) {
        let (state, section, _) = self.parts();
        *state = if section.begin.is_some() { Self::SECTION } else { Self::TEXT };
    }

    /// Reads the section between calls up to the next tool-call marker: whitespace is
    /// ignored, other text is reported as stray once the marker ends it. The marker counts as
    /// syntax; the section's end closes it, a call's begin begins the call, and any other
    /// marker is reported as out of place.
    fn step_section<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let (state, section, calls) = self.parts();
        let accept = Marker::<Self>::is_tool_marker;
        let found =
            section.stray.read_to_marker::<Self::Markers, S>(chunk, start, accept, STRAY, sink);
        let Found::Marker { at, marker, len } = found else { return found.step() };
        calls.tally.count_syntax(len);
        let offset = chunk.base + at;
        if marker == Marker::<Self>::SECTION_END {
            section.begin = None;
            *state = Self::TEXT;
        } else if marker == Marker::<Self>::CALL_BEGIN {
            self.begin_call(offset);
        } else {
            sink.emit(unexpected_marker(marker.text(), None, offset, "between tool calls"));
        }
        Step::Continue(at + len)
    }
}

/// The open section of a [`SectionMachine`].
#[derive(Debug, Default)]
pub(crate) struct Section {
    /// Offset of the open section's begin marker.
    begin: Option<usize>,
    stray: Stray,
}

impl Section {
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
