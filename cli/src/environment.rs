//! The variables that set a wait in milliseconds. The libraries that read them take a value
//! they cannot read for their default; the CLI reads them first and refuses such a value as a
//! usage error naming the variable, so that a typo (`abc`, `-5`) is not silently a wait of
//! another length.

use std::time::Duration;

use taskflow_api::database::BUSY_TIMEOUT_ENV;
use taskflow_providers::{CONNECT_TIMEOUT_ENV, resolve_connect_timeout};

use crate::error::{CliError, CliResult};

/// Every variable taskflow reads as a number of milliseconds.
const MILLISECOND_VARIABLES: [&str; 2] = [BUSY_TIMEOUT_ENV, CONNECT_TIMEOUT_ENV];

/// Refuses a value of any of them that is not a number of milliseconds.
pub fn check() -> CliResult {
    for variable in MILLISECOND_VARIABLES {
        milliseconds(variable)?;
    }
    Ok(())
}

/// The wait `variable` sets: none when it is unset or blank.
pub fn milliseconds(variable: &str) -> CliResult<Option<Duration>> {
    let Some(value) = std::env::var_os(variable) else { return Ok(None) };
    let value = value.to_string_lossy();
    parse_milliseconds(variable, &value)
}

/// The connect timeout to a server: `flag_ms` when given, else [`CONNECT_TIMEOUT_ENV`]'s, else
/// the default, kept within the providers' range.
pub fn connect_timeout(flag_ms: Option<u64>) -> CliResult<Duration> {
    let from_env = milliseconds(CONNECT_TIMEOUT_ENV)?;
    let ms = flag_ms.or(from_env.map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)));
    Ok(resolve_connect_timeout(ms, None).0)
}

fn parse_milliseconds(variable: &str, value: &str) -> CliResult<Option<Duration>> {
    let text = value.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse() {
        Ok(ms) => Ok(Some(Duration::from_millis(ms))),
        Err(_) => Err(CliError::usage(format!(
            "{variable}={text:?} is not a number of milliseconds"
        ))
        .with_hint(format!(
            "set {variable} to a whole number of milliseconds (such as 5000), or unset it for \
             the default"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_a_whole_number_of_milliseconds_and_blank_is_the_default() {
        let parsed = |value| parse_milliseconds(BUSY_TIMEOUT_ENV, value).ok();
        assert_eq!(parsed("250"), Some(Some(Duration::from_millis(250))));
        assert_eq!(parsed(" 0 "), Some(Some(Duration::ZERO)));
        assert_eq!(parsed(""), Some(None));
        assert_eq!(parsed("  "), Some(None));
        for bad in ["abc", "-5", "1.5", "5s", "99999999999999999999"] {
            let refused = parse_milliseconds(BUSY_TIMEOUT_ENV, bad).unwrap_err();
            assert_eq!(refused.exit_code(), crate::error::EXIT_USAGE, "{bad}");
            assert_eq!(
                refused.to_string(),
                format!("TASKFLOW_BUSY_TIMEOUT_MS={bad:?} is not a number of milliseconds")
            );
        }
    }
}
