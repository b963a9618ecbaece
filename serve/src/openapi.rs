//! The OpenAPI 3 document, generated from the handlers and the bodies: the contract clients are
//! written against and the tests fuzz.

use axum::Json;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::bodies::{
    ApprovalBody, ApprovalDecidedDoc, ApprovalDoc, BudgetBody, CancelDoc, ChildDoc, EventDoc,
    FlowDoc, FlowEnvelope, FlowListDoc, FlowSummaryDoc, ForkBody, Health, HistoryDoc,
    InspectionDoc, LeaseDoc, ManagedFlowBody, MirroredFlowBody, NewFlowBody, PipelineBody,
    PipelineStepBody, PriceBody, ReportBody, RetryBody, RevisionDoc, SignalDoc, SignalSentDoc,
    StallDoc, StepDoc, StepModelBody, StepReportBody, UsageDoc,
};
use crate::error::{ErrorBody, ErrorObject, HttpError};
use crate::routes::{approvals, control, events, flows, graph, meta, mirrored, schedules, signals};
use crate::schedule_bodies::{
    ScheduleDoc, ScheduleEnvelope, ScheduleListDoc, ScheduleRowDoc, ScheduleShowDoc, SlotDoc,
    SlotEnvelope,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "taskflow serve", description = "Durable flows over HTTP: managed flows serve runs, mirrored flows their owner drives and reports, and the changes of both as events."),
    paths(
        meta::healthz, document,
        flows::list, flows::create, flows::inspect, flows::history, graph::graph,
        mirrored::report,
        control::cancel, control::resume, control::fork, control::children,
        signals::send, approvals::decide,
        schedules::list, schedules::show, schedules::pause, schedules::resume, schedules::trigger,
        events::events,
    ),
    components(schemas(
        NewFlowBody, ManagedFlowBody, MirroredFlowBody, PipelineBody, PipelineStepBody, RetryBody,
        BudgetBody, StepModelBody, PriceBody,
        ReportBody, StepReportBody, ForkBody, Health,
        FlowDoc, LeaseDoc, StallDoc, FlowSummaryDoc, StepDoc, ChildDoc, FlowEnvelope, InspectionDoc, UsageDoc,
        FlowListDoc, RevisionDoc, HistoryDoc, CancelDoc, SignalDoc, SignalSentDoc, ApprovalBody,
        ApprovalDoc, ApprovalDecidedDoc, EventDoc,
        ScheduleListDoc, ScheduleRowDoc, SlotDoc, ScheduleDoc, ScheduleShowDoc, ScheduleEnvelope,
        SlotEnvelope,
        ErrorBody, ErrorObject,
    )),
    modifiers(&BearerToken, &EveryRoute),
)]
pub struct ApiDoc;

/// The OpenAPI 3 document of this API, generated from the code that serves it.
#[utoipa::path(get, path = "/openapi.json", security(()), responses((status = 200, description = "OpenAPI 3 document", body = Object)))]
pub async fn document() -> Result<Json<Value>, HttpError> {
    let mut document = serde_json::to_value(ApiDoc::openapi()).map_err(|error| {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string())
    })?;
    link_flows(&mut document);
    Ok(Json(document))
}

/// The operations on one flow, by their `operationId`.
const FLOW_OPERATIONS: [&str; 6] = ["inspect", "history", "report", "cancel", "resume", "fork"];

/// Links the answers that give a flow (a submit, a fork) to the operations on that flow by its
/// id, so that a client, or a fuzzer testing sequences of calls, can follow it. Written into the
/// JSON because utoipa 5 names a link's fields in snake case (`operation_id`), which readers of
/// OpenAPI do not know.
fn link_flows(document: &mut Value) {
    let links: Map<String, Value> = FLOW_OPERATIONS
        .iter()
        .map(|operation| {
            let link =
                json!({"operationId": operation, "parameters": {"id": "$response.body#/flow/id"}});
            ((*operation).to_owned(), link)
        })
        .collect();
    for (path, status) in
        [("/v1/flows", "201"), ("/v1/flows", "200"), ("/v1/flows/{id}/fork", "201")]
    {
        let pointer = format!("/paths/{}/post/responses/{status}", path.replace('/', "~1"));
        if let Some(Value::Object(answer)) = document.pointer_mut(&pointer) {
            answer.insert("links".to_owned(), Value::Object(links.clone()));
        }
    }
}

