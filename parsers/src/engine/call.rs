//! The life of a tool call, the same in every format: it begins at a marker, is announced
//! (`CallStart`) once its id and name are known, receives argument text (trimmed at both ends
//! of the whole, streamed as it arrives), and ends with the checks of its arguments and the
//! diagnostics of how it ended. A call written as one JSON object holding its name and its
//! arguments is announced once both have begun ([`call_object`](crate::engine::call_object)):
//! its arguments stream from then on, and what came before waits for it.
//!
//! A call is announced only with a tool's name. One whose id gives none (Kimi's bare index) is
//! announced when it ends, if the declared tools tell the name; one whose name cannot be had at
//! all is not a call: it ends [`Outcome::Dropped`], and the driver's gate
//! ([`gate`](crate::engine::gate)) turns its text back into content.
//!
//! Most calls are named by their head at once. A machine that says and counts nothing while it
//! reads a call's head begins the call quiet ([`Calls::begin_quiet`]): the gate then takes the
//! call up only if the head leaves the name in doubt, from the text read so far ([`Seed`]),
//! and a call named at once never passes through it.

use crate::arguments::{ArgumentsCheck, JsonStringState, check_arguments};
use crate::engine::call_object::{Announce, CallObject};
use crate::engine::diag::{diagnostic, with_text};
use crate::engine::is_tool_name;
use crate::engine::tally::Tally;
use crate::engine::text::TextOut;
use crate::event::{EventSink, StreamEvent};
use crate::message::DiagnosticKind;
use crate::tools::{ToolSpec, resolve_unnamed};

/// The call being read.
#[derive(Debug)]
pub(crate) struct Call {
    pub index: usize,
    /// Offset of the marker that began the call.
    pub offset: usize,
    /// Text before the arguments that identifies the call (an id, a name), as read so far.
    pub head: String,
    /// How far the head got toward two words (a name never has whitespace inside it), as
    /// far as `head_checked` bytes of it.
    head_words: HeadWords,
    head_checked: usize,
    naming: Naming,
    /// The machine reads the call's whole text (a call written as one JSON object), and drops
    /// it itself if it has no name: the gate need not hold it.
    whole: bool,
    /// Of a call written as one JSON object, until it ends: its text, the call's `arguments`
    /// until then, is read as it comes ([`Calls::object`]).
    reads_object: bool,
    /// Of a call written as one JSON object and announced: the length of its text whose
    /// arguments were streamed.
    streamed: usize,
    announced: bool,
    arguments: String,
    /// Whitespace after the arguments so far: it is argument text only if more follows.
    trailing_whitespace: String,
    /// Offset of the first argument byte (or of where the arguments would have started).
    arguments_offset: Option<usize>,
    /// The check of the final arguments, when it was already made to settle a doubtful marker.
    pub(crate) checked: Option<ArgumentsCheck>,
    /// Where a scan of JSON arguments stands with respect to strings.
    pub json: JsonStringState,
    /// Open JSON objects and arrays, for arguments that end where their value closes.
    pub depth: usize,
    /// Text from a marker met inside an open JSON string, waiting for the string to close.
    pub held: Option<HeldText>,
    /// Set while text is parsed again after an unclosed string: the first marker met inside
    /// the string then ends the arguments.
    pub marker_ends_string: bool,
}

/// What the head of a call read so far holds, past its leading whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadWords {
    Nothing,
    Word,
    /// A word, then whitespace.
    WordAndSpace,
    /// Two words: no name.
    Two,
}

impl HeadWords {
    /// What the head holds once `text` is added: each state waits for the first character
    /// that moves it on (whitespace or not).
    fn after(self, text: &str) -> HeadWords {
        let mut words = self;
        let mut rest = text;
        loop {
            let (wanted_space, next) = match words {
                HeadWords::Nothing => (false, HeadWords::Word),
                HeadWords::Word => (true, HeadWords::WordAndSpace),
                HeadWords::WordAndSpace => (false, HeadWords::Two),
                HeadWords::Two => return words,
            };
            let found = if rest.is_ascii() {
                // The ASCII characters that `char::is_whitespace` counts: space, tab to return.
                let space = |byte: &u8| matches!(byte, b' ' | b'\t'..=b'\r');
                rest.as_bytes().iter().position(|byte| space(byte) == wanted_space)
            } else {
                rest.find(|c: char| c.is_whitespace() == wanted_space)
            };
            let Some(at) = found else { return words };
            words = next;
            rest = &rest[at..];
        }
    }
}

