//! A call written as one JSON object (`{"name": …, "arguments": {…}}`: Hermes, Llama 3 after
//! `<|python_tag|>`, Mistral's array), read as it arrives, so that the call is announced as
//! soon as what names it is read and its arguments stream from then on, as every other
//! format's do.
//!
//! The object's text is scanned once, byte by byte, tracking strings, escapes and nesting: its
//! own members are told apart from what their values hold, and each complete member is noted
//! (its value checked to be JSON, except the arguments', which the call's end checks). The call
//! is ready to be announced once its name is read (the first `name`, a plain JSON string that
//! can be a tool's name) and its arguments (the first `arguments` or `parameters`) have begun
//! as a JSON object, in either order: arguments that come first wait for the name, and are
//! then checked too. Mistral's template writes each call's `id` after its arguments, and a call
//! is announced with its id, so there the id (the first `id`, a plain non-empty string) must
//! have been read as well; otherwise the call is announced when its object is complete, as a
//! bare Llama 3 object is, which may turn out to be content.
//!
//! The decision is taken at the byte that completes it, from the text before it, so it does
//! not depend on how the text was cut into chunks. Once announced, the call stays a call: what
//! breaks the object after that point is a diagnostic on it
//! ([`envelope`](crate::engine::envelope)), as it is in formats whose calls begin at a marker.
//! A key written with escapes could decode to one of the names that matter, so an object with
//! one before its call is ready waits for its end.

use std::ops::Range;

use serde::de::IgnoredAny;

use crate::engine::is_tool_name;

/// The bytes that matter inside a member's value, outside its strings.
const NESTING: [bool; 256] = {
    let mut table = [false; 256];
    table[b'"' as usize] = true;
    table[b'{' as usize] = true;
    table[b'}' as usize] = true;
    table[b'[' as usize] = true;
    table[b']' as usize] = true;
    table
};

/// When a call written as one JSON object is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announce {
    /// When the object is complete: it may turn out not to be a call (bare Llama 3 JSON). Its
    /// text is not read before then.
    Whole,
    /// Once its name is read and its arguments have begun as an object.
    Named,
    /// Once its name and its id are read and its arguments have begun as an object.
    NamedWithId,
}

/// What the scan expects next at the object's own level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Open,
    Key,
    Colon,
    Value,
    /// A comma or the object's close.
    Next,
    /// Nothing: the object closed.
    Closed,
}

/// Which member a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Name,
    Id,
    Arguments,
    Other,
}

/// A complete member of the object: its key as written (inside the quotes) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSpan {
    pub key: Range<usize>,
    pub value: Range<usize>,
}

/// Where a scan of a call object stands, and what it found.
#[derive(Debug)]
pub(crate) struct CallObject {
    announce: Announce,
    scanned: usize,
    expect: Expect,
    /// Nesting inside the value being read (0: at the object's own level).
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The string at the object's level being read (a key or a value) holds an escape.
    string_has_escape: bool,
    /// The key of the member being read (inside its quotes).
    key: Range<usize>,
    /// Where the string at the object's level being read starts (after its quote).
    string_from: usize,
    /// Where the value being read starts.
    value_from: usize,
    /// The value being read is a literal (a number, `true`…), which whitespace ends.
    in_literal: bool,
    /// The value being read is a string.
    string_value: bool,
    role: Role,
    /// The first `name`, `id` and arguments members were met.
    seen: [bool; 3],
    /// The first `name`'s value when it is a plain string (no escapes), inside its quotes.
    name: Option<Range<usize>>,
    /// The first `id`'s value when it is a plain, non-empty string read before the call was
    /// announced, inside its quotes.
    id: Option<Range<usize>>,
    /// The first arguments member's value: where it starts, and where it ends once read.
    arguments: Option<(usize, Option<usize>)>,
    members: Vec<MemberSpan>,
    /// Where the text stopped being a JSON object, if it did.
    broken_at: Option<usize>,
    /// The call cannot be announced before the object is complete (a key needs decoding, the
    /// text broke), or was announced already.
    settled: bool,
    announced: bool,
    /// The call was found ready to be announced: the scan stopped after the byte that made it.
    ready: bool,
}

impl Default for CallObject {
    fn default() -> Self {
        Self::new(Announce::Named)
    }
}

