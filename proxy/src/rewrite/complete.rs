//! A whole (non-streamed) answer. It is read as JSON; when no choice holds tagged text (and
//! no id needs rewriting, every structured call names its tool, and no choice that made calls
//! finishes with `stop`) the client gets the upstream's bytes as they were, otherwise the
//! answer with its messages and finish reasons rewritten and every other field as it came.

use serde_json::Value;

use super::choice::{ChoiceRewriter, write_text};
use super::pieces::Pieces;
use super::{Reading, Report};

/// What becomes of an answer.
#[derive(Debug)]
pub(crate) enum Completion {
    /// Nothing to change: pass the upstream's bytes.
    Unchanged,
    Rewritten(Vec<u8>),
}

pub(crate) fn rewrite_completion(
    body: &[u8],
    reading: &Reading,
    report: &mut Report,
) -> Completion {
    let mut answer = match serde_json::from_slice::<Value>(body) {
        Ok(answer) => answer,
        Err(why) => {
            report.not_json("answer", &why);
            return Completion::Unchanged;
        }
    };
    report.usage(answer.get("usage"));
    let Some(choices) = answer.get_mut("choices").and_then(Value::as_array_mut) else {
        return Completion::Unchanged;
    };
    let mut changed = false;
    for choice in choices.iter_mut() {
        changed |= rewrite_choice(choice, reading, report);
    }
    if !changed {
        return Completion::Unchanged;
    }
    match serde_json::to_vec(&answer) {
        Ok(bytes) => Completion::Rewritten(bytes),
        Err(_) => Completion::Unchanged,
    }
}

fn rewrite_choice(choice: &mut Value, reading: &Reading, report: &mut Report) -> bool {
    let Some(choice) = choice.as_object_mut() else { return false };
    let Some(message) = choice.get_mut("message").and_then(Value::as_object_mut) else {
        return false;
    };
    let mut rewriter = ChoiceRewriter::new(reading);
    let mut out = Pieces::default();
    let text_in = rewriter.read_text(message, &mut out);
    rewriter.finish(&mut out);
    let mut changed = false;
    let mut structured = match message.remove("tool_calls") {
        Some(Value::Array(calls)) => calls,
        Some(other) => {
            message.insert("tool_calls".into(), other);
            Vec::new()
        }
        None => Vec::new(),
    };
    changed |= rewriter.structured_list(&mut structured);
    rewriter.drop_nameless(&mut out);
    if !text_in.same_as(&out) {
        changed = true;
        write_text(message, &text_in, &out, rewriter.reasoning_keys, true);
    }
    // Structured calls were numbered after the tagged ones (they are read last).
    let mut calls = out.whole_calls();
    calls.extend(structured);
    // No empty list where every call was taken out: some servers refuse `"tool_calls": []`
    // in the history a client sends back.
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let reason = choice.get("finish_reason").and_then(Value::as_str).filter(|r| !r.is_empty());
    if let Some(reason) = rewriter.finish_reason(reason) {
        choice.insert("finish_reason".into(), Value::from(reason));
        changed = true;
    }
    report.calls_fixed += rewriter.calls.tagged;
    report.format = report.format.or(rewriter.format());
    report.notes.append(&mut rewriter.calls.notes);
    changed
}
