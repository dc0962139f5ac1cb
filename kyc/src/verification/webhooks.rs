//! Identity-verification (IDV) provider webhooks: signature checks and payload mapping, as pure
//! functions. The HTTP layer reads the provider's signature header
//! ([`IdvProvider::signature_header`]) and the raw body, calls [`verify_signature`] and then
//! [`parse_event`], and records the result with `VerificationStore::record_idv_event`, which is
//! idempotent by `(provider, event_id)`.
//!
//! - **Stripe Identity** — `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, where each `v1`
//!   is HMAC-SHA256(secret, `"<t>.<body>"`); `t` must be within the tolerance window.
//! - **Persona** — `Persona-Signature`, the same scheme; during a secret rotation the header
//!   carries several `t=…,v1=…` groups separated by spaces.
//! - **Onfido** — `X-SHA2-Signature: <hex HMAC-SHA256(token, body)>`; no timestamp, so replays
//!   are stopped only by the idempotency of the store. Its bodies carry no result: they map to
//!   [`ParsedWebhook::Fetch`] and the outcome is read from Onfido's API (see
//!   [`super::onfido`]).
//!
//! Two secrets may be configured at once (current and previous) while a provider rotates; a
//! signature from either is accepted. Secrets are used as the exact bytes of the configured
//! string (Stripe's `whsec_…` included). Every comparison is constant-time.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac as _};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::onfido::OnfidoNotice;
use crate::names::stored_enum;

/// Default tolerance between a signed timestamp and now, either direction.
pub const DEFAULT_TOLERANCE: Duration = Duration::seconds(300);

/// Largest webhook body accepted, in bytes (the HTTP layer should cap reads at this).
pub const MAX_WEBHOOK_BODY: usize = 256 * 1024;

/// Longest signature header read, bytes; a longer one is refused before any MAC is computed
/// (real headers carry one or two signatures, well under 400 bytes).
pub const MAX_SIGNATURE_HEADER: usize = 1024;

/// Most `v1=` signatures one header may carry (a provider sends one per secret in rotation).
pub const MAX_SIGNATURES: usize = 4;

/// Longest provider event id stored.
const MAX_EVENT_ID: usize = 200;

/// A supported IDV provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdvProvider {
    /// Stripe Identity.
    Stripe,
    /// Persona.
    Persona,
    /// Onfido.
    Onfido,
}

/// What the provider concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdvOutcome {
    /// Identity verified.
    Verified,
    /// The provider needs more from the applicant (or a person must look).
    RequiresInput,
    /// Verification failed or was declined.
    Failed,
}

/// A webhook signing secret. `Debug` never shows it.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

/// The secrets accepted for one provider: the current one and, during rotation, the previous.
#[derive(Debug, Clone)]
pub struct WebhookSecrets {
    /// The secret in use.
    pub current: WebhookSecret,
    /// The secret being retired, accepted until removed from configuration.
    pub previous: Option<WebhookSecret>,
}

/// An event mapped to our terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdvEvent {
    /// Which provider sent it.
    pub provider: IdvProvider,
    /// The provider's event id (Onfido: `<action>:<object id>`), the idempotency key.
    pub event_id: String,
    /// The application it concerns (the reference we gave the provider).
    pub application_id: Uuid,
    /// The outcome.
    pub outcome: IdvOutcome,
}

/// Why a webhook was refused. Every variant means: answer 401 (signature) or 400 (payload)
/// and store nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The provider name in the path is not one we know.
    #[error("unknown webhook provider")]
    UnknownProvider,
    /// No signature header.
    #[error("missing webhook signature")]
    MissingSignature,
    /// The header does not parse.
    #[error("malformed webhook signature header")]
    MalformedSignature,
    /// The signed timestamp is outside the tolerance window.
    #[error("webhook timestamp outside the tolerance window")]
    StaleTimestamp,
    /// No signature matches any configured secret.
    #[error("webhook signature does not match")]
    BadSignature,
    /// The body is not the provider's JSON shape.
    #[error("malformed webhook payload")]
    MalformedPayload,
    /// The event names no application reference we can read.
    #[error("webhook event carries no application reference")]
    MissingReference,
}

// === impl IdvProvider ===

