//! Why an identity operation (sign-up, login, token refresh, logout, API keys) did not happen,
//! named for what happened. The control-plane APIs map it to HTTP in one place
//! (`api::error`); nothing here knows about HTTP.

use computegate_gateway::auth::AuthError;
use computegate_kyc::accounts::AccountError;
use computegate_kyc::api_keys::KeyError;
use computegate_kyc::login::LoginError;

/// Why an identity operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The bearer credential was refused (missing, not valid, inactive account, store down).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Sign-up fields are invalid; each entry is `(field, problem)`, every problem at once.
    #[error("invalid sign-up ({} fields)", .0.len())]
    InvalidSignUp(Vec<(String, String)>),
    /// Too many sign-ups from this client address; retry after the duration.
    #[error("too many sign-ups from this address")]
    SignUpThrottled(std::time::Duration),
    /// The email is already registered.
    #[error("the email is already registered")]
    EmailTaken,
    /// A password login failed (wrong password, throttled, inactive account, throttle down).
    #[error(transparent)]
    Login(#[from] LoginError),
    /// The refresh token is unknown, expired or revoked.
    #[error("the refresh token is not valid")]
    RefreshInvalid,
    /// The refresh token was already used: its whole session is now revoked.
    #[error("the refresh token was already used; its session is revoked")]
    RefreshReused,
    /// The refresh token belongs to a staff session (the customer refresh grant was asked).
    #[error("the refresh token is not a customer's")]
    NotACustomerSession,
    /// The account behind a valid refresh token is gone.
    #[error("the account no longer exists")]
    AccountGone,
    /// The account behind a valid refresh token is suspended or closed.
    #[error("the account is not active")]
    AccountInactive,
    /// An API-key operation was refused (bad name, scope, expiry, too many keys, not found).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A token could not be signed, a password hashed or a refresh token issued (ours).
    #[error("identity failure: {0}")]
    Internal(String),
    /// The store (or the throttle) could not be used.
    #[error("identity store unavailable: {0}")]
    Unavailable(String),
}

impl From<AccountError> for IdentityError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::EmailTaken => Self::EmailTaken,
            AccountError::InvalidEmail => {
                Self::InvalidSignUp(vec![("email".into(), "is not a valid address".into())])
            }
            other => Self::Unavailable(other.to_string()),
        }
    }
}
