//! The customer API on the public listener: sign-up, password and refresh grants, logout, the
//! caller's own record, API keys, and the JWKS that upstreams use to verify identity tokens.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use computegate_gateway::auth::{
    AuthError, AuthMethod, AuthOutcome, Authenticator, Principal, bearer,
};
use computegate_kyc::accounts::{AccountError, Actor, CustomerKind, CustomerStatus, Subject};
use computegate_kyc::api_keys::{KeyError, NewApiKey};
use computegate_kyc::cluster::Notice;
use computegate_kyc::login::{LoginAttempt, LoginError};
use computegate_kyc::password::check_policy;
use computegate_kyc::refresh::RefreshError;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Client;
use super::error::{ApiError, internal, unavailable};
use crate::identity::Identity;

/// Path prefixes the customer API owns on the public listener.
pub const PREFIXES: &[&str] = &["/computegate/", "/.well-known/"];

type Body<T> = Result<Json<T>, JsonRejection>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupRequest {
    email: String,
    password: String,
    kind: String,
}

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
    #[serde(default)]
    scopes: Vec<String>,
}

/// The customer API router, with the verification (KYC) routes of `kyc`.
pub fn router(identity: Arc<Identity>, kyc: Arc<crate::verification::Verification>) -> Router {
    Router::new()
        .route("/computegate/v1/auth/signup", post(signup))
        .route("/computegate/v1/auth/token", post(token))
        .route("/computegate/v1/auth/refresh", post(refresh))
        .route("/computegate/v1/auth/logout", post(logout))
        .route("/computegate/v1/me", get(me))
        .route("/computegate/v1/keys", post(create_key).get(list_keys))
        .route("/computegate/v1/keys/{id}", delete(revoke_key))
        .route("/.well-known/jwks.json", get(jwks))
        .fallback(|| async { ApiError::NotFound })
        .with_state(identity)
        .merge(super::applications::router(kyc.clone()))
        .merge(super::webhooks::router(kyc))
}

async fn signup(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    body: Body<SignupRequest>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let mut errors = Vec::new();
    let kind = match req.kind.as_str() {
        "individual" => Some(CustomerKind::Individual),
        "organization" => Some(CustomerKind::Organization),
        _ => {
            errors.push((
                "kind".into(),
                "must be `individual` or `organization`".into(),
            ));
            None
        }
    };
    if let Err(e) = check_policy(&req.password) {
        errors.push(("password".into(), e.to_string()));
    }
    if let Err(e) = computegate_kyc::accounts::Email::parse(&req.email) {
        errors.push(("email".into(), e.to_string()));
    }
    let Some(kind) = kind.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let hash = id.hasher.hash_async(req.password).await.map_err(internal)?;
    let now = OffsetDateTime::now_utc();
    let customer = match id.store.create_customer(&req.email, &hash, kind, now).await {
        Ok(c) => c,
        Err(AccountError::EmailTaken) => {
            return Err(ApiError::Conflict("the email is already registered"));
        }
        Err(AccountError::InvalidEmail) => {
            return Err(ApiError::field("email", "is not a valid address"));
        }
        Err(e) => return Err(unavailable(e)),
    };
    record(
        &id,
        computegate_kyc::access_log::AccessAction::Signup,
        Subject::Customer(customer.id),
        client,
        now,
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"customer_id": customer.id})),
    )
        .into_response())
}

async fn token(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    body: Body<PasswordGrant>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let now = OffsetDateTime::now_utc();
    let attempt = LoginAttempt {
        email: &req.email,
        password: &req.password,
        client_ip: client.0.ip,
    };
    let customer = match id
        .store
        .login_customer(&id.hasher, &id.throttle, attempt, now)
        .await
    {
        Ok(c) => c,
        Err(e) => return Err(login_error(&id, "customer", e)),
    };
    id.count_login("customer", "ok");
    let tokens = id.issue_customer_tokens(&customer, now).await?;
    Ok(no_store(Json(tokens)))
}

