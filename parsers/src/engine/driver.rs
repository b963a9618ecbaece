//! Feeding a format's state machine chunk by chunk.
//!
//! One-shot parsing is a single `feed` of the whole input followed by `finish`, so every
//! chunking of an input goes through the same decisions: that is what makes the folded events
//! of any chunking equal the one-shot result. A machine only stops before the end of a chunk
//! where the text may start a marker ([`Step::NeedInput`]); the driver carries those few bytes
//! into the next chunk and scans nothing else twice. Text that a machine hands back to be read
//! again ([`Step::Replay`], after a marker inside a JSON string turned out to end the
//! arguments) is read from an explicit stack, not by recursion. While a call's name is not
//! known, the machine's events go to the [`Gate`] instead of out (each step's sink is routed by
//! the gate).

use crate::engine::call::{Calls, Outcome, Seed};
use crate::engine::gate::Gate;
use crate::engine::tally::Tally;
use crate::engine::text::TextOut;
use crate::event::EventSink;

/// What a step of a machine did.
#[derive(Debug)]
pub(crate) enum Step {
    /// Go on from this position (the state may have changed).
    Continue(usize),
    /// Stop here: the text from this position may start a marker.
    NeedInput(usize),
    /// Parse `replay` (text already seen) before going on from `resume`.
    Replay { resume: usize, replay: Replay },
    /// The machine is done here: the text from this position is another parser's.
    HandOver(usize),
}

/// Text to parse again, and how far that has got.
#[derive(Debug)]
pub(crate) struct Replay {
    pub text: String,
    pub offset: usize,
    pub pos: usize,
}

/// The text a machine is given: `text` starts at absolute offset `base` of the input, and
/// `eof` says whether the input ends with it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunk<'a> {
    pub text: &'a str,
    pub base: usize,
    pub eof: bool,
}

/// A format's incremental state machine.
pub(crate) trait Machine {
    /// Reads `chunk.text` from `pos` in the current state, until the state changes, the text
    /// ends, or more input is needed.
    fn step<S: EventSink>(&mut self, chunk: &Chunk<'_>, pos: usize, sink: &mut S) -> Step;

    /// At the end of the input: text still in doubt that must be parsed again, if any.
    fn unsettled<S: EventSink>(&mut self, _sink: &mut S) -> Option<Replay> {
        None
    }

    /// Closes whatever is still open at the end of the input (at absolute `offset`).
    fn end<S: EventSink>(&mut self, offset: usize, sink: &mut S);

    /// Bytes kept between chunks besides the held-back text (the call being read).
    fn retained(&self) -> usize;

    /// The syntax consumed and the text written by the machine so far.
    fn tally(&self) -> Tally;

    /// The calls the machine reads, if it reads any: the gate watches how they are named.
    fn calls(&mut self) -> Option<&mut Calls> {
        None
    }

    /// Whether the gate must look at the machine's calls after a step (see
    /// [`Calls::watching`]).
    #[inline]
    fn watching(&mut self) -> bool {
        self.calls().is_some_and(|calls| calls.watching())
    }

    /// Where text outside calls goes at this point (content, or reasoning in a think block).
    fn text_out(&self) -> TextOut {
        TextOut::default()
    }
}

impl Step {
    /// Where the step stopped in the text it was given.
    pub(crate) fn position(&self) -> usize {
        match *self {
            Step::Continue(at) | Step::NeedInput(at) | Step::HandOver(at) => at,
            Step::Replay { resume, .. } => resume,
        }
    }
}

/// Feeds a [`Machine`], holding back a possible marker start between chunks.
#[derive(Debug)]
pub(crate) struct Driver<M> {
    pub machine: M,
    /// Input not processed yet: a possible marker start left at the end of the last chunk.
    pending: String,
    /// Absolute offset of the first byte of `pending` (all input before it is processed).
    offset: usize,
    scanned_bytes: usize,
    gate: Gate,
}

impl<M: Machine> Driver<M> {
    pub(crate) fn new(machine: M) -> Self {
        Self::starting_at(machine, 0)
    }

    /// A driver whose input starts at absolute `offset` (after text another parser read).
    pub(crate) fn starting_at(machine: M, offset: usize) -> Self {
        Self { machine, pending: String::new(), offset, scanned_bytes: 0, gate: Gate::default() }
    }

    pub(crate) fn feed<S: EventSink>(&mut self, chunk: &str, sink: &mut S) {
        if self.pending.is_empty() {
            let consumed = self.drive(chunk, self.offset, false, sink);
            self.offset += consumed;
            self.pending.push_str(&chunk[consumed..]);
        } else {
            let mut input = std::mem::take(&mut self.pending);
            input.push_str(chunk);
            let consumed = self.drive(&input, self.offset, false, sink);
            self.offset += consumed;
            input.drain(..consumed);
            self.pending = input;
        }
    }

