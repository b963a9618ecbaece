//! A flow's steps as a graph, the picture `taskflow flows graph` draws and the dashboard shows:
//! one model built from the flow and its journal, written out as SVG ([`svg`], laid out by
//! layout-rs), Graphviz DOT ([`dot`]), Mermaid ([`mermaid`]) or JSON.
//!
//! A pipeline's graph is its spec: a node per step, an edge per `needs` or template read, each
//! node in the status of the step's latest journal row (`pending` before it runs, `not run` once
//! the flow ended without it). A flow without a pipeline (an agent run, a mirrored flow) is its
//! journal as a chain, in the order the steps began. Step names and everything else in a node
//! may come from a model or another program: every writer escapes them for its format.

pub mod dot;
pub mod mermaid;
pub mod schedules;
pub mod svg;

use serde::Serialize;
use taskflow_engine::FlowSpec;
use taskflow_store::{Flow, Step, StepStatus};

/// The graph of one flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    pub flow_id: String,
    pub flow_status: String,
    pub nodes: Vec<Node>,
    /// `(from, to)` as positions in `nodes`: `to` waits for `from`.
    pub edges: Vec<(usize, usize)>,
}

/// A step of the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// The step's id in the pipeline, or its name in the journal.
    pub step: String,
    /// The status of its latest journal row, `pending` or `not run`.
    pub status: String,
    /// The journal row that status is from.
    pub seq: Option<u32>,
    pub attempt: Option<u32>,
    /// The child flow the step runs, if it is a child step.
    pub child_flow_id: Option<String>,
}

impl Graph {
    /// The graph of `flow` (with its spec, when it has one) and its journal `steps`.
    pub fn of(flow: &Flow, steps: &[Step]) -> Graph {
        let pipeline = flow.spec.as_ref().and_then(|spec| FlowSpec::from_value(spec).ok());
        let (mut nodes, edges) = match pipeline {
            Some(spec) => pipeline_graph(&spec, steps, flow.status.is_terminal()),
            None => journal_chain(steps),
        };
        // A step parked on a timer or a signal keeps its journal row `running`.
        let parked = taskflow_store::wait::waiting_seqs(flow.wait.as_ref());
        for node in &mut nodes {
            if node.status == "running" && node.seq.is_some_and(|seq| parked.contains(&seq)) {
                node.status = "waiting".to_owned();
            }
        }
        Graph {
            flow_id: flow.id.to_string(),
            flow_status: flow.status.as_str().to_owned(),
            nodes,
            edges,
        }
    }
}

fn node(step: &str, row: Option<&Step>, unrun: &str) -> Node {
    Node {
        step: step.to_owned(),
        status: row.map_or_else(|| unrun.to_owned(), |row| row.status.as_str().to_owned()),
        seq: row.map(|row| row.seq),
        attempt: row.map(|row| row.attempt),
        child_flow_id: row.and_then(|row| row.child_flow_id.as_ref()).map(ToString::to_string),
    }
}

fn pipeline_graph(
    spec: &FlowSpec,
    steps: &[Step],
    ended: bool,
) -> (Vec<Node>, Vec<(usize, usize)>) {
    let unrun = if ended { "not run" } else { "pending" };
    let latest = |id: &str| steps.iter().filter(|row| row.name == id).max_by_key(|row| row.seq);
    let nodes = spec.steps.iter().map(|step| node(&step.id, latest(&step.id), unrun)).collect();
    let position = |id: &str| spec.steps.iter().position(|step| step.id == id);
    let mut edges = Vec::new();
    for (to, step) in spec.steps.iter().enumerate() {
        for from in step.waits_for().iter().filter_map(|id| position(id)) {
            if from != to && !edges.contains(&(from, to)) {
                edges.push((from, to));
            }
        }
    }
    (nodes, edges)
}

fn journal_chain(steps: &[Step]) -> (Vec<Node>, Vec<(usize, usize)>) {
    let mut rows: Vec<&Step> = steps.iter().collect();
    rows.sort_by_key(|row| row.seq);
    let nodes: Vec<Node> = rows.iter().map(|row| node(&row.name, Some(row), "pending")).collect();
    let edges = (1..nodes.len()).map(|to| (to - 1, to)).collect();
    (nodes, edges)
}

/// The fill and stroke a status is drawn with (the status is written in the node as well, so
/// that color is never the only sign of it).
pub(crate) fn colors(status: &str) -> (&'static str, &'static str) {
    match status {
        s if s == StepStatus::Succeeded.as_str() => ("#dcfce7", "#15803d"),
        s if s == StepStatus::Failed.as_str() => ("#fee2e2", "#b91c1c"),
        s if s == StepStatus::Running.as_str() => ("#dbeafe", "#1d4ed8"),
        "waiting" => ("#fef9c3", "#a16207"),
        "cancelled" => ("#e5e7eb", "#4b5563"),
        _ => ("#ffffff", "#6b7280"),
    }
}

/// A node's label: its step, then its status (and attempt after the first).
pub(crate) fn label(node: &Node) -> (String, String) {
    let status = match node.attempt {
        Some(attempt) if attempt > 1 => format!("{} (attempt {attempt})", node.status),
        _ => node.status.clone(),
    };
    (node.step.clone(), status)
}

#[cfg(test)]
mod tests;