/// Maps a login failure to its answer and counts it.
pub(crate) fn login_error(id: &Identity, kind: &'static str, e: LoginError) -> ApiError {
    let (result, err) = match e {
        LoginError::InvalidCredentials => (
            "invalid",
            ApiError::Unauthenticated("the email or password is wrong"),
        ),
        LoginError::Throttled { retry_after } => ("throttled", ApiError::Throttled(retry_after)),
        LoginError::AccountSuspended => {
            ("inactive", ApiError::Forbidden("the account is suspended"))
        }
        LoginError::AccountClosed => ("inactive", ApiError::Forbidden("the account is closed")),
        LoginError::StaffDisabled => (
            "inactive",
            ApiError::Forbidden("the staff user is disabled"),
        ),
        LoginError::ThrottleUnavailable(e) => ("error", unavailable(e)),
        other => ("error", unavailable(other)),
    };
    id.count_login(kind, result);
    err
}

async fn refresh(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    body: Body<RefreshRequest>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let now = OffsetDateTime::now_utc();
    let grant = match id.store.rotate_refresh(&req.refresh_token, now).await {
        Ok(g) => g,
        Err(RefreshError::Reused { family_id, subject }) => {
            record(
                &id,
                computegate_kyc::access_log::AccessAction::RefreshReuse,
                subject,
                client,
                now,
            )
            .await;
            id.announce(Notice::RefreshFamilyRevoked { family_id })
                .await;
            return Err(ApiError::Unauthenticated(
                "the refresh token was already used; its session is revoked",
            ));
        }
        Err(RefreshError::Invalid | RefreshError::Expired | RefreshError::Revoked) => {
            return Err(ApiError::Unauthenticated("the refresh token is not valid"));
        }
        Err(e) => return Err(unavailable(e)),
    };
    let Subject::Customer(customer_id) = grant.subject else {
        return Err(ApiError::Unauthenticated(
            "the refresh token is not a customer's",
        ));
    };
    let customer = id
        .store
        .customer_by_id(customer_id)
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::Unauthenticated("the account no longer exists"))?;
    if customer.status != CustomerStatus::Active {
        return Err(ApiError::Forbidden("the account is not active"));
    }
    let ttl = id.auth.access_token_ttl;
    let claims = computegate_kyc::tokens::AccessClaims::for_customer(
        &customer,
        &id.auth.issuer,
        &id.auth.audience,
        now,
        crate::identity::span(ttl),
    );
    let access = id.sign(&claims)?;
    Ok(no_store(Json(crate::identity::TokenResponse {
        access_token: access,
        refresh_token: grant.token,
        token_type: "Bearer",
        expires_in: ttl.as_secs(),
    })))
}

async fn logout(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    body: Option<Json<LogoutRequest>>,
) -> Result<Response, ApiError> {
    let principal = require_session(authenticate(&id, &headers, client).await?)?;
    let token =
        bearer(&headers).map_err(|_| ApiError::Unauthenticated("a bearer token is required"))?;
    let now = OffsetDateTime::now_utc();
    let subject = Subject::Customer(parse_id(&principal)?);
    if let Ok(claims) = id.decode(token, &id.auth.audience) {
        id.store
            .revoke_access_token(&claims.jti, subject, claims.exp, now)
            .await
            .map_err(unavailable)?;
        id.announce(Notice::AccessTokenRevoked {
            jti: claims.jti,
            exp: claims.exp,
        })
        .await;
    }
    if let Some(Json(LogoutRequest {
        refresh_token: Some(rt),
    })) = body
        && let Ok(Some(family)) = id.store.revoke_refresh_family(&rt, now).await
    {
        id.announce(Notice::RefreshFamilyRevoked {
            family_id: family.family_id,
        })
        .await;
    }
    record(
        &id,
        computegate_kyc::access_log::AccessAction::Logout,
        subject,
        client,
        now,
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn me(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = authenticate(&id, &headers, client).await?;
    let customer = id
        .store
        .customer_by_id(parse_id(&principal)?)
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

async fn create_key(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    body: Body<CreateKeyRequest>,
) -> Result<Response, ApiError> {
    let principal = require_session(authenticate(&id, &headers, client).await?)?;
    let Json(req) = body?;
    let customer_id = parse_id(&principal)?;
    let now = OffsetDateTime::now_utc();
    let new = NewApiKey {
        name: req.name,
        expires_at: req.expires_at,
        scopes: req.scopes,
    };
    let actor = Actor::customer(customer_id, Some(client.0.ip));
    let created = id
        .store
        .create_api_key(&id.hasher, customer_id, new, &actor, now)
        .await
        .map_err(key_error)?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({"id": created.id, "key": created.key})),
    )
        .into_response())
}

