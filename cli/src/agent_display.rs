//! What an agent run shows as it goes: the model's text on stdout as it streams (reasoning on
//! stderr), one line on stderr per tool call and per result, and a call that waits for approval
//! with the command that decides it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use taskflow_engine::agent::AgentEvent;
use taskflow_engine::{Progress, ProgressSink};

use crate::shown::{shown, shown_prose};

/// What an agent run shows as it goes: the model's text on stdout as it streams (reasoning on
/// stderr), and one line on stderr per tool call and per result. Nothing with `--json`.
pub(crate) fn sink(json: bool) -> ProgressSink {
    if json {
        return taskflow_engine::engine::quiet();
    }
    // Whether the last text printed left the line open.
    let open_line = Mutex::new(false);
    Arc::new(move |progress: &Progress| {
        let mut open = open_line.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let close_line = |open: &mut bool| {
            if std::mem::take(open) {
                println!();
            }
        };
        match progress {
            Progress::Agent(AgentEvent::Text { text, reasoning: false }) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(shown_prose(text).as_bytes());
                let _ = out.flush();
                *open = !text.ends_with('\n');
            }
            Progress::Agent(AgentEvent::Text { text, reasoning: true }) => {
                eprint!("{}", shown_prose(text));
            }
            Progress::Agent(AgentEvent::ToolCall { name, arguments, .. }) => {
                close_line(&mut open);
                eprintln!("→ {} {}", shown(name), one_line(arguments, 120));
            }
            Progress::Agent(AgentEvent::ToolResult { name, content, is_error, .. }) => {
                let summary = if *is_error {
                    one_line(content, 160)
                } else {
                    let lines = content.lines().count();
                    format!("{lines} line(s), {} bytes: {}", content.len(), one_line(content, 80))
                };
                eprintln!("← {}: {summary}", shown(name));
            }
            Progress::Agent(AgentEvent::ApprovalRequested { flow, id, name, arguments }) => {
                close_line(&mut open);
                let (name, id) = (shown(name), shown(id));
                eprintln!("? {name} {} waits for approval (call {id})", one_line(arguments, 120));
                eprintln!(
                    "  decide with `taskflow flows approve {flow} {id}` (add `--deny --reason \
                     TEXT` to refuse)"
                );
            }
            Progress::Agent(AgentEvent::TurnAgain { turn, attempt, error }) => {
                close_line(&mut open);
                eprintln!(
                    "↻ turn {turn}: the answer was cut ({}); asking again (attempt {attempt})",
                    one_line(error, 160)
                );
            }
            Progress::StepFinished { .. } | Progress::Cancelling => close_line(&mut open),
            _ => {}
        }
    })
}

/// `text` on one line, cut to about `limit` characters.
fn one_line(text: &str, limit: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let flat = shown(&flat).into_owned();
    match flat.char_indices().nth(limit) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}
