//! Where the database is: a `postgres://` URL, kept as the driver's settings and shown without
//! its secrets. The shown form (`postgres://USER@HOST:PORT/DB`) is what every message, log and
//! error names; the password, and any query parameter (which may carry one), never leave here.
//! The TLS settings (`sslmode`, `sslrootcert`) are read here too, into the connector every
//! connection uses (`tls.rs`).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use taskflow_store::{Error, StorageErrorKind};

use crate::tls::{Mode, Tls, TlsSettings};

/// A database URL.
#[derive(Clone)]
pub struct Location {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Tls,
    shown: String,
}

impl Location {
    /// Whether `text` names a PostgreSQL database (and not a SQLite file): a `postgres://` or
    /// `postgresql://` URL, its scheme in any case.
    pub fn is_postgres_url(text: &str) -> bool {
        url_scheme(text).is_some_and(|scheme| {
            scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
        })
    }

    /// `text` as messages may show it when it has the form of a URL (`scheme://…`), whatever
    /// its scheme: without the password of its user information, nor its query. `None` when
    /// it is no URL (a file's path).
    pub fn shown_if_url(text: &str) -> Option<String> {
        url_scheme(text).map(|_| shown(text))
    }

    /// Parses a `postgres://` or `postgresql://` URL. The error shows the URL without its
    /// password.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let shown = shown(url);
        if !Self::is_postgres_url(url) {
            let detail = "a PostgreSQL database is named by a postgres:// URL";
            return Err(crate::error::refused(&shown, StorageErrorKind::Unavailable, detail));
        }
        let refused =
            |detail: String| crate::error::refused(&shown, StorageErrorKind::Unavailable, detail);
        // The driver knows the scheme in lower case only.
        let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
        let url = format!("{}://{rest}", scheme.to_ascii_lowercase());
        check_user_information(&url).map_err(refused)?;
        let (driver_url, settings) = tls_settings(&url).map_err(refused)?;
        let mut config = tokio_postgres::Config::from_str(&driver_url)
            .map_err(|error| refused(format!("not a valid URL: {}", crate::error::said(&error))))?;
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            return Err(refused("it names no host (postgres://USER@HOST/DB)".to_owned()));
        }
        config.ssl_mode(settings.mode.driver_mode());
        notice_a_silent_server(&mut config);
        let tls = settings.connector().map_err(refused)?;
        Ok(Location { config, tls, shown })
    }

    /// The URL without its password or query.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// How soon a connection whose server went silent (a network split, a host that died without
/// closing it) fails, where the URL does not say otherwise: a keepalive probe after 10 s of
/// silence, every 5 s, 3 unanswered closing it; data unacknowledged for 30 s closing it too.
/// The driver's own defaults (the operating system's: a first probe after two hours, data
/// retried for a quarter of an hour) would leave a worker waiting on the connection, holding
/// leases it cannot renew and deaf to being stopped, for that long.
fn notice_a_silent_server(config: &mut tokio_postgres::Config) {
    const DRIVER_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
    if config.get_keepalives_idle() == DRIVER_IDLE {
        config.keepalives_idle(Duration::from_secs(10));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(5));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(30));
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `url` without its `sslmode` and `sslrootcert` parameters (which the driver does not know
/// in full), and what they ask. No `sslmode` is a plain connection.
fn tls_settings(url: &str) -> Result<(String, TlsSettings), String> {
    let mut settings = TlsSettings { mode: Mode::Disable, root_cert: None };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), settings));
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        match key {
            "sslmode" => {
                settings.mode = Mode::parse(&value).ok_or_else(|| {
                    format!("the sslmode given is not a mode: use {}", Mode::NAMES)
                })?;
            }
            "sslrootcert" => settings.root_cert = Some(PathBuf::from(value.as_ref())),
            _ => kept.push(pair),
        }
    }
    let driver_url =
        if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((driver_url, settings))
}

/// The scheme of `text` if it has the form of a URL: letters, digits, `+`, `-` or `.` after a
/// letter, then `://`.
fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let starts = chars.next().is_some_and(|first| first.is_ascii_alphabetic());
    let rest = chars.all(|char| char.is_ascii_alphanumeric() || matches!(char, '+' | '-' | '.'));
    (starts && rest).then_some(scheme)
}

/// `url` with the password of its user information and its query left out. What is left out
/// runs from the first `:` of the user information to the last `@`, so a password holding
/// `/`, `?`, `#` or `@` unencoded is hidden whichever way the URL is read (the driver takes
/// the user information to the first `@`; a person may have meant the last).
fn shown(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = match (rest.split_once('@'), rest.rsplit_once('@')) {
        (Some((info, _)), Some((_, after))) => {
            let user = info.split(':').next().unwrap_or_default();
            // A "user" that holds a URL's delimiters is no user: the `@` came later.
            let user = if user.contains(['/', '?', '#', '&', '=']) { "…" } else { user };
            format!("{user}@{}", after.split(['?', '#']).next().unwrap_or_default())
        }
        _ => rest.split(['?', '#']).next().unwrap_or_default().to_owned(),
    };
    if scheme.is_empty() { rest } else { format!("{scheme}://{rest}") }
}

