//! What can go wrong on the data plane, who is at fault, and the single mapping to HTTP.
//!
//! Client faults map to 4xx, upstream faults to 502/504, our own to 500/503. The mapping lives
//! only in [`GatewayError::to_problem`].

use std::time::Duration;

use http::StatusCode;

use computegate_policy::admission::{EndCustomerRefusal, Hold, Refusal, RefusalReason};

use crate::auth::AuthError;
use crate::idempotency::KeyError;
use crate::metering::Profile;
use crate::policy::DenialRule;
use crate::problem::{Challenge, Problem};

/// An error answered by the gateway itself instead of the upstream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// No configured route matches host, path and method.
    #[error("no route for this request")]
    NoRoute,
    /// The request head is larger than `server.max_header_bytes`.
    #[error("request head of {size} bytes exceeds the limit of {limit} bytes")]
    HeadersTooLarge {
        /// Bytes seen.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The request body is larger than the route's `max_body`.
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The client did not send its request head in time.
    #[error("request head not received in time")]
    HeaderTimeout,
    /// The client sent its request body slower than `server.body_read_timeout` and
    /// `server.body_min_rate` allow.
    #[error("request body not received in time")]
    BodyTimeout,
    /// The request is malformed in a way hyper accepted but we do not.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The client went away or broke its body mid-request.
    #[error("client request body failed")]
    ClientBody,
    /// No connection to the upstream could be made.
    #[error("upstream `{upstream}` unreachable")]
    UpstreamConnect {
        /// Pool name.
        upstream: String,
    },
    /// The upstream did not answer in time.
    #[error("upstream `{upstream}` timed out after {after:?}")]
    UpstreamTimeout {
        /// Pool name.
        upstream: String,
        /// The configured timeout.
        after: Duration,
    },
    /// The upstream broke the exchange.
    #[error("upstream `{upstream}` failed the exchange")]
    UpstreamProtocol {
        /// Pool name.
        upstream: String,
    },
    /// The credential was refused (missing, not valid, inactive account, or the identity store
    /// could not be asked); [`auth_problem`] answers it.
    #[error(transparent)]
    Auth(AuthError),
    /// The API key lacks the scope this request needs.
    #[error("API key lacks the `{}` scope", .0.as_str())]
    ScopeMissing(crate::scope::Scope),
    /// The policy refuses the caller: its jurisdiction is denied, or its tier may not do this.
    #[error("denied by policy: {}", .0.detail)]
    TierDenied(crate::policy::Denial),
    /// The caller exceeded its tier's request rate.
    #[error("rate limited")]
    RateLimited(crate::ratelimit::Decision),
    /// A dependency the request needs is down (fail closed).
    #[error("service unavailable: {reason}")]
    Unavailable {
        /// Short reason, safe to show.
        reason: &'static str,
        /// Hint for `Retry-After`.
        retry_after: Duration,
    },
    /// The path names an upstream job the caller does not own, or one nobody is known to own
    /// (answered like a job that does not exist; see [`crate::ownership`]).
    #[error("no such job for this customer")]
    NotOwner,
    /// The process is draining for shutdown.
    #[error("shutting down")]
    ShuttingDown,
    /// A job specification larger than the gateway reads for metering.
    #[error("job specification exceeds {limit} bytes")]
    JobSpecTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The job body does not parse under the route's profile.
    #[error("invalid job specification: {detail}")]
    InvalidJobSpec {
        /// The route's job profile.
        profile: Profile,
        /// What is wrong, safe to show.
        detail: String,
    },
    /// The job parses but its compute cannot be estimated (e.g. an unknown accelerator).
    #[error("job not estimable: {0}")]
    JobNotEstimable(String),
    /// The compute ledger could not be asked: the job is refused (fail closed).
    #[error("compute ledger unavailable")]
    LedgerUnavailable,
    /// The ledger holds the job for a compliance review.
    #[error("job held for review: {}", .0.reason)]
    JobHeld(Hold),
    /// The ledger or the tier's caps refuse the job.
    #[error("job denied: {0}")]
    JobDenied(Refusal),
    /// The `Idempotency-Key` header is malformed.
    #[error("invalid idempotency key: {0}")]
    InvalidIdempotencyKey(KeyError),
    /// The idempotency key was used for another request (another body, method or path).
    #[error("idempotency key reused for another request")]
    IdempotencyKeyReused,
    /// The first request with this idempotency key is still in flight.
    #[error("idempotency key in flight")]
    IdempotencyKeyInFlight {
        /// Hint for `Retry-After`.
        retry_after: Duration,
    },
    /// An edge proxy asked about a job submission without sending its complete body, so the
    /// job cannot be metered (see [`crate::authz`]); it is refused, never let through.
    #[error("job submission authorized without its body")]
    JobBodyNotForwarded,
    /// An edge proxy asked about a job submission with an `Idempotency-Key`, whose answer only
    /// the proxy door can keep (see [`crate::authz`]).
    #[error("idempotency key on an externally authorized job submission")]
    IdempotencyNeedsProxy,
    /// An authorization request from an address outside `authz.trusted_proxies`.
    #[error("authorization request from an untrusted peer")]
    AuthzPeerNotTrusted,
    /// An authorization request without the headers its contract uses to name the request.
    #[error("authorization request without {0}")]
    AuthzRequestIncomplete(&'static str),
}

// === impl GatewayError ===

impl GatewayError {
    /// The problem document answering this error.
    pub fn to_problem(&self) -> Problem {
        use GatewayError::*;
        match self {
            NoRoute => Problem::new(
                StatusCode::NOT_FOUND,
                "no-route",
                "No route",
                "no route is configured for this host, path and method",
            ),
            HeadersTooLarge { limit, .. } => Problem::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                "Request header fields too large",
                format!("the request head exceeds {limit} bytes"),
            )
            .with("limit_bytes", *limit),
            BodyTooLarge { limit } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
                format!("this route accepts at most {limit} bytes of body"),
            )
            .with("limit_bytes", *limit),
            HeaderTimeout => Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "header-timeout",
                "Request timeout",
                "the request head was not received in time",
            ),
            BodyTimeout => Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Request timeout",
                "the request body arrived slower than the gateway's minimum rate",
            ),
            BadRequest(detail) => Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Bad request",
                detail.clone(),
            ),
            ClientBody => Problem::new(
                StatusCode::BAD_REQUEST,
                "client-body",
                "Bad request body",
                "the request body ended early or was malformed",
            ),
            UpstreamConnect { upstream } => Problem::new(
                StatusCode::BAD_GATEWAY,
                "upstream-unreachable",
                "Bad gateway",
                format!("upstream `{upstream}` could not be reached"),
            ),
            UpstreamTimeout { upstream, .. } => Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream-timeout",
                "Gateway timeout",
                format!("upstream `{upstream}` did not answer in time"),
            ),
            UpstreamProtocol { upstream } => Problem::new(
                StatusCode::BAD_GATEWAY,
                "upstream-failed",
                "Bad gateway",
                format!("upstream `{upstream}` failed the exchange"),
            ),
            Auth(err) => auth_problem(err),
            Unavailable {
                reason,
                retry_after,
            } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                *reason,
            )
            .retry_after(*retry_after),
            ScopeMissing(scope) => Problem::new(
                StatusCode::FORBIDDEN,
                "scope-missing",
                "API key scope missing",
                format!(
                    "this API key lacks the `{}` scope this request needs; create a key with it",
                    scope.as_str()
                ),
            )
            .with("missing_scope", scope.as_str()),
            TierDenied(denial) => {
                let (slug, title) = match denial.rule {
                    DenialRule::DeniedJurisdiction => (
                        "jurisdiction-denied",
                        "Not available in the caller's jurisdiction",
                    ),
                    DenialRule::UnknownTier
                    | DenialRule::RouteNotAllowed
                    | DenialRule::MethodNotAllowed => {
                        ("tier-denied", "Not allowed for this verification tier")
                    }
                };
                // The detail names only the country code that matched, never the others the
                // account is verified in.
                Problem::new(StatusCode::FORBIDDEN, slug, title, denial.detail.clone())
                    .with("rule", denial.rule.as_str())
                    .with("tier", denial.tier.clone())
                    .with("required_tier", denial.required_tier.clone())
            }
            RateLimited(decision) => {
                let mut p = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many requests",
                    "this account's request rate for its tier is exceeded",
                )
                .retry_after(std::time::Duration::from_secs(decision.retry_after_secs()));
                for (name, value) in decision.headers() {
                    p = p.header(name.clone(), value);
                }
                p
            }
            NotOwner => Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                "no such job",
            ),
            ShuttingDown => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                "Service unavailable",
                "the gateway is shutting down",
            )
            .retry_after(Duration::from_secs(1)),
            JobSpecTooLarge { limit } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
                format!("job specifications are limited to {limit} bytes"),
            )
            .with("limit_bytes", *limit),
            InvalidJobSpec { profile, detail } => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-job-spec",
                "Invalid job specification",
                detail.clone(),
            )
            .with("profile", profile.as_str()),
            JobNotEstimable(detail) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "job-not-estimable",
                "The job's compute cannot be estimated",
                detail.clone(),
            ),
            LedgerUnavailable => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger-unavailable",
                "Service unavailable",
                "jobs cannot be admitted while the compute ledger is unreachable",
            )
            .retry_after(Duration::from_secs(5)),
            JobHeld(hold) => Problem::new(
                StatusCode::CONFLICT,
                "job-held-for-review",
                "Job held for compliance review",
                hold.reason.to_string(),
            )
            .with("review_id", hold.review_id.clone())
            .with("reason", hold.reason.as_str())
            .with("estimated_flop", hold.estimate_flop),
            JobDenied(Refusal {
                reason: RefusalReason::EndCustomer(why),
                ..
            }) => end_customer_problem(*why),
            JobDenied(refusal) => Problem::new(
                StatusCode::FORBIDDEN,
                "job-denied",
                "Job not admitted",
                refusal.to_string(),
            )
            .with("reason", refusal.reason.as_str())
            .with("estimated_flop", refusal.estimate_flop)
            .with("limit_flop", refusal.limit_flop)
            .with("threshold", refusal.threshold.clone())
            .with("required_tier", refusal.required_tier.clone()),
            InvalidIdempotencyKey(e) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
                e.to_string(),
            ),
            IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used for a different request (method, path or body); \
                 use a new key for a new request",
            ),
            IdempotencyKeyInFlight { retry_after } => Problem::new(
                StatusCode::CONFLICT,
                "idempotency-key-in-flight",
                "Request in progress",
                "the first request with this Idempotency-Key is still being processed; retry \
                 after a moment to get its answer",
            )
            .retry_after(*retry_after),
            JobBodyNotForwarded => Problem::new(
                StatusCode::NOT_IMPLEMENTED,
                "job-body-not-forwarded",
                "Job submission not available here",
                "jobs are metered from their body, and the proxy in front of this service does \
                 not pass request bodies to its authorization check; the job was not submitted",
            ),
            IdempotencyNeedsProxy => Problem::new(
                StatusCode::BAD_REQUEST,
                "idempotency-key-unsupported",
                "Idempotency-Key not supported here",
                "this route is authorized by the proxy in front of the service, where an \
                 Idempotency-Key cannot be honoured; submit without it (each submission is a \
                 new job)",
            ),
            AuthzPeerNotTrusted => Problem::new(
                StatusCode::FORBIDDEN,
                "authz-peer-not-trusted",
                "Forbidden",
                "authorization requests are answered only for the configured trusted proxies",
            ),
            AuthzRequestIncomplete(what) => Problem::new(
                StatusCode::BAD_REQUEST,
                "authz-request-incomplete",
                "Bad authorization request",
                format!("the authorization request does not carry {what}"),
            ),
        }
    }
}

