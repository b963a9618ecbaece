//! Building diagnostic events, so that every format words the same problems the same way.

use crate::event::StreamEvent;
use crate::message::{Diagnostic, DiagnosticKind};

pub(crate) fn diagnostic(
    kind: DiagnosticKind,
    call_index: Option<usize>,
    offset: usize,
    message: impl Into<String>,
) -> StreamEvent {
    StreamEvent::Diagnostic(Diagnostic {
        kind,
        call_index,
        offset,
        message: message.into(),
        text: None,
    })
}

/// A diagnostic that carries input text which went nowhere else.
pub(crate) fn with_text(
    kind: DiagnosticKind,
    call_index: Option<usize>,
    offset: usize,
    message: impl Into<String>,
    text: impl Into<String>,
) -> StreamEvent {
    StreamEvent::Diagnostic(Diagnostic {
        kind,
        call_index,
        offset,
        message: message.into(),
        text: Some(text.into()),
    })
}

/// A marker where the format does not allow one, inside the call `call_index` if it stands in
/// one: it is dropped.
pub(crate) fn unexpected_marker(
    spelling: &str,
    call_index: Option<usize>,
    offset: usize,
    context: &str,
) -> StreamEvent {
    diagnostic(
        DiagnosticKind::UnexpectedMarker,
        call_index,
        offset,
        format!("`{spelling}` {context}; dropped"),
    )
}
