//! The token endpoints: one password grant for customers (`/computegate/v1/auth/token`) and
//! staff (`/staff/v1/auth/token`) — the same handler, told which kind of account it serves —
//! and the customer refresh grant. Answers are never cached.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{MethodRouter, post};
use axum::{Json, Router};
use computegate_kyc::login::LoginAttempt;
use serde::Deserialize;
use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::{Client, JsonBody, no_store};
use super::state::ApiState;
use crate::identity::{AccountKind, Identity};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordGrant {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

/// The customer token routes (password and refresh grants).
pub(crate) fn customer_routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/computegate/v1/auth/token",
            password_grant(AccountKind::Customer),
        )
        .route("/computegate/v1/auth/refresh", post(refresh))
}

/// The staff token route (password grant).
pub(crate) fn staff_routes() -> Router<ApiState> {
    Router::new().route("/staff/v1/auth/token", password_grant(AccountKind::Staff))
}

/// `POST {"email","password"}` for accounts of `kind`.
fn password_grant(kind: AccountKind) -> MethodRouter<ApiState> {
    post(
        move |State(id): State<Arc<Identity>>,
              Client(client): Client,
              JsonBody(req): JsonBody<PasswordGrant>| async move {
            let attempt = LoginAttempt {
                email: &req.email,
                password: &req.password,
                client_ip: client.ip,
            };
            let tokens = id
                .password_grant(kind, attempt, OffsetDateTime::now_utc())
                .await?;
            Ok::<Response, ApiError>(no_store(Json(tokens)))
        },
    )
}

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