impl CallObject {
    pub(crate) fn new(announce: Announce) -> Self {
        Self {
            announce,
            scanned: 0,
            expect: Expect::Open,
            depth: 0,
            in_string: false,
            escaped: false,
            string_has_escape: false,
            key: 0..0,
            string_from: 0,
            value_from: 0,
            in_literal: false,
            string_value: false,
            role: Role::Other,
            seen: [false; 3],
            name: None,
            id: None,
            arguments: None,
            members: Vec::new(),
            broken_at: None,
            settled: false,
            announced: false,
            ready: false,
        }
    }

    /// Starts the reading of another object, of a call announced as `announce` says.
    pub(crate) fn reset(&mut self, announce: Announce) {
        let mut members = std::mem::take(&mut self.members);
        members.clear();
        *self = Self { members, ..Self::new(announce) };
    }

    /// Scans `text` (the object's text so far, of which the part scanned before is unchanged)
    /// up to its end, or up to the byte at which the call is ready to be announced; returns
    /// whether it is (then [`announced`](Self::announced) lets the scan go on). A call that
    /// cannot be announced before its end needs no more scanning.
    pub(crate) fn scan(&mut self, text: &str) -> bool {
        let bytes = text.as_bytes();
        let needed = |object: &Self| {
            !object.ready && object.broken_at.is_none() && (object.announced || !object.settled)
        };
        while self.scanned < bytes.len() && needed(self) {
            // Inside a string, or inside a value, most bytes say nothing: skip to one that may.
            let rest = &bytes[self.scanned..];
            let skip = if self.in_string && !self.escaped {
                memchr::memchr2(b'"', b'\\', rest)
            } else if self.depth > 0 && !self.in_string {
                rest.iter().position(|&byte| NESTING[usize::from(byte)])
            } else {
                Some(0)
            };
            let Some(skip) = skip else {
                self.scanned = bytes.len();
                break;
            };
            let at = self.scanned + skip;
            self.scanned = at + 1;
            self.step(text, at, bytes[at]);
        }
        self.ready
    }

    /// The call was announced: the scan goes on, to see the rest of the object.
    pub(crate) fn announced(&mut self) {
        self.ready = false;
        self.settled = true;
        self.announced = true;
    }

