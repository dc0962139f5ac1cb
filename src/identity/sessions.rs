//! Sessions of customers and staff: sign-up, the one password grant for both kinds of account,
//! the customer refresh grant, logout, and the check of a customer's bearer credential. Every
//! token answer is built by one function, and every login is counted once, here.

use std::net::IpAddr;

use computegate_gateway::auth::{AuthError, AuthOutcome, Authenticator, Principal};
use computegate_kyc::access_log::{AccessAction, AccessEvent, AccessOutcome};
use computegate_kyc::accounts::{CustomerKind, CustomerStatus, Email, Subject};
use computegate_kyc::cluster::Notice;
use computegate_kyc::login::{LoginAttempt, LoginError};
use computegate_kyc::password::{PasswordError, check_policy};
use computegate_kyc::refresh::RefreshError;
use computegate_kyc::tokens::AccessClaims;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AccountKind, Identity, IdentityError, SignUp, TokenResponse, span};

// === impl Identity ===

impl Identity {
    /// Creates a customer account (every bad field reported at once) and logs the sign-up;
    /// refuses a client address past `auth.signup_max_per_ip` in the window.
    pub async fn sign_up(
        &self,
        req: SignUp<'_>,
        client_ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<Uuid, IdentityError> {
        // Every attempt counts, before any hashing: sign-ups are argon2 work an anonymous client
        // can ask for (through the JSON API and the portal alike).
        if let Err(after) = self.signups.admit(&client_ip, std::time::Instant::now()) {
            return Err(IdentityError::SignUpThrottled(
                after + std::time::Duration::from_secs(1),
            ));
        }
        let mut errors = Vec::new();
        let kind = match req.kind {
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
        if let Err(e) = check_policy(req.password) {
            errors.push(("password".into(), e.to_string()));
        }
        if let Err(e) = Email::parse(req.email) {
            errors.push(("email".into(), e.to_string()));
        }
        let Some(kind) = kind.filter(|_| errors.is_empty()) else {
            return Err(IdentityError::InvalidSignUp(errors));
        };
        let hash = self
            .hasher
            .hash_async(req.password.to_owned())
            .await
            .map_err(|e| match e {
                // The argon2 bound is full: a 503 + Retry-After, not an internal error.
                PasswordError::Busy => IdentityError::Unavailable(e.to_string()),
                other => IdentityError::Internal(other.to_string()),
            })?;
        let customer = self
            .store
            .accounts()
            .create_customer(req.email, &hash, kind, now)
            .await?;
        let subject = Subject::Customer(customer.id);
        self.record_access(AccessAction::Signup, subject, client_ip, now)
            .await;
        Ok(customer.id)
    }

    /// The password grant of customers and staff alike: checks the password under the login
    /// throttle, counts the attempt, and issues an access token for the kind's audience with a
    /// refresh token.
    pub async fn password_grant(
        &self,
        kind: AccountKind,
        attempt: LoginAttempt<'_>,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, IdentityError> {
        let ttl = span(self.auth.access_token_ttl);
        let (issuer, store) = (&self.auth.issuer, &self.store);
        let login = match kind {
            AccountKind::Customer => store
                .accounts()
                .login_customer(&self.hasher, &self.throttle, attempt, now)
                .await
                .map(|c| {
                    let aud = &self.auth.audience;
                    let claims = AccessClaims::for_customer(&c, issuer, aud, now, ttl);
                    (claims, Subject::Customer(c.id))
                }),
            AccountKind::Staff => store
                .accounts()
                .login_staff(&self.hasher, &self.throttle, attempt, now)
                .await
                .map(|s| {
                    let aud = &self.auth.staff_audience;
                    let claims = AccessClaims::for_staff(&s, issuer, aud, now, ttl);
                    (claims, Subject::Staff(s.id))
                }),
        };
        let (claims, subject) = match login {
            Ok(done) => done,
            Err(e) => {
                self.count_login(kind, login_result(&e));
                if matches!(
                    e,
                    LoginError::Throttled { .. } | LoginError::Password(PasswordError::Busy)
                ) {
                    // As on the data plane: a throttled client's refusals are sent late, so each
                    // of its connections makes at most one attempt per `failed_auth_delay`; so
                    // is "argon2 is busy" (503), which a flood would otherwise turn into a
                    // spin of instant answers while its first guesses are being hashed.
                    tokio::time::sleep(self.auth.failed_auth_delay).await;
                }
                return Err(IdentityError::Login(e));
            }
        };
        self.count_login(kind, "ok");
        let refresh = self
            .store
            .credentials()
            .issue_refresh(subject, now, span(self.auth.refresh_token_ttl))
            .await
            .map_err(|e| IdentityError::Internal(e.to_string()))?;
        self.token_response(&claims, refresh.token)
    }

    /// The customer refresh grant: rotates the refresh token and issues a fresh access token
    /// from the account as it stands now. A reused token revokes its whole session, which is
    /// logged and announced to every replica.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client_ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, IdentityError> {
        let grant = match self
            .store
            .credentials()
            .rotate_refresh(refresh_token, now)
            .await
        {
            Ok(g) => g,
            Err(RefreshError::Reused { family_id, subject }) => {
                self.record_access(AccessAction::RefreshReuse, subject, client_ip, now)
                    .await;
                self.announce(Notice::RefreshFamilyRevoked { family_id })
                    .await;
                return Err(IdentityError::RefreshReused);
            }
            Err(RefreshError::Invalid | RefreshError::Expired | RefreshError::Revoked) => {
                return Err(IdentityError::RefreshInvalid);
            }
            Err(e) => return Err(IdentityError::Unavailable(e.to_string())),
        };
        let Subject::Customer(customer_id) = grant.subject else {
            return Err(IdentityError::NotACustomerSession);
        };
        let customer = self
            .store
            .accounts()
            .customer_by_id(customer_id)
            .await
            .map_err(|e| IdentityError::Unavailable(e.to_string()))?
            .ok_or(IdentityError::AccountGone)?;
        if customer.status != CustomerStatus::Active {
            return Err(IdentityError::AccountInactive);
        }
        let claims = AccessClaims::for_customer(
            &customer,
            &self.auth.issuer,
            &self.auth.audience,
            now,
            span(self.auth.access_token_ttl),
        );
        self.token_response(&claims, grant.token)
    }

    /// Ends a customer session: revokes the access token `token` (when it decodes) and the
    /// refresh token's family (when given and known), announces both, and logs the logout.
    pub async fn logout(
        &self,
        customer_id: Uuid,
        token: &str,
        refresh_token: Option<&str>,
        client_ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<(), IdentityError> {
        let subject = Subject::Customer(customer_id);
        if let Ok(claims) = self.decode(token, &self.auth.audience) {
            self.store
                .credentials()
                .revoke_access_token(&claims.jti, subject, claims.exp, now)
                .await
                .map_err(|e| IdentityError::Unavailable(e.to_string()))?;
            self.announce(Notice::AccessTokenRevoked {
                jti: claims.jti,
                exp: claims.exp,
            })
            .await;
        }
        if let Some(rt) = refresh_token
            && let Ok(Some(family)) = self
                .store
                .credentials()
                .revoke_refresh_family(rt, now)
                .await
        {
            self.announce(Notice::RefreshFamilyRevoked {
                family_id: family.family_id,
            })
            .await;
        }
        self.record_access(AccessAction::Logout, subject, client_ip, now)
            .await;
        Ok(())
    }

    /// Checks a customer's bearer credential (access token or API key) with the same verifier
    /// and caches as the data plane.
    pub async fn authenticate_customer(
        &self,
        bearer: &str,
        client_ip: IpAddr,
    ) -> Result<Principal, AuthError> {
        match self.verifier.authenticate(bearer, client_ip) {
            AuthOutcome::Ready(r) => r,
            AuthOutcome::Pending(f) => f.await,
        }
    }

    /// Signs `claims` and puts them in the token answer with `refresh_token`.
    fn token_response(
        &self,
        claims: &AccessClaims,
        refresh_token: String,
    ) -> Result<TokenResponse, IdentityError> {
        Ok(TokenResponse {
            access_token: self.sign(claims)?,
            refresh_token,
            token_type: "Bearer",
            expires_in: self.auth.access_token_ttl.as_secs(),
        })
    }

    /// Records an access-log row; a failure is logged, not fatal (the action itself succeeded).
    pub(super) async fn record_access(
        &self,
        action: AccessAction,
        subject: Subject,
        client_ip: IpAddr,
        now: OffsetDateTime,
    ) {
        let event = AccessEvent::new(
            now,
            Some(client_ip),
            action,
            AccessOutcome::Success,
            subject.to_string(),
        );
        if let Err(e) = self.store.access().record_access(&event).await {
            tracing::warn!(error = %e, "access log write failed");
        }
    }
}

/// The `result` label of a failed login.
fn login_result(e: &LoginError) -> &'static str {
    match e {
        LoginError::InvalidCredentials => "invalid",
        LoginError::Throttled { .. } => "throttled",
        LoginError::AccountSuspended | LoginError::AccountClosed | LoginError::StaffDisabled => {
            "inactive"
        }
        _ => "error",
    }
}