/// The problem document for a refused credential: the one mapping of [`AuthError`] to HTTP, for
/// the data plane and the control-plane APIs alike. A missing or bad credential is the client's
/// fault (401 with `WWW-Authenticate`), an inactive account too (403), an identity store that
/// cannot be asked is ours (503 with `Retry-After`; the request fails closed).
pub fn auth_problem(err: &AuthError) -> Problem {
    match err {
        AuthError::Unavailable => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "identity verification is unavailable",
        )
        .retry_after(Duration::from_secs(5)),
        AuthError::AccountInactive { state, reason } => Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            match reason {
                Some(reason) => format!("the account is {state} ({reason})"),
                None => format!("the account is {state}"),
            },
        )
        .with("reason", *reason),
        // No credential sent: the bare challenge; a refused one: `error="invalid_token"`.
        AuthError::Missing => unauthenticated(err).www_authenticate(Challenge::Bearer),
        AuthError::Invalid(_) => unauthenticated(err).www_authenticate(Challenge::InvalidToken),
        AuthError::Throttled(retry_after) => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "auth-throttled",
            "Too many failed authentications",
            "too many failed authentications from this client or for this key; retry later",
        )
        // Whole seconds, rounded up, so a client never retries before the window ends.
        .retry_after(Duration::from_secs(retry_after.as_secs() + 1)),
        AuthError::Busy => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "credential verification is busy",
        )
        .retry_after(Duration::from_secs(1)),
    }
}

