//! How the CLI shows flows: aligned, borderless tables and `label  value` lines on a terminal,
//! or with `--json` the documents of the api (DESIGN §6), pretty-printed.

use std::borrow::Cow;
use std::io::Write;

use serde_json::Value;
use taskflow_api::documents;
use taskflow_engine::{
    ApprovalRequest, CancelOutcome, Flow, FlowStatus, FlowSummary, Inspection, Revision, Signal,
    Stall, StallReason, StatusFilter, SyncMode, Timestamp,
};
use unicode_width::UnicodeWidthStr;

use crate::shown::shown;

/// `flows list`: a table of flows, or a line saying there are none.
pub fn flows(flows: &[FlowSummary], owner: &str, filter: &ListFilter, json: bool) {
    let now = Timestamp::now();
    if json {
        print_json(&documents::flows_list(flows, now));
        return;
    }
    if flows.is_empty() {
        let whose =
            if filter.all_owners { "any owner".to_owned() } else { format!("owner `{owner}`") };
        let which = filter.status.map(|s| format!("{s} ")).unwrap_or_default();
        println!("no {which}flows for {whose}");
        return;
    }
    let mut header = vec!["ID", "NAME", "STATUS", "REV", "STEPS", "AGE"];
    if filter.all_owners {
        header.push("OWNER");
    }
    let rows = flows.iter().map(|flow| {
        let mut row = vec![
            flow.id.to_string(),
            flow.name.clone(),
            status_text(flow.status, flow.stall(now).as_ref(), flow.cancel_requested_at),
            flow.revision.to_string(),
            format!("{}/{}", flow.steps_done, flow.steps_total),
            age(flow.created_at, now),
        ];
        if filter.all_owners {
            row.push(flow.owner.clone());
        }
        row
    });
    print!("{}", table(&header, rows));
}

/// What a list was asked for, to say so when it is empty.
pub struct ListFilter {
    pub status: Option<StatusFilter>,
    pub all_owners: bool,
}

/// `flows inspect`: the flow's fields, its steps and its children.
/// `tokens` and `cost` so far, each with its budget: shown once a model call was made or a
/// budget set.
fn usage_fields(usage: &Value) -> Vec<(&'static str, String)> {
    let number = |key: &str| usage[key].as_u64();
    let dollars = |key: &str| usage[key].as_f64();
    let mut fields = Vec::new();
    let (tokens, max_tokens) = (number("tokens").unwrap_or(0), number("max_tokens"));
    let unmeasured = number("calls_without_usage").unwrap_or(0);
    if tokens > 0 || max_tokens.is_some() || unmeasured > 0 {
        let of = max_tokens.map_or(String::new(), |max| format!(" of {max}"));
        let uncounted = match unmeasured {
            0 => String::new(),
            calls => format!("; {calls} model call(s) reported no usage, not counted"),
        };
        fields.push((
            "tokens",
            format!(
                "{tokens}{of} (in {}, out {}{uncounted})",
                number("input_tokens").unwrap_or(0),
                number("output_tokens").unwrap_or(0)
            ),
        ));
    }
    match (dollars("cost_usd"), dollars("max_cost_usd")) {
        (None, None) => {}
        (cost, max) => {
            let cost = cost.map_or("unknown (no price)".to_owned(), |cost| format!("${cost:.4}"));
            let of = max.map_or(String::new(), |max| format!(" of ${max:.4}"));
            fields.push(("cost", format!("{cost}{of}")));
        }
    }
    fields
}

