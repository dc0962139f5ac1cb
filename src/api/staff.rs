//! The staff API on the admin listener (`/staff/v1/…`): staff sign-in now; the review queue,
//! decisions and reports mount here as they land.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Json, Router};
use computegate_kyc::accounts::Subject;
use computegate_kyc::login::LoginAttempt;
use computegate_kyc::tokens::AccessClaims;
use serde::Deserialize;
use time::OffsetDateTime;

use super::Client;
use super::error::{ApiError, internal};
use crate::identity::{Identity, TokenResponse};

/// Path prefixes the staff API owns on the admin listener.
pub const PREFIXES: &[&str] = &["/staff/"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordGrant {
    email: String,
    password: String,
}

/// The staff API router, with the review routes of `kyc`.
pub fn router(identity: Arc<Identity>, kyc: Arc<crate::verification::Verification>) -> Router {
    Router::new()
        .route("/staff/v1/auth/token", post(token))
        .fallback(|| async { ApiError::NotFound })
        .with_state(identity)
        .merge(super::review::router(kyc))
}

async fn token(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    body: Result<Json<PasswordGrant>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let now = OffsetDateTime::now_utc();
    let attempt = LoginAttempt {
        email: &req.email,
        password: &req.password,
        client_ip: client.0.ip,
    };
    let staff = match id
        .store
        .login_staff(&id.hasher, &id.throttle, attempt, now)
        .await
    {
        Ok(s) => s,
        Err(e) => return Err(super::customer::login_error(&id, "staff", e)),
    };
    id.count_login("staff", "ok");
    let ttl = id.auth.access_token_ttl;
    let claims = AccessClaims::for_staff(
        &staff,
        &id.auth.issuer,
        &id.auth.staff_audience,
        now,
        crate::identity::span(ttl),
    );
    let access = id.sign(&claims)?;
    let refresh = id
        .store
        .issue_refresh(
            Subject::Staff(staff.id),
            now,
            crate::identity::span(id.auth.refresh_token_ttl),
        )
        .await
        .map_err(internal)?;
    Ok(super::customer::no_store(Json(TokenResponse {
        access_token: access,
        refresh_token: refresh.token,
        token_type: "Bearer",
        expires_in: ttl.as_secs(),
    })))
}