/// What is known of the name of the call being read.
#[derive(Debug)]
enum Naming {
    /// Not yet: the id or name is still being read, or (with the id kept here) the id is a bare
    /// index, which the declared tools may resolve when the call ends.
    Pending(Option<String>),
    /// The call was announced with its tool's name.
    Named,
    /// The call has no usable name: it will not be emitted.
    Nameless(Note),
}

/// A quiet call's text before its head, for the gate to start from if the name is in doubt.
#[derive(Debug, Clone, Copy)]
struct Quiet {
    /// The begin marker, as written.
    marker: &'static str,
    /// The machine's tally from before the marker.
    before: Tally,
}

/// Where the gate takes up a quiet call whose head left its name in doubt: the call's text so
/// far (its begin marker, then its head), from absolute offset `start`, and the machine's tally
/// from before the call.
#[derive(Debug)]
pub(crate) struct Seed {
    pub start: usize,
    pub text: String,
    pub tally: Tally,
}

/// Why a call was not emitted, for the diagnostic that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    pub kind: DiagnosticKind,
    pub offset: usize,
    pub message: String,
}

impl Note {
    /// Why the name `name` (trimmed, as the text gives it) of the call that begins at
    /// `offset` leaves it nameless, if it does: an empty name is a part missing, another name
    /// that cannot be a tool's has no allowed form.
    pub(crate) fn for_name(name: &str, offset: usize) -> Option<Note> {
        if is_tool_name(name) {
            None
        } else if name.is_empty() {
            Some(Note::no_name(offset, "the call has no tool name"))
        } else {
            let message = "the tool name may hold only letters, digits, `_`, `-` and `.`";
            Some(Note { kind: DiagnosticKind::InvalidId, offset, message: message.to_owned() })
        }
    }

    /// The call that begins at `offset` has no name where its format writes one.
    pub(crate) fn no_name(offset: usize, message: &str) -> Note {
        Note { kind: DiagnosticKind::MalformedCall, offset, message: message.to_owned() }
    }

    /// The diagnostics of a call that is not emitted, whose text is content: why, and that
    /// the input ended inside it when `ending` says so.
    pub(crate) fn emit<S: EventSink>(self, ending: &Ending, sink: &mut S) {
        let message = format!("{}: not a tool call, its text is kept as written", self.message);
        sink.emit(diagnostic(self.kind, None, self.offset, message));
        if let Ending::Truncated = ending {
            let message = "the input ended inside this call";
            sink.emit(diagnostic(DiagnosticKind::Truncated, None, self.offset, message));
        }
    }
}

/// How the last call ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// As a tool call.
    Emitted,
    /// Without a name: not a call, for the reason given.
    Dropped(Note, Ending),
    /// Its text turned out not to be a call at all (the machine took it back as text).
    Abandoned,
}

#[derive(Debug)]
pub(crate) struct HeldText {
    pub offset: usize,
    pub text: String,
}

/// How a call came to an end.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// At the format's end marker, as it should.
    Closed,
    /// Before its end marker, at `offset`, for the reason `message`.
    Malformed { offset: usize, message: String },
    /// At the end of the input.
    Truncated,
}

impl Ending {
    /// Before its end marker `close`, at the marker `found` at `offset`.
    pub(crate) fn not_closed(close: &str, found: &str, offset: usize) -> Self {
        let message = format!("the call was not closed with `{close}` before `{found}`");
        Ending::Malformed { offset, message }
    }

    /// At the marker `found` at `offset`, which came before the call was whole: `what` says
    /// what is missing.
    pub(crate) fn cut_short(what: &str, found: &str, offset: usize) -> Self {
        Ending::Malformed { offset, message: format!("{what} before `{found}`") }
    }
}

/// The growable buffers of a call, kept from one call to the next so that their capacity is
/// reused.
#[derive(Debug, Default)]
struct Buffers {
    head: String,
    arguments: String,
    trailing_whitespace: String,
}

