//! Where the database is: a `postgres://` URL, kept as the driver's settings and shown without
//! its secrets. The shown form (`postgres://USER@HOST:PORT/DB`) is what every message, log and
//! error names; the password, and any query parameter (which may carry one), never leave here.
//! The TLS settings (`sslmode`, `sslrootcert`) are read here too, into the connector every
//! connection uses (`tls.rs`), and so are the TCP settings that notice a server gone silent
//! (`keepalives…`, `tcp_user_timeout`), as libpq reads them: the driver's reading differs.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use taskflow_store::{Error, StorageErrorKind};

use crate::liveness::Liveness;
use crate::tls::{Mode, Tls, TlsSettings};

/// A database URL.
#[derive(Clone)]
pub struct Location {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) liveness: Liveness,
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
        let TakenOut { driver_url, tls, liveness } = taken_out(&url).map_err(refused)?;
        let mut config = tokio_postgres::Config::from_str(&driver_url)
            .map_err(|error| refused(format!("not a valid URL: {}", crate::error::said(&error))))?;
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            return Err(refused("it names no host (postgres://USER@HOST/DB)".to_owned()));
        }
        config.ssl_mode(tls.mode.driver_mode());
        let tls = tls.connector().map_err(refused)?;
        Ok(Location { config, liveness, tls, shown })
    }

    /// The URL without its password or query.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// How soon a connection whose server went silent (a network split, a host that died without
/// closing it) fails, where the URL does not say otherwise: a keepalive probe after 10 s of
/// silence, every 5 s, 3 unanswered closing it; data unacknowledged for 30 s closing it too.
/// The operating system's defaults (a first probe after two hours, data retried for a quarter
/// of an hour) would leave a worker waiting on the connection, holding leases it cannot renew
/// and deaf to being stopped, for that long.
const NOTICE_A_SILENT_SERVER: Liveness = Liveness {
    keepalives: true,
    idle: Some(Duration::from_secs(10)),
    interval: Some(Duration::from_secs(5)),
    count: Some(3),
    user_timeout: Some(Duration::from_secs(30)),
};

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

/// What [`taken_out`] takes out of a URL.
struct TakenOut {
    /// The URL without them, for the driver.
    driver_url: String,
    tls: TlsSettings,
    liveness: Liveness,
}

/// `url` without the parameters the driver does not know, or reads otherwise than libpq
/// (`sslmode` and `sslrootcert`; `keepalives`, `keepalives_idle`, `keepalives_interval`,
/// `keepalives_count` and `tcp_user_timeout`), and what they ask. No `sslmode` is a plain
/// connection; a TCP setting the URL does not give is [`NOTICE_A_SILENT_SERVER`]'s, and one it
/// gives as 0 the operating system's (as libpq has it).
fn taken_out(url: &str) -> Result<TakenOut, String> {
    let mut tls = TlsSettings { mode: Mode::Disable, root_cert: None };
    let mut liveness = NOTICE_A_SILENT_SERVER;
    let Some((base, query)) = url.split_once('?') else {
        return Ok(TakenOut { driver_url: url.to_owned(), tls, liveness });
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        // The value is not repeated: a password pasted in the wrong place stays unshown.
        let number = |unit: &str| {
            whole(&value).ok_or_else(|| {
                format!(
                    "the URL's {key} is not a whole number of {unit}, 0 or more (0: the \
                     system's default)"
                )
            })
        };
        let switch = || {
            let on =
                whole(&value).ok_or_else(|| format!("the URL's {key} is not 0 (off) or 1 (on)"));
            on.map(|on| on != 0)
        };
        match key {
            "sslmode" => {
                tls.mode = Mode::parse(&value).ok_or_else(|| {
                    format!("the sslmode given is not a mode: use {}", Mode::NAMES)
                })?;
            }
            "sslrootcert" => tls.root_cert = Some(PathBuf::from(value.as_ref())),
            "keepalives" => liveness.keepalives = switch()?,
            "keepalives_idle" => liveness.idle = seconds(number("seconds")?),
            "keepalives_interval" => liveness.interval = seconds(number("seconds")?),
            // `keepalives_retries` is the driver's name for it.
            "keepalives_count" | "keepalives_retries" => {
                liveness.count = Some(number("probes")?).filter(|&count| count > 0);
            }
            "tcp_user_timeout" => {
                let millis = number("milliseconds")?;
                liveness.user_timeout =
                    (millis > 0).then(|| Duration::from_millis(u64::from(millis)));
            }
            _ => kept.push(pair),
        }
    }
    let driver_url =
        if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok(TakenOut { driver_url, tls, liveness })
}

/// An integer parameter's value read as libpq reads one (blanks around it allowed), but none
/// when negative.
fn whole(value: &str) -> Option<u32> {
    value.trim().parse().ok()
}

