//! Text inside a tool-call section (or another place of calls, or a call outside its parts)
//! that belongs to nothing there. Runs of whitespace are ignored; anything else is reported
//! once the run ends, with its text, so that nothing is lost.
//!
//! A run can be as long as the model cares to write, and none of it can become part of a call,
//! so it is not held whole: once it passes [`HELD_TEXT_LIMIT`] bytes, what was read of it is
//! reported as one piece, up to its last non-whitespace character, and the run goes on from
//! there. The pieces continue one another (each starts where the one before ended), and a
//! [`MessageBuilder`](crate::MessageBuilder) joins them, so the message is the same as if the
//! run had been reported whole.

use crate::engine::HELD_TEXT_LIMIT;
use crate::engine::diag::with_text;
use crate::engine::driver::Chunk;
use crate::engine::scan::{Found, MarkerSet, read_to_marker};
use crate::event::EventSink;
use crate::message::DiagnosticKind;

/// Where a run lies, as its diagnostic says: what the place is, and the call it is inside, if
/// it is inside one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    pub message: &'static str,
    pub call: Option<usize>,
}

impl Place {
    /// A place outside any call (a section, a block, an array of calls).
    pub(crate) const fn outside(message: &'static str) -> Self {
        Self { message, call: None }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Stray {
    /// The run being read: the absolute offset of its text, and its text. The text starts with
    /// a non-whitespace character, unless a piece of the run was reported before it.
    run: Option<(usize, String)>,
}

impl Stray {
    /// Adds `text` (at absolute `offset`) to the current run, in `place`; a run grown past the
    /// limit is reported so far.
    pub(crate) fn add<S: EventSink>(
        &mut self,
        text: &str,
        offset: usize,
        place: Place,
        sink: &mut S,
    ) {
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
        if self.len() > HELD_TEXT_LIMIT {
            self.report_piece(place, sink);
        }
    }

    /// Reports the run up to its last non-whitespace character; the run goes on with the
    /// whitespace after it.
    #[cold]
    fn report_piece<S: EventSink>(&mut self, place: Place, sink: &mut S) {
        let Some((offset, run)) = &mut self.run else { return };
        let body = run.trim_end().len();
        if body == 0 {
            return;
        }
        let rest = run.split_off(body);
        let piece = std::mem::replace(run, rest);
        sink.emit(with_text(DiagnosticKind::StrayText, place.call, *offset, place.message, piece));
        *offset += body;
    }

    /// Reads `chunk` from `start` up to the next marker of `G` that `accept` takes, adding the
    /// text to the run; a marker ends the run, which is then reported.
    pub(crate) fn read_to_marker<G: MarkerSet, S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        accept: impl FnMut(G::Marker) -> bool,
        place: Place,
        sink: &mut S,
    ) -> Found<G::Marker> {
        let found =
            read_to_marker::<G>(chunk, start, accept, |text, at| self.add(text, at, place, sink));
        if matches!(found, Found::Marker { .. }) {
            self.flush(place, sink);
        }
        found
    }

    /// Ends the run: reports what is left of it, if that is more than whitespace.
    pub(crate) fn flush<S: EventSink>(&mut self, place: Place, sink: &mut S) {
        let Some((offset, text)) = self.run.take() else { return };
        let text = text.trim_end();
        if !text.is_empty() {
            sink.emit(with_text(
                DiagnosticKind::StrayText,
                place.call,
                offset,
                place.message,
                text,
            ));
        }
    }

    /// Whether a run is being read (text outside it is not stray).
    pub(crate) fn is_open(&self) -> bool {
        self.run.is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.run.as_ref().map_or(0, |(_, text)| text.len())
    }
}