/// The calls of one message: how many began, the one being read, and the machine's tally.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    started: usize,
    open: Option<Call>,
    spare: Buffers,
    /// How the last call ended, until the driver takes it or the next call begins.
    outcome: Option<Outcome>,
    /// The driver's gate must watch these calls after each step: the open call is not named
    /// yet, or one ended without a name and its outcome was not taken yet.
    watch: bool,
    /// The open call's, while it is quiet ([`begin_quiet`](Self::begin_quiet)) and its head
    /// has not left its name in doubt.
    quiet: Option<Quiet>,
    /// A quiet call whose name is in doubt, until the driver's gate takes it up.
    seed: Option<Seed>,
    /// The reading of the call written as one JSON object (kept from one call to the next).
    object: CallObject,
    /// The tally of the machine these calls belong to: the calls write most of the text the
    /// parser generates, and every machine that reads calls holds them.
    pub tally: Tally,
}

impl Calls {
    /// Begins a call at the marker at `offset`; it is announced later, once named.
    pub(crate) fn begin(&mut self, offset: usize) -> &mut Call {
        self.begin_call(offset, false)
    }

    /// Begins a call written as one JSON object at `offset`, which the machine reads whole,
    /// announced when `announce` says, and dropped by the machine if it has no name
    /// ([`drop_whole`](Self::drop_whole)).
    pub(crate) fn begin_whole(&mut self, offset: usize, announce: Announce) -> &mut Call {
        if announce != Announce::Whole {
            self.object.reset(announce);
        }
        let call = self.begin_call(offset, true);
        call.reads_object = announce != Announce::Whole;
        call
    }

    /// Begins a call at its begin marker `marker` (at `offset`, just counted as syntax), whose
    /// machine says and counts nothing while it reads the call's head: the gate holds the call
    /// only once the head leaves its name in doubt ([`defer`](Self::defer),
    /// [`nameless`](Self::nameless)), which must come before anything more is said of it.
    pub(crate) fn begin_quiet(&mut self, offset: usize, marker: &'static str) {
        let mut before = self.tally;
        before.uncount_syntax(marker.len());
        self.begin_call(offset, false);
        self.quiet = Some(Quiet { marker, before });
        self.watch = false;
    }

