//! A parameter's value when the call's tool declares its properties, so that the format's own
//! tags written inside a value (a coding agent writing a template, a doc or a parser's tests)
//! stay part of it. Parameter values have no escaping; the schema and the text after a tag
//! tell a tag of the call from one in the value:
//!
//! - a closing tag (`</parameter>`, GLM's `</arg_value>`) ends the value only when what follows
//!   it, past whitespace, can continue the call: a parameter not given yet that the schema
//!   admits (one of its properties, or any other unless it says `"additionalProperties":
//!   false`), the call's close, the block's close, or the end of the input; a call's close
//!   (`</function>`, `</invoke>`) met inside a value ends it only before the block's close,
//!   another call, or the end;
//! - a parameter's opening tag inside a value begins the next parameter (the value was not
//!   closed) only when it names a property of the function not given yet;
//! - a tag that opens a block or a call (`<tool_call>`, `<function=`, `<invoke name=`) opens a
//!   nested block of text inside the value, up to its closing tag: every tag inside it is text.
//!   (Such a tag written alone, without its closing tag, hides the value's closing tag; the
//!   value then ends at the call's close, with a diagnostic.)
//!
//! A tag in doubt and the text after it are held until what follows settles it, so streaming
//! and one-shot reading agree; only that text waits. A value's closing tag whose sequel is in
//! the same chunk (nearly always, when a whole answer is read) is settled there by the same
//! rules, and nothing is held. Without a schema, the first closing tag
//! ends the value ([`step_value`](Tagged::step_value)).

use super::{Dialect, Marker, Shape, State, Tagged};
use crate::engine::call::Ending;
use crate::engine::diag::diagnostic;
use crate::engine::driver::{Chunk, Step};
use crate::engine::scan::{Found, Scan, read_to_marker, read_to_marker_or};
use crate::event::EventSink;
use crate::message::DiagnosticKind;

/// A tag met in a value whose meaning the text after it decides.
#[derive(Debug)]
pub(super) struct Doubt {
    /// Absolute offset of the tag.
    offset: usize,
    tag: Marker,
    /// The tag and the text read after it, held until the doubt is settled.
    text: String,
    /// Once a parameter's opening tag was read (the tag itself, or the one after a closing
    /// tag): where its name starts in `text`.
    name_at: Option<usize>,
}

impl Doubt {
    pub(super) fn len(&self) -> usize {
        self.text.len()
    }
}

/// The tags that play a part in a value, by role, for the shape of the call.
#[derive(Debug, Clone, Copy)]
struct Roles {
    /// Closes a value.
    close: Marker,
    /// Opens a parameter.
    opener: Marker,
    /// Closes the call (GLM: the block's close).
    call_close: Marker,
    glm: bool,
}

impl Roles {
    fn of(shape: Shape) -> Roles {
        match shape {
            Shape::Glm => Roles {
                close: Marker::ArgValueClose,
                opener: Marker::ArgKeyOpen,
                call_close: Marker::WrapperClose,
                glm: true,
            },
            Shape::Invoke | Shape::Object => Roles {
                close: Marker::ParamClose,
                opener: Marker::ParamOpen,
                call_close: Marker::InvokeClose,
                glm: false,
            },
        }
    }

    /// Tags that open a nested block of text inside a value: a block's or a call's opening.
    fn nests(self, marker: Marker) -> bool {
        marker == Marker::WrapperOpen || (!self.glm && marker == Marker::InvokeOpen)
    }

    /// Tags that close a nested block of text inside a value.
    fn unnests(self, marker: Marker) -> bool {
        marker == Marker::WrapperClose || (!self.glm && marker == Marker::InvokeClose)
    }

    /// Tags that play a part in a value.
    fn matter(self, marker: Marker) -> bool {
        marker == self.close || marker == self.opener || self.nests(marker) || self.unnests(marker)
    }
}

