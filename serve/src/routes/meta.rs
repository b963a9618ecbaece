//! What a client asks of the server itself: whether it is up.

use axum::Json;

use crate::bodies::Health;

/// Whether serve is up, and its version. No token needed.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { ok: true, version: env!("CARGO_PKG_VERSION").to_owned() })
}
