//! Signing staff in and out of the console. Sign-in is the staff password grant itself
//! ([`Identity::password_grant`]: the login throttle, the login counter and the access log
//! apply); the session cookie then carries the token pair it issued. A session ends with its
//! access token (staff have no refresh grant) or at sign-out, which revokes that token.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use computegate_kyc::login::{LoginAttempt, LoginError};
use serde::Deserialize;
use time::OffsetDateTime;

use super::CONSOLE;
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::api::extract::Client;
use crate::identity::{AccountKind, Identity, IdentityError};
use crate::web::{Browser, Chrome, CsrfForm, FormErrors, TokenPair, WebError, render};

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    chrome: Chrome,
    errors: FormErrors,
    email: String,
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// The sign-in and sign-out routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

async fn login_page(browser: Browser) -> Response {
    render(&LoginPage {
        chrome: browser.chrome("Staff sign-in"),
        errors: FormErrors::new(),
        email: String::new(),
    })
}

async fn login(
    State(identity): State<Arc<Identity>>,
    browser: Browser,
    Client(client): Client,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, WebError> {
    let mut errors = FormErrors::new();
    if form.email.trim().is_empty() {
        errors.add("email", "Enter your staff email address.");
    }
    if form.password.is_empty() {
        errors.add("password", "Enter your password.");
    }
    if errors.is_empty() {
        let attempt = LoginAttempt {
            email: form.email.trim(),
            password: &form.password,
            client_ip: client.ip,
        };
        match identity
            .password_grant(AccountKind::Staff, attempt, OffsetDateTime::now_utc())
            .await
        {
            Ok(tokens) => {
                browser.sign_in(TokenPair {
                    access: tokens.access_token,
                    refresh: tokens.refresh_token,
                })?;
                return Ok(Redirect::to(CONSOLE.root).into_response());
            }
            Err(IdentityError::Login(
                LoginError::InvalidCredentials | LoginError::StaffDisabled,
            )) => errors.add(
                "password",
                "The email or password is not right, or the account is disabled.",
            ),
            Err(other) => return Err(WebError::from(ApiError::from(other))),
        }
    }
    let page = LoginPage {
        chrome: browser.chrome("Staff sign-in"),
        errors,
        email: form.email,
    };
    Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
}

/// Sign-out revokes the session's access token before the cookie is dropped, so a copied
/// cookie (or the bearer token taken from it) stops working on the console and the staff API.
async fn logout(
    State(identity): State<Arc<Identity>>,
    browser: Browser,
    Client(client): Client,
    CsrfForm(_): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    if let Some(tokens) = browser.tokens() {
        identity
            .staff_logout(&tokens.access, client.ip, OffsetDateTime::now_utc())
            .await
            .map_err(ApiError::from)?;
    }
    browser.sign_out()?;
    Ok(Redirect::to(&CONSOLE.path("login")).into_response())
}