fn unauthenticated(err: &AuthError) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "Unauthenticated",
        err.to_string(),
    )
}

/// A reseller's job refused for its end customer: its own problem type per reason, so a
/// reseller's client tells "name one" (400) from "not yours or unknown" (403) from "not cleared"
/// (403) without parsing text. The detail never says whose an unknown id is.
fn end_customer_problem(why: EndCustomerRefusal) -> Problem {
    let (status, slug, title) = match why {
        EndCustomerRefusal::Missing => (
            StatusCode::BAD_REQUEST,
            "end-customer-required",
            "End customer required",
        ),
        EndCustomerRefusal::NotReseller => (
            StatusCode::BAD_REQUEST,
            "end-customer-not-allowed",
            "End customer not allowed",
        ),
        EndCustomerRefusal::Unknown => (
            StatusCode::FORBIDDEN,
            "end-customer-unknown",
            "Unknown end customer",
        ),
        EndCustomerRefusal::NotCleared => (
            StatusCode::FORBIDDEN,
            "end-customer-not-cleared",
            "End customer not cleared",
        ),
        EndCustomerRefusal::ResellerSuspended => (
            StatusCode::FORBIDDEN,
            "reseller-suspended",
            "Reseller suspended",
        ),
    };
    Problem::new(status, slug, title, why.to_string()).with("reason", why.as_str())
}

