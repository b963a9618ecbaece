//! What the test files share: the order of events a consumer relies on.

use taskflow_parsers::StreamEvent;

/// What a consumer of the events relies on: calls start one at a time, in index order, with a
/// name; their arguments and end come between their start and the next call's; a diagnostic
/// names only a call it was told of.
pub fn check_event_order(events: &[StreamEvent]) -> Result<(), String> {
    let mut started = 0;
    let mut open = None;
    for (at, event) in events.iter().enumerate() {
        let problem = match event {
            StreamEvent::CallStart { index, name, id } => {
                let problem = if *index != started || open.is_some() {
                    Some("a call starts out of order")
                } else if name.trim().is_empty() || id.is_empty() {
                    Some("a call starts without a name or an id")
                } else {
                    None
                };
                started += 1;
                open = Some(*index);
                problem
            }
            StreamEvent::ArgumentsDelta { index, .. } => {
                (open != Some(*index)).then_some("arguments of a call that is not open")
            }
            StreamEvent::CallEnd { index, .. } => {
                let problem =
                    (open != Some(*index)).then_some("the end of a call that is not open");
                open = None;
                problem
            }
            StreamEvent::Diagnostic(diagnostic) => diagnostic
                .call_index
                .is_some_and(|index| index >= started)
                .then_some("a diagnostic about a call not started yet"),
            StreamEvent::TextDelta { .. } | StreamEvent::ReasoningDelta { .. } => None,
        };
        if let Some(problem) = problem {
            return Err(format!("{problem}: event {at} of {events:#?}"));
        }
    }
    match open {
        Some(index) => Err(format!("the call {index} never ends: {events:#?}")),
        None => Ok(()),
    }
}
