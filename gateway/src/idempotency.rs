//! Idempotent job submission (`Idempotency-Key`, after the IETF httpapi draft "The
//! Idempotency-Key HTTP Header Field"): the vocabulary and the pure parts — the key, the
//! request's fingerprint, the judgement of a stored key, the replayed answer and the answer
//! kept for retries. The admission ([`crate::admission`]) asks the ledger port for the stored
//! key and claims it with the job; the data plane ([`crate::proxy`]) stores the answer.
//!
//! ```text
//! job_submit with Idempotency-Key ─▶ key valid? ──no──▶ 400 invalid-idempotency-key
//!   ─▶ body read ─▶ fingerprint = SHA-256(method, target, body, run and end-customer headers)
//!   ─▶ stored key of (customer, route)? ── other fingerprint ─▶ 422 idempotency-key-reused
//!                                       ── in flight        ─▶ 409 idempotency-key-in-flight
//!                                       ── answered         ─▶ the answer again
//!                                                              + Idempotent-Replayed: true
//!   ─▶ none: admission claims the key with the admitted job (one transaction)
//!   ─▶ forward ─▶ upstream refused (job released) ─▶ key given back
//!             ─▶ otherwise ─▶ the answer the client gets is stored for the key
//! ```
//!
//! A held or denied job claims no key (a retry is judged anew, e.g. after a reviewer approved
//! it). Whenever the job may exist upstream — it was accepted, or the outcome is unknown (a
//! timeout, a broken exchange, a 5xx other than 503) — the client's answer is what a retry
//! gets: the gateway never sends a second copy of a job that may be running.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use crate::body::ResponseBody;
use crate::body::peek::PeekedBody;

/// `Idempotency-Key` request header.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// `Idempotent-Replayed: true` on an answer replayed for a retry.
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// `X-Computegate-Replay-Body: omitted` on a replayed answer whose body was too large to keep.
pub static REPLAY_BODY: HeaderName = HeaderName::from_static("x-computegate-replay-body");
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;
/// Largest answer body kept for retries; a larger one is replayed without its body.
pub const ANSWER_BODY_CAP: usize = 64 * 1024;
/// How long a key answers retries unless `server.idempotency_key_ttl` says otherwise.
pub const DEFAULT_KEY_TTL: Duration = Duration::from_secs(24 * 3600);
/// `Retry-After` of the answer to a retry while the first attempt is still in flight: about
/// one upstream round trip.
pub const IN_FLIGHT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A client's idempotency key: 1 to [`MAX_KEY_LEN`] visible ASCII characters. The draft's
/// structured-field form (`"key"`, a quoted string) and a bare token name the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why an `Idempotency-Key` header is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The header appears more than once.
    #[error("the request has more than one Idempotency-Key header")]
    Repeated,
    /// Empty, or an empty quoted string.
    #[error("the Idempotency-Key is empty")]
    Empty,
    /// Longer than [`MAX_KEY_LEN`].
    #[error("the Idempotency-Key is longer than {MAX_KEY_LEN} characters")]
    TooLong,
    /// A character outside visible ASCII (`!` to `~`), or a stray quote or backslash.
    #[error("the Idempotency-Key may hold visible ASCII characters only")]
    NotVisibleAscii,
}

/// A fresh key the admission claims with its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    /// The key.
    pub key: IdempotencyKey,
    /// The request's [`fingerprint`].
    pub fingerprint: String,
    /// How long the key answers retries.
    pub ttl: Duration,
}

/// What the store holds for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The [`fingerprint`] of the request that claimed it.
    pub fingerprint: String,
    /// Its answer; `None` while it is in flight.
    pub answer: Option<StoredAnswer>,
}

/// An answer kept for retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// Status.
    pub status: u16,
    /// The kept headers, lowercase names.
    pub headers: Vec<(String, String)>,
    /// The body; `None` when it was larger than [`ANSWER_BODY_CAP`].
    pub body: Option<Bytes>,
}

