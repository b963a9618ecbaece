//! The OpenAPI 3 document, generated from the handlers and the bodies: the contract clients are
//! written against and the tests fuzz.

use axum::Json;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::bodies::{
    CancelDoc, ChildDoc, CreateFlow, EventDoc, FlowDoc, FlowEnvelope, FlowListDoc, FlowSummaryDoc,
    ForkBody, Health, HistoryDoc, InspectionDoc, LeaseDoc, ReportBody, RevisionDoc, StepDoc,
    StepReportBody, SyncModeBody,
};
use crate::error::{ErrorBody, ErrorObject, HttpError};
use crate::routes::{control, events, flows, meta, mirrored};

#[derive(OpenApi)]
#[openapi(
    info(title = "taskflow serve", description = "Durable flows over HTTP: managed flows serve runs, mirrored flows their owner drives and reports, and the changes of both as events."),
    paths(
        meta::healthz, document,
        flows::list, flows::create, flows::inspect, flows::history,
        mirrored::report,
        control::cancel, control::resume, control::fork, control::children,
        events::events,
    ),
    components(schemas(
        CreateFlow, SyncModeBody, ReportBody, StepReportBody, ForkBody, Health,
        FlowDoc, LeaseDoc, FlowSummaryDoc, StepDoc, ChildDoc, FlowEnvelope, InspectionDoc,
        FlowListDoc, RevisionDoc, HistoryDoc, CancelDoc, EventDoc, ErrorBody, ErrorObject,
    )),
    modifiers(&BearerToken),
)]
pub struct ApiDoc;

/// The OpenAPI 3 document of this API, generated from the code that serves it.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3 document", body = Object)))]
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

/// Every route but `/healthz` and `/openapi.json` takes `Authorization: Bearer TOKEN` when the
/// server has tokens.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
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
}
