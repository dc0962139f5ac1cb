//! A customer's browser session over the tokens of the password grant: the portal keeps the
//! access and refresh token in its cookie and resumes the session here on every request. The
//! access token is checked exactly as a bearer token is (the data plane's verifier and caches,
//! revocation included); when it has expired, the refresh grant renews the pair, so a session
//! lasts as long as its refresh family and ends with it (logout, reuse, suspension).

use std::net::IpAddr;

use computegate_gateway::auth::Principal;
use time::OffsetDateTime;

use super::{Identity, IdentityError, TokenResponse};

/// A resumed customer session. `Debug` hides the renewed tokens.
pub struct ResumedSession {
    /// Who is signed in, as the data plane sees them now.
    pub principal: Principal,
    /// The renewed tokens, when the access token had expired (the cookie must be rewritten).
    pub renewed: Option<TokenResponse>,
}

// === impl ResumedSession ===

impl std::fmt::Debug for ResumedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumedSession")
            .field("customer_id", &self.principal.customer_id)
            .field("renewed", &self.renewed.is_some())
            .finish()
    }
}

// === impl Identity ===

impl Identity {
    /// Resumes the customer session of `access`/`refresh`. An access token that no longer
    /// decodes (expired, or signed by a key since retired) is renewed with the refresh grant
    /// before it is shown to the verifier, so that an ordinary expiry is not counted as a
    /// failed authentication of the client's address.
    pub async fn resume_customer_session(
        &self,
        access: &str,
        refresh: &str,
        client_ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<ResumedSession, IdentityError> {
        let (access, renewed) = match self.decode(access, &self.auth.audience) {
            Ok(_) => (access.to_owned(), None),
            Err(_) => {
                let tokens = self.refresh(refresh, client_ip, now).await?;
                (tokens.access_token.clone(), Some(tokens))
            }
        };
        let principal = self.authenticate_customer(&access, client_ip).await?;
        Ok(ResumedSession { principal, renewed })
    }
}