    /// The name the call is announced with, and the id the object gives it, if any.
    pub(crate) fn naming<'t>(&self, text: &'t str) -> (Option<&'t str>, Option<&'t str>) {
        let name = self.name.clone().map(|range| &text[range]);
        (name, self.id.clone().map(|range| &text[range]))
    }

    /// The part of the arguments within `text[from..to]`, if there is one.
    pub(crate) fn arguments_within(&self, from: usize, to: usize) -> Option<Range<usize>> {
        let (start, end) = self.arguments?;
        let range = from.max(start)..end.unwrap_or(to).min(to);
        (range.start < range.end).then_some(range)
    }

    /// Where the arguments lie in the object's text of `len` bytes (to its end if they never
    /// closed).
    pub(crate) fn arguments(&self, len: usize) -> Option<Range<usize>> {
        self.arguments.map(|(start, end)| start..end.unwrap_or(len))
    }

    /// The members read whole, in order.
    pub(crate) fn members(&self) -> &[MemberSpan] {
        &self.members
    }

    /// Where the text stopped being a JSON object, if it did.
    pub(crate) fn broken_at(&self) -> Option<usize> {
        self.broken_at
    }

    /// Whether the object closed.
    pub(crate) fn closed(&self) -> bool {
        self.expect == Expect::Closed && self.broken_at.is_none()
    }

    fn step(&mut self, text: &str, at: usize, byte: u8) {
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if byte == b'\\' {
                self.escaped = true;
                self.string_has_escape = true;
            } else if byte == b'"' {
                self.in_string = false;
                if self.depth == 0 {
                    self.end_string(text, at);
                }
            }
            return;
        }
        if self.depth > 0 {
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.end_value(text, at + 1);
                    }
                }
                _ => {}
            }
            return;
        }
        if self.in_literal {
            if !(byte.is_ascii_whitespace() || matches!(byte, b',' | b'}')) {
                return;
            }
            self.in_literal = false;
            self.end_value(text, at);
            if self.broken_at.is_some() {
                return;
            }
        }
        if byte.is_ascii_whitespace() {
            return;
        }
        self.expect = match (self.expect, byte) {
            (Expect::Open, b'{') => Expect::Key,
            (Expect::Key, b'"') => {
                self.start_string(at + 1);
                Expect::Key
            }
            (Expect::Key, b'}') if self.members.is_empty() => Expect::Closed,
            (Expect::Colon, b':') => Expect::Value,
            (Expect::Value, b',' | b'}' | b']' | b':') => self.broken(at),
            (Expect::Value, _) => {
                self.value_from = at;
                self.string_value = byte == b'"';
                match byte {
                    b'"' => self.start_string(at + 1),
                    b'{' | b'[' => self.depth = 1,
                    _ => self.in_literal = true,
                }
                self.start_value(text, at);
                Expect::Value
            }
            (Expect::Next, b',') => Expect::Key,
            (Expect::Next, b'}') => Expect::Closed,
            _ => self.broken(at),
        };
    }

    fn start_string(&mut self, from: usize) {
        self.in_string = true;
        self.string_has_escape = false;
        self.string_from = from;
    }

    /// A string at the object's level ended at `at` (its closing quote): a key, or a value.
    fn end_string(&mut self, text: &str, at: usize) {
        if self.expect != Expect::Key {
            self.end_value(text, at + 1);
            return;
        }
        if self.string_has_escape {
            // It may decode to one of the names that matter.
            self.settled = true;
        }
        self.key = self.string_from..at;
        self.role = match &text[self.key.clone()] {
            "name" => Role::Name,
            "id" => Role::Id,
            "arguments" | "parameters" => Role::Arguments,
            _ => Role::Other,
        };
        self.expect = Expect::Colon;
    }

    /// A member's value begins at `at`: only the first of each member that matters counts.
    fn start_value(&mut self, text: &str, at: usize) {
        let slot = match self.role {
            Role::Name => 0,
            Role::Id => 1,
            Role::Arguments => 2,
            Role::Other => return,
        };
        if std::mem::replace(&mut self.seen[slot], true) {
            self.role = Role::Other;
        } else if self.role == Role::Arguments {
            self.arguments = Some((at, None));
            if text.as_bytes()[at] == b'{' {
                self.check_ready(text);
            }
        }
    }

    /// The value being read ends before `end`. A value that is not JSON breaks the object
    /// (the arguments are checked when the call ends, or here if the call is not ready yet).
    fn end_value(&mut self, text: &str, end: usize) {
        let value = self.value_from..end;
        let role = std::mem::replace(&mut self.role, Role::Other);
        let checked = role == Role::Arguments && self.settled;
        if !checked && serde_json::from_str::<IgnoredAny>(&text[value.clone()]).is_err() {
            self.broken(value.start);
            return;
        }
        self.expect = Expect::Next;
        self.members.push(MemberSpan { key: self.key.clone(), value: value.clone() });
        let plain_string = std::mem::take(&mut self.string_value) && !self.string_has_escape;
        let inner = value.start + 1..value.end.saturating_sub(1);
        match role {
            Role::Name if plain_string => {
                self.name = Some(inner);
                self.check_ready(text);
            }
            // Once the call is announced, an id comes too late to be its id.
            Role::Id if plain_string && !inner.is_empty() && !self.announced => {
                self.id = Some(inner);
                self.check_ready(text);
            }
            Role::Arguments => {
                if let Some((_, arguments_end)) = &mut self.arguments {
                    *arguments_end = Some(end);
                }
            }
            Role::Name | Role::Id | Role::Other => {}
        }
    }

    /// The text breaks the object's grammar at `at`: nothing after it is read, and a call not
    /// announced yet waits for the object's end.
    fn broken(&mut self, at: usize) -> Expect {
        self.broken_at = Some(at);
        self.settled = true;
        Expect::Closed
    }

    /// Whether the call is ready to be announced: named, its arguments begun as an object,
    /// and its id read where the format writes one.
    fn check_ready(&mut self, text: &str) {
        if self.settled || (self.announce == Announce::NamedWithId && self.id.is_none()) {
            return;
        }
        let Some((arguments, _)) = self.arguments else { return };
        let (Some(name), _) = self.naming(text) else { return };
        if text.as_bytes()[arguments] == b'{' && is_tool_name(name) {
            self.ready = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the call written as `text` is ready to be announced, fed byte by byte.
    fn ready_at(text: &str, announce: Announce) -> Option<usize> {
        let mut object = CallObject::new(announce);
        (1..=text.len()).find(|&end| object.scan(&text[..end]))
    }

    /// The object read whole after it was announced, as its end sees it.
    fn read(text: &str) -> CallObject {
        let mut object = CallObject::new(Announce::Named);
        assert!(object.scan(text), "{text} is ready");
        object.announced();
        object.scan(text);
        object
    }

    #[test]
    fn a_call_is_ready_once_named_and_its_arguments_begin() {
        let named = r#"{"name": "get_weather", "arguments": {"city": "Paris"}}"#;
        let at = named.find("{\"city").unwrap() + 1;
        assert_eq!(ready_at(named, Announce::Named), Some(at));
        let object = read(named);
        assert_eq!(object.naming(named), (Some("get_weather"), None));
        assert_eq!(&named[object.arguments(named.len()).unwrap()], r#"{"city": "Paris"}"#);
        assert!(object.closed());
        assert_eq!(object.members().len(), 2);

        let name_last = r#"{"parameters": {"a": [1, "}"]}, "type": "function", "name": "f"}"#;
        assert_eq!(ready_at(name_last, Announce::Named), Some(name_last.len() - 1));
    }

    #[test]
    fn a_call_waits_for_its_end_when_it_is_not_named_or_not_sure() {
        for text in [
            r#"{"name": "get weather", "arguments": {}}"#,
            r#"{"name": "get\u005fweather", "arguments": {}}"#,
            r#"{"n\u0061me": "x", "name": "f", "arguments": {}}"#,
            r#"{"name": 5, "arguments": {}}"#,
            r#"{"name": "f", "arguments": "{}"}"#,
            r#"{"name": "f", "type": functoin, "arguments": {}}"#,
            r#"{"name": "f",, "arguments": {}}"#,
            r#"{"name": "f", "arguments": ]"#,
            r#"{"arguments": {"a": tru}, "name": "f"}"#,
        ] {
            assert_eq!(ready_at(text, Announce::Named), None, "{text}");
        }
    }

    #[test]
    fn where_the_format_writes_ids_the_id_is_needed_too() {
        let id_last = r#"{"name": "f", "arguments": {"a": 1}, "id": "a1B2c3D4e"}"#;
        assert_eq!(ready_at(id_last, Announce::NamedWithId), Some(id_last.len() - 1));
        let no_id = r#"{"name": "f", "arguments": {"a": 1}}"#;
        assert_eq!(ready_at(no_id, Announce::NamedWithId), None);
        let id_first = r#"{"id": "a1B2c3D4e", "name": "f", "arguments": {"a": 1}}"#;
        let at = id_first.find("{\"a").unwrap() + 1;
        assert_eq!(ready_at(id_first, Announce::NamedWithId), Some(at));
        let mut object = CallObject::new(Announce::NamedWithId);
        object.scan(id_first);
        assert_eq!(object.naming(id_first), (Some("f"), Some("a1B2c3D4e")));
    }

    #[test]
    fn what_breaks_the_object_after_the_announcement_is_found() {
        let text = r#"{"name": "f", "arguments": {"x": 1}, "x": [1], "y": tru}"#;
        let object = read(text);
        assert_eq!(object.broken_at(), text.find("tru"));
        assert_eq!(object.members().len(), 3);
        let trailing = r#"{"name": "f", "arguments": {}} and more"#;
        assert_eq!(read(trailing).broken_at(), trailing.find("and"));
        let cut = r#"{"name": "f", "arguments": {"x": 1"#;
        let object = read(cut);
        assert!(!object.closed() && object.broken_at().is_none());
        assert_eq!(object.arguments(cut.len()), Some(cut.find("{\"x").unwrap()..cut.len()));
    }

    #[test]
    fn the_first_of_each_member_counts() {
        let text = r#"{"name": "f", "name": "g", "arguments": {"x": 1}, "parameters": {"y": 2}}"#;
        let object = read(text);
        assert_eq!(object.naming(text).0, Some("f"));
        assert_eq!(&text[object.arguments(text.len()).unwrap()], r#"{"x": 1}"#);
        assert_eq!(object.arguments_within(0, 20), None);
        assert_eq!(object.members().len(), 4);
    }
}
