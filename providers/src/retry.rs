//! Retrying transient failures with exponential backoff and full jitter, honouring a server's
//! `Retry-After`.

use std::future::Future;
use std::time::Duration;

use crate::error::ProviderError;

/// How often and how patiently to try a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retries).
    pub max_attempts: u32,
    /// The backoff before the second attempt; it doubles for each attempt after.
    pub initial_backoff: Duration,
    /// No wait is longer than this, `Retry-After` included.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Never try again.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// The wait before attempt `attempt + 1` after `error` ended attempt `attempt` (1-based):
    /// the server's `Retry-After` if it gave one, else a random wait up to the exponential
    /// backoff (full jitter), both capped at `max_backoff`.
    pub fn delay(&self, attempt: u32, error: &ProviderError) -> Duration {
        if let Some(wait) = error.retry_after {
            return wait.min(self.max_backoff);
        }
        let exponent = attempt.saturating_sub(1).min(20);
        let ceiling = self.initial_backoff.saturating_mul(1 << exponent).min(self.max_backoff);
        ceiling.mul_f64(fastrand::f64())
    }

    /// Runs `attempt` until it succeeds, fails permanently, or the attempts run out.
    pub async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T, ProviderError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut number = 1;
        loop {
            match attempt(number).await {
                Err(error) if error.is_transient() && number < self.max_attempts.max(1) => {
                    tokio::time::sleep(self.delay(number, &error)).await;
                    number += 1;
                }
                Err(mut error) if number > 1 => {
                    error.message = format!("{} (after {number} attempts)", error.message);
                    return Err(error);
                }
                result => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn delays_grow_and_stay_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let error = ProviderError::new(ErrorKind::Server, "boom");
        for attempt in 1..=10 {
            let ceiling =
                Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            for _ in 0..50 {
                assert!(policy.delay(attempt, &error) <= ceiling);
            }
        }
        let rate_limited =
            ProviderError { retry_after: Some(Duration::from_secs(7)), ..error.clone() };
        assert_eq!(policy.delay(1, &rate_limited), Duration::from_secs(1));
        let short = ProviderError { retry_after: Some(Duration::from_millis(300)), ..error };
        assert_eq!(policy.delay(1, &short), Duration::from_millis(300));
    }

    #[tokio::test]
    async fn transient_errors_are_retried_and_permanent_ones_are_not() {
        let policy =
            RetryPolicy { initial_backoff: Duration::from_millis(1), ..RetryPolicy::default() };
        let mut calls = 0;
        let result = policy
            .run(|n| {
                calls += 1;
                async move {
                    if n < 3 { Err(ProviderError::new(ErrorKind::Server, "503")) } else { Ok(n) }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(calls, 3);

        let mut calls = 0;
        let result: Result<(), _> = policy
            .run(|_| {
                calls += 1;
                async { Err(ProviderError::new(ErrorKind::Auth, "401")) }
            })
            .await;
        assert_eq!(result.unwrap_err().kind, ErrorKind::Auth);
        assert_eq!(calls, 1);

        let result: Result<(), _> =
            policy.run(|_| async { Err(ProviderError::new(ErrorKind::Timeout, "slow")) }).await;
        let error = result.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Timeout);
        assert!(error.message.ends_with("(after 4 attempts)"), "{}", error.message);
    }
}
