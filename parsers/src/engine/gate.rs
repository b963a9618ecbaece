//! Holding a call back until its name is known.
//!
//! A call that ends with no usable name is not a tool call: no client can dispatch `name: ""`.
//! Whether a call gets a name is often known only late (Kimi's bare index is resolved against the
//! declared tools when its arguments are complete), and a machine has said things about the call by
//! then. So from the step that begins a call until the call is named, the sink the driver hands the
//! machine routes its events here: they wait, with the call's text as read and the machine's tally
//! from before the call began. A call begun quiet (Kimi's, whose id names it or not before anything
//! is said of it) is taken up only if its id leaves the name in doubt, with its text and tally so
//! far ([`Seed`](crate::engine::call::Seed)), so that the common call, named at once, costs the
//! gate nothing. The call's `CallStart` names it: it goes out, then the events held, in order (a
//! consumer never hears of a call before its `CallStart`), and the rest of the step goes straight
//! to the driver's sink. A call that ends without a name has its events dropped, its text as
//! written goes to content (or reasoning, inside a think block) with one diagnostic, and the tally
//! is set back, so that nothing is lost or counted twice.
//!
//! Most calls are named within a step or two of their first marker, so little waits here, and
//! the driver copies a held call's text only when a chunk ends or the call does. A call known
//! to have no name before it ends (its head of two words, a recipient that names no tool) will
//! be content whatever follows, so it is not held whole: its text goes out as it is read (all
//! but trailing whitespace, and what is in doubt inside a JSON string), and its events are
//! dropped as they come, so that memory stays bounded by what one step reads.
//! Calls written as one JSON object are read whole by their machine, which drops them itself
//! ([`Calls::drop_whole`](crate::engine::call::Calls::drop_whole)); they pass the gate freely.

use crate::engine::call::{Ending, Note};
use crate::engine::tally::Tally;
use crate::engine::text::TextOut;
use crate::event::{EventSink, StreamEvent};

#[derive(Debug, Default)]
pub(crate) struct Gate {
    holding: bool,
    /// Absolute offset of the first byte of `text`.
    start: usize,
    /// The held call's text, from its first byte to as far as the machine has read.
    text: String,
    /// The events the machine emitted since the call began.
    events: Vec<StreamEvent>,
    /// The machine's tally before the step that began the call.
    tally: Tally,
    /// The call held will be dropped: its events are not kept, and its text goes out as read.
    nameless: bool,
    /// Some of the text of the nameless call went out: what follows is not trimmed at its
    /// start.
    released: bool,
}

/// The sink a machine is given for one step: the gate's events while it holds a call, else
/// the driver's sink. The call held is named by its `CallStart`: the gate lets its events
/// through then and routes the rest of the step straight to the driver's sink. (One sink type,
/// so that each machine's steps are compiled once.)
pub(crate) struct Routed<'a, S> {
    gate: &'a mut Gate,
    sink: &'a mut S,
}

impl<S: EventSink> Routed<'_, S> {
    /// Whether the gate holds a call.
    #[inline]
    pub(crate) fn is_holding(&self) -> bool {
        self.gate.holding
    }

    /// The gate, and the sink it routes to.
    #[inline]
    pub(crate) fn parts(&mut self) -> (&mut Gate, &mut S) {
        (self.gate, self.sink)
    }

    #[cold]
    #[inline(never)]
    fn hold(&mut self, event: StreamEvent) {
        if let StreamEvent::CallStart { .. } = event {
            // What was said of the call while it was held follows its announcement: a consumer
            // is never told of a call it does not know yet.
            self.sink.emit(event);
            self.gate.release(self.sink);
        } else if !self.gate.nameless {
            self.gate.events.push(event);
        }
    }

    /// Holds the event `event` makes: text is copied into an event only here, out of the way
    /// of the steps that hand it on borrowed.
    #[cold]
    #[inline(never)]
    fn hold_with(&mut self, event: impl FnOnce() -> StreamEvent) {
        self.hold(event());
    }
}

impl<S: EventSink> EventSink for Routed<'_, S> {
    #[inline(always)]
    fn emit(&mut self, event: StreamEvent) {
        if self.gate.holding { self.hold(event) } else { self.sink.emit(event) }
    }

    #[inline(always)]
    fn text(&mut self, text: &str) {
        if self.gate.holding {
            self.hold_with(|| StreamEvent::TextDelta { text: text.to_owned() });
        } else {
            self.sink.text(text);
        }
    }

    #[inline(always)]
    fn reasoning(&mut self, text: &str) {
        if self.gate.holding {
            self.hold_with(|| StreamEvent::ReasoningDelta { text: text.to_owned() });
        } else {
            self.sink.reasoning(text);
        }
    }

    #[inline(always)]
    fn arguments(&mut self, index: usize, text: &str) {
        if self.gate.holding {
            self.hold_with(|| StreamEvent::ArgumentsDelta { index, text: text.to_owned() });
        } else {
            self.sink.arguments(index, text);
        }
    }
}