/// How a request with a stored key is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// The same request, answered: replay the answer.
    Replay(StoredAnswer),
    /// The same request, still in flight (409, retry shortly).
    InFlight,
    /// Another request under the same key (422).
    Reused,
}

// === impl IdempotencyKey ===

impl IdempotencyKey {
    /// The request's key: `None` without the header.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, KeyError> {
        let mut values = headers.get_all(&IDEMPOTENCY_KEY).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(KeyError::Repeated),
            (Some(value), None) => Self::parse(value.as_bytes()).map(Some),
        }
    }

    /// Reads a header value (bare, or one quoted string without escapes).
    pub fn parse(value: &[u8]) -> Result<Self, KeyError> {
        let inner = match value {
            [b'"', inner @ .., b'"'] => inner,
            other => other,
        };
        if inner.is_empty() {
            return Err(KeyError::Empty);
        }
        if inner.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong);
        }
        if !inner
            .iter()
            .all(|b| b.is_ascii_graphic() && *b != b'"' && *b != b'\\')
        {
            return Err(KeyError::NotVisibleAscii);
        }
        // Only ASCII passed the check above.
        Ok(Self(String::from_utf8_lossy(inner).into_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 (hex) of the request's method, target (path and query) and body, and of each
/// header among `job_headers` it carries (they change what the job is: a reseller's retry
/// naming another end customer, or another run, is another job, not a retry), each part
/// length-prefixed so no two requests share one. A request without those headers hashes as
/// method, target and body alone.
pub fn fingerprint(
    method: &Method,
    target: &str,
    body: &[u8],
    headers: &HeaderMap,
    job_headers: &[&HeaderName],
) -> String {
    let mut hash = Sha256::new();
    let sent = job_headers.iter().flat_map(|name| {
        (headers.get_all(*name).iter()).flat_map(move |v| [name.as_str().as_bytes(), v.as_bytes()])
    });
    for part in [method.as_str().as_bytes(), target.as_bytes(), body]
        .into_iter()
        .chain(sent)
    {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hex::encode(hash.finalize())
}

/// How the request with `fingerprint` is answered when its key is `stored`.
pub fn judge(stored: StoredKey, fingerprint: &str) -> Judgement {
    if stored.fingerprint != fingerprint {
        return Judgement::Reused;
    }
    match stored.answer {
        Some(answer) => Judgement::Replay(answer),
        None => Judgement::InFlight,
    }
}

/// The stored answer, again, marked `Idempotent-Replayed: true`.
pub fn replay(answer: StoredAnswer) -> Response<ResponseBody> {
    let body = answer.body.clone().unwrap_or_default();
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let headers = resp.headers_mut();
    for (name, value) in &answer.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        // Without its body the answer has no content to type.
        if answer.body.is_some() || name != header::CONTENT_TYPE {
            headers.append(name, value);
        }
    }
    headers.insert(&IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    if answer.body.is_none() {
        headers.insert(&REPLAY_BODY, HeaderValue::from_static("omitted"));
    }
    resp
}

/// Reads the answer `resp` far enough to keep it for retries (its body up to
/// [`ANSWER_BODY_CAP`], the headers `kept` picks) and returns it with its body intact, and
/// what to keep.
pub async fn keep(
    resp: Response<ResponseBody>,
    kept: fn(&HeaderName) -> bool,
) -> (Response<ResponseBody>, StoredAnswer) {
    let (parts, body) = resp.into_parts();
    let peeked = PeekedBody::read(body, ANSWER_BODY_CAP).await;
    let answer = StoredAnswer {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| kept(name))
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect(),
        body: peeked.complete_data(),
    };
    let resp = Response::from_parts(parts, ResponseBody::Boxed(peeked.boxed_unsync()));
    (resp, answer)
}

#[cfg(test)]
mod tests;