async fn list_keys(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = authenticate(&id, &headers, client).await?;
    let now = OffsetDateTime::now_utc();
    let keys = id
        .store
        .list_api_keys(parse_id(&principal)?)
        .await
        .map_err(key_error)?;
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

async fn revoke_key(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(key_id): Path<String>,
) -> Result<Response, ApiError> {
    let principal = require_session(authenticate(&id, &headers, client).await?)?;
    let customer_id = parse_id(&principal)?;
    let actor = Actor::customer(customer_id, Some(client.0.ip));
    id.store
        .revoke_api_key(customer_id, &key_id, &actor, OffsetDateTime::now_utc())
        .await
        .map_err(key_error)?;
    id.announce(Notice::KeyRevoked { key_id }).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn jwks(State(id): State<Arc<Identity>>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(id.keyring().jwks()),
    )
        .into_response()
}

/// Authenticates the caller with the same verifier (and caches) as the data plane.
pub(crate) async fn authenticate(
    id: &Identity,
    headers: &HeaderMap,
    client: Client,
) -> Result<Principal, ApiError> {
    let cred = bearer(headers).map_err(auth_error)?;
    let outcome = match id.verifier.authenticate(cred, client.0.ip) {
        AuthOutcome::Ready(r) => r,
        AuthOutcome::Pending(f) => f.await,
    };
    outcome.map_err(auth_error)
}

/// Key management and logout need a signed-in session (an access token), never an API key: a
/// leaked key must not be able to mint keys that outlive its own revocation.
fn require_session(p: Principal) -> Result<Principal, ApiError> {
    if p.method == AuthMethod::Jwt {
        Ok(p)
    } else {
        Err(ApiError::Forbidden(
            "this needs an access token from /computegate/v1/auth/token, not an API key",
        ))
    }
}

fn auth_error(e: AuthError) -> ApiError {
    match e {
        AuthError::Missing => ApiError::Unauthenticated("a bearer credential is required"),
        AuthError::Invalid(why) => ApiError::Unauthenticated(why),
        AuthError::AccountInactive("suspended") => ApiError::Forbidden("the account is suspended"),
        AuthError::AccountInactive(_) => ApiError::Forbidden("the account is not active"),
        _ => ApiError::Unavailable("identity store".into()),
    }
}

fn key_error(e: KeyError) -> ApiError {
    match e {
        KeyError::NotFound => ApiError::NotFound,
        KeyError::InvalidName => ApiError::field("name", "must be 1–100 characters"),
        KeyError::InvalidScope => {
            ApiError::field("scopes", "contains an unknown or malformed scope")
        }
        KeyError::ExpiryInPast => ApiError::field("expires_at", "must be in the future"),
        KeyError::TooManyKeys => {
            ApiError::Conflict("the account has the maximum number of active keys")
        }
        other => unavailable(other),
    }
}

pub(crate) fn parse_id(p: &Principal) -> Result<Uuid, ApiError> {
    Uuid::parse_str(&p.customer_id).map_err(|_| ApiError::Unauthenticated("unknown account"))
}

pub(crate) fn no_store(body: impl IntoResponse) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// Records an access-log row; a failure is logged, not fatal (the action itself succeeded).
async fn record(
    id: &Identity,
    action: computegate_kyc::access_log::AccessAction,
    subject: Subject,
    client: Client,
    now: OffsetDateTime,
) {
    let event = computegate_kyc::access_log::AccessEvent::new(
        now,
        Some(client.0.ip),
        action,
        computegate_kyc::access_log::AccessOutcome::Success,
        subject.to_string(),
    );
    if let Err(e) = id.store.record_access(&event).await {
        tracing::warn!(error = %e, "access log write failed");
    }
}
