use serde_json::{Value, json};
use taskflow_store::{Flow, FlowId, FlowStatus, Step, StepKind, StepStatus, SyncMode, Timestamp};

use super::svg::MOST_BOXES;
use super::{Graph, dot, mermaid, svg};

fn flow(status: FlowStatus, spec: Option<Value>, wait: Option<Value>) -> Flow {
    Flow {
        id: FlowId::parse("digest-1").unwrap(),
        name: "digest".into(),
        owner: "alice".into(),
        sync_mode: if spec.is_some() { SyncMode::Managed } else { SyncMode::Mirrored },
        controller: None,
        status,
        revision: 1,
        goal: None,
        current_step: None,
        state: None,
        wait,
        wake_at: None,
        spec,
        parent_flow_id: None,
        cancel_requested_at: None,
        lease: None,
        created_at: Timestamp::from_millis(0),
        updated_at: Timestamp::from_millis(0),
        ended_at: None,
        error: None,
    }
}

fn step(seq: u32, name: &str, status: StepStatus, attempt: u32) -> Step {
    Step {
        flow_id: FlowId::parse("digest-1").unwrap(),
        seq,
        name: name.into(),
        kind: StepKind::Action,
        status,
        attempt,
        idempotency_key: format!("k{seq}"),
        input: None,
        output: None,
        error: None,
        started_at: Timestamp::from_millis(0),
        ended_at: None,
        child_flow_id: None,
    }
}

/// fetch → draft (needs) → publish (reads draft's output); `lint` needs nothing.
fn pipeline() -> Value {
    json!({"name": "digest", "steps": [
        {"id": "fetch", "action": "echo", "with": {"value": 1}},
        {"id": "draft", "action": "echo", "needs": ["fetch"], "with": {"value": 2}},
        {"id": "publish", "action": "echo", "with": {"value": "{{steps.draft.output}}"}},
        {"id": "lint", "action": "echo", "with": {"value": 3}},
    ]})
}

fn failed_run() -> Graph {
    let steps = [
        step(1, "fetch", StepStatus::Succeeded, 1),
        step(2, "draft", StepStatus::Failed, 1),
        step(3, "lint", StepStatus::Succeeded, 1),
        step(4, "draft", StepStatus::Failed, 2),
    ];
    Graph::of(&flow(FlowStatus::Failed, Some(pipeline()), None), &steps)
}

#[test]
fn a_pipeline_is_its_spec_with_each_step_in_its_latest_status() {
    let graph = failed_run();
    let nodes: Vec<(&str, &str, Option<u32>)> = graph
        .nodes
        .iter()
        .map(|node| (node.step.as_str(), node.status.as_str(), node.attempt))
        .collect();
    assert_eq!(
        nodes,
        [
            ("fetch", "succeeded", Some(1)),
            ("draft", "failed", Some(2)),
            ("publish", "not run", None),
            ("lint", "succeeded", Some(1)),
        ]
    );
    assert_eq!(graph.edges, [(0, 1), (1, 2)], "needs and template reads");

    let running = Graph::of(&flow(FlowStatus::Running, Some(pipeline()), None), &[]);
    assert!(running.nodes.iter().all(|node| node.status == "pending"));
}

#[test]
fn a_flow_without_a_pipeline_is_its_journal_as_a_chain_and_a_parked_step_waits() {
    let steps =
        [step(2, "read_file", StepStatus::Running, 1), step(1, "llm 1", StepStatus::Succeeded, 1)];
    let wait = json!({"until": null, "signals": ["go"],
        "steps": [{"seq": 2, "step": "read_file", "until": null, "signal": "go"}]});
    let graph = Graph::of(&flow(FlowStatus::Waiting, None, Some(wait)), &steps);
    let nodes: Vec<(&str, &str)> =
        graph.nodes.iter().map(|node| (node.step.as_str(), node.status.as_str())).collect();
    assert_eq!(nodes, [("llm 1", "succeeded"), ("read_file", "waiting")]);
    assert_eq!(graph.edges, [(0, 1)]);
}

