//! The token endpoints: one password grant for customers (`/computegate/v1/auth/token`) and
//! staff (`/staff/v1/auth/token`) — the same handler, told which kind of account it serves —
//! and the customer refresh grant. Answers are never cached.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use computegate_gateway::auth::bearer;
use computegate_kyc::login::LoginAttempt;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{AnyStaff, Client, JsonBody, StaffCaller, no_store};
use super::state::ApiState;
use crate::identity::{AccountKind, Identity, TokenResponse};

/// The password grant.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordGrant {
    email: String,
    password: String,
}

/// The refresh grant.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

/// The customer token routes (password and refresh grants).
pub(crate) fn customer_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(customer_token))
        .routes(routes!(refresh))
}

/// The staff token routes (password grant, logout).
pub(crate) fn staff_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(staff_token))
        .routes(routes!(staff_logout))
}

/// Signs a customer in: an access token and a refresh token.
#[utoipa::path(
    post,
    path = "/computegate/v1/auth/token",
    operation_id = "password_grant",
    tag = "account",
    request_body = PasswordGrant,
    responses((status = 200, body = TokenResponse))
)]
async fn customer_token(
    State(id): State<Arc<Identity>>,
    Client(client): Client,
    JsonBody(req): JsonBody<PasswordGrant>,
) -> Result<Response, ApiError> {
    password_grant(&id, AccountKind::Customer, client.ip, req).await
}

/// Signs a staff member in: a staff access token.
#[utoipa::path(
    post,
    path = "/staff/v1/auth/token",
    operation_id = "staff_password_grant",
    tag = "staff",
    request_body = PasswordGrant,
    responses((status = 200, body = TokenResponse))
)]
async fn staff_token(
    State(id): State<Arc<Identity>>,
    Client(client): Client,
    JsonBody(req): JsonBody<PasswordGrant>,
) -> Result<Response, ApiError> {
    password_grant(&id, AccountKind::Staff, client.ip, req).await
}

/// Revokes the staff access token it is called with (staff have no refresh token).
#[utoipa::path(
    post,
    path = "/staff/v1/auth/logout",
    operation_id = "staff_logout",
    tag = "staff",
    responses((status = 204, description = "Signed out")),
    security(("staff" = []))
)]
async fn staff_logout(
    State(id): State<Arc<Identity>>,
    caller: StaffCaller<AnyStaff>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?;
    id.staff_logout(token, caller.client_ip, OffsetDateTime::now_utc())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `{"email","password"}` for accounts of `kind`.
async fn password_grant(
    id: &Identity,
    kind: AccountKind,
    client_ip: std::net::IpAddr,
    req: PasswordGrant,
) -> Result<Response, ApiError> {
    let attempt = LoginAttempt {
        email: &req.email,
        password: &req.password,
        client_ip,
    };
    let tokens = id
        .password_grant(kind, attempt, OffsetDateTime::now_utc())
        .await?;
    Ok(no_store(Json(tokens)))
}

/// Trades a refresh token for new tokens (the old refresh token is spent).
#[utoipa::path(
    post,
    path = "/computegate/v1/auth/refresh",
    operation_id = "refresh_grant",
    tag = "account",
    request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse))
)]
async fn refresh(
    State(id): State<Arc<Identity>>,
    Client(client): Client,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> Result<Response, ApiError> {
    let tokens = id
        .refresh(&req.refresh_token, client.ip, OffsetDateTime::now_utc())
        .await?;
    Ok(no_store(Json(tokens)))
}

#[cfg(test)]
mod tests;