impl Gate {
    pub(crate) fn is_holding(&self) -> bool {
        self.holding
    }

    /// The sink for the next step: this gate while it holds a call, else `sink`.
    #[inline]
    pub(crate) fn route<'a, S>(&'a mut self, sink: &'a mut S) -> Routed<'a, S> {
        Routed { gate: self, sink }
    }

    /// Starts holding a call whose text starts at absolute offset `start`, with `text` of it
    /// read so far; `tally` is the machine's tally from before the call.
    pub(crate) fn hold(&mut self, start: usize, tally: Tally, text: &str) {
        debug_assert!(!self.holding && self.events.is_empty() && self.text.is_empty());
        self.holding = true;
        self.start = start;
        self.tally = tally;
        self.text.push_str(text);
    }

    /// Adds the text a step read (`text`, at absolute `offset`) to the held call's text. Text
    /// parsed again (a replay) was read before: only what lies past the text held is added.
    #[inline]
    pub(crate) fn read(&mut self, text: &str, offset: usize) {
        if !self.holding {
            return;
        }
        let end = self.start + self.text.len();
        if offset + text.len() > end {
            self.text.push_str(&text[end.saturating_sub(offset)..]);
        }
    }

    /// The held call is named: its events go on to `sink`, in order.
    pub(crate) fn release<S: EventSink>(&mut self, sink: &mut S) {
        if !self.events.is_empty() {
            for event in self.events.drain(..) {
                sink.emit(event);
            }
        }
        self.clear();
    }

    /// The held call will end without a name: its events are dropped from now on, and its
    /// text read so far goes to `out`, up to absolute offset `until` (where text in doubt
    /// starts) and short of trailing whitespace, which the call's end may trim.
    pub(crate) fn release_text<S: EventSink>(
        &mut self,
        until: Option<usize>,
        out: TextOut,
        sink: &mut S,
    ) {
        self.nameless = true;
        self.events.clear();
        let end = until.map_or(self.text.len(), |until| until.saturating_sub(self.start));
        let text = &self.text[..end.min(self.text.len())];
        let body = text.trim_end().len();
        let from = if self.released { 0 } else { body - text[..body].trim_start().len() };
        if from < body {
            out.emit(&text[from..body], sink);
            self.released = true;
        }
        self.text.drain(..body);
        self.start += body;
    }

    /// The held call ended without a name at absolute offset `end` (or at the end of what was
    /// read), as `ending` says: its events are dropped and its text goes to `out` (what did not
    /// already), with the diagnostics of why. Returns the tally to set the machine back to.
    pub(crate) fn drop_call<S: EventSink>(
        &mut self,
        end: Option<usize>,
        (note, ending): (Note, Ending),
        out: TextOut,
        sink: &mut S,
    ) -> Tally {
        let len = end.map_or(self.text.len(), |end| end.saturating_sub(self.start));
        let text = self.text.get(..len).unwrap_or(&self.text);
        out.emit(if self.released { text.trim_end() } else { text.trim() }, sink);
        note.emit(&ending, sink);
        self.events.clear();
        self.clear();
        self.tally
    }

    fn clear(&mut self) {
        self.holding = false;
        self.nameless = false;
        self.released = false;
        self.text.clear();
    }

    pub(crate) fn retained(&self) -> usize {
        self.text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::DiagnosticKind;

    fn note() -> Note {
        Note { kind: DiagnosticKind::InvalidId, offset: 3, message: "no name".to_owned() }
    }

    #[test]
    fn text_read_again_is_held_once() {
        let mut gate = Gate::default();
        gate.hold(3, Tally::default(), "");
        gate.read("abc<x>de", 0);
        gate.read("fg", 8);
        gate.read("<x>defg", 3);
        gate.read("h", 10);
        let mut events = Vec::new();
        gate.drop_call(Some(9), (note(), Ending::Closed), TextOut::default(), &mut events);
        assert_eq!(events[0], StreamEvent::TextDelta { text: "<x>def".to_owned() });
        assert!(!gate.is_holding());
    }

    #[test]
    fn a_named_call_lets_its_events_through_in_order() {
        let mut gate = Gate::default();
        gate.hold(0, Tally::default(), "");
        gate.events.push(StreamEvent::TextDelta { text: "a".to_owned() });
        gate.events.push(StreamEvent::TextDelta { text: "b".to_owned() });
        let mut events = Vec::new();
        gate.release(&mut events);
        assert_eq!(events.len(), 2);
        assert_eq!(gate.retained(), 0);
    }
}
