//! Where the database is: a `postgres://` URL, kept as the driver's settings and shown without
//! its secrets. The shown form (`postgres://USER@HOST:PORT/DB`) is what every message, log and
//! error names; the password, and any query parameter (which may carry one), never leave here.

use std::str::FromStr;

use taskflow_store::{Error, StorageErrorKind};

/// A database URL.
#[derive(Clone)]
pub struct Location {
    pub(crate) config: tokio_postgres::Config,
    shown: String,
}

impl Location {
    /// Whether `text` names a PostgreSQL database (and not a SQLite file).
    pub fn is_postgres_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// Parses a `postgres://` or `postgresql://` URL. The error shows the URL without its
    /// password.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let shown = shown(url);
        if !Self::is_postgres_url(url) {
            let detail = "a PostgreSQL database is named by a postgres:// URL";
            return Err(crate::error::refused(&shown, StorageErrorKind::Unavailable, detail));
        }
        let config = tokio_postgres::Config::from_str(url).map_err(|error| {
            let detail = format!("not a valid URL: {error}");
            crate::error::refused(&shown, StorageErrorKind::Unavailable, detail)
        })?;
        Ok(Location { config, shown })
    }

    /// The URL without its password or query.
    pub fn shown(&self) -> &str {
        &self.shown
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

/// `url` with the password of its user information and its query left out.
fn shown(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user_info, hosts)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{user}@{hosts}")
        }
        None => authority.to_owned(),
    };
    if scheme.is_empty() {
        format!("{authority}{path}")
    } else {
        format!("{scheme}://{authority}{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
