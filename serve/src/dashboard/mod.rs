//! The dashboard at `/`: HTML written on the server from the same store calls and actions as
//! the JSON API, one small script that keeps pages live over the change feed, one stylesheet.
//! One file per page: [`flows`] (the list, bulk actions), [`flow`] (one flow), [`schedules`];
//! [`forms`] are the buttons, [`login`] the sessions' start and end, [`viewer`] who looks,
//! [`html`] escaping and the shared pieces, [`assets`] the embedded files.
//!
//! Every answer carries a Content Security Policy that runs only this server's script (no
//! inline script, no inline style, nothing from elsewhere), may not be framed, and is not
//! sniffed for another type.

mod assets;
mod flow;
mod flows;
mod forms;
mod html;
mod login;
mod schedules;
mod viewer;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};

use crate::state::AppState;

/// The policy of every page: this server's script and stylesheet, its own requests (the event
/// stream, the live parts), forms posted to itself, never in a frame.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// The dashboard's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(flows::page))
        .route("/flows/bulk", post(flows::bulk))
        .route("/flows/{id}", get(flow::page))
        .route("/flows/{id}/steps/{seq}/{part}", get(flow::value))
        .route("/flows/{id}/cancel", post(forms::cancel))
        .route("/flows/{id}/resume", post(forms::resume))
        .route("/flows/{id}/fork", post(forms::fork))
        .route("/flows/{id}/signal", post(forms::signal))
        .route("/flows/{id}/approve", post(forms::decide))
        .route("/schedules", get(schedules::list))
        .route("/schedules/{name}", get(schedules::one))
        .route("/schedules/{name}/{action}", post(forms::schedule))
        .route("/login", get(login::form).post(login::login))
        .route("/logout", post(login::logout))
        .route(assets::CSS_PATH, get(assets::css))
        .route(assets::JS_PATH, get(assets::js))
        .layer(middleware::map_response(protect))
}

/// The headers every dashboard answer carries (an answer with a stricter policy keeps it).
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}