pub fn inspection(inspection: &Inspection, json: bool) {
    let Inspection { flow, steps, children, descendant_llm_steps, descendants } = inspection;
    let now = Timestamp::now();
    if json {
        print_json(&documents::inspection(inspection, now));
        return;
    }
    let (done, total) = documents::step_counts(flow, steps);
    let stall = flow.stall(now);
    let optional = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let when =
        |at: Option<Timestamp>| optional(at.map(|at| format!("{at} ({} ago)", age(at, now))));
    let mut fields = vec![
        ("flow", flow.id.to_string()),
        ("name", flow.name.clone()),
        ("owner", flow.owner.clone()),
        ("status", status_text(flow.status, stall.as_ref(), flow.cancel_requested_at)),
        ("sync mode", flow.sync_mode.to_string()),
        ("revision", flow.revision.to_string()),
        ("steps", format!("{done}/{total} done")),
        ("goal", optional(flow.goal.clone())),
        ("current step", optional(flow.current_step.clone())),
        ("created", when(Some(flow.created_at))),
        ("updated", when(Some(flow.updated_at))),
        ("ended", when(flow.ended_at)),
        ("parent", optional(flow.parent_flow_id.as_ref().map(ToString::to_string))),
        ("cancel requested", when(flow.cancel_requested_at)),
        (
            "lease",
            optional(
                flow.lease
                    .as_ref()
                    .map(|lease| format!("{} until {}", lease.holder, lease.expires_at)),
            ),
        ),
        ("error", optional(flow.error.clone())),
    ];
    if flow.sync_mode == SyncMode::Mirrored {
        fields.insert(5, ("controller", optional(flow.controller.clone())));
    }
    let approvals = taskflow_store::wait::approvals(flow.wait.as_ref());
    let waited = taskflow_store::wait::waited_children(flow.wait.as_ref());
    // A decision makes the flow that waited for it due (a pipeline, for its child's call): what
    // is left is running it on, not deciding.
    let asks = !approvals.is_empty() || !waited.is_empty();
    let decided = (asks && flow.is_due(now)).then(|| {
        format!(
            "decided: it is due; `taskflow flows resume {}` runs it on (a running serve or \
             worker does it by itself)",
            flow.id
        )
    });
    if approvals.is_empty() && !waited.is_empty() {
        for child in &waited {
            fields.push(("waiting for", child_text(child)));
        }
        fields.push(("decide", decided.unwrap_or_else(|| decide_child_text(flow))));
    } else if approvals.is_empty() {
        if let Some(wait) = &flow.wait {
            fields.push(("waiting for", wait.to_string()));
        }
    } else {
        for (request, _) in &approvals {
            fields.push(("waiting for", approval_text(request)));
        }
        fields.push(("decide", decided.unwrap_or_else(|| decide_text(flow, &approvals))));
    }
    if let Some(at) = flow.wake_at {
        fields.push(("due", at.to_string()));
    }
    fields.extend(usage_fields(&documents::usage(flow, steps, descendants, descendant_llm_steps)));
    if let Some(stall) = &stall {
        fields.insert(4, ("stalled", stall_text(stall, now, &flow.id.to_string())));
    }
    let width = fields.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, value) in fields {
        println!("{label:<width$}  {}", shown(&value));
    }
    println!();
    if steps.is_empty() {
        println!("no steps");
    } else {
        let rows = steps.iter().map(|step| {
            vec![
                step.seq.to_string(),
                step.name.clone(),
                step.kind.to_string(),
                step.status.to_string(),
                step.attempt.to_string(),
                step.ended_at.map_or_else(
                    || age(step.started_at, now),
                    |end| duration(end.as_millis() - step.started_at.as_millis()),
                ),
                step.error
                    .clone()
                    .or_else(|| step.child_flow_id.as_ref().map(|id| format!("child {id}")))
                    .unwrap_or_default(),
            ]
        });
        let header = ["SEQ", "STEP", "KIND", "STATUS", "ATTEMPT", "TIME", "NOTE"];
        print!("{}", table(&header, rows));
    }
    if !children.is_empty() {
        println!();
        let rows = children.iter().map(|child| {
            let status = status_text(child.status, child.stall(now).as_ref(), None);
            vec![child.id.to_string(), child.name.clone(), status]
        });
        print!("{}", table(&["CHILD", "NAME", "STATUS"], rows));
    }
}

