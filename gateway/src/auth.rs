//! The authentication port of the data plane: who is calling, as a [`Principal`].
//!
//! The gateway does not know where identities live. The root crate implements [`Authenticator`]
//! (token verification against published keys, API keys through a cache, principal status from a
//! cache kept fresh by change notices). The answer is synchronous when it comes from memory — the
//! common case — and a future only on a cache miss, so the hot path allocates nothing for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Customer id.
    pub customer_id: Arc<str>,
    /// Verification tier in force now.
    pub tier: Arc<str>,
    /// Organization id, when the customer belongs to one.
    pub organization_id: Option<Arc<str>>,
    /// Where the customer is verified to be (ISO 3166-1 alpha-2 codes from its approved
    /// application and its organization's: nationality, residence, headquarters, ultimate
    /// parent, …), for jurisdiction rules; empty while nothing is verified.
    pub jurisdictions: Arc<[String]>,
    /// How the caller proved who it is.
    pub method: AuthMethod,
    /// What this credential may do (every scope for a session token; the key's for an API key).
    pub scopes: crate::scope::Scopes,
    /// The credential's public id: the API key id, or the access token's `jti` (access log).
    pub credential_id: Option<Arc<str>>,
    /// Pre-rendered identity header values (avoids re-encoding per request).
    pub headers: IdentityHeaders,
}

/// How a caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A signed access token.
    Jwt,
    /// An API key.
    ApiKey,
}

/// Identity header values forwarded upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    /// `X-Computegate-Customer`.
    pub customer: HeaderValue,
    /// `X-Computegate-Tier`.
    pub tier: HeaderValue,
    /// `X-Computegate-Organization`.
    pub organization: Option<HeaderValue>,
    /// `X-Computegate-Identity`: a short-lived JWT upstreams can verify with the JWKS.
    pub identity_token: Option<HeaderValue>,
}

/// Why a credential was refused. The text is shown to the client, so it never echoes the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization: Bearer` header: none, or one of another scheme (`Basic …`), which
    /// RFC 6750 §3.1 answers like none — with the bare challenge, no error code.
    #[error("a bearer credential is required")]
    Missing,
    /// The credential is malformed, has a bad signature, is expired, revoked or unknown.
    #[error("the credential is not valid: {0}")]
    Invalid(&'static str),
    /// The account behind a valid credential may not be used now.
    #[error("the account is {state}")]
    AccountInactive {
        /// `suspended` or `closed`.
        state: &'static str,
        /// Why, as a bounded code, when the directory knows it.
        reason: Option<&'static str>,
    },
    /// The identity store could not be asked (fail closed).
    #[error("identity store unavailable")]
    Unavailable,
    /// Too many failed attempts from this client address or for this key: try after the
    /// duration (checked before any signature check or hash).
    #[error("too many failed authentications")]
    Throttled(std::time::Duration),
    /// Credential hashing is at its concurrency bound: try again shortly.
    #[error("credential verification is busy")]
    Busy,
}

/// The outcome of an authentication attempt.
#[allow(
    clippy::large_enum_variant,
    reason = "returned by value once per request and never stored; boxing the common, \
              from-memory answer would allocate on the hot path"
)]
pub enum AuthOutcome {
    /// Decided from memory.
    Ready(Result<Principal, AuthError>),
    /// Needs I/O (cache miss).
    Pending(BoxFuture<Result<Principal, AuthError>>),
}

/// Verifies bearer credentials.
pub trait Authenticator: Send + Sync + 'static {
    /// Verifies `bearer` (the text after `Bearer `) from a client at `client_ip`.
    fn authenticate(&self, bearer: &str, client_ip: std::net::IpAddr) -> AuthOutcome;
}

/// Header names the gateway sets for upstreams.
pub mod header_names {
    use http::HeaderName;
    /// Customer id.
    pub static CUSTOMER: HeaderName = HeaderName::from_static("x-computegate-customer");
    /// Tier.
    pub static TIER: HeaderName = HeaderName::from_static("x-computegate-tier");
    /// Organization id.
    pub static ORGANIZATION: HeaderName = HeaderName::from_static("x-computegate-organization");
    /// Signed internal identity token.
    pub static IDENTITY: HeaderName = HeaderName::from_static("x-computegate-identity");
}

/// Extracts the bearer credential from `Authorization`.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    // Two credentials on one request: whichever one the gateway checked, an upstream that
    // reads the other would act for someone else.
    if values.next().is_some() {
        return Err(AuthError::Invalid("more than one Authorization header"));
    }
    let text = value
        .to_str()
        .map_err(|_| AuthError::Invalid("authorization header is not ASCII"))?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (or a bare value with none): no bearer credential was sent, so the
        // answer is the challenge that says which scheme to use, not a refused token.
        return Err(AuthError::Missing);
    }
    let cred = rest.trim();
    if cred.is_empty() || cred.len() > 8192 {
        return Err(AuthError::Invalid("bearer credential is empty or too long"));
    }
    Ok(cred)
}

// === impl IdentityHeaders ===

impl IdentityHeaders {
    /// Renders header values; ids and tiers are ASCII by construction, anything else is refused.
    pub fn new(customer: &str, tier: &str, organization: Option<&str>) -> Option<Self> {
        Some(Self {
            customer: HeaderValue::from_str(customer).ok()?,
            tier: HeaderValue::from_str(tier).ok()?,
            organization: match organization {
                Some(o) => Some(HeaderValue::from_str(o).ok()?),
                None => None,
            },
            identity_token: None,
        })
    }

    /// Writes the identity headers into a request bound upstream.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(&header_names::CUSTOMER, self.customer.clone());
        headers.insert(&header_names::TIER, self.tier.clone());
        if let Some(org) = &self.organization {
            headers.insert(&header_names::ORGANIZATION, org.clone());
        }
        if let Some(token) = &self.identity_token {
            headers.insert(&header_names::IDENTITY, token.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), Err(AuthError::Missing));
        // Another scheme, or a value with none, is no bearer credential at all.
        for other in [
            "Basic abc",
            "Token abc",
            "eyJhbGciOiJFZERTQSJ9.e30.sig",
            "Bearer2 x",
        ] {
            h.insert("authorization", HeaderValue::from_static(other));
            assert_eq!(bearer(&h), Err(AuthError::Missing), "{other}");
        }
        h.insert("authorization", HeaderValue::from_static("bearer  tok "));
        assert_eq!(bearer(&h), Ok("tok"));
        // The Bearer scheme with no credential is a refused (malformed) one.
        for empty in ["Bearer", "Bearer    ", "bearer "] {
            h.insert("authorization", HeaderValue::from_static(empty));
            assert!(
                matches!(bearer(&h), Err(AuthError::Invalid(_))),
                "{empty:?}"
            );
        }
        h.insert(
            "authorization",
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert!(bearer(&h).is_err());
        h.insert("authorization", HeaderValue::from_static("Bearer one"));
        h.append("authorization", HeaderValue::from_static("Bearer two"));
        assert!(matches!(bearer(&h), Err(AuthError::Invalid(_))));
    }
}