/// `count` seconds, none (the system's default) for 0.
fn seconds(count: u32) -> Option<Duration> {
    (count > 0).then(|| Duration::from_secs(u64::from(count)))
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

    /// A server gone silent is noticed within about half a minute, unless the URL says
    /// otherwise, in libpq's words: `tcp_user_timeout` in milliseconds, the keepalives' times in
    /// seconds, and 0 for the operating system's default.
    #[test]
    fn the_url_says_how_a_silent_server_is_noticed_as_libpq_reads_it() {
        fn check(query: &str, expected: Liveness) {
            let url = format!("postgres://u:s3cret@h/d{query}");
            assert_eq!(Location::parse(&url).unwrap().liveness, expected, "{query}");
        }
        let secs = |count| Some(Duration::from_secs(count));
        let taskflows = NOTICE_A_SILENT_SERVER;
        assert_eq!(
            taskflows,
            Liveness {
                keepalives: true,
                idle: secs(10),
                interval: secs(5),
                count: Some(3),
                user_timeout: secs(30),
            }
        );
        check("", taskflows);
        check("?application_name=w", taskflows);
        check(
            "?tcp_user_timeout=30000",
            Liveness { user_timeout: Some(Duration::from_millis(30_000)), ..taskflows },
        );
        check(
            "?tcp_user_timeout=250",
            Liveness { user_timeout: Some(Duration::from_millis(250)), ..taskflows },
        );
        check("?tcp_user_timeout=0", Liveness { user_timeout: None, ..taskflows });
        check("?keepalives_idle=7200", Liveness { idle: secs(7200), ..taskflows });
        check("?keepalives_idle=10", Liveness { idle: secs(10), ..taskflows });
        check("?keepalives_idle=0", Liveness { idle: None, ..taskflows });
        check("?keepalives_interval=1", Liveness { interval: secs(1), ..taskflows });
        check("?keepalives_interval=0", Liveness { interval: None, ..taskflows });
        check("?keepalives_count=9", Liveness { count: Some(9), ..taskflows });
        check("?keepalives_count=0", Liveness { count: None, ..taskflows });
        check("?keepalives_retries=4", Liveness { count: Some(4), ..taskflows });
        check("?keepalives=0", Liveness { keepalives: false, ..taskflows });
        check("?keepalives=1", taskflows);
        check("?keepalives_idle=%2060%20", Liveness { idle: secs(60), ..taskflows });
        check(
            "?sslmode=prefer&keepalives_idle=60&tcp_user_timeout=5000&connect_timeout=3",
            Liveness { idle: secs(60), user_timeout: secs(5), ..taskflows },
        );
    }

    #[test]
    fn a_bad_number_in_the_url_is_refused_by_its_name() {
        fn check(query: &str, expected: &str) {
            let url = format!("postgres://u:s3cret@h/d?{query}");
            let error = Location::parse(&url).unwrap_err();
            assert_eq!(error.storage_kind(), Some(StorageErrorKind::Unavailable), "{query}");
            let message = error.to_string();
            assert!(message.ends_with(expected), "{query}: {message}");
            assert!(message.starts_with("cannot open the flow database postgres://u@h/d: "));
            assert!(!message.contains("s3cret"), "{message}");
        }
        let millis = "is not a whole number of milliseconds, 0 or more (0: the system's default)";
        let seconds = "is not a whole number of seconds, 0 or more (0: the system's default)";
        check("tcp_user_timeout=-1", &format!("the URL's tcp_user_timeout {millis}"));
        check("tcp_user_timeout=30s", &format!("the URL's tcp_user_timeout {millis}"));
        check("tcp_user_timeout=", &format!("the URL's tcp_user_timeout {millis}"));
        check("keepalives_idle=-5", &format!("the URL's keepalives_idle {seconds}"));
        check("keepalives_idle=1.5", &format!("the URL's keepalives_idle {seconds}"));
        check("keepalives_interval=x", &format!("the URL's keepalives_interval {seconds}"));
        check(
            "keepalives_count=-3",
            "the URL's keepalives_count is not a whole number of probes, 0 or more (0: the \
             system's default)",
        );
        check("keepalives=yes", "the URL's keepalives is not 0 (off) or 1 (on)");
        check("keepalives=-1", "the URL's keepalives is not 0 (off) or 1 (on)");
        // The value, which may be a misplaced password, is not repeated.
        check(
            "tcp_user_timeout=s3cret",
            "tcp_user_timeout is not a whole number of milliseconds, 0 or more (0: the system's default)",
        );
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
        check("postgres://u:s3cret@db/x?sslmode=verify-all", "use disable, allow, prefer, require");
        check("postgres://u:s3cret@db/x?sslmode=verify-full", "need sslrootcert=PATH");
        check("postgres://u:s3cret@db/x?sslmode=verify-ca&sslrootcert=/nowhere/ca.pem", "/nowhere");
    }

    #[test]
    fn the_tls_and_tcp_settings_are_taken_out_of_the_url_for_the_driver() {
        fn check(url: &str, driver_url: &str, mode: Mode, root_cert: Option<&str>) {
            let taken = taken_out(url).unwrap();
            assert_eq!(taken.driver_url, driver_url, "{url}");
            assert_eq!(taken.tls.mode, mode, "{url}");
            assert_eq!(
                taken.tls.root_cert.as_deref(),
                root_cert.map(std::path::Path::new),
                "{url}"
            );
        }
        check("postgres://u@db/x", "postgres://u@db/x", Mode::Disable, None);
        check("postgres://u@db/x?sslmode=require", "postgres://u@db/x", Mode::Require, None);
        check("postgres://u@db/x?sslmode=allow", "postgres://u@db/x", Mode::Allow, None);
        check(
            "postgres://u@db/x?keepalives=1&keepalives_idle=7&application_name=w&\
             keepalives_interval=2&keepalives_count=4&keepalives_retries=4&tcp_user_timeout=9",
            "postgres://u@db/x?application_name=w",
            Mode::Disable,
            None,
        );
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
