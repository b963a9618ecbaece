//! The graph in Graphviz's DOT language, for `dot -Tpng` and the tools that read it.

use std::fmt::Write;

use super::{Graph, colors, label};

/// `graph` as a `digraph`; node `nN` is `graph.nodes[N]`.
pub fn write(graph: &Graph) -> String {
    let mut text = String::new();
    let title = format!("{} ({})", graph.flow_id, graph.flow_status);
    let _ = writeln!(text, "digraph flow {{");
    let _ = writeln!(text, "  graph [rankdir=TB, label={}, labelloc=t];", quoted(&title));
    let _ =
        writeln!(text, "  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\"];");
    for (at, node) in graph.nodes.iter().enumerate() {
        let (step, status) = label(node);
        let (fill, stroke) = colors(&node.status);
        let _ = writeln!(
            text,
            "  n{at} [label={}, fillcolor=\"{fill}\", color=\"{stroke}\"];",
            quoted(&format!("{step}\n{status}"))
        );
    }
    for (from, to) in &graph.edges {
        let _ = writeln!(text, "  n{from} -> n{to};");
    }
    text.push_str("}\n");
    text
}

/// A DOT double-quoted string: quotes and backslashes escaped (so no `\N`-style escape of
/// the text is read by Graphviz), line breaks as `\n`.
fn quoted(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    escaped.push('"');
    for c in text.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            c if c.is_control() => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped.push('"');
    escaped
}
