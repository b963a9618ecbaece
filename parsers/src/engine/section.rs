//! A tool-call section, for formats that gather calls between section markers (Kimi,
//! DeepSeek): where it began, and the text inside it that belongs to no call.

use crate::engine::diag::diagnostic;
use crate::engine::driver::Chunk;
use crate::engine::scan::{Found, MarkerSet};
use crate::engine::stray::Stray;
use crate::event::EventSink;
use crate::message::DiagnosticKind;

const STRAY: &str = "text inside a tool-call section, outside any call";

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

    pub(crate) fn close(&mut self) {
        self.begin = None;
    }

    pub(crate) fn is_open(&self) -> bool {
        self.begin.is_some()
    }

    /// Reads the section between calls up to the next marker `accept` takes: whitespace is
    /// ignored, other text is reported as stray once a marker ends it.
    pub(crate) fn read<G: MarkerSet, S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        accept: impl FnMut(G::Marker) -> bool,
        sink: &mut S,
    ) -> Found<G::Marker> {
        self.stray.read_to_marker::<G, S>(chunk, start, accept, STRAY, sink)
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