/// Refuses a URL whose user information holds a delimiter of URLs unencoded (`@`, `/`, `?`,
/// `#`): read as the driver reads it, part of the password would become the host or the query
/// (where `sslmode` would be lost).
fn check_user_information(url: &str) -> Result<(), String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(authority_end);
    if authority.matches('@').count() > 1 || after.contains('@') {
        return Err("it has an `@` past its user information: percent-encode `@`, `/`, `?` and \
                    `#` in the user name and password (%40, %2F, %3F, %23)"
            .to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_known_by_its_scheme_in_any_case() {
        for url in ["postgres://u@h/d", "postgresql://u@h/d", "POSTGRES://u@h/d", "PostgreSQL://h"]
        {
            assert!(Location::is_postgres_url(url), "{url}");
        }
        for text in
            ["flows.db", "./postgres://x", "postgress://u@h/d", " postgres://u@h/d", "pg://h"]
        {
            assert!(!Location::is_postgres_url(text), "{text}");
        }
        let upper = Location::parse("POSTGRES://u:pw@127.0.0.1:5432/d").unwrap();
        assert_eq!(upper.shown(), "POSTGRES://u@127.0.0.1:5432/d");
        assert_eq!(
            Location::shown_if_url("postgress://u:s3cret@h/d").as_deref(),
            Some("postgress://u@h/d")
        );
        assert_eq!(Location::shown_if_url("dir/u:s3cret@h/flows.db"), None);
    }

    /// A server gone silent is noticed within about half a minute, unless the URL says otherwise.
    #[test]
    fn a_silent_server_is_noticed_unless_the_url_says_otherwise() {
        let config = Location::parse("postgres://u@h/d").unwrap().config;
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(10));
        assert_eq!(config.get_keepalives_interval(), Some(Duration::from_secs(5)));
        assert_eq!(config.get_keepalives_retries(), Some(3));
        assert_eq!(config.get_tcp_user_timeout(), Some(&Duration::from_secs(30)));
        let said = "postgres://u@h/d?keepalives_idle=60&tcp_user_timeout=5";
        let config = Location::parse(said).unwrap().config;
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(60));
        assert_eq!(config.get_tcp_user_timeout(), Some(&Duration::from_secs(5)));
    }

    #[test]
    fn the_shown_url_has_no_password_and_no_query() {
        fn check(url: &str, expected: &str) {
            assert_eq!(shown(url), expected, "{url}");
        }
        check("postgres://u:s3cret@db:5432/flows", "postgres://u@db:5432/flows");
        check("postgresql://u:p%40ss@db/flows?sslmode=require", "postgresql://u@db/flows");
        check("postgres://u@db/flows?password=s3cret", "postgres://u@db/flows");
        check("postgres://u:a@b@db/flows", "postgres://u@db/flows");
        check("postgres://db", "postgres://db");
        check("postgres://:only@db/x", "postgres://@db/x");
        // Delimiters of URLs in a password, unencoded.
        check("postgres://u:Zq/s3cret@db:5432/x", "postgres://u@db:5432/x");
        check("postgres://u:Zq@s3cret@db/x", "postgres://u@db/x");
        check("postgres://u:Zq#s3cret@db/x", "postgres://u@db/x");
        check("postgres://u:Zq?s3cret@db/x?sslmode=require", "postgres://u@db/x");
        // An `@` in the query: no user information at all.
        check("postgres://db/x?password=s3cret&user=me@corp", "postgres://…@corp");
    }

    #[test]
    fn a_bad_url_is_refused_without_its_password() {
        fn check(url: &str, fragment: &str) {
            let message = Location::parse(url).unwrap_err().to_string();
            assert!(message.contains(fragment), "{url}: {message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
        check("mysql://u:s3cret@db/x", "postgres:// URL");
        check("postgres://u:s3cret@db:notaport/x", "not a valid URL");
        check("postgres://u:s3cret@/x", "names no host");
        for url in [
            "postgres://u:Zq/s3cret@db/x",
            "postgres://u:Zq@s3cret@db/x",
            "postgres://u:Zq?s3cret@db/x",
        ] {
            check(url, "percent-encode `@`, `/`, `?` and `#`");
        }
        check("postgres://u:s3cret@db/x?sslmode=verify-all", "use disable, prefer, require");
        check("postgres://u:s3cret@db/x?sslmode=verify-full", "need sslrootcert=PATH");
        check("postgres://u:s3cret@db/x?sslmode=verify-ca&sslrootcert=/nowhere/ca.pem", "/nowhere");
    }

    #[test]
    fn the_tls_settings_are_taken_out_of_the_url_for_the_driver() {
        fn check(url: &str, driver_url: &str, mode: Mode, root_cert: Option<&str>) {
            let (left, settings) = tls_settings(url).unwrap();
            assert_eq!(left, driver_url, "{url}");
            assert_eq!(settings.mode, mode, "{url}");
            assert_eq!(settings.root_cert.as_deref(), root_cert.map(std::path::Path::new), "{url}");
        }
        check("postgres://u@db/x", "postgres://u@db/x", Mode::Disable, None);
        check("postgres://u@db/x?sslmode=require", "postgres://u@db/x", Mode::Require, None);
        check(
            "postgres://u@db/x?application_name=w&sslmode=verify-full&sslrootcert=%2Fca%20dir%2Fca.pem",
            "postgres://u@db/x?application_name=w",
            Mode::VerifyFull,
            Some("/ca dir/ca.pem"),
        );
        check(
            "postgres://u@db/x?sslmode=prefer&connect_timeout=3",
            "postgres://u@db/x?connect_timeout=3",
            Mode::Prefer,
            None,
        );
    }
}
