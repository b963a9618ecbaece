//! The query parameters each route of the API takes are the ones the OpenAPI document gives its
//! operation, and any other is refused (400, naming it) before the handler runs rather than
//! ignored: whoever sent it expected it to count (`POST …/report?expected_revision=3` would
//! otherwise apply the report at whatever revision the flow is). The document is the one list,
//! so what a route reads and what it says it reads cannot part; handlers read only their own.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use taskflow_store::excerpt::excerpt;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};

use crate::error::HttpError;

/// The names of each operation's query parameters, by path as the router writes it
/// (`/v1/flows/{id}`) and method.
#[derive(Clone, Debug)]
pub struct QueryParams(Arc<HashMap<String, HashMap<Method, Vec<String>>>>);

impl QueryParams {
    /// The query parameters `document` gives each of its operations.
    pub fn of(document: &OpenApi) -> Self {
        let mut paths = HashMap::new();
        for (path, item) in &document.paths.paths {
            let mut operations = HashMap::new();
            let methods = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ];
            for (method, operation) in methods {
                let Some(Operation { parameters, .. }) = operation else { continue };
                let names = (item.parameters.iter().flatten())
                    .chain(parameters.iter().flatten())
                    .filter(|parameter| parameter.parameter_in == ParameterIn::Query)
                    .map(|parameter| parameter.name.clone())
                    .collect();
                operations.insert(method, names);
            }
            paths.insert(path.clone(), operations);
        }
        QueryParams(Arc::new(paths))
    }

    /// Refuses the first parameter of `query` that the operation `method` `path` does not take
    /// (a HEAD is its GET's). A path the document lacks takes none; a method it does not give
    /// the path is one the route does not serve, left to the router's 405.
    fn check(&self, method: &Method, path: &str, query: &[(String, String)]) -> Result<(), String> {
        let method = if method == Method::HEAD { &Method::GET } else { method };
        let taken = match self.0.get(path).map(|operations| operations.get(method)) {
            Some(Some(names)) => names.as_slice(),
            Some(None) => return Ok(()),
            None => &[],
        };
        let Some((unknown, _)) = query.iter().find(|(name, _)| !taken.contains(name)) else {
            return Ok(());
        };
        let takes = match taken {
            [] => "none".to_owned(),
            names => names.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "),
        };
        Err(format!(
            "unknown query parameter `{}`: {method} {path} takes {takes}",
            excerpt(unknown)
        ))
    }
}

/// The middleware of every route of the API: a query parameter the route's operation does not
/// take is a 400 naming it.
pub async fn refuse_unknown(
    State(params): State<QueryParams>,
    request: Request,
    next: Next,
) -> Response {
    let path = (request.extensions().get::<MatchedPath>())
        .map_or_else(|| request.uri().path(), MatchedPath::as_str);
    let checked = Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .map_err(|rejection| rejection.body_text())
        .and_then(|Query(query)| params.check(request.method(), path, &query));
    match checked {
        Ok(()) => next.run(request).await,
        Err(message) => HttpError::bad_request(message).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::*;
    use crate::openapi::ApiDoc;

    #[test]
    fn a_route_takes_the_query_parameters_its_operation_documents_and_no_other() {
        let params = QueryParams::of(&ApiDoc::openapi());
        let check = |method: Method, path: &str, query: &[&str], refused: Option<&str>| {
            let query: Vec<(String, String)> =
                query.iter().map(|name| ((*name).to_owned(), "1".to_owned())).collect();
            let found = params.check(&method, path, &query);
            match (found, refused) {
                (Ok(()), None) => {}
                (Err(message), Some(expected)) => assert_eq!(message, expected),
                (found, _) => panic!("{method} {path} {query:?}: {found:?}"),
            }
        };
        check(Method::GET, "/v1/flows", &["status", "limit", "cursor"], None);
        check(Method::HEAD, "/v1/flows", &["since"], None);
        check(Method::GET, "/v1/flows/{id}/graph", &["format"], None);
        check(Method::GET, "/v1/events", &["flow", "after"], None);
        check(Method::GET, "/v1/schedules/{name}", &["slots"], None);
        check(
            Method::POST,
            "/v1/flows/{id}/report",
            &["expected_revision"],
            Some(
                "unknown query parameter `expected_revision`: POST /v1/flows/{id}/report takes none",
            ),
        );
        check(
            Method::POST,
            "/v1/flows",
            &["x"],
            Some("unknown query parameter `x`: POST /v1/flows takes none"),
        );
        check(
            Method::GET,
            "/v1/flows/{id}/graph",
            &["format", "colour"],
            Some("unknown query parameter `colour`: GET /v1/flows/{id}/graph takes `format`"),
        );
        check(
            Method::GET,
            "/v1/events",
            &["Last-Event-ID"],
            Some("unknown query parameter `Last-Event-ID`: GET /v1/events takes `flow`, `after`"),
        );
        check(Method::GET, "/healthz", &[], None);
        check(Method::PUT, "/v1/flows", &["a"], None);
        check(
            Method::GET,
            "/nowhere",
            &["a"],
            Some("unknown query parameter `a`: GET /nowhere takes none"),
        );
    }
}
