//! The dashboard's sessions. A browser gets a cookie holding only a session id: 32 random bytes
//! from the operating system, in hex. What the id stands for stays in this process's memory:
//! the owner the session acts for (from the token given at login; none before login, or when
//! serve has no tokens and acts as its own owner), the session's CSRF token, which every form
//! that changes something must carry, and a notice for the next page. The raw token never
//! leaves the login request: a stolen cookie gives no token, a session ends at logout or after
//! [`LOGGED_IN_FOR`], and a restart of serve ends them all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;

/// The cookie's name.
pub const COOKIE_NAME: &str = "taskflow_session";

/// How long a logged-in session lasts.
pub const LOGGED_IN_FOR: Duration = Duration::from_secs(12 * 3600);

/// How long a session without an owner lasts (a login form's, or a dashboard's without tokens).
const ANONYMOUS_FOR: Duration = Duration::from_secs(3600);

/// At most this many sessions are kept; past it the ones closest to their end go first.
const MAX_SESSIONS: usize = 10_000;

/// One browser's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// Whom it acts for: the owner of the token given at login.
    pub owner: Option<String>,
    /// What every state-changing form of this session carries.
    pub csrf: String,
    ends: Instant,
    notice: Option<Notice>,
}

/// A message for the next page the session shows (the outcome of an action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

/// The sessions of one serve process.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

/// The operating system gave no randomness; no session can be made safely.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a session id: {0}")]
pub struct NoRandomness(String);

impl Sessions {
    /// A new session acting for `owner` (none: not logged in).
    pub fn create(&self, owner: Option<String>) -> Result<Session, NoRandomness> {
        let lasts = if owner.is_some() { LOGGED_IN_FOR } else { ANONYMOUS_FOR };
        let session = Session {
            id: random_hex()?,
            owner,
            csrf: random_hex()?,
            ends: Instant::now() + lasts,
            notice: None,
        };
        let mut sessions = lock(&self.by_id);
        let now = Instant::now();
        sessions.retain(|_, session| session.ends > now);
        if sessions.len() >= MAX_SESSIONS {
            let mut ends: Vec<(Instant, String)> =
                sessions.iter().map(|(id, session)| (session.ends, id.clone())).collect();
            ends.sort();
            for (_, id) in ends.into_iter().take(sessions.len() + 1 - MAX_SESSIONS) {
                sessions.remove(&id);
            }
        }
        sessions.insert(session.id.clone(), session.clone());
        Ok(session)
    }

    /// The live session the request's cookie names.
    pub fn of_request(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE_NAME)?;
        let mut sessions = lock(&self.by_id);
        match sessions.get(id) {
            Some(session) if session.ends > Instant::now() => Some(session.clone()),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        lock(&self.by_id).remove(id);
    }

    /// Leaves `notice` for the session's next page.
    pub fn notify(&self, id: &str, notice: Notice) {
        if let Some(session) = lock(&self.by_id).get_mut(id) {
            session.notice = Some(notice);
        }
    }

    /// The notice left for this page, once.
    pub fn take_notice(&self, id: &str) -> Option<Notice> {
        lock(&self.by_id).get_mut(id).and_then(|session| session.notice.take())
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        taskflow_http_server::same_secret(self.csrf.as_bytes(), presented.as_bytes())
    }

    /// The `Set-Cookie` value that gives the browser this session: not readable by scripts,
    /// never sent by another site's request.
    pub fn cookie(&self) -> String {
        let seconds = if self.owner.is_some() { LOGGED_IN_FOR } else { ANONYMOUS_FOR }.as_secs();
        format!("{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={seconds}", self.id)
    }
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub fn expired_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

fn random_hex() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| NoRandomness(error.to_string()))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in cookies {
            headers.append(COOKIE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_session_is_found_by_its_cookie_only_while_it_lives() {
        let sessions = Sessions::default();
        let alice = sessions.create(Some("alice".into())).unwrap();
        assert_eq!(alice.id.len(), 64);
        assert_ne!(alice.id, alice.csrf);
        let found = |cookies: &[&str]| sessions.of_request(&headers(cookies)).map(|s| s.owner);
        let cookie = format!("other=1; {COOKIE_NAME}={}", alice.id);
        assert_eq!(found(&[&cookie]), Some(Some("alice".into())));
        assert_eq!(
            found(&["a=b", &format!("{COOKIE_NAME}={}", alice.id)]),
            Some(Some("alice".into()))
        );
        let altered = if alice.id.starts_with('0') { '1' } else { '0' };
        assert_eq!(found(&[&format!("{COOKIE_NAME}={altered}{}", &alice.id[1..])]), None);
        assert_eq!(found(&[&format!("x{COOKIE_NAME}={}", alice.id)]), None);
        assert_eq!(found(&[]), None);
        sessions.remove(&alice.id);
        assert_eq!(found(&[&cookie]), None);
    }

    #[test]
    fn a_cookie_is_http_only_strict_and_holds_only_the_id() {
        let session = Sessions::default().create(Some("alice".into())).unwrap();
        let cookie = session.cookie();
        assert!(cookie.starts_with(&format!("{COOKIE_NAME}={};", session.id)), "{cookie}");
        assert!(cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Strict"), "{cookie}");
        assert!(!cookie.contains("alice") && !cookie.contains(&session.csrf), "{cookie}");
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches("") && !session.csrf_matches(&session.id));
    }

    #[test]
    fn a_notice_is_shown_once() {
        let sessions = Sessions::default();
        let session = sessions.create(None).unwrap();
        let notice = Notice { text: "cancelled".into(), is_error: false };
        sessions.notify(&session.id, notice.clone());
        assert_eq!(sessions.take_notice(&session.id), Some(notice));
        assert_eq!(sessions.take_notice(&session.id), None);
    }
}