/// `approval of run_command {"command":"ls"} (call call_1)`.
fn approval_text(request: &ApprovalRequest) -> String {
    let arguments = match &request.arguments {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    format!("approval of {} {arguments} (call {})", request.tool, request.call_id)
}

/// The commands that decide a flow's pending approvals.
fn decide_text(flow: &Flow, approvals: &[(ApprovalRequest, String)]) -> String {
    let call = match approvals {
        [_] => String::new(),
        _ => " CALL_ID".to_owned(),
    };
    format!("`taskflow flows approve {}{call}` (add `--deny --reason TEXT` to refuse)", flow.id)
}

/// `child flow ID, which waits for a decision about a tool call`.
fn child_text(child: &str) -> String {
    format!("child flow {child}, which waits for a decision about a tool call")
}

/// The command that decides the call a pipeline's waiting child waits for.
fn decide_child_text(flow: &Flow) -> String {
    format!(
        "`taskflow flows approve {}` (the decision goes to its child; add `--deny --reason TEXT` \
         to refuse)",
        flow.id
    )
}

/// What a flow left waiting says on stderr: for each call waiting for approval, the call and
/// the command that decides it; otherwise what it waits for and how it goes on.
pub fn waiting_lines(flow: &Flow) -> Vec<String> {
    let approvals = taskflow_store::wait::approvals(flow.wait.as_ref());
    let children = taskflow_store::wait::waited_children(flow.wait.as_ref());
    if approvals.is_empty() && !children.is_empty() {
        let mut lines: Vec<String> =
            children.iter().map(|child| format!("waiting for {}", child_text(child))).collect();
        lines.push(format!(
            "hint: {}, then `taskflow flows resume {}` runs it on (a running serve or worker \
             does it by itself)",
            decide_child_text(flow),
            flow.id
        ));
        return lines;
    }
    if approvals.is_empty() {
        return vec![format!(
            "hint: `taskflow flows resume {}` continues it once it is due (a running serve or \
             worker does it by itself)",
            flow.id
        )];
    }
    let mut lines: Vec<String> = approvals
        .iter()
        .map(|(request, _)| format!("waiting for {}", approval_text(request)))
        .collect();
    lines.push(format!(
        "hint: {}, then `taskflow flows resume {}` runs it on (a running serve or worker does \
         it by itself)",
        decide_text(flow, &approvals),
        flow.id
    ));
    lines
}

/// `flows approve`: the decision recorded, and where its flow is now.
pub fn approval_decided(call_id: &str, signal: &Signal, flow: &Flow, json: bool) {
    if json {
        print_json(&documents::approval_decided(call_id, signal, flow, Timestamp::now()));
        return;
    }
    let decision = taskflow_engine::ApprovalDecision::from_value(&signal.payload);
    let (word, reason) = match decision {
        Some(decision) if decision.approved => ("approved", decision.reason),
        Some(decision) => ("denied", decision.reason),
        None => ("decided", None),
    };
    let reason = reason.map(|reason| format!(": {}", shown(&reason))).unwrap_or_default();
    println!("call {call_id} of flow {} {word}{reason}", flow.id);
}

/// `flows signal`: the signal stored, and where its flow is now.
pub fn signal_sent(signal: &Signal, flow: &Flow, json: bool) {
    let now = Timestamp::now();
    if json {
        print_json(&documents::signal_sent(signal, flow, now));
        return;
    }
    // Who runs it on is not known here: a run in a terminal waiting for it, a serve, a worker (on
    // PostgreSQL), or nobody.
    let waking = if flow.is_due(now) {
        format!(
            ", due now: the run that waits for it, or a running serve or worker, runs it on, \
             else `taskflow flows resume {}`",
            flow.id
        )
    } else {
        String::new()
    };
    println!(
        "signal {} (#{}) sent to flow {} ({}{waking})",
        signal.name, signal.id, flow.id, flow.status
    );
}

/// `flows history`: one row per revision.
pub fn history(history: &[Revision], json: bool) {
    if json {
        print_json(&documents::history(history));
        return;
    }
    let rows = history.iter().map(|revision| {
        let change = revision
            .change
            .iter()
            .map(|c| format!("{}: {} → {}", c.field, value_text(&c.before), value_text(&c.after)))
            .collect::<Vec<_>>()
            .join("; ");
        vec![revision.revision.to_string(), revision.at.to_string(), revision.actor.clone(), change]
    });
    print!("{}", table(&["REV", "AT", "ACTOR", "CHANGE"], rows));
}

/// What `flows cancel` did.
pub fn cancel(outcome: &CancelOutcome, json: bool) {
    let flow = &outcome.flow;
    if json {
        print_json(&documents::cancel(outcome, Timestamp::now()));
        return;
    }
    let requested = flow.cancel_requested_at.map(|at| at.to_string()).unwrap_or_default();
    if flow.status == FlowStatus::Cancelled {
        println!("flow {} cancelled (revision {})", flow.id, flow.revision);
    } else if outcome.already_requested {
        println!(
            "flow {} already has a cancel request (since {requested}); it is still {}",
            flow.id, flow.status
        );
    } else if flow.sync_mode == SyncMode::Mirrored {
        println!(
            "cancel requested for flow {} (revision {}); its owner{} stops it and reports it cancelled",
            flow.id,
            flow.revision,
            flow.controller.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
        );
    } else {
        println!(
            "cancel requested for flow {} (revision {}); it becomes cancelled once its {} \
             running step(s) have settled",
            flow.id, flow.revision, outcome.active_steps
        );
    }
}

fn status_text(status: FlowStatus, stall: Option<&Stall>, cancel: Option<Timestamp>) -> String {
    if stall.is_some() {
        format!("{status} (stalled)")
    } else if cancel.is_some() && !status.is_terminal() {
        format!("{status} (cancelling)")
    } else {
        status.to_string()
    }
}

/// Why the flow is stalled, and what to do: `holder host:4242 is gone; taskflow flows resume ID
/// continues it`.
fn stall_text(stall: &Stall, now: Timestamp, id: &str) -> String {
    let holder = stall.holder.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
    let why = match stall.reason {
        StallReason::HolderGone => format!("its runner {holder} is gone"),
        StallReason::LeaseExpired => match stall.since {
            Some(since) => {
                format!("the lease of {holder} expired at {since} ({} ago)", age(since, now))
            }
            None => format!("the lease of {holder} expired"),
        },
        StallReason::NoLease => "no runner holds it".to_owned(),
    };
    format!("{why}; `taskflow flows resume {id}` continues it")
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// How long ago `then` was, in the largest whole unit: `42s`, `5m`, `3h`, `12d`.
fn age(then: Timestamp, now: Timestamp) -> String {
    duration(then.age(now).as_millis() as i64)
}

fn duration(millis: i64) -> String {
    let seconds = millis.max(0) / 1000;
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// An aligned, borderless table, one line per row (a cell of several lines takes as many), each
/// column as wide as its widest line (in terminal columns) plus two spaces, no trailing blanks.
/// Written directly: a list of ten thousand schedules is printed in a few milliseconds.
pub(crate) fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let header: Vec<String> = header.iter().map(|title| (*title).to_owned()).collect();
    let cell = |cell: String| match shown(&cell) {
        Cow::Borrowed(_) => cell,
        Cow::Owned(escaped) => escaped,
    };
    let rows: Vec<Vec<String>> = std::iter::once(header)
        .chain(rows.map(|row| row.into_iter().map(cell).collect()))
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    let mut bytes = 0;
    for row in &rows {
        for (column, cell) in row.iter().enumerate() {
            let widest = cell.split('\n').map(width).max().unwrap_or(0);
            widths[column] = widths[column].max(widest);
            bytes += cell.len();
        }
    }
    let spaces = " ".repeat(widths.iter().max().map_or(0, |widest| widest + 2));
    let mut text = String::with_capacity(bytes + rows.len() * (widths.iter().sum::<usize>() + 1));
    let mut lines: Vec<std::str::Split<'_, char>> = Vec::with_capacity(columns);
    for row in &rows {
        let height = row.iter().map(|cell| cell.matches('\n').count() + 1).max().unwrap_or(1);
        lines.clear();
        lines.extend(row.iter().map(|cell| cell.split('\n')));
        for _ in 0..height {
            let start = text.len();
            for (column, width) in widths.iter().enumerate() {
                let part = lines.get_mut(column).and_then(Iterator::next).unwrap_or("");
                text.push_str(part);
                text.push_str(&spaces[..width - self::width(part) + 2]);
            }
            let kept = text[start..].trim_end().len();
            text.truncate(start + kept);
            text.push('\n');
        }
    }
    text
}

/// The columns `text` takes on a terminal (one per byte when it is ASCII, the common case).
fn width(text: &str) -> usize {
    if text.is_ascii() { text.len() } else { UnicodeWidthStr::width(text) }
}

/// One JSON document, pretty-printed.
pub fn print_json(value: &impl serde::Serialize) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // Writing to a closed pipe (`| head`) is not an error worth reporting.
    if serde_json::to_writer_pretty(&mut out, value).is_ok() {
        let _ = out.write_all(b"\n");
    }
}

#[cfg(test)]
mod tests {
    use super::table;

    fn check(header: &[&str], rows: &[&[&str]], expected: &str) {
        let rows = rows.iter().map(|row| row.iter().map(|cell| (*cell).to_owned()).collect());
        assert_eq!(table(header, rows), expected);
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_line_plus_two_spaces() {
        check(&["ID", "STATUS"], &[], "ID  STATUS\n");
        check(
            &["NAME", "STATUS", "NOTE"],
            &[&["digest", "running", ""], &["a", "failed", "exit 1"]],
            "NAME    STATUS   NOTE\ndigest  running\na       failed   exit 1\n",
        );
        // Wide characters take two columns; a cell of two lines makes a row of two lines.
        check(
            &["NAME", "NOTE"],
            &[&["日報", "line one\nline two"], &["x", "-"]],
            "NAME  NOTE\n日報  line one\n      line two\nx     -\n",
        );
    }
}
