//! The signed-in customer of a portal page: the session cookie's tokens resumed by the identity
//! service (`Identity::resume_customer_session`: the data plane's verifier, the refresh grant
//! when the access token has expired), then the account as stored now. A page's handler lists
//! [`SignedIn`] first; without a usable session the browser is sent to the sign-in page and the
//! stale tokens are forgotten.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use computegate_kyc::accounts::Customer;
use time::OffsetDateTime;
use uuid::Uuid;

use super::surface::NAV;
use crate::api::error::ApiError;
use crate::api::extract::{Client, CustomerCaller};
use crate::api::state::ApiState;
use crate::identity::{Identity, IdentityError};
use crate::web::{Browser, Chrome, TokenPair, WebError};

/// A signed-in customer.
pub(crate) struct SignedIn {
    /// The browser session.
    pub(crate) browser: Browser,
    /// The caller as the services take it (principal, id, address).
    pub(crate) caller: CustomerCaller,
    /// The account as stored now.
    pub(crate) account: Customer,
}

// === impl SignedIn ===

impl SignedIn {
    /// The layout of a page titled `title` whose navigation entry is `current`.
    pub(crate) fn chrome(&self, title: impl Into<String>, current: &str) -> Chrome {
        self.browser
            .chrome(title)
            .signed_in(self.account.email.clone(), NAV, current)
    }

    /// The customer's organization, when they belong to one.
    pub(crate) fn organization_id(&self) -> Option<Uuid> {
        (self.caller.principal.organization_id.as_deref()).and_then(|o| Uuid::parse_str(o).ok())
    }
}

impl FromRequestParts<ApiState> for SignedIn {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, WebError> {
        let browser = Browser::from_request_parts(parts, state).await?;
        let Client(client) = Client::from_request_parts(parts, state).await?;
        let tokens = browser.tokens().ok_or(WebError::SignInRequired)?;
        let identity: &Arc<Identity> = &state.identity;
        let now = OffsetDateTime::now_utc();
        let resumed = identity
            .resume_customer_session(&tokens.access, &tokens.refresh, client.ip, now)
            .await
            .map_err(|e| signed_out(&browser, e))?;
        if let Some(t) = resumed.renewed {
            browser.renew(TokenPair {
                access: t.access_token,
                refresh: t.refresh_token,
            });
        }
        let customer_id = Uuid::parse_str(&resumed.principal.customer_id)
            .map_err(|_| WebError::SignInRequired)?;
        let account = (identity.store.accounts().customer_by_id(customer_id).await)
            .map_err(|e| WebError::Unavailable(e.to_string()))?
            .ok_or(WebError::SignInRequired)?;
        Ok(SignedIn {
            browser,
            caller: CustomerCaller {
                principal: resumed.principal,
                customer_id,
                client_ip: client.ip,
            },
            account,
        })
    }
}

/// A session that cannot be resumed: a dependency outage is a 503 (the session may be fine);
/// anything else ends it, and the browser goes to the sign-in page.
fn signed_out(browser: &Browser, e: IdentityError) -> WebError {
    match WebError::from(ApiError::from(e)) {
        WebError::SignInRequired | WebError::Forbidden(_) | WebError::Refused { .. } => {
            match browser.sign_out() {
                Ok(()) => WebError::SignInRequired,
                Err(e) => e,
            }
        }
        other => other,
    }
}
