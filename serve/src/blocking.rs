//! Store (and api) calls from async handlers: each runs on a blocking thread, its error an HTTP
//! answer.

use axum::http::StatusCode;

use crate::error::HttpError;

/// Runs a store (or api) call on a blocking thread.
pub async fn blocking<T, E, F>(work: F) -> Result<T, HttpError>
where
    T: Send + 'static,
    E: Into<HttpError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| {
            HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "a store call stopped")
        })?
        .map_err(Into::into)
}