    #[inline(always)]
    fn begin_call(&mut self, offset: usize, whole: bool) -> &mut Call {
        let Buffers { head, arguments, trailing_whitespace } = std::mem::take(&mut self.spare);
        self.quiet = None;
        self.started += 1;
        self.outcome = None;
        self.watch = !whole;
        self.open.insert(Call {
            index: self.started - 1,
            offset,
            head,
            head_words: HeadWords::Nothing,
            head_checked: 0,
            naming: Naming::Pending(None),
            whole,
            reads_object: false,
            streamed: 0,
            announced: false,
            arguments,
            trailing_whitespace,
            arguments_offset: Some(offset),
            checked: None,
            json: JsonStringState::default(),
            depth: 0,
            held: None,
            marker_ends_string: false,
        })
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Whether the open call was announced.
    pub(crate) fn is_announced(&self) -> bool {
        self.open.as_ref().is_some_and(|call| call.announced)
    }

    pub(crate) fn open(&self) -> Option<&Call> {
        self.open.as_ref()
    }

    pub(crate) fn open_mut(&mut self) -> Option<&mut Call> {
        self.open.as_mut()
    }

    /// The call being read.
    #[inline]
    pub(crate) fn get(&mut self) -> &mut Call {
        self.open.as_mut().expect("a call is open")
    }

    /// An id for the open call in a format whose model writes none: `call_0`, `call_1`, … by
    /// the call's index in the message, so that the same text always gets the same ids.
    pub(crate) fn made_up_id(&mut self) -> String {
        let id = format!("call_{}", self.get().index);
        self.tally.count_generated(&id);
        id
    }

    /// Announces the open call, of the tool `name`.
    #[inline]
    pub(crate) fn announce<S: EventSink>(&mut self, id: String, name: String, sink: &mut S) {
        self.watch = false;
        let call = self.get();
        call.announced = true;
        call.naming = Naming::Named;
        sink.emit(StreamEvent::CallStart { index: call.index, id, name });
        if !call.arguments.is_empty() {
            sink.arguments(call.index, &call.arguments);
        }
    }

    /// The open call's id `id` gives no name: the call is announced when it ends, if the
    /// declared tools tell which tool fits its arguments.
    pub(crate) fn defer(&mut self, id: String) {
        self.get().naming = Naming::Pending(Some(id));
        self.in_doubt();
    }

    /// The open call has no usable name, for the reason in `note`: it will not be emitted.
    pub(crate) fn nameless(&mut self, note: Note) {
        self.get().naming = Naming::Nameless(note);
        self.in_doubt();
    }

    /// The open call's name is in doubt: a quiet call is held by the gate from here on.
    fn in_doubt(&mut self) {
        let Some(Quiet { marker, before }) = self.quiet.take() else { return };
        let call = self.open.as_mut().expect("a call is open");
        let mut text = String::with_capacity(marker.len() + call.head.len());
        text.push_str(marker);
        text.push_str(&call.head);
        self.seed = Some(Seed { start: call.offset, text, tally: before });
        self.watch = true;
    }

    /// The quiet call whose name turned out to be in doubt, for the gate to take up.
    pub(crate) fn take_seed(&mut self) -> Option<Seed> {
        self.seed.take()
    }

    /// Announces the open call of the tool named `name` (as the text gives it, trimmed). A
    /// name that cannot be a tool's leaves the call nameless.
    pub(crate) fn announce_name<S: EventSink>(&mut self, id: String, name: &str, sink: &mut S) {
        match Note::for_name(name, self.get().offset) {
            None => self.announce(id, name.to_owned(), sink),
            Some(note) => self.nameless(note),
        }
    }

    /// Announces the open call with a made-up id, named by the text read into its head (a call
    /// known to be nameless stays so).
    pub(crate) fn announce_head<S: EventSink>(&mut self, sink: &mut S) {
        if self.is_nameless() {
            return;
        }
        let head = std::mem::take(&mut self.get().head);
        let id = self.made_up_id();
        self.announce_name(id, head.trim(), sink);
        let call = self.get();
        call.head = head;
        call.head.clear();
    }

    /// Adds `text` to the head of the open call, unless the call is known to have no name.
    pub(crate) fn push_head(&mut self, text: &str) {
        let call = self.get();
        if !matches!(call.naming, Naming::Nameless(_)) {
            call.head.push_str(text);
        }
    }

    /// Whether the head of the open call read so far is of two words (whitespace inside it),
    /// which no name is. A machine asks when a chunk ends inside the head: it says so at once,
    /// so that the call's text, which will be content, is not held until the head ends.
    pub(crate) fn head_names_nothing(&mut self) -> bool {
        let call = self.get();
        call.head_words = call.head_words.after(&call.head[call.head_checked..]);
        call.head_checked = call.head.len();
        call.head_words == HeadWords::Two
    }

    /// Whether the open call is known to have no name: it will not be emitted.
    pub(crate) fn is_nameless(&self) -> bool {
        self.open.as_ref().is_some_and(|call| matches!(call.naming, Naming::Nameless(_)))
    }

    /// Where the open call's text is in doubt (from a marker met inside a JSON string): the
    /// text before it is the call's, whatever comes. While the text held is parsed again, all
    /// of it is.
    pub(crate) fn doubt_offset(&self) -> Option<usize> {
        let call = self.open.as_ref()?;
        if call.marker_ends_string {
            return Some(0);
        }
        call.held.as_ref().map(|held| held.offset)
    }

    /// The arguments start after this point: the first argument byte gives their offset.
    pub(crate) fn arguments_start(&mut self) {
        self.get().arguments_offset = None;
    }

    /// Adds argument text (at absolute `offset`), trimmed at both ends of the whole; an
    /// announced call streams it.
    pub(crate) fn push_arguments<S: EventSink>(&mut self, text: &str, offset: usize, sink: &mut S) {
        let call = self.get();
        let text = if call.arguments.is_empty() {
            let trimmed = text.trim_start();
            let offset = offset + text.len() - trimmed.len();
            if !trimmed.is_empty() {
                call.arguments_offset.get_or_insert(offset);
            }
            trimmed
        } else {
            text
        };
        let body = text.trim_end();
        if body.is_empty() {
            call.trailing_whitespace.push_str(text);
            return;
        }
        let start = call.arguments.len();
        call.arguments.push_str(&call.trailing_whitespace);
        call.arguments.push_str(body);
        call.trailing_whitespace.clear();
        call.trailing_whitespace.push_str(&text[body.len()..]);
        if call.reads_object {
            self.read_object(sink);
        } else if call.announced {
            sink.arguments(call.index, &call.arguments[start..]);
        }
    }

    /// Reads on in the text of the open call written as one JSON object: announces the call
    /// once it is ready, and streams its arguments from then on.
    fn read_object<S: EventSink>(&mut self, sink: &mut S) {
        let call = self.open.as_mut().expect("a call is open");
        let object = &mut self.object;
        if object.scan(&call.arguments) {
            let (name, id) = object.naming(&call.arguments);
            let (name, id) = (name.unwrap_or_default().to_owned(), id.map(str::to_owned));
            object.announced();
            object.scan(&call.arguments);
            let id = match id {
                Some(id) => id,
                None => self.made_up_id(),
            };
            let call = self.get();
            call.announced = true;
            call.naming = Naming::Named;
            sink.emit(StreamEvent::CallStart { index: call.index, id, name });
        }
        let call = self.open.as_mut().expect("a call is open");
        if !call.announced {
            return;
        }
        let len = call.arguments.len();
        if let Some(arguments) = self.object.arguments_within(call.streamed, len) {
            sink.arguments(call.index, &call.arguments[arguments]);
        }
        call.streamed = len;
    }

    /// The arguments so far (trimmed), with the offset of their first byte.
    pub(crate) fn arguments(&self) -> (&str, usize) {
        let call = self.open.as_ref().expect("a call is open");
        (&call.arguments, call.arguments_offset.unwrap_or(call.offset))
    }

    /// The arguments so far followed by `more`, as they would be if `more` were added.
    pub(crate) fn arguments_with(&self, more: &str) -> String {
        let call = self.open.as_ref().expect("a call is open");
        let mut arguments = String::with_capacity(
            call.arguments.len() + call.trailing_whitespace.len() + more.len(),
        );
        arguments.push_str(&call.arguments);
        arguments.push_str(&call.trailing_whitespace);
        arguments.push_str(more);
        arguments
    }

    /// Takes the text of a call written as one JSON object, with the offset of its first
    /// byte, and whether the call was announced while it was read (then [`object`](Self::object)
    /// says what the reading found); the call's arguments start again empty.
    pub(crate) fn take_object(&mut self) -> (String, usize, bool) {
        let call = self.get();
        let read = std::mem::take(&mut call.reads_object) && call.announced;
        let offset = call.arguments_offset.take().unwrap_or(call.offset);
        call.trailing_whitespace.clear();
        call.checked = None;
        (std::mem::take(&mut call.arguments), offset, read)
    }

    /// What the reading of the last call written as one JSON object found.
    pub(crate) fn object(&self) -> &CallObject {
        &self.object
    }

    /// The arguments of the open call written as one JSON object and announced, which
    /// streamed as its text was read: `text`, at absolute `offset`.
    pub(crate) fn streamed_arguments(&mut self, text: &str, offset: usize) {
        let call = self.get();
        debug_assert!(call.announced && call.arguments.is_empty());
        call.arguments.push_str(text);
        call.arguments_offset = Some(offset);
    }

    /// Gives up the open call, not announced yet, whose text turned out not to be a call:
    /// returns that text (with its trailing whitespace), and the call's index is free again.
    pub(crate) fn abandon(&mut self) -> String {
        let call = self.open.take().expect("a call is open");
        debug_assert!(!call.announced && call.held.is_none(), "only a buffered call is given up");
        self.started -= 1;
        self.outcome = Some(Outcome::Abandoned);
        let mut text = String::with_capacity(call.arguments.len() + call.trailing_whitespace.len());
        text.push_str(&call.arguments);
        text.push_str(&call.trailing_whitespace);
        self.keep_buffers(call);
        text
    }

    /// Drops the open call, written as one JSON object `text` (read whole, not announced), for
    /// the reason in `note`: its text goes to `out` (content, or reasoning in a think block),
    /// with the diagnostic, and its index is free again.
    pub(crate) fn drop_whole<S: EventSink>(
        &mut self,
        text: &str,
        note: Note,
        ending: Ending,
        out: TextOut,
        sink: &mut S,
    ) {
        let call = self.open.take().expect("a call is open");
        debug_assert!(call.whole && !call.announced, "only a call read whole drops itself");
        self.started -= 1;
        self.keep_buffers(call);
        out.emit(text.trim(), sink);
        note.clone().emit(&ending, sink);
        self.outcome = Some(Outcome::Dropped(note, ending));
    }

    /// The open call, begun and not yet named (nor quiet), whose events the gate must hold:
    /// its first byte's offset.
    #[inline]
    pub(crate) fn held_start(&self) -> Option<usize> {
        let call = self.open.as_ref()?;
        let held = !call.whole && self.quiet.is_none() && !matches!(call.naming, Naming::Named);
        held.then_some(call.offset)
    }

    /// Whether the call the gate holds is settled: it ended, or it was named.
    #[inline]
    pub(crate) fn held_call_settled(&self) -> bool {
        self.outcome.is_some() || self.held_start().is_none()
    }

    /// How the last call ended, if it ended since it began and since this was last asked.
    pub(crate) fn take_outcome(&mut self) -> Option<Outcome> {
        self.watch = self.held_start().is_some();
        self.outcome.take()
    }

    /// Whether the driver's gate must look at these calls after a step: a call is open and not
    /// named yet, or one ended without a name.
    #[inline]
    pub(crate) fn watching(&self) -> bool {
        self.watch
    }

    /// Ends the open call: checks its arguments, resolves a call whose id gives no name against
    /// the declared tools, and reports how it ended. A call left without a name emits nothing:
    /// it ends [`Outcome::Dropped`], and its index is free again.
    pub(crate) fn end<S: EventSink>(&mut self, ending: Ending, tools: &[ToolSpec], sink: &mut S) {
        let mut call = self.open.take().expect("a call is open");
        let index = Some(call.index);
        let arguments_offset = call.arguments_offset.unwrap_or(call.offset);
        let naming = std::mem::replace(&mut call.naming, Naming::Named);
        debug_assert!(
            self.quiet.is_none() || matches!(naming, Naming::Named),
            "a quiet call is named or in doubt before it ends"
        );
        let check = call.checked.take().unwrap_or_else(|| check_arguments(&call.arguments));
        let (replaced, check_note) = match check {
            ArgumentsCheck::Object => (None, None),
            ArgumentsCheck::DoubleEncoded(decoded) => {
                let note = with_text(
                    DiagnosticKind::DoubleEncodedArguments,
                    index,
                    arguments_offset,
                    "the arguments were a JSON string holding an object; decoded once",
                    call.arguments.clone(),
                );
                (Some(decoded), Some(note))
            }
            ArgumentsCheck::Invalid(reason) => {
                let note =
                    diagnostic(DiagnosticKind::InvalidArguments, index, arguments_offset, reason);
                (None, Some(note))
            }
        };
        let dropped = match naming {
            Naming::Named => None,
            Naming::Nameless(note) => Some(note),
            Naming::Pending(id) => {
                let arguments = replaced.as_deref().unwrap_or(&call.arguments);
                match (id, resolve_unnamed(tools, arguments)) {
                    (Some(id), Ok(name)) => {
                        self.watch = false;
                        self.tally.count_generated(&name);
                        sink.emit(StreamEvent::CallStart { index: call.index, id, name });
                        if !call.arguments.is_empty() {
                            sink.arguments(call.index, &call.arguments);
                        }
                        None
                    }
                    (Some(_), Err(reason)) => Some(Note {
                        kind: DiagnosticKind::UnresolvedName,
                        offset: call.offset,
                        message: reason,
                    }),
                    (None, _) => Some(Note::no_name(call.offset, "the call has no tool name")),
                }
            }
        };
        if let Some(note) = dropped {
            self.started -= 1;
            self.keep_buffers(call);
            self.outcome = Some(Outcome::Dropped(note, ending));
            return;
        }
        let ending_note = match ending {
            Ending::Closed => None,
            Ending::Malformed { offset, message } => {
                Some(diagnostic(DiagnosticKind::MalformedCall, index, offset, message))
            }
            Ending::Truncated => Some(diagnostic(
                DiagnosticKind::Truncated,
                index,
                call.offset,
                "the input ended inside this tool call",
            )),
        };
        sink.emit(StreamEvent::CallEnd { index: call.index, arguments: replaced });
        if let Some(note) = ending_note {
            sink.emit(note);
        }
        if let Some(note) = check_note {
            sink.emit(note);
        }
        self.keep_buffers(call);
        self.outcome = Some(Outcome::Emitted);
    }

    /// Keeps the buffers of a call that ended, emptied, for the next one.
    #[inline(always)]
    fn keep_buffers(&mut self, mut call: Call) {
        call.head.clear();
        call.arguments.clear();
        call.trailing_whitespace.clear();
        self.spare = Buffers {
            head: call.head,
            arguments: call.arguments,
            trailing_whitespace: call.trailing_whitespace,
        };
    }

    /// Bytes kept for the open call.
    pub(crate) fn retained(&self) -> usize {
        self.open.as_ref().map_or(0, |call| {
            call.head.len()
                + call.arguments.len()
                + call.trailing_whitespace.len()
                + call.held.as_ref().map_or(0, |held| held.text.len())
        })
    }
}
