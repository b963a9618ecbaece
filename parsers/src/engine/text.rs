//! Text for the user and `<think>` reasoning: the part of every format outside tool calls.

use crate::engine::diag::unexpected_marker;
use crate::engine::driver::Chunk;
use crate::engine::scan::{Found, MarkerSet, read_to_marker};
use crate::event::EventSink;

/// Where text outside calls goes: content, or reasoning inside a think block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TextOut {
    pub in_think: bool,
}

impl TextOut {
    #[inline(always)]
    pub(crate) fn emit<S: EventSink>(&self, text: &str, sink: &mut S) {
        if text.is_empty() {
            return;
        }
        if self.in_think {
            sink.reasoning(text);
        } else {
            sink.text(text);
        }
    }

    /// Reads `chunk` from `start` up to the next marker of `G`, handing the text before it
    /// out: `think_open` is a marker only outside a think block, every other marker is one.
    pub(crate) fn read_to_marker<G: MarkerSet, S: EventSink>(
        &self,
        chunk: &Chunk<'_>,
        start: usize,
        think_open: G::Marker,
        sink: &mut S,
    ) -> Found<G::Marker> {
        let opens = self.opens();
        let accept = |marker| marker != think_open || opens;
        read_to_marker::<G>(chunk, start, accept, |text, _| self.emit(text, sink))
    }

    /// Whether a think opener is a marker here: inside a think block it is plain text.
    pub(crate) fn opens(&self) -> bool {
        !self.in_think
    }

    pub(crate) fn open(&mut self) {
        self.in_think = true;
    }

    /// A think closer: it ends the block, or is reported and dropped when none is open.
    pub(crate) fn close<S: EventSink>(
        &mut self,
        spelling: &str,
        opener: &str,
        offset: usize,
        sink: &mut S,
    ) {
        if self.in_think {
            self.in_think = false;
        } else {
            sink.emit(unexpected_marker(
                spelling,
                None,
                offset,
                &format!("without an open `{opener}`"),
            ));
        }
    }
}
