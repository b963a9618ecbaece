//! The OpenAPI 3 document, generated from the handlers and the bodies: the contract clients are
//! written against and the tests fuzz.

use axum::Json;
use axum::response::IntoResponse;
use utoipa::OpenApi;

use crate::bodies::{
    CancelDoc, ChildDoc, CreateFlow, FlowDoc, FlowEnvelope, FlowListDoc, FlowSummaryDoc, ForkBody,
    Health, HistoryDoc, InspectionDoc, LeaseDoc, ReportBody, RevisionDoc, SignalDoc, SignalSentDoc,
    StepDoc, StepReportBody, SyncModeBody,
};
use crate::error::{ErrorBody, ErrorObject};
use crate::routes::{control, events, flows, meta, mirrored, signals};

#[derive(OpenApi)]
#[openapi(
    info(title = "taskflow serve", description = "Durable flows over HTTP: managed flows serve runs, mirrored flows their owner drives and reports, and the changes of both as events."),
    paths(
        meta::healthz, document,
        flows::list, flows::create, flows::inspect, flows::history,
        mirrored::report,
        control::cancel, control::resume, control::fork, control::children,
        signals::send,
        events::events,
    ),
    components(schemas(
        CreateFlow, SyncModeBody, ReportBody, StepReportBody, ForkBody, Health,
        FlowDoc, LeaseDoc, FlowSummaryDoc, StepDoc, ChildDoc, FlowEnvelope, InspectionDoc,
        FlowListDoc, RevisionDoc, HistoryDoc, CancelDoc, SignalDoc, SignalSentDoc, ErrorBody,
        ErrorObject,
    )),
    modifiers(&BearerToken),
)]
pub struct ApiDoc;

/// The OpenAPI 3 document of this API, generated from the code that serves it.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3 document", body = Object)))]
pub async fn document() -> impl IntoResponse {
    Json(ApiDoc::openapi())
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