    pub(crate) fn finish<S: EventSink>(&mut self, sink: &mut S) {
        self.drain(sink);
        let offset = self.offset;
        self.machine.end(offset, &mut self.gate.route(sink));
        // A quiet call left in doubt by the end of the input is taken up only now.
        if let Some(seed) = self.machine.calls().and_then(Calls::take_seed) {
            hold_seed(&mut self.gate, seed);
        }
        settle(&mut self.machine, &mut self.gate, None, sink);
    }

    /// Processes the pending input as the end of the input, and settles what is in doubt. A
    /// machine that stops before the end (having handed the rest to another parser) leaves
    /// the rest pending.
    pub(crate) fn drain<S: EventSink>(&mut self, sink: &mut S) {
        let input = std::mem::take(&mut self.pending);
        let base = self.offset;
        let consumed = self.drive(&input, base, true, sink);
        self.offset = base + consumed;
        if consumed < input.len() {
            self.pending.push_str(&input[consumed..]);
            return;
        }
        while let Some(replay) = self.machine.unsettled(&mut self.gate.route(sink)) {
            self.drive(&replay.text, replay.offset, true, sink);
        }
    }

    /// The input not processed yet, and its absolute offset; the driver keeps none.
    pub(crate) fn take_pending(&mut self) -> (String, usize) {
        (std::mem::take(&mut self.pending), self.offset)
    }

