//! Password login for customers and staff, with every rule of the issue applied in one place:
//! throttling per account and address before any password work, the same argon2 work for an
//! unknown account as for a known one, one answer ([`LoginError::InvalidCredentials`]) for
//! "no such account" and "wrong password", rehashing when the configured cost changed, and an
//! access-log row for every attempt, successful or not.
//!
//! Suspended, closed or disabled accounts are reported as such only after the password was
//! verified, so the account state is never revealed to someone without the password.

use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;

use crate::access_log::{AccessAction, AccessEvent, AccessOutcome};
use crate::accounts::{
    AccountError, Actor, Customer, CustomerStatus, StaffUser, Subject, normalize_email,
};
use crate::cluster::{LoginThrottle, ThrottleError};
use crate::password::{Hasher, MAX_PASSWORD_CHARS, PasswordError, Verified};
use crate::store::{AccountsStore, StoreError};

/// Longest email kept in the access-log subject of a failed unknown-account login.
const MAX_LOGGED_EMAIL: usize = 254;

/// One login attempt.
#[derive(Clone, Copy)]
pub struct LoginAttempt<'a> {
    /// Email as typed (normalized here).
    pub email: &'a str,
    /// Password as typed.
    pub password: &'a str,
    /// Client address.
    pub client_ip: IpAddr,
}

/// Why a login did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// Unknown account or wrong password (deliberately indistinguishable).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Too many recent failures for this account or address.
    #[error("too many failed attempts")]
    Throttled {
        /// When to try again (for `Retry-After`).
        retry_after: Duration,
    },
    /// Correct password, but the customer is suspended.
    #[error("account suspended")]
    AccountSuspended,
    /// Correct password, but the customer account is closed.
    #[error("account closed")]
    AccountClosed,
    /// Correct password, but the staff user is disabled.
    #[error("staff user disabled")]
    StaffDisabled,
    /// The throttle's counters are unreachable (Redis down).
    #[error("login throttle unavailable")]
    ThrottleUnavailable(#[source] crate::cluster::ClusterError),
    /// Hashing failed or a stored hash is malformed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// Reading the account or storing a rehashed password failed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl std::fmt::Debug for LoginAttempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginAttempt")
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .field("client_ip", &self.client_ip)
            .finish()
    }
}

impl From<ThrottleError> for LoginError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Throttled { retry_after } => LoginError::Throttled { retry_after },
            ThrottleError::Unavailable(e) => LoginError::ThrottleUnavailable(e),
        }
    }
}

// === impl AccountsStore ===

