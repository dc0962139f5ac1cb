//! The customer account API on the public listener: sign-up, logout, the caller's own record,
//! API keys, and the JWKS that upstreams use to verify identity tokens. The token grants are in
//! [`super::tokens`].

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use computegate_kyc::api_keys::NewApiKey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, unavailable};
use super::extract::{Client, CustomerCaller, CustomerSession, JsonBody, QueryParams, no_store};
use super::page::{PageQuery, PageRequest};
use super::state::ApiState;
use crate::identity::{Identity, SignUp};

/// A new customer account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SignupRequest {
    email: String,
    password: String,
    /// `individual` or `organization`.
    kind: String,
}

/// The new account's id.
#[derive(Serialize, ToSchema)]
struct SignedUp {
    customer_id: Uuid,
}

/// Optional: the refresh token whose session ends too.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct LogoutRequest {
    #[serde(default)]
    refresh_token: Option<String>,
}

/// A new API key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateKeyRequest {
    name: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    /// Omitted: every data-plane scope (`read`, `jobs`).
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

/// The key, shown this once.
#[derive(Serialize, ToSchema)]
struct CreatedKey {
    id: String,
    /// The secret (`cg_<id>_<secret>`); it is never shown again.
    key: String,
}

/// The caller's own record.
#[derive(Serialize, ToSchema)]
struct Me {
    customer_id: Uuid,
    email: String,
    /// `individual` or `organization`.
    kind: &'static str,
    /// `active`, `suspended` or `closed`.
    status: &'static str,
    tier: String,
    organization_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

/// A page of the caller's API keys, newest first.
#[derive(Serialize, ToSchema)]
struct KeyList {
    keys: Vec<KeyItem>,
    /// The next page's cursor; `null` on the last page.
    next: Option<String>,
}

/// One API key, without its secret.
#[derive(Serialize, ToSchema)]
struct KeyItem {
    id: String,
    name: String,
    scopes: Vec<String>,
    /// `active`, `revoked` or `expired`.
    state: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

/// The customer account routes.
pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
        .routes(routes!(jwks))
}

/// Opens a customer account (throttled per client address).
#[utoipa::path(
    post,
    path = "/computegate/v1/auth/signup",
    tag = "account",
    request_body = SignupRequest,
    responses((status = 201, body = SignedUp))
)]
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
    Ok((StatusCode::CREATED, Json(SignedUp { customer_id })).into_response())
}

/// Revokes the access token it is called with and, when given, the refresh token's session.
#[utoipa::path(
    post,
    path = "/computegate/v1/auth/logout",
    tag = "account",
    request_body(content = Option<LogoutRequest>),
    responses((status = 204, description = "Signed out")),
    security(("customer" = []))
)]
async fn logout(
    State(id): State<Arc<Identity>>,
    session: CustomerSession,
    body: Result<Option<Json<LogoutRequest>>, JsonRejection>,
) -> Result<Response, ApiError> {
    let refresh = body?.and_then(|Json(b)| b.refresh_token);
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

/// The caller's own record.
#[utoipa::path(
    get,
    path = "/computegate/v1/me",
    operation_id = "get_me",
    tag = "account",
    responses((status = 200, body = Me)),
    security(("customer" = []))
)]
async fn me(State(id): State<Arc<Identity>>, caller: CustomerCaller) -> Result<Response, ApiError> {
    let customer = id
        .store
        .accounts()
        .customer_by_id(caller.customer_id)
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(Me {
        customer_id: customer.id,
        email: customer.email,
        kind: customer.kind.as_str(),
        status: customer.status.as_str(),
        tier: customer.tier.as_str().to_owned(),
        organization_id: customer.organization_id,
        created_at: customer.created_at,
    })
    .into_response())
}

/// Creates a key (access token only); the answer shows its secret this once, so it is never
/// cached.
#[utoipa::path(
    post,
    path = "/computegate/v1/keys",
    operation_id = "create_api_key",
    tag = "account",
    request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKey)),
    security(("customer" = []))
)]
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
        Json(CreatedKey {
            id: created.id,
            key: created.key,
        }),
    )))
}

/// A page of the caller's keys, newest first (access token only).
#[utoipa::path(
    get,
    path = "/computegate/v1/keys",
    operation_id = "list_api_keys",
    tag = "account",
    params(PageQuery),
    responses((status = 200, body = KeyList)),
    security(("customer" = []))
)]
async fn list_keys(
    State(id): State<Arc<Identity>>,
    session: CustomerSession,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    // Key management is never done with an API key (a `CustomerSession`).
    let caller = &session.caller;
    let now = OffsetDateTime::now_utc();
    let request = PageRequest::<(OffsetDateTime, String)>::parse(q.limit, q.cursor.as_deref())?;
    let after = request.after.as_ref().map(|(at, key)| (*at, key.as_str()));
    let keys = id
        .api_keys(caller.customer_id, after, request.fetch())
        .await?;
    let page = request.page(keys, |k| (k.created_at, k.id.clone()));
    let keys = page.items.iter().map(|k| KeyItem {
        id: k.id.clone(),
        name: k.name.clone(),
        scopes: k.scopes.clone(),
        state: k.state(now).as_str(),
        created_at: k.created_at,
        expires_at: k.expires_at,
    });
    Ok(Json(KeyList {
        keys: keys.collect(),
        next: page.next,
    })
    .into_response())
}

/// Revokes one of the caller's keys (access token only). Key ids are not UUIDs
/// (`cg_<16 alphanumerics>`), so the path is taken as text.
#[utoipa::path(
    delete,
    path = "/computegate/v1/keys/{id}",
    operation_id = "revoke_api_key",
    tag = "account",
    params(("id" = String, Path, description = "The key id")),
    responses((status = 204, description = "Revoked")),
    security(("customer" = []))
)]
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

/// The public keys that verify identity tokens (RFC 7517), for upstreams.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "account",
    responses((status = 200, description = "A JSON Web Key Set", content_type = "application/json"))
)]
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