    pub(crate) fn buffered_len(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn retained_bytes(&self) -> usize {
        self.pending.len() + self.machine.retained() + self.gate.retained()
    }

    pub(crate) fn tally(&self) -> Tally {
        self.machine.tally()
    }

    pub(crate) fn scanned_bytes(&self) -> usize {
        self.scanned_bytes
    }

    /// Processes `input` (which starts at absolute offset `base`) and returns how many bytes
    /// were consumed; the rest is a possible marker start that needs more input. Text that a
    /// step hands back for parsing again is processed before the rest.
    fn drive<S: EventSink>(&mut self, input: &str, base: usize, eof: bool, sink: &mut S) -> usize {
        let mut pos = 0;
        loop {
            match self.process(&input[pos..], base + pos, eof, sink) {
                Step::Continue(consumed) | Step::NeedInput(consumed) | Step::HandOver(consumed) => {
                    return pos + consumed;
                }
                Step::Replay { resume, replay } => {
                    pos += resume;
                    self.run_replays(replay, eof, sink);
                }
            }
        }
    }

    /// Parses text handed back by a step, and any text handed back while doing so, in order.
    fn run_replays<S: EventSink>(&mut self, first: Replay, eof: bool, sink: &mut S) {
        let mut replays = vec![first];
        while let Some(replay) = replays.last_mut() {
            let text = &replay.text[replay.pos..];
            match self.process(text, replay.offset + replay.pos, eof, sink) {
                Step::Continue(consumed) | Step::NeedInput(consumed) | Step::HandOver(consumed) => {
                    debug_assert_eq!(consumed, text.len(), "replays end in a whole marker");
                    replays.pop();
                }
                Step::Replay { resume, replay: inner } => {
                    replay.pos += resume;
                    replays.push(inner);
                }
            }
        }
    }

    /// Runs the machine over `input` until it ends, needs more input, or hands back text to
    /// parse again. Steps run straight through while no call's name is in doubt; from a step
    /// after which the gate must watch the machine's calls, [`Self::watched`] runs them.
    #[inline(always)]
    fn process<S: EventSink>(&mut self, input: &str, base: usize, eof: bool, sink: &mut S) -> Step {
        self.scanned_bytes += input.len();
        let chunk = Chunk { text: input, base, eof };
        let mut pos = 0;
        while pos < input.len() {
            let before = self.machine.tally();
            let mut step = self.machine.step(&chunk, pos, &mut self.gate.route(sink));
            if self.gate.is_holding() || self.machine.watching() {
                step = self.watched(&chunk, pos, step, before, sink);
            }
            match step {
                Step::Continue(next) => pos = next,
                step => {
                    if let Step::HandOver(at) | Step::Replay { resume: at, .. } = step {
                        self.scanned_bytes -= input.len() - at;
                    }
                    return step;
                }
            }
        }
        Step::Continue(pos)
    }

    /// Goes on from `step`, the step from `pos` (`before` is the machine's tally from before
    /// it), while the gate holds a call or watches the machine's calls; returns the step to go
    /// on from once neither is so, or the step that ends the input's processing. While a call
    /// is held, the text read is added to the gate's when the call ends or the input does
    /// (`held_from` is where the text not yet added starts).
    #[inline(never)]
    fn watched<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        mut pos: usize,
        mut step: Step,
        mut before: Tally,
        sink: &mut S,
    ) -> Step {
        let machine = &mut self.machine;
        let mut routed = self.gate.route(sink);
        // A call held from an earlier input is held from this input's start (`pos` is 0).
        let mut held_from = pos;
        loop {
            // A call held and still not named needs nothing (its text is kept at the end).
            let unsettled =
                |machine: &mut M| machine.calls().is_some_and(|calls| !calls.held_call_settled());
            if machine.watching() && !(routed.is_holding() && unsettled(machine)) {
                let (gate, sink) = routed.parts();
                let read = (held_from, pos, step.position());
                held_from = watch(machine, gate, chunk, read, before, sink);
            }
            let Step::Continue(next) = step else {
                if routed.is_holding() {
                    keep_held(routed.parts().0, chunk, held_from, step.position());
                    let (gate, sink) = routed.parts();
                    release_nameless(machine, gate, sink);
                }
                return step;
            };
            pos = next;
            if !routed.is_holding() && !machine.watching() {
                return step;
            }
            if pos >= chunk.text.len() {
                if routed.is_holding() {
                    keep_held(routed.parts().0, chunk, held_from, pos);
                    let (gate, sink) = routed.parts();
                    release_nameless(machine, gate, sink);
                }
                return step;
            }
            before = machine.tally();
            step = machine.step(chunk, pos, &mut routed);
        }
    }
}

/// After a step that read `chunk.text[from..to]` while the machine's calls need watching: holds
/// a call that began in it with no name yet (`before` is the machine's tally from before the
/// step) or a quiet call whose name it left in doubt, or settles the call held if it ended. The
/// text of a call held is added to the gate's when it ends or the input does; returns where the
/// text not added yet starts (`held_from` before the step).
#[inline(never)]
fn watch<M: Machine, S: EventSink>(
    machine: &mut M,
    gate: &mut Gate,
    chunk: &Chunk<'_>,
    (held_from, from, to): (usize, usize, usize),
    before: Tally,
    sink: &mut S,
) -> usize {
    let Some(calls) = machine.calls() else { return held_from };
    if gate.is_holding() {
        if calls.held_call_settled() {
            keep_held(gate, chunk, held_from, to);
            settle(machine, gate, Some(chunk.base + to), sink);
        }
        held_from
    } else if let Some(start) = calls.held_start() {
        if let Some(seed) = calls.take_seed() {
            debug_assert_eq!(seed.start + seed.text.len(), chunk.base + to, "held up to the step");
            hold_seed(gate, seed);
            return to;
        }
        gate.hold(start.max(chunk.base + from), before, "");
        from
    } else {
        // A call that began and ended within the step: nothing was held for it.
        calls.take_outcome();
        held_from
    }
}

/// Holds a quiet call from the text it was read with.
#[cold]
fn hold_seed(gate: &mut Gate, Seed { start, text, tally }: Seed) {
    gate.hold(start, tally, &text);
}

/// The text of the call held read up to `chunk.text[..to]`, from `chunk.text[from..]` on, is
/// added to the gate's.
#[inline(never)]
fn keep_held(gate: &mut Gate, chunk: &Chunk<'_>, from: usize, to: usize) {
    let from = from.min(to);
    gate.read(&chunk.text[from..to], chunk.base + from);
}

/// The text of a held call known to have no name goes out as it is read (see
/// [`Gate::release_text`]); the text in doubt inside a JSON string waits, since the call may
/// end where it began.
#[inline(never)]
fn release_nameless<M: Machine, S: EventSink>(machine: &mut M, gate: &mut Gate, sink: &mut S) {
    let out = machine.text_out();
    if let Some(calls) = machine.calls()
        && calls.is_nameless()
    {
        gate.release_text(calls.doubt_offset(), out, sink);
    }
}

/// Lets the held call's events through once it is named, or drops it if it ended without a
/// name (at absolute offset `end`, or at the end of the input).
#[inline(never)]
fn settle<M: Machine, S: EventSink>(
    machine: &mut M,
    gate: &mut Gate,
    end: Option<usize>,
    sink: &mut S,
) {
    if !gate.is_holding() {
        return;
    }
    let out = machine.text_out();
    let Some(calls) = machine.calls() else { return };
    match calls.take_outcome() {
        Some(Outcome::Dropped(note, ending)) => {
            calls.tally = gate.drop_call(end, (note, ending), out, sink);
        }
        Some(Outcome::Emitted | Outcome::Abandoned) => gate.release(sink),
        None if calls.held_start().is_none() => gate.release(sink),
        None => {}
    }
    debug_assert!(
        gate.is_holding() || machine.calls().is_none_or(|c| c.held_start().is_none()),
        "a step that ends a held call begins no other"
    );
}