#[test]
fn dot_names_each_node_with_its_step_status_and_colors() {
    assert_eq!(
        dot::write(&failed_run()),
        r##"digraph flow {
  graph [rankdir=TB, label="digest-1 (failed)", labelloc=t];
  node [shape=box, style="rounded,filled", fontname="sans-serif"];
  n0 [label="fetch\nsucceeded", fillcolor="#dcfce7", color="#15803d"];
  n1 [label="draft\nfailed (attempt 2)", fillcolor="#fee2e2", color="#b91c1c"];
  n2 [label="publish\nnot run", fillcolor="#ffffff", color="#6b7280"];
  n3 [label="lint\nsucceeded", fillcolor="#dcfce7", color="#15803d"];
  n0 -> n1;
  n1 -> n2;
}
"##
    );
}

#[test]
fn mermaid_gives_each_status_a_class() {
    assert_eq!(
        mermaid::write(&failed_run()),
        "flowchart TD
  n0[\"fetch<br/>succeeded\"]:::succeeded
  n1[\"draft<br/>failed (attempt 2)\"]:::failed
  n2[\"publish<br/>not run\"]:::not_run
  n3[\"lint<br/>succeeded\"]:::succeeded
  n0 --> n1
  n1 --> n2
  classDef succeeded fill:#dcfce7,stroke:#15803d
  classDef failed fill:#fee2e2,stroke:#b91c1c
  classDef not_run fill:#ffffff,stroke:#6b7280
"
    );
}

#[test]
fn svg_nodes_carry_their_hooks() {
    let picture = svg::write(&failed_run()).unwrap();
    assert!(picture.contains("<svg"), "{picture}");
    for (step, status) in
        [("fetch", "succeeded"), ("draft", "failed"), ("publish", "not run"), ("lint", "succeeded")]
    {
        let hooks =
            format!("data-flow-id=\"digest-1\" data-step=\"{step}\" data-status=\"{status}\"");
        assert!(picture.contains(&hooks), "{hooks} in {picture}");
    }
    assert!(picture.contains("fill=\"#fee2e2ff\""), "a failed step's color");
    let empty = Graph::of(&flow(FlowStatus::Running, None, None), &[]);
    assert!(svg::write(&empty).unwrap().starts_with("<svg"));
}

#[test]
fn names_a_model_wrote_are_text_in_every_format() {
    let name = "<script>alert(\"x\")</script>\\N & 'q' #1";
    let steps = [step(1, name, StepStatus::Succeeded, 1)];
    let graph = Graph::of(&flow(FlowStatus::Running, None, None), &steps);

    let picture = svg::write(&graph).unwrap();
    assert!(!picture.contains("<script"), "{picture}");
    assert!(picture.contains("&lt;script&gt;"), "{picture}");
    assert!(!picture.contains("alert(\"x\")"), "{picture}");

    let text = dot::write(&graph);
    assert!(
        text.contains(r#"label="<script>alert(\"x\")</script>\\N & 'q' #1\nsucceeded""#),
        "{text}"
    );

    let chart = mermaid::write(&graph);
    assert!(
        chart.contains(
            "#60;script#62;alert(#34;x#34;)#60;/script#62;#92;N #38; #39;q#39; #35;1<br/>succeeded"
        ),
        "{chart}"
    );
    assert!(!chart.contains("<script"), "{chart}");
}

#[test]
fn the_inline_picture_is_one_svg_element_without_a_style_of_its_own() {
    let name = "</style><style>* {display: none}</style>";
    let steps = [step(1, name, StepStatus::Running, 2)];
    let picture = svg::inline(&Graph::of(&flow(FlowStatus::Running, None, None), &steps)).unwrap();
    assert!(picture.starts_with("<svg "), "{picture}");
    assert!(picture.trim_end().ends_with("</svg>"), "{picture}");
    assert!(!picture.contains("<?xml") && !picture.contains("<style"), "{picture}");
    assert!(picture.contains("&lt;/style&gt;&lt;style&gt;"), "{picture}");
    assert!(picture.contains("data-status=\"running\""), "{picture}");
}

#[test]
fn a_picture_of_more_steps_than_are_laid_out_is_refused_saying_how_many() {
    let steps: Vec<_> = (1..=MOST_BOXES as u32 + 1)
        .map(|seq| step(seq, &format!("s{seq}"), StepStatus::Succeeded, 1))
        .collect();
    let graph = Graph::of(&flow(FlowStatus::Succeeded, None, None), &steps);
    let too_many = svg::write(&graph).unwrap_err();
    assert_eq!(too_many.boxes, format!("{} steps", MOST_BOXES + 1));
    assert!(too_many.to_string().contains("at most 500"), "{too_many}");
    assert!(dot::write(&graph).contains("s501"), "the other forms hold them all");
}
