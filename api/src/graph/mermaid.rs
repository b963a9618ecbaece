//! The graph as a Mermaid flowchart, which Markdown renderers (GitHub, GitLab, many wikis)
//! draw in place.

use std::fmt::Write;

use super::{Graph, colors, label};

/// `graph` as `flowchart TD`; node `nN` is `graph.nodes[N]`, in a class named for its status.
pub fn write(graph: &Graph) -> String {
    let mut text = String::from("flowchart TD\n");
    let mut classes: Vec<&str> = Vec::new();
    for (at, node) in graph.nodes.iter().enumerate() {
        let (step, status) = label(node);
        let class = class_name(&node.status);
        let _ =
            writeln!(text, "  n{at}[\"{}<br/>{}\"]:::{class}", escaped(&step), escaped(&status));
        if !classes.contains(&node.status.as_str()) {
            classes.push(&node.status);
        }
    }
    for (from, to) in &graph.edges {
        let _ = writeln!(text, "  n{from} --> n{to}");
    }
    for status in classes {
        let (fill, stroke) = colors(status);
        let _ = writeln!(text, "  classDef {} fill:{fill},stroke:{stroke}", class_name(status));
    }
    text
}

/// A status as a class name: letters and `_` only.
fn class_name(status: &str) -> String {
    status.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Text inside a quoted Mermaid label: every character that Mermaid or the HTML it makes could
/// read as syntax written as an entity code (`#34;`), so the label is only ever text.
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.' | ',' | ':' | '/' | '(' | ')') {
            out.push(c);
        } else if c.is_control() {
            out.push(' ');
        } else {
            let _ = write!(out, "#{};", u32::from(c));
        }
    }
    out
}
