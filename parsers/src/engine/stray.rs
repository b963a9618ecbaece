//! Text inside a tool-call section (or another place of calls) that belongs to no call. Runs
//! of whitespace are ignored; anything else is reported once the run ends, with its text, so
//! that nothing is lost.

use crate::engine::diag::with_text;
use crate::engine::driver::Chunk;
use crate::engine::scan::{Found, MarkerSet, read_to_marker};
use crate::event::EventSink;
use crate::message::DiagnosticKind;

#[derive(Debug, Default)]
pub(crate) struct Stray {
    run: Option<(usize, String)>,
}

impl Stray {
    /// Adds `text` (at absolute `offset`) to the current run.
    pub(crate) fn add(&mut self, text: &str, offset: usize) {
        match &mut self.run {
            Some((_, run)) => run.push_str(text),
            None => {
                let trimmed = text.trim_start();
                if !trimmed.is_empty() {
                    let offset = offset + text.len() - trimmed.len();
                    self.run = Some((offset, trimmed.to_owned()));
                }
            }
        }
    }

    /// Reads `chunk` from `start` up to the next marker of `G` that `accept` takes, adding the
    /// text to the run; a marker ends the run, which is then reported with `message`.
    pub(crate) fn read_to_marker<G: MarkerSet, S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        accept: impl FnMut(G::Marker) -> bool,
        message: &str,
        sink: &mut S,
    ) -> Found<G::Marker> {
        let found = read_to_marker::<G>(chunk, start, accept, |text, at| self.add(text, at));
        if matches!(found, Found::Marker { .. }) {
            self.flush(message, sink);
        }
        found
    }

    /// Ends the run: reports it, if there was any text.
    pub(crate) fn flush<S: EventSink>(&mut self, message: &str, sink: &mut S) {
        if let Some((offset, text)) = self.run.take() {
            sink.emit(with_text(DiagnosticKind::StrayText, None, offset, message, text.trim_end()));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.run.as_ref().map_or(0, |(_, text)| text.len())
    }
}
