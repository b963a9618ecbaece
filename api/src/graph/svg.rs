//! The graph as SVG: laid out top to bottom by layout-rs, each node a rounded box in its
//! status's colors with the step and its status written in it. The box carries the hooks the
//! dashboard and users' scripts find it by: `data-flow-id`, `data-step`, `data-status`. The
//! drawing itself ([`draw`]) also draws the schedules and their gates (`super::schedules`).

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::style::StyleAttr;
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;

use super::{Graph, colors, label};

const FONT_SIZE: usize = 14;
/// The most boxes a picture is laid out with. The layout's time grows faster than the cube of
/// their number (600 steps in a chain take a quarter of a second, 1,000 three seconds, 3,000
/// independent ones forty), and a server draws each picture again when its flow changes.
pub const MOST_BOXES: usize = 500;
/// Longer step names are cut, so that one name cannot make the picture unreadable.
const MAX_LABEL_CHARS: usize = 48;

/// More boxes than a picture is laid out with ([`MOST_BOXES`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{boxes} are more than a picture is drawn of (at most {MOST_BOXES}); the DOT, Mermaid and \
     JSON forms hold them all"
)]
pub struct TooMany {
    /// How many there are, with their kind (`3000 steps`).
    pub boxes: String,
}

/// `graph` drawn as a standalone SVG document.
pub fn write(graph: &Graph) -> Result<String, TooMany> {
    if graph.nodes.len() > MOST_BOXES {
        return Err(TooMany { boxes: format!("{} steps", graph.nodes.len()) });
    }
    let boxes = graph
        .nodes
        .iter()
        .map(|node| {
            let (step, status) = label(node);
            Drawn {
                title: step,
                status: node.status.clone(),
                status_line: status,
                hooks: format!(
                    "data-flow-id=\"{}\" data-step=\"{}\" data-status=\"{}\"",
                    attribute(&graph.flow_id),
                    attribute(&node.step),
                    attribute(&node.status)
                ),
            }
        })
        .collect();
    Ok(draw(boxes, &graph.edges))
}

/// One box of a picture: its title and status line, the status its colors are of, and the
/// `data-` attributes it carries.
pub(crate) struct Drawn {
    pub title: String,
    pub status_line: String,
    pub status: String,
    pub hooks: String,
}

/// `boxes` (at most [`MOST_BOXES`]) and the arrows between them (`(from, to)` as positions in
/// `boxes`), laid out top to bottom, as a standalone SVG document.
pub(crate) fn draw(boxes: Vec<Drawn>, edges: &[(usize, usize)]) -> String {
    if boxes.is_empty() {
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"0\" height=\"0\"></svg>\n"
            .to_owned();
    }
    let mut visual = VisualGraph::new(Orientation::TopToBottom);
    let handles: Vec<_> = boxes
        .into_iter()
        .map(|drawn| {
            let shape =
                ShapeKind::new_box(&format!("{}\n{}", cut(&drawn.title), drawn.status_line));
            let (fill, stroke) = colors(&drawn.status);
            let look = StyleAttr::new(color(stroke), 2, Some(color(fill)), 6, FONT_SIZE);
            let size = get_shape_size(Orientation::TopToBottom, &shape, FONT_SIZE, false);
            visual.add_node(Element::create_with_properties(
                shape,
                look,
                Orientation::TopToBottom,
                size,
                drawn.hooks,
            ))
        })
        .collect();
    for &(from, to) in edges {
        visual.add_edge(Arrow::simple(""), handles[from], handles[to]);
    }
    let mut svg = SVGWriter::new();
    visual.do_it(false, false, false, &mut svg);
    svg.finalize()
}

/// `graph` as an `<svg>` element for an HTML page (see [`for_page`]).
pub fn inline(graph: &Graph) -> Result<String, TooMany> {
    write(graph).map(|document| for_page(&document))
}

/// A standalone SVG document as an `<svg>` element for an HTML page: without its XML
/// declaration and its `<style>` element (the page's own stylesheet sets the labels' font, and
/// its policy allows no inline style).
pub(crate) fn for_page(document: &str) -> String {
    let mut svg = document[document.find("<svg").unwrap_or(0)..].to_owned();
    if let (Some(from), Some(to)) = (svg.find("<style>"), svg.find("</style>")) {
        svg.replace_range(from..to + "</style>".len(), "");
    }
    svg
}

/// A step name as it fits in a box: control characters as spaces, at most
/// [`MAX_LABEL_CHARS`] characters.
fn cut(step: &str) -> String {
    let clean: String =
        step.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_LABEL_CHARS).collect();
    if step.chars().count() > MAX_LABEL_CHARS { format!("{clean}…") } else { clean }
}

/// `#rrggbb` as layout-rs's RGBA color.
fn color(hex: &str) -> Color {
    let rgb = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
    Color::new((rgb << 8) | 0xff)
}

/// Text as the value of an attribute in double quotes.
pub(crate) fn attribute(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c if c.is_control() => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}