/// Every route but `/healthz` and `/openapi.json` (which say so) takes `Authorization: Bearer
/// TOKEN`; the token decides whose flows a request sees. A serve with no tokens configured
/// listens on loopback only and acts for its own owner without one.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A token of `[serve.tokens]`, which decides the owner. Without tokens configured, \
                 serve listens on loopback only and needs none.",
            ))
            .build();
        components.add_security_scheme("token", SecurityScheme::Http(scheme));
        openapi.security = Some(vec![SecurityRequirement::new("token", Vec::<String>::new())]);
    }
}

/// The answers any route may give whatever it does, which no handler writes: a query parameter
/// the operation does not take (400, `query.rs`), the guards' (403 for a change another site's
/// page asks, 421 for a name that is not loopback), the request timeout (408; the event stream
/// has none), the body limit (413, on the API's routes that read a body, whether they take one
/// or refuse any), the store that cannot be reached (503). Added to each operation that does
/// not describe them already.
struct EveryRoute;

impl utoipa::Modify for EveryRoute {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::HttpMethod;
        use utoipa::openapi::{Ref, RefOr, ResponseBuilder};
        let answer = |description: &str| {
            let error = Ref::from_schema_name("ErrorBody");
            let content = utoipa::openapi::ContentBuilder::new().schema(Some(error)).build();
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", content)
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/v1/");
            let operations =
                [(HttpMethod::Get, item.get.as_mut()), (HttpMethod::Post, item.post.as_mut())];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let changes = method == HttpMethod::Post;
                let mut answers = vec![
                    ("400", "a query parameter the operation does not take"),
                    (
                        "421",
                        "without tokens: a `Host` that is not a loopback name (localhost, \
                         127.0.0.1, [::1])",
                    ),
                ];
                if path != "/v1/events" {
                    answers.push(("408", "the request took longer than the request timeout"));
                    if api {
                        answers.push(("413", "the body is larger than serve's limit"));
                    }
                }
                if changes {
                    answers.push(("403", "a request another site's page sent from a browser"));
                }
                if api {
                    answers.push(("503", "the database cannot be reached now; try again"));
                }
                for (status, description) in answers {
                    let responses = &mut operation.responses.responses;
                    if !responses.contains_key(status) {
                        responses.insert(status.to_owned(), answer(description));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_link_names_an_operation_of_the_document() {
        let Ok(Json(document)) = document().await else { panic!("no document") };
        let operations: Vec<&str> = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        let links = &document["paths"]["/v1/flows"]["post"]["responses"]["201"]["links"];
        assert_eq!(links.as_object().unwrap().len(), FLOW_OPERATIONS.len());
        for link in links.as_object().unwrap().values() {
            assert!(operations.contains(&link["operationId"].as_str().unwrap()), "{link}");
        }
        let fork = &document["paths"]["/v1/flows/{id}/fork"]["post"]["responses"]["201"]["links"];
        assert_eq!(fork["inspect"]["parameters"]["id"], "$response.body#/flow/id");
    }

    /// The keys of an object.
    fn keys(value: &Value) -> std::collections::BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    #[tokio::test]
    async fn the_pipeline_the_document_describes_has_every_field_the_engine_reads_and_no_other() {
        use std::time::Duration;
        use taskflow_engine::tools::{Budget, Price, StepModel};
        use taskflow_engine::{FlowSpec, RetryPolicy, StepSpec};
        let Ok(Json(document)) = document().await else { panic!("no document") };
        let described = |name: &str| keys(&document["components"]["schemas"][name]["properties"]);
        let step = StepSpec::new("a", "echo")
            .needs(["b"])
            .with(json!({"value": 1}))
            .retry(RetryPolicy::default())
            .timeout(Duration::from_secs(1));
        let mut spec =
            FlowSpec::new("p").base_dir("/in").output_dir("/out").concurrency(2).step(step);
        spec.budget = Budget { max_tokens: Some(1), max_cost: Some(1.0) };
        let price = Price { input_per_mtok: 1.0, output_per_mtok: 2.0 };
        spec.prices.insert("a".into(), StepModel { model: "m".into(), price: Some(price) });
        let every_field = serde_json::to_value(&spec).unwrap();
        assert_eq!(keys(&every_field), described("PipelineBody"));
        assert_eq!(keys(&every_field["steps"][0]), described("PipelineStepBody"));
        assert_eq!(keys(&every_field["steps"][0]["retry"]), described("RetryBody"));
        assert_eq!(keys(&every_field["budget"]), described("BudgetBody"));
        assert_eq!(keys(&every_field["prices"]["a"]), described("StepModelBody"));
        assert_eq!(keys(&every_field["prices"]["a"]["price"]), described("PriceBody"));
    }

    /// Every pattern of the document that reads a duration's text (a step's `timeout`, a list's
    /// `since` and `until`) names the units the engine reads, all of them and no other: every
    /// word of one to three letters is tried on the engine.
    #[tokio::test]
    async fn every_duration_the_document_describes_has_the_engines_units() {
        use taskflow_engine::pipeline::spec::duration_text;
        fn patterns<'a>(value: &'a Value, at: String, found: &mut Vec<(String, &'a str)>) {
            match value {
                Value::Object(fields) => {
                    for (key, value) in fields {
                        match (key.as_str(), value.as_str()) {
                            ("pattern", Some(pattern)) if pattern.contains("ms|") => {
                                found.push((at.clone(), pattern));
                            }
                            _ => patterns(value, format!("{at}/{key}"), found),
                        }
                    }
                }
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        patterns(item, format!("{at}/{index}"), found);
                    }
                }
                _ => {}
            }
        }
        let Ok(Json(document)) = document().await else { panic!("no document") };
        let mut found = Vec::new();
        patterns(&document, String::new(), &mut found);
        let places: Vec<&str> = found.iter().map(|(at, _)| at.as_str()).collect();
        for (place, described) in
            [("PipelineStepBody/properties/timeout", 1), ("/v1/flows/get/parameters", 2)]
        {
            let count = places.iter().filter(|at| at.contains(place)).count();
            assert_eq!(count, described, "{place} in {places:?}");
        }
        // Every word of one to three letters that the engine reads as a unit.
        let mut words = vec![String::new()];
        let mut engine = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let letters = || ('a'..='z').chain('A'..='Z');
            words = words
                .iter()
                .flat_map(|word| letters().map(move |c| format!("{word}{c}")))
                .collect();
            let read =
                words.iter().filter(|unit| duration_text::parse(&format!("1{unit}")).is_ok());
            engine.extend(read.cloned());
        }
        for (at, pattern) in found {
            let group = pattern.rsplit_once('(').and_then(|(_, group)| group.split_once(')'));
            let units = group.map(|(units, _)| units.split('|').map(str::to_owned).collect());
            assert_eq!(units.as_ref(), Some(&engine), "{at}: {pattern}");
        }
    }

    #[tokio::test]
    async fn every_operation_but_the_health_and_the_document_takes_the_token() {
        let Ok(Json(document)) = document().await else { panic!("no document") };
        assert_eq!(document["security"], json!([{"token": []}]));
        for (path, item) in document["paths"].as_object().unwrap() {
            for operation in item.as_object().unwrap().values() {
                let open = matches!(path.as_str(), "/healthz" | "/openapi.json");
                let expected = if open { json!([{}]) } else { Value::Null };
                assert_eq!(operation["security"], expected, "{path}");
            }
        }
    }
}