impl<D: Dialect> Tagged<D> {
    /// A value of a call whose tool declares its properties: see the module documentation.
    pub(super) fn step_value_by_schema<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        if self.doubt.is_some() {
            return self.step_doubt(chunk, start, sink);
        }
        let roles = Roles::of(self.shape);
        let nested = self.nesting > 0;
        let accept = |marker| {
            if nested { roles.nests(marker) || roles.unnests(marker) } else { roles.matter(marker) }
        };
        let value = &mut self.value;
        let found = read_to_marker::<D>(chunk, start, accept, |text, _| value.push_str(text));
        let Found::Marker { at, marker, len } = found else { return found.step() };
        let tag = &chunk.text[at..at + len];
        if nested {
            if roles.nests(marker) {
                self.nesting += 1;
            } else {
                self.nesting -= 1;
            }
            self.value.push_str(tag);
            return Step::Continue(at + len);
        }
        let offset = chunk.base + at;
        if marker == roles.close {
            // Most often what follows the closing tag is in the chunk: settled at once.
            if let Some(step) = self.settle_close_in_chunk(chunk, at, len, sink) {
                return step;
            }
            self.doubt = Some(self.new_doubt(offset, marker, tag, None));
        } else if marker == roles.call_close && !roles.glm {
            self.doubt = Some(self.new_doubt(offset, marker, tag, None));
        } else if marker == roles.opener {
            self.doubt = Some(self.new_doubt(offset, marker, tag, Some(len)));
        } else if roles.nests(marker) {
            self.nesting = 1;
            self.value.push_str(tag);
        } else {
            // The block's close: the value was not closed.
            self.end_value_unclosed(offset, sink);
            self.state = State::Params;
            return Step::Continue(at);
        }
        Step::Continue(at + len)
    }

    fn new_doubt(
        &mut self,
        offset: usize,
        tag: Marker,
        text: &str,
        name_at: Option<usize>,
    ) -> Doubt {
        let mut held = std::mem::take(&mut self.held);
        held.clear();
        held.push_str(text);
        Doubt { offset, tag, text: held, name_at }
    }

    /// A value's closing tag at `chunk.text[at..at + len]` settled by what follows it in the
    /// chunk, by the rules of the doubt (see [`step_after_close`](Self::step_after_close) and
    /// what follows it), without holding anything; `None` when the chunk ends first.
    fn settle_close_in_chunk<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        at: usize,
        len: usize,
        sink: &mut S,
    ) -> Option<Step> {
        let roles = Roles::of(self.shape);
        let text = chunk.text;
        let after = at + len;
        let rest = &text[after..];
        let next = after + rest.len() - rest.trim_start().len();
        let byte = *text.as_bytes().get(next)?;
        let marker = if byte == b'<' {
            match D::scan(&text[next..]) {
                Scan::Incomplete => return None,
                Scan::Marker(marker, len) => Some((marker, len)),
                Scan::NoMatch => None,
            }
        } else {
            None
        };
        match marker {
            Some((marker, opener_len)) if marker == roles.opener => {
                let name_at = next + opener_len;
                let (end, end_len) = if roles.glm {
                    let found = read_to_marker_or::<D>(chunk, name_at, b'\n', |_| true, |_, _| {});
                    match found {
                        Found::Marker { at: stop, marker: Marker::ArgKeyClose, len } => (stop, len),
                        Found::Marker { at: stop, .. } | Found::Stop(stop) => {
                            self.value.push_str(&text[at..stop]);
                            return Some(Step::Continue(stop));
                        }
                        Found::Done(_) => return None,
                    }
                } else {
                    let found = memchr::memchr3(b'>', b'\n', b'<', &text.as_bytes()[name_at..])?;
                    let end = name_at + found;
                    if text.as_bytes()[end] != b'>' {
                        self.value.push_str(&text[at..end]);
                        return Some(Step::Continue(end));
                    }
                    (end, 1)
                };
                let tag = (roles.close, chunk.base + at, len);
                let read = &text[at..end];
                let value_at = chunk.base + end + end_len;
                self.open_or_keep(
                    tag,
                    read,
                    name_at - at,
                    &text[end..end + end_len],
                    value_at,
                    sink,
                );
                Some(Step::Continue(end + end_len))
            }
            Some((marker, _)) if marker == roles.call_close || marker == Marker::WrapperClose => {
                self.calls.tally.count_syntax_text(&text[at..after]);
                self.add_param(sink);
                self.state = State::Params;
                Some(Step::Continue(next))
            }
            _ => {
                self.value.push_str(&text[at..after]);
                Some(Step::Continue(after))
            }
        }
    }

    /// Reads on after a tag in doubt until what follows settles it.
    fn step_doubt<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        match self.doubt.as_ref().and_then(|doubt| doubt.name_at) {
            None => self.step_after_close(chunk, start, sink),
            Some(_) if self.shape == Shape::Glm => self.step_glm_key_name(chunk, start, sink),
            Some(_) => self.step_parameter_name(chunk, start, sink),
        }
    }

    /// After a closing tag: whitespace, then the tag that continues the call, if any.
    fn step_after_close<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let roles = Roles::of(self.shape);
        let Some(doubt) = self.doubt.as_mut() else { return Step::Continue(start) };
        let rest = &chunk.text[start..];
        let at = start + rest.len() - rest.trim_start().len();
        doubt.text.push_str(&chunk.text[start..at]);
        if at == chunk.text.len() {
            return Step::Continue(at);
        }
        let marker = if chunk.text.as_bytes()[at] == b'<' {
            match D::scan(&chunk.text[at..]) {
                Scan::Incomplete if !chunk.eof => return Step::NeedInput(at),
                Scan::Marker(marker, len) => Some((marker, len)),
                Scan::Incomplete | Scan::NoMatch => None,
            }
        } else {
            None
        };
        let closed_value = doubt.tag == roles.close;
        match marker {
            Some((marker, len)) if closed_value && marker == roles.opener => {
                doubt.text.push_str(&chunk.text[at..at + len]);
                doubt.name_at = Some(doubt.text.len());
                Step::Continue(at + len)
            }
            Some((marker, _))
                if closed_value
                    && (marker == roles.call_close || marker == Marker::WrapperClose) =>
            {
                self.end_value_closed(sink);
                self.state = State::Params;
                Step::Continue(at)
            }
            Some((Marker::WrapperClose | Marker::WrapperOpen | Marker::InvokeOpen, _))
                if !closed_value =>
            {
                self.close_call_in_value(sink);
                Step::Continue(at)
            }
            _ => self.doubt_was_text(at),
        }
    }

    /// The name after `<parameter=` (or MiniMax's `<parameter name=`), up to `>`; a line break
    /// or a `<` before it means the tag was text.
    fn step_parameter_name<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let Some(doubt) = self.doubt.as_mut() else { return Step::Continue(start) };
        let bytes = &chunk.text.as_bytes()[start..];
        let Some(found) = memchr::memchr3(b'>', b'\n', b'<', bytes) else {
            doubt.text.push_str(&chunk.text[start..]);
            return Step::Continue(chunk.text.len());
        };
        let at = start + found;
        doubt.text.push_str(&chunk.text[start..at]);
        if bytes[found] != b'>' {
            return self.doubt_was_text(at);
        }
        self.settle_opener(">", chunk.base + at + 1, sink);
        Step::Continue(at + 1)
    }

    /// GLM: the key after `<arg_key>`, up to `</arg_key>`; a line break or another tag before
    /// it means the tag was text.
    fn step_glm_key_name<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let Some(doubt) = self.doubt.as_mut() else { return Step::Continue(start) };
        let text = &mut doubt.text;
        let found = read_to_marker_or::<D>(chunk, start, b'\n', |_| true, |t, _| text.push_str(t));
        match found {
            Found::Marker { at, marker: Marker::ArgKeyClose, len } => {
                self.settle_opener(&chunk.text[at..at + len], chunk.base + at + len, sink);
                Step::Continue(at + len)
            }
            Found::Marker { at, .. } | Found::Stop(at) => self.doubt_was_text(at),
            Found::Done(step) => step,
        }
    }

    /// A parameter's opening tag and name were read, up to `end` (`>`, GLM's `</arg_key>`): it
    /// begins the next parameter, or it is text of the value. `value_at` is where the next
    /// value would start.
    fn settle_opener<S: EventSink>(&mut self, end: &str, value_at: usize, sink: &mut S) {
        let Some(doubt) = self.doubt.take() else { return };
        let name_at = doubt.name_at.unwrap_or(doubt.text.len());
        let tag = (doubt.tag, doubt.offset, D::spelling(doubt.tag).len());
        self.open_or_keep(tag, &doubt.text, name_at, end, value_at, sink);
        self.held = doubt.text;
    }

    /// `read` was read after a value's text: a tag (`tag`: which, its offset and its length),
    /// then (after a closing tag) whitespace and a parameter's opening tag, then from `name_at`
    /// the parameter's name, up to `end`. The parameter begins when it is not given yet and
    /// the schema admits it; otherwise all of it is text of the value.
    fn open_or_keep<S: EventSink>(
        &mut self,
        (tag, offset, tag_len): (Marker, usize, usize),
        read: &str,
        name_at: usize,
        end: &str,
        value_at: usize,
        sink: &mut S,
    ) {
        let name = strip_quotes::<D>(read[name_at..].trim());
        let after_close = tag != Roles::of(self.shape).opener;
        let given = self.params.has(name) || strip_quotes::<D>(self.key.trim()) == name;
        if given || !self.admits(name, after_close) {
            self.value.push_str(read);
            self.value.push_str(end);
            return;
        }
        if after_close {
            self.calls.tally.count_syntax_text(&read[..tag_len]);
            self.add_param(sink);
            self.calls.tally.count_syntax_text(&read[tag_len..name_at]);
        } else {
            self.end_value_unclosed(offset, sink);
            self.calls.tally.count_syntax_text(&read[..name_at]);
        }
        self.calls.tally.count_syntax_text(end);
        self.key.clear();
        self.key.push_str(&read[name_at..]);
        if self.shape == Shape::Glm {
            self.state = State::AwaitValue;
        } else {
            self.part_offset = value_at;
            self.value.clear();
            self.state = State::Value;
        }
    }

    /// The tag in doubt was text of the value, and so is what was read after it, up to `at`.
    fn doubt_was_text(&mut self, at: usize) -> Step {
        self.doubt_into_value();
        Step::Continue(at)
    }

    /// The tag in doubt and the text held after it become text of the value.
    fn doubt_into_value(&mut self) {
        if let Some(doubt) = self.doubt.take() {
            self.value.push_str(&doubt.text);
            self.held = doubt.text;
        }
    }

    /// The closing tag in doubt ended the value.
    fn end_value_closed<S: EventSink>(&mut self, sink: &mut S) {
        let Some(doubt) = self.doubt.take() else { return };
        self.calls.tally.count_syntax_text(D::spelling(doubt.tag));
        self.held = doubt.text;
        self.add_param(sink);
    }

    /// The call's close in doubt ended the call, inside a value that was not closed.
    fn close_call_in_value<S: EventSink>(&mut self, sink: &mut S) {
        let Some(doubt) = self.doubt.take() else { return };
        self.end_value_unclosed(doubt.offset, sink);
        self.calls.tally.count_syntax_text(D::spelling(doubt.tag));
        self.held = doubt.text;
        self.end_call(Ending::Closed, doubt.offset, sink);
    }

    /// The value ends at `offset`, where a tag of the call stands before its closing tag.
    fn end_value_unclosed<S: EventSink>(&mut self, offset: usize, sink: &mut S) {
        self.add_param(sink);
        let close = D::spelling(Roles::of(self.shape).close);
        let index = Some(self.calls.get().index);
        let message = format!("the parameter value was not closed with `{close}`");
        sink.emit(diagnostic(DiagnosticKind::MalformedCall, index, offset, message));
    }

    /// The input ended with a tag in doubt: a closing tag stands, a parameter's opening tag
    /// after one begins a parameter whose value never came, and a parameter's opening tag
    /// alone is text. Returns whether the call was closed.
    pub(super) fn settle_doubt_at_end<S: EventSink>(&mut self, sink: &mut S) -> bool {
        let Some(doubt) = self.doubt.as_ref() else { return false };
        let roles = Roles::of(self.shape);
        match doubt.name_at {
            None if doubt.tag == roles.close => {
                self.end_value_closed(sink);
                self.state = State::Params;
                false
            }
            None => {
                self.close_call_in_value(sink);
                true
            }
            Some(name_at) if doubt.tag == roles.close => {
                let Some(doubt) = self.doubt.take() else { return false };
                let close_len = D::spelling(doubt.tag).len();
                self.calls.tally.count_syntax_text(&doubt.text[..close_len]);
                self.add_param(sink);
                self.calls.tally.count_syntax_text(&doubt.text[close_len..name_at]);
                self.key.clear();
                self.key.push_str(&doubt.text[name_at..]);
                self.held = doubt.text;
                self.state = State::Key;
                false
            }
            Some(_) => {
                self.doubt_into_value();
                false
            }
        }
    }

    /// Whether a parameter `name` can continue the call: the function declares it, or, after
    /// the value's closing tag (`after_close`), its schema does not forbid other properties.
    fn admits(&self, name: &str, after_close: bool) -> bool {
        let Some(tool) = self.tool.map(|tool| &self.tools[tool]) else { return false };
        tool.properties().is_some_and(|known| known.contains_key(name))
            || (after_close && !tool.forbids_other_properties())
    }
}

/// A name without the quotes MiniMax-M2 writes around it.
fn strip_quotes<D: Dialect>(text: &str) -> &str {
    if !D::QUOTED_NAMES {
        return text;
    }
    ['"', '\'']
        .iter()
        .find_map(|&quote| text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)))
        .unwrap_or(text)
}