#[cfg(test)]
mod tests {
    use computegate_policy::admission::{DenialReason, HoldReason};

    use super::*;

    #[test]
    fn admission_outcomes_map_to_one_problem_each() {
        let refusal = Refusal {
            reason: RefusalReason::Ledger(DenialReason::ConcurrentJobs { limit: 2 }),
            tier: "unverified".into(),
            estimate_flop: 1e18,
            limit_flop: None,
            threshold: None,
            required_tier: Some("identity_verified".into()),
        };
        let p = GatewayError::JobDenied(refusal).to_problem();
        assert_eq!(
            (p.status(), p.slug()),
            (StatusCode::FORBIDDEN, "job-denied")
        );
        let doc = p.to_json();
        assert_eq!(doc["detail"], "tier `unverified` allows 2 jobs at once");
        assert_eq!(doc["reason"], "concurrent_jobs");
        assert_eq!(doc["required_tier"], "identity_verified");
        assert_eq!(doc["estimated_flop"], 1e18);

        let hold = Hold {
            review_id: "r-1".into(),
            reason: HoldReason::ThresholdReview,
            estimate_flop: 2e18,
        };
        let p = GatewayError::JobHeld(hold).to_problem();
        assert_eq!(
            (p.status(), p.slug()),
            (StatusCode::CONFLICT, "job-held-for-review")
        );
        assert_eq!(p.to_json()["review_id"], "r-1");
        assert_eq!(p.to_json()["reason"], "threshold_review");

        let p = GatewayError::LedgerUnavailable.to_problem();
        assert_eq!(p.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn only_a_refused_credential_is_challenged_with_invalid_token() {
        let challenge = |e: AuthError| {
            let resp = auth_problem(&e).into_response();
            resp.headers()[http::header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            challenge(AuthError::Missing),
            "Bearer realm=\"computegate\""
        );
        assert_eq!(
            challenge(AuthError::Invalid("expired")),
            "Bearer realm=\"computegate\", error=\"invalid_token\""
        );
    }

    #[test]
    fn end_customer_refusals_have_their_own_problem_types() {
        let want = [
            (EndCustomerRefusal::Missing, 400, "end-customer-required"),
            (
                EndCustomerRefusal::NotReseller,
                400,
                "end-customer-not-allowed",
            ),
            (EndCustomerRefusal::Unknown, 403, "end-customer-unknown"),
            (
                EndCustomerRefusal::NotCleared,
                403,
                "end-customer-not-cleared",
            ),
            (
                EndCustomerRefusal::ResellerSuspended,
                403,
                "reseller-suspended",
            ),
        ];
        assert_eq!(want.len(), EndCustomerRefusal::ALL.len());
        for (why, status, slug) in want {
            let refusal = Refusal {
                reason: RefusalReason::EndCustomer(why),
                tier: "organization_verified".into(),
                estimate_flop: 1e18,
                limit_flop: None,
                threshold: None,
                required_tier: None,
            };
            let p = GatewayError::JobDenied(refusal).to_problem();
            assert_eq!((p.status().as_u16(), p.slug()), (status, slug), "{why:?}");
            assert_eq!(p.to_json()["reason"], why.as_str());
        }
    }
}