stored_enum!(IdvProvider: WebhookError = WebhookError::UnknownProvider; {
    Stripe => "stripe",
    Persona => "persona",
    Onfido => "onfido",
});

impl IdvProvider {
    /// The HTTP header carrying the signature.
    pub fn signature_header(self) -> &'static str {
        match self {
            IdvProvider::Stripe => "Stripe-Signature",
            IdvProvider::Persona => "Persona-Signature",
            IdvProvider::Onfido => "X-SHA2-Signature",
        }
    }
}

// === impl IdvOutcome ===

stored_enum!(IdvOutcome {
    Verified => "verified",
    RequiresInput => "requires_input",
    Failed => "failed",
});

// === impl WebhookSecret ===

impl WebhookSecret {
    /// A secret from its configured text.
    pub fn new(secret: impl Into<String>) -> WebhookSecret {
        WebhookSecret(secret.into().into_bytes())
    }

    fn mac(&self) -> Hmac<Sha256> {
        #[allow(clippy::expect_used)]
        // HMAC accepts keys of any length (longer ones are hashed), so this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

// === impl WebhookSecrets ===

impl WebhookSecrets {
    /// One secret, no rotation in progress.
    pub fn single(secret: WebhookSecret) -> WebhookSecrets {
        WebhookSecrets {
            current: secret,
            previous: None,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &WebhookSecret> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }
}

/// Checks a webhook's signature header against the configured secrets. `header` is the value
/// of [`IdvProvider::signature_header`]; `body` the raw bytes as received.
pub fn verify_signature(
    provider: IdvProvider,
    header: Option<&str>,
    body: &[u8],
    secrets: &WebhookSecrets,
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::MissingSignature)?;
    if header.len() > MAX_SIGNATURE_HEADER {
        return Err(WebhookError::MalformedSignature);
    }
    match provider {
        IdvProvider::Stripe | IdvProvider::Persona => {
            verify_timestamped(header, body, secrets, now, tolerance)
        }
        IdvProvider::Onfido => {
            let sig = decode_sig(header.trim()).ok_or(WebhookError::MalformedSignature)?;
            let ok = secrets.iter().any(|s| {
                let mut mac = s.mac();
                mac.update(body);
                mac.verify_slice(&sig).is_ok()
            });
            if ok {
                Ok(())
            } else {
                Err(WebhookError::BadSignature)
            }
        }
    }
}

/// Verifies a `t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>` header (Stripe/Persona style,
/// also the gateway's own usage events): any `v1` matching any secret, within `tolerance`.
/// Several groups separated by spaces are accepted (Persona).
///
/// The work is bounded before any MAC: a header over [`MAX_SIGNATURE_HEADER`] bytes or with
/// more than [`MAX_SIGNATURES`] signatures is malformed, the timestamp is checked first, and
/// the body is hashed once per configured secret whatever the number of candidates.
pub fn verify_timestamped(
    header: &str,
    body: &[u8],
    secrets: &WebhookSecrets,
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(), WebhookError> {
    if header.len() > MAX_SIGNATURE_HEADER {
        return Err(WebhookError::MalformedSignature);
    }
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for item in header.split([',', ' ']).filter(|s| !s.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or(WebhookError::MalformedSignature)?;
        match key.trim() {
            "t" => match timestamp {
                // Several groups must agree on the timestamp they sign.
                Some(t) if t != value => return Err(WebhookError::MalformedSignature),
                _ => timestamp = Some(value),
            },
            "v1" => {
                if let Some(sig) = decode_sig(value) {
                    if signatures.len() == MAX_SIGNATURES {
                        return Err(WebhookError::MalformedSignature);
                    }
                    signatures.push(sig);
                }
            }
            _ => {} // other schemes (v0, …) are ignored
        }
    }
    let t = timestamp.ok_or(WebhookError::MalformedSignature)?;
    let seconds: i64 = t.parse().map_err(|_| WebhookError::MalformedSignature)?;
    if signatures.is_empty() {
        return Err(WebhookError::MalformedSignature);
    }
    let signed_at =
        OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| WebhookError::StaleTimestamp)?;
    if (now - signed_at).abs() > tolerance {
        return Err(WebhookError::StaleTimestamp);
    }
    let ok = secrets.iter().any(|s| {
        let mut mac = s.mac();
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        // The body was hashed once; each candidate only finalizes a copy (constant-time compare).
        signatures
            .iter()
            .any(|sig| mac.clone().verify_slice(sig).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// A hex SHA-256 MAC, or `None`.
fn decode_sig(text: &str) -> Option<Vec<u8>> {
    let bytes = hex::decode(text.trim()).ok()?;
    (bytes.len() == 32).then_some(bytes)
}

/// What a verified webhook asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedWebhook {
    /// The body carries the outcome itself (Stripe, Persona): record it.
    Outcome(IdvEvent),
    /// The body only announces a resource (Onfido): fetch it, then record its outcome.
    Fetch(OnfidoNotice),
}

/// Maps a verified body; `Ok(None)` for event types that carry no verification outcome
/// (acknowledge them, store nothing).
pub fn parse_event(
    provider: IdvProvider,
    body: &[u8],
) -> Result<Option<ParsedWebhook>, WebhookError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| WebhookError::MalformedPayload)?;
    let found = match provider {
        IdvProvider::Stripe => stripe_event(&v)?,
        IdvProvider::Persona => persona_event(&v)?,
        IdvProvider::Onfido => return Ok(super::onfido::notice(&v)?.map(ParsedWebhook::Fetch)),
    };
    let Some((event_id, reference, outcome)) = found else {
        return Ok(None);
    };
    if event_id.is_empty() || event_id.len() > MAX_EVENT_ID {
        return Err(WebhookError::MalformedPayload);
    }
    let application_id = reference
        .and_then(|r| Uuid::parse_str(r).ok())
        .ok_or(WebhookError::MissingReference)?;
    Ok(Some(ParsedWebhook::Outcome(IdvEvent {
        provider,
        event_id,
        application_id,
        outcome,
    })))
}

type Mapped<'a> = Option<(String, Option<&'a str>, IdvOutcome)>;

/// `{"id":"evt_…","type":"identity.verification_session.verified","data":{"object":{
/// "client_reference_id"|"metadata":{"reference_id"|"application_id"}}}}`.
fn stripe_event(v: &serde_json::Value) -> Result<Mapped<'_>, WebhookError> {
    let kind = v["type"].as_str().ok_or(WebhookError::MalformedPayload)?;
    let outcome = match kind {
        "identity.verification_session.verified" => IdvOutcome::Verified,
        "identity.verification_session.requires_input" => IdvOutcome::RequiresInput,
        "identity.verification_session.canceled" => IdvOutcome::Failed,
        _ => return Ok(None),
    };
    let id = v["id"].as_str().ok_or(WebhookError::MalformedPayload)?;
    let object = &v["data"]["object"];
    let reference = object["metadata"]["reference_id"]
        .as_str()
        .or_else(|| object["metadata"]["application_id"].as_str())
        .or_else(|| object["client_reference_id"].as_str());
    Ok(Some((id.to_owned(), reference, outcome)))
}

/// `{"data":{"id":"evt_…","attributes":{"name":"inquiry.approved","payload":{"data":{
/// "attributes":{"reference-id":"…"}}}}}}`.
fn persona_event(v: &serde_json::Value) -> Result<Mapped<'_>, WebhookError> {
    let event = &v["data"];
    let name = event["attributes"]["name"]
        .as_str()
        .ok_or(WebhookError::MalformedPayload)?;
    let outcome = match name {
        "inquiry.approved" | "inquiry.completed" => IdvOutcome::Verified,
        "inquiry.marked-for-review" | "inquiry.expired" => IdvOutcome::RequiresInput,
        "inquiry.declined" | "inquiry.failed" => IdvOutcome::Failed,
        _ => return Ok(None),
    };
    let id = event["id"].as_str().ok_or(WebhookError::MalformedPayload)?;
    let attrs = &event["attributes"]["payload"]["data"]["attributes"];
    let reference = attrs["reference-id"]
        .as_str()
        .or_else(|| attrs["reference_id"].as_str());
    Ok(Some((id.to_owned(), reference, outcome)))
}

/// Computes the `v1` signature of a timestamped scheme — for tests and for the simulator that
/// plays a provider.
pub fn sign_timestamped(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Computes Onfido's body signature — for tests and the simulator.
pub fn sign_body(secret: &WebhookSecret, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests;
