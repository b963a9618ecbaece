//! Who looks at a dashboard page, and how a page answers. With tokens, a page needs a session
//! logged in with one (otherwise the browser is sent to the login form) and acts for the
//! token's owner; without tokens (serve on loopback), it acts for serve's own owner and gets a
//! session on its first visit, whose CSRF token its forms carry all the same.

use axum::extract::FromRequestParts;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::html::{self, Page, text};
use crate::error::HttpError;
use crate::sessions::{Notice, Session};
use crate::state::AppState;

/// The person a dashboard request is for.
pub struct Viewer {
    pub owner: String,
    pub session: Session,
    /// Serve has tokens, and this session logged in with one.
    pub logged_in: bool,
    /// The cookie of a session made for this request.
    new_cookie: Option<String>,
    state: AppState,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let tokens = !state.tokens().is_empty();
        let found = state.sessions().of_request(&parts.headers);
        let viewer = |owner: String, session: Session, new_cookie| Viewer {
            owner,
            session,
            logged_in: tokens,
            new_cookie,
            state: state.clone(),
        };
        if let Some(session) = found {
            if !tokens {
                return Ok(viewer(state.default_owner().to_owned(), session, None));
            }
            if let Some(owner) = session.owner.clone() {
                return Ok(viewer(owner, session, None));
            }
        }
        if tokens {
            return Err(to_login(parts));
        }
        let session = state.sessions().create(None).map_err(|error| {
            HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", error.to_string())
                .into_response()
        })?;
        let cookie = session.cookie();
        Ok(viewer(state.default_owner().to_owned(), session, Some(cookie)))
    }
}

/// A page that needs a login: the form, then back here.
fn to_login(parts: &Parts) -> Response {
    if parts.method != Method::GET {
        return refusal(StatusCode::UNAUTHORIZED, "Log in first: this session has ended.");
    }
    let here = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    redirect(&format!("/login?next={}", html::query_value(here)))
}

impl Viewer {
    /// The frame of a page of `section`, with the notice left for it.
    pub fn page<'a>(&'a self, title: &'a str, section: &'a str, body_data: String) -> Page<'a> {
        Page {
            title,
            section,
            session: &self.session,
            owner: &self.owner,
            logged_in: self.logged_in,
            notice: self.state.sessions().take_notice(&self.session.id),
            body_data,
        }
    }

    /// `body` as the answer: HTML, never cached, with the new session's cookie if one was made.
    pub fn html(&self, status: StatusCode, body: String) -> Response {
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(cookie) = self.new_cookie.as_deref().and_then(|c| HeaderValue::from_str(c).ok())
        {
            headers.insert(SET_COOKIE, cookie);
        }
        response
    }

    /// Refuses a form that does not carry this session's CSRF token.
    pub fn check_csrf(&self, presented: &str) -> Result<(), Box<Response>> {
        if self.session.csrf_matches(presented) {
            Ok(())
        } else {
            Err(Box::new(refusal(
                StatusCode::FORBIDDEN,
                "This form is out of date or came from another site; reload the page and try again.",
            )))
        }
    }

    /// Back to `to`, with `notice` shown there.
    pub fn done(&self, to: &str, notice: Notice) -> Response {
        self.state.sessions().notify(&self.session.id, notice);
        redirect(to)
    }

    /// Back to `to`, with what went wrong shown there.
    pub fn failed(&self, to: &str, error: HttpError) -> Response {
        self.done(to, Notice { text: error.message, is_error: true })
    }
}

/// A `303 See Other` to `to` (a path of this server).
pub fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// A small page saying why a request was refused.
pub fn refusal(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status}</title>\
         <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"{}\"></head><body><main id=\"main\">\
         <h1>{status}</h1><p class=\"notice error\" role=\"alert\">{}</p><p><a href=\"/\">Flows</a></p>\
         </main></body></html>\n",
        super::assets::CSS_PATH,
        text(message)
    );
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}