impl AccountsStore<'_> {
    /// Authenticates a customer. See the module docs for the rules applied.
    pub async fn login_customer(
        &self,
        hasher: &Hasher,
        throttle: &LoginThrottle,
        attempt: LoginAttempt<'_>,
        now: OffsetDateTime,
    ) -> Result<Customer, LoginError> {
        let found = self.customer_credentials(attempt.email).await?;
        let found = found.map(|(c, hash)| (Subject::Customer(c.id), hash, c));
        let (customer, verified) = self
            .check_password(hasher, throttle, attempt, now, found)
            .await?;
        let subject = Subject::Customer(customer.id);
        let refused = match customer.status {
            CustomerStatus::Active => None,
            CustomerStatus::Suspended => Some(LoginError::AccountSuspended),
            CustomerStatus::Closed => Some(LoginError::AccountClosed),
        };
        if let Some(err) = refused {
            self.log_login(
                attempt,
                now,
                subject.to_string(),
                Some(customer.status.as_str()),
            )
            .await?;
            return Err(err);
        }
        if verified.needs_rehash {
            let hash = hasher.hash_async(attempt.password.to_owned()).await?;
            self.set_customer_password_hash(customer.id, &hash, &Actor::system("rehash"), now)
                .await?;
        }
        self.log_success(attempt, now, subject).await?;
        throttle.record_success(attempt.email).await?;
        Ok(customer)
    }

    /// Authenticates a staff user. See the module docs for the rules applied.
    pub async fn login_staff(
        &self,
        hasher: &Hasher,
        throttle: &LoginThrottle,
        attempt: LoginAttempt<'_>,
        now: OffsetDateTime,
    ) -> Result<StaffUser, LoginError> {
        // Staff failures count apart from customer ones (see `LoginThrottle::for_staff`).
        let throttle = &throttle.for_staff();
        let found = self.staff_credentials(attempt.email).await?;
        let found = found.map(|(s, hash)| (Subject::Staff(s.id), hash, s));
        let (staff, verified) = self
            .check_password(hasher, throttle, attempt, now, found)
            .await?;
        let subject = Subject::Staff(staff.id);
        if staff.disabled_at.is_some() {
            self.log_login(attempt, now, subject.to_string(), Some("disabled"))
                .await?;
            return Err(LoginError::StaffDisabled);
        }
        if verified.needs_rehash {
            let hash = hasher.hash_async(attempt.password.to_owned()).await?;
            self.set_staff_password_hash(staff.id, &hash, &Actor::system("rehash"), now)
                .await?;
        }
        self.log_success(attempt, now, subject).await?;
        throttle.record_success(attempt.email).await?;
        Ok(staff)
    }

    /// Throttle check, password verification (or the dummy work), failure accounting.
    async fn check_password<T>(
        &self,
        hasher: &Hasher,
        throttle: &LoginThrottle,
        attempt: LoginAttempt<'_>,
        now: OffsetDateTime,
        found: Option<(Subject, String, T)>,
    ) -> Result<(T, Verified), LoginError> {
        let email = normalize_email(attempt.email);
        let unknown_subject = || {
            let logged: String = email.chars().take(MAX_LOGGED_EMAIL).collect();
            format!("email:{logged}")
        };
        if let Err(e) = throttle.check(&email, attempt.client_ip, now).await {
            let subject = found
                .as_ref()
                .map_or_else(unknown_subject, |(s, _, _)| s.to_string());
            self.log_login(attempt, now, subject, Some("throttled"))
                .await?;
            return Err(e.into());
        }
        // Over-long input is refused without hashing it, after the same dummy work.
        let too_long = attempt.password.chars().count() > MAX_PASSWORD_CHARS;
        let outcome = match found {
            Some((subject, hash, account)) if !too_long => {
                match hasher.verify_async(attempt.password.to_owned(), hash).await {
                    Ok(verified) => return Ok((account, verified)),
                    Err(PasswordError::Mismatch) => subject.to_string(),
                    Err(e) => return Err(e.into()),
                }
            }
            Some((subject, _, _)) => {
                hasher.verify_unknown_user_async(String::new()).await?;
                subject.to_string()
            }
            None => {
                let probe = if too_long {
                    String::new()
                } else {
                    attempt.password.to_owned()
                };
                hasher.verify_unknown_user_async(probe).await?;
                unknown_subject()
            }
        };
        throttle
            .record_failure(&email, attempt.client_ip, now)
            .await?;
        self.log_login(attempt, now, outcome, Some("invalid_credentials"))
            .await?;
        Err(LoginError::InvalidCredentials)
    }

    async fn log_success(
        &self,
        attempt: LoginAttempt<'_>,
        now: OffsetDateTime,
        subject: Subject,
    ) -> Result<(), StoreError> {
        let event = AccessEvent::new(
            now,
            Some(attempt.client_ip),
            AccessAction::Login,
            AccessOutcome::Success,
            subject.to_string(),
        );
        self.store.access().record_access(&event).await.map(|_| ())
    }

    async fn log_login(
        &self,
        attempt: LoginAttempt<'_>,
        now: OffsetDateTime,
        subject: String,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let event = AccessEvent {
            detail: reason.map(|r| serde_json::json!({ "reason": r }).to_string()),
            ..AccessEvent::new(
                now,
                Some(attempt.client_ip),
                AccessAction::Login,
                AccessOutcome::Failure,
                subject,
            )
        };
        self.store.access().record_access(&event).await.map(|_| ())
    }
}
