//! Logging in to the dashboard when serve has tokens: the form takes a token once, and the
//! browser gets a session cookie that stands for the token's owner (see [`crate::sessions`]:
//! the cookie holds a random id, never the token). The login form is itself protected by the
//! CSRF token of a session without an owner, and a login makes a new session (the id a
//! browser had before is never the one it is logged in with). Logging out ends the session.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::html::{self, text};
use super::viewer::{Viewer, redirect, refusal};
use crate::auth::owner_of;
use crate::sessions::{Session, expired_cookie};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct LoginParams {
    /// The page to go back to.
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    token: String,
    #[serde(default)]
    next: String,
}

/// Only a path of this server is somewhere to go back to (not `//other.site`).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') => {
            next
        }
        _ => "/",
    }
}

pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<LoginParams>, QueryRejection>,
) -> Response {
    let next = params.ok().and_then(|Query(params)| params.next);
    let next = safe_next(next.as_deref()).to_owned();
    if state.tokens().is_empty() {
        return redirect(&next);
    }
    match state.sessions().of_request(&headers) {
        Some(Session { owner: Some(_), .. }) => redirect(&next),
        Some(session) => page(&session, &next, None, false),
        None => match state.sessions().create(None) {
            Ok(session) => page(&session, &next, None, true),
            Err(error) => refusal(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
        },
    }
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return refusal(StatusCode::BAD_REQUEST, "The login form needs a token.");
    };
    let Some(session) = state.sessions().of_request(&headers) else {
        return refusal(StatusCode::FORBIDDEN, "This login form has expired; load it again.");
    };
    if !session.csrf_matches(&form.csrf) {
        return refusal(StatusCode::FORBIDDEN, "This login form has expired; load it again.");
    }
    let next = safe_next(Some(&form.next)).to_owned();
    let Some(owner) = owner_of(state.tokens(), form.token.trim()) else {
        return page(&session, &next, Some("That is not a token of this server."), false);
    };
    state.sessions().remove(&session.id);
    match state.sessions().create(Some(owner)) {
        Ok(logged_in) => {
            let mut response = redirect(&next);
            if let Ok(cookie) = HeaderValue::from_str(&logged_in.cookie()) {
                response.headers_mut().insert(SET_COOKIE, cookie);
            }
            response
        }
        Err(error) => refusal(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
    }
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return refusal(StatusCode::BAD_REQUEST, "The form is incomplete.");
    };
    if let Err(refused) = viewer.check_csrf(&form.csrf) {
        return *refused;
    }
    state.sessions().remove(&viewer.session.id);
    let mut response = redirect("/login");
    if let Ok(cookie) = HeaderValue::from_str(&expired_cookie()) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

/// The login form (with why the last try failed), giving the browser `session` when it is new.
fn page(session: &Session, next: &str, problem: Option<&str>, new: bool) -> Response {
    let problem = problem
        .map(|problem| format!("<p class=\"notice error\" role=\"alert\">{}</p>", text(problem)))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Log in · taskflow</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"{css}\"></head><body>\
         <main id=\"main\" class=\"login\"><h1>taskflow</h1>{problem}\
         <form method=\"post\" action=\"/login\">{csrf}\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label for=\"token\">Token</label> \
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required autofocus> \
         <button type=\"submit\">Log in</button></form>\
         <p>A token of <code>[serve.tokens]</code> in serve's config file: you see that \
         token's owner's flows. The browser keeps a session, not the token.</p></main></body></html>\n",
        css = super::assets::CSS_PATH,
        csrf = html::csrf_field(session),
        next = text(next),
    );
    let status = if problem.is_empty() { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if new && let Ok(cookie) = HeaderValue::from_str(&session.cookie()) {
        headers.insert(SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_a_path_of_this_server_is_where_a_login_goes_next() {
        for (next, expected) in [
            (Some("/flows/abc?x=1"), "/flows/abc?x=1"),
            (Some("/"), "/"),
            (Some("//evil.example/"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some(""), "/"),
            (None, "/"),
        ] {
            assert_eq!(safe_next(next), expected, "{next:?}");
        }
    }
}
