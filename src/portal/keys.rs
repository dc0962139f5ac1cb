//! API keys: the list (never the secrets), creating one with its scopes and an optional expiry
//! (the secret is shown on the answer page, once, and never again), and revoking one (every
//! replica drops it at once). The identity service does the work, as for the JSON API.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use computegate_gateway::scope::SCOPE_NAMES;
use computegate_kyc::api_keys::{KeyState, NewApiKey};
use time::{Date, OffsetDateTime, Time};

use super::display::date;
use super::session::SignedIn;
use super::surface::{Done, DoneQuery};
use crate::api::customer::key_scopes;
use crate::api::error::ApiError;
use crate::api::page::MAX_LIMIT;
use crate::identity::Identity;
use crate::web::{Chrome, CsrfForm, FormErrors, WebError, render};

#[derive(Template)]
#[template(path = "portal/keys.html")]
struct KeysPage {
    chrome: Chrome,
    done: Option<&'static str>,
    errors: FormErrors,
    /// The secret of the key just created (this answer only).
    created: Option<(String, String)>,
    keys: Vec<KeyRow>,
    name: String,
    expires: String,
    scopes: Vec<(&'static str, bool)>,
}

struct KeyRow {
    id: String,
    name: String,
    scopes: String,
    state: &'static str,
    active: bool,
    created: String,
    expires: String,
}

// === handlers ===

/// `GET /keys`.
pub(crate) async fn page(
    State(identity): State<Arc<Identity>>,
    me: SignedIn,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let page = keys_page(&identity, &me, FormErrors::new(), None).await?;
    Ok(render(&KeysPage {
        done: q.done.map(Done::message),
        ..page
    }))
}

/// `POST /keys`: `name`, `scopes` (repeated), `expires` (optional date).
pub(crate) async fn create(
    State(identity): State<Arc<Identity>>,
    me: SignedIn,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let value = |k: &str| (pairs.iter().find(|(n, _)| n == k)).map_or("", |(_, v)| v.trim());
    let (name, expires) = (value("name").to_owned(), value("expires").to_owned());
    let scopes: Vec<String> = (pairs.iter())
        .filter(|(n, _)| n == "scopes")
        .map(|(_, v)| v.clone())
        .collect();
    let mut errors = FormErrors::new();
    let expires_at = match expires.as_str() {
        "" => None,
        text => match Date::parse(
            text,
            time::macros::format_description!("[year]-[month]-[day]"),
        ) {
            // The key works through the whole day it expires on.
            Ok(d) => Some(d.with_time(Time::MAX).assume_utc()),
            Err(_) => {
                errors.add("expires", "Enter a date as YYYY-MM-DD, or leave it empty.");
                None
            }
        },
    };
    // The JSON API's rule: known scopes only, at least one.
    let scopes = key_scopes(Some(scopes)).ok();
    if scopes.is_none() {
        errors.add("scopes", "Choose at least one scope.");
    }
    let Some(scopes) = scopes.filter(|_| errors.is_empty()) else {
        return refused(&identity, &me, errors, name, expires).await;
    };
    let new = NewApiKey {
        name: name.clone(),
        expires_at,
        scopes,
    };
    let caller = &me.caller;
    let created = identity
        .create_api_key(
            caller.customer_id,
            new,
            caller.client_ip,
            OffsetDateTime::now_utc(),
        )
        .await;
    match created.map_err(ApiError::from) {
        Ok(created) => {
            let page = keys_page(
                &identity,
                &me,
                FormErrors::new(),
                Some((created.id, created.key)),
            );
            Ok((StatusCode::CREATED, render(&page.await?)).into_response())
        }
        Err(ApiError::Conflict(why)) => {
            let mut errors = FormErrors::new();
            errors.add("name", format!("Not created: {why}. Revoke a key first."));
            refused(&identity, &me, errors, name, expires).await
        }
        Err(other) => {
            let errors = FormErrors::from_refusal(other)?;
            refused(&identity, &me, errors, name, expires).await
        }
    }
}

/// `POST /keys/revoke`: `key_id`.
pub(crate) async fn revoke(
    State(identity): State<Arc<Identity>>,
    me: SignedIn,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let key_id = (pairs.into_iter().find(|(n, _)| n == "key_id"))
        .map(|(_, v)| v)
        .ok_or(WebError::NotFound)?;
    let caller = &me.caller;
    identity
        .revoke_api_key(
            caller.customer_id,
            key_id,
            caller.client_ip,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(ApiError::from)?;
    Ok(Done::Revoked.redirect("keys"))
}

// === helpers ===

/// The keys page again with the form as typed and its errors.
async fn refused(
    identity: &Identity,
    me: &SignedIn,
    errors: FormErrors,
    name: String,
    expires: String,
) -> Result<Response, WebError> {
    let page = keys_page(identity, me, errors, None).await?;
    let page = KeysPage {
        name,
        expires,
        ..page
    };
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
}

async fn keys_page(
    identity: &Identity,
    me: &SignedIn,
    errors: FormErrors,
    created: Option<(String, String)>,
) -> Result<KeysPage, WebError> {
    let now = OffsetDateTime::now_utc();
    let keys = identity
        .api_keys(me.caller.customer_id, None, MAX_LIMIT)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|k| {
            let state = k.state(now);
            KeyRow {
                state: match state {
                    KeyState::Active => "active",
                    KeyState::Revoked => "revoked",
                    KeyState::Expired => "expired",
                },
                active: state == KeyState::Active,
                scopes: k.scopes.join(", "),
                created: date(k.created_at),
                expires: k.expires_at.map_or_else(|| "never".into(), date),
                id: k.id,
                name: k.name,
            }
        })
        .collect();
    Ok(KeysPage {
        chrome: me.chrome("API keys", "keys"),
        done: None,
        errors,
        created,
        keys,
        name: String::new(),
        expires: String::new(),
        scopes: SCOPE_NAMES.iter().map(|s| (*s, true)).collect(),
    })
}
