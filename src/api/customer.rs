//! The customer account API on the public listener: sign-up, logout, the caller's own record,
//! API keys, and the JWKS that upstreams use to verify identity tokens. The token grants are in
//! [`super::tokens`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use computegate_kyc::api_keys::NewApiKey;
use serde::Deserialize;
use time::OffsetDateTime;

use super::error::{ApiError, unavailable};
use super::extract::{Client, CustomerCaller, CustomerSession, JsonBody, no_store};
use super::state::ApiState;
use crate::identity::{Identity, SignUp};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupRequest {
    email: String,
    password: String,
    kind: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogoutRequest {
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKeyRequest {
    name: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    /// Omitted: every data-plane scope (`read`, `jobs`).
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

/// The customer account routes.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/computegate/v1/auth/signup", post(signup))
        .route("/computegate/v1/auth/logout", post(logout))
        .route("/computegate/v1/me", get(me))
        .route("/computegate/v1/keys", post(create_key).get(list_keys))
        .route("/computegate/v1/keys/{id}", delete(revoke_key))
        .route("/.well-known/jwks.json", get(jwks))
}

async fn signup(
    State(id): State<Arc<Identity>>,
    Client(client): Client,
    JsonBody(req): JsonBody<SignupRequest>,
) -> Result<Response, ApiError> {
    let sign_up = SignUp {
        email: &req.email,
        password: &req.password,
        kind: &req.kind,
    };
    let customer_id = id
        .sign_up(sign_up, client.ip, OffsetDateTime::now_utc())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"customer_id": customer_id})),
    )
        .into_response())
}

/// Revokes the access token it is called with and, when given, the refresh token's session.
async fn logout(
    State(id): State<Arc<Identity>>,
    session: CustomerSession,
    body: Option<Json<LogoutRequest>>,
) -> Result<Response, ApiError> {
    let refresh = body.and_then(|Json(b)| b.refresh_token);
    let caller = &session.caller;
    id.logout(
        caller.customer_id,
        &session.token,
        refresh.as_deref(),
        caller.client_ip,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn me(State(id): State<Arc<Identity>>, caller: CustomerCaller) -> Result<Response, ApiError> {
    let customer = id
        .store
        .accounts()
        .customer_by_id(caller.customer_id)
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(serde_json::json!({
        "customer_id": customer.id,
        "email": customer.email,
        "kind": customer.kind.as_str(),
        "status": customer.status.as_str(),
        "tier": customer.tier.as_str(),
        "organization_id": customer.organization_id,
        "created_at": customer.created_at.unix_timestamp(),
    }))
    .into_response())
}

/// Creates a key; the answer shows its secret this once, so it is never cached.
async fn create_key(
    State(id): State<Arc<Identity>>,
    session: CustomerSession,
    JsonBody(req): JsonBody<CreateKeyRequest>,
) -> Result<Response, ApiError> {
    let new = NewApiKey {
        name: req.name,
        expires_at: req.expires_at,
        scopes: key_scopes(req.scopes)?,
    };
    let caller = &session.caller;
    let created = id
        .create_api_key(
            caller.customer_id,
            new,
            caller.client_ip,
            OffsetDateTime::now_utc(),
        )
        .await?;
    Ok(no_store((
        StatusCode::CREATED,
        Json(serde_json::json!({"id": created.id, "key": created.key})),
    )))
}

async fn list_keys(
    State(id): State<Arc<Identity>>,
    session: CustomerSession,
) -> Result<Response, ApiError> {
    // Key management is never done with an API key (a `CustomerSession`).
    let caller = &session.caller;
    let now = OffsetDateTime::now_utc();
    let keys = id.api_keys(caller.customer_id).await?;
    let keys: Vec<_> = keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "id": k.id,
                "name": k.name,
                "scopes": k.scopes,
                "state": format!("{:?}", k.state(now)).to_lowercase(),
                "created_at": k.created_at.unix_timestamp(),
                "expires_at": k.expires_at.map(|t| t.unix_timestamp()),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({"keys": keys})).into_response())
}

/// Key ids are not UUIDs (`cg_<16 alphanumerics>`), so the path is taken as text.
async fn revoke_key(
    State(id): State<Arc<Identity>>,
    session: CustomerSession,
    Path(key_id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = &session.caller;
    id.revoke_api_key(
        caller.customer_id,
        key_id,
        caller.client_ip,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn jwks(State(id): State<Arc<Identity>>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(id.keyring().jwks()),
    )
        .into_response()
}

/// The scopes of a new key (the JSON API's and the portal's): every data-plane scope when none
/// are named; otherwise at least one,
/// each a known one (an unknown name would silently grant nothing).
pub(crate) fn key_scopes(requested: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    use computegate_gateway::scope::{SCOPE_NAMES, Scope};
    let Some(names) = requested else {
        return Ok(SCOPE_NAMES.iter().map(|s| s.to_string()).collect());
    };
    if names.is_empty() || names.iter().any(|n| Scope::parse(n).is_none()) {
        return Err(ApiError::Invalid(vec![(
            "scopes".into(),
            format!("name at least one of {}", SCOPE_NAMES.join(", ")),
        )]));
    }
    Ok(names)
}

#[cfg(test)]
mod tests;
