//! Job admission on `job_submit` routes: read the job body (capped), parse it with the route's
//! profile, estimate its FLOP under the policy in force, and ask the compute ledger — one atomic
//! step in the store — whether it may run. Only an admitted job is forwarded, with the body
//! unchanged.
//!
//! The ledger is a port ([`ComputeLedger`]) the root crate implements with the SQL store. When the
//! ledger cannot be reached the job is refused with 503 (fail closed): nothing is admitted that is
//! not recorded.
//!
//! A submission with an `Idempotency-Key` ([`crate::idempotency`]) is looked up in the ledger
//! once its body is read: a retry of an answered request gets that answer again, without a
//! second admission; a fresh key is claimed by the ledger together with the admitted job.
//! Without the header nothing of this runs.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, header};
use http_body_util::{BodyExt, Limited};

use computegate_policy::admission::Notice;

use crate::auth::{BoxFuture, Principal};
use crate::client_body::ClientBody;
use crate::error::GatewayError;
use crate::idempotency::{
    IN_FLIGHT_RETRY_AFTER, IdempotencyKey, Judgement, KeyClaim, StoredAnswer, StoredKey,
    fingerprint, judge,
};
use crate::metering::{
    Estimate, JobSpec, Profile, SpecError, SpecLimits, estimate, parse_job_spec,
};
use crate::policy::Policy;

/// Largest job-specification body read for metering, whatever the route's `max_body`.
pub const JOB_BODY_CAP: u64 = 1024 * 1024;

/// `X-Computegate-Run`: the run id, from the client (request) and as admitted (response).
pub static RUN_HEADER: HeaderName = HeaderName::from_static("x-computegate-run");
/// `X-Computegate-Estimate-Flop` on admitted responses.
pub static ESTIMATE_HEADER: HeaderName = HeaderName::from_static("x-computegate-estimate-flop");
/// `X-Computegate-Remaining-Flop` on admitted responses.
pub static REMAINING_HEADER: HeaderName = HeaderName::from_static("x-computegate-remaining-flop");
/// `X-Computegate-Notice` on admitted responses, once per crossed threshold whose policy says
/// `notify`: `<label>; scope=<scope>; threshold_flop=<FLOP>`.
pub static NOTICE_HEADER: HeaderName = HeaderName::from_static("x-computegate-notice");
/// `X-Computegate-End-Customer`: the end customer a reseller runs the job for. The client's
/// value is read here and checked by the ledger; like every `X-Computegate-*` header it is
/// stripped before forwarding, and only the value of an admitted job is sent upstream.
pub static END_CUSTOMER_HEADER: HeaderName = HeaderName::from_static("x-computegate-end-customer");
/// `X-Computegate-Job`: the ledger's job id, forwarded upstream so usage events can name it.
pub static JOB_HEADER: HeaderName = HeaderName::from_static("x-computegate-job");

/// A job the gateway asks the ledger to admit.
#[derive(Debug, Clone)]
pub struct JobAdmission {
    /// Who submits it.
    pub principal: Principal,
    /// Route name.
    pub route: Arc<str>,
    /// Request id.
    pub request_id: String,
    /// Client address.
    pub client_ip: IpAddr,
    /// The parsed job.
    pub spec: JobSpec,
    /// Its estimate.
    pub estimate: Estimate,
    /// The policy the estimate was made under.
    pub policy: Arc<Policy>,
    /// The submitter is in a frontier-restricted jurisdiction group (the enforcer's standing):
    /// no job may bring its run lineage or linked group to the policy's frontier FLOP.
    pub frontier_restricted: bool,
    /// The client's idempotency key, to claim with the job when it is admitted.
    pub idempotency: Option<KeyClaim>,
}

/// The ledger's typed answer (admitted, held with a reason, refused with a reason), defined
/// with the rest of the admission vocabulary in the policy crate.
pub use computegate_policy::admission::Outcome as AdmissionOutcome;

/// The ledger could not be asked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("compute ledger unavailable")]
pub struct LedgerUnavailable;

/// Why the ledger gave no decision.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AdmitError {
    /// It could not be asked.
    #[error(transparent)]
    Unavailable(#[from] LedgerUnavailable),
    /// Another admitted job holds the submission's idempotency key (a concurrent attempt of
    /// the same request, perhaps on another replica); nothing was recorded.
    #[error("the idempotency key is held by another job")]
    KeyTaken,
}

/// The port to the compute ledger.
pub trait ComputeLedger: Send + Sync + 'static {
    /// Reserves the job's estimate against every budget scope and records the decision (and,
    /// when admitted, claims its idempotency key in the same step).
    fn admit(&self, job: JobAdmission) -> BoxFuture<Result<AdmissionOutcome, AdmitError>>;

    /// Returns the reservation of an admitted job that will not run: forwarding failed or the
    /// upstream did not accept it (`reason` says which, for the audit record). Best effort — the
    /// implementation retries and logs; a release that still fails leaves the reservation
    /// counted until it leaves the rolling windows (it can only over-count, never admit more).
    fn release(&self, job_id: String, reason: String) -> BoxFuture<()>;

    /// The unexpired idempotency key `key` of `customer` on `route`, if stored.
    fn idempotency_key(
        &self,
        customer: Arc<str>,
        route: Arc<str>,
        key: IdempotencyKey,
    ) -> BoxFuture<Result<Option<StoredKey>, LedgerUnavailable>>;

    /// Stores the answer to the submission of the admitted job `job_id`, for its key's
    /// retries. Best effort like [`ComputeLedger::release`]: an answer that cannot be stored
    /// leaves the key in flight (retries get 409) until it expires.
    fn record_answer(&self, job_id: String, answer: StoredAnswer) -> BoxFuture<()>;
}

/// What a job submission comes to, short of an error answer.
#[derive(Debug)]
pub enum Submission {
    /// Admitted: forward it.
    Admitted(Admitted),
    /// A retry of an answered request: answer it again.
    Replay(StoredAnswer),
}

/// A job that may be forwarded.
#[derive(Debug)]
pub struct Admitted {
    /// The ledger's job id, to release if the upstream does not take the job.
    pub job_id: String,
    /// The body to forward, unchanged.
    pub body: Bytes,
    /// Headers for the upstream request.
    pub upstream_headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers for the client's response.
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
    /// It claimed an idempotency key: the answer is to be stored for retries.
    pub keyed: bool,
}

/// The headers of a job's answer kept for replays: what describes the job and where to find
/// it, and the threshold notices its admission gave (a client that lost the first answer still
/// learns them); never anything of the moment (rate-limit state, the remaining budget, cookies).
pub fn describes_the_job(name: &HeaderName) -> bool {
    [
        &header::CONTENT_TYPE,
        &header::LOCATION,
        &RUN_HEADER,
        &ESTIMATE_HEADER,
        &NOTICE_HEADER,
    ]
    .contains(&name)
}

/// Reads, meters and admits one job submission (`request` is its head); `Err` is what to
/// answer instead (its problem document comes from [`GatewayError::to_problem`], the one
/// mapping to HTTP). `key_ttl`: how long an idempotency key answers retries.
pub async fn admit_job(
    ledger: &dyn ComputeLedger,
    policy: Arc<Policy>,
    profile: Profile,
    body: ClientBody,
    request: &http::request::Parts,
    admission: (Principal, Arc<str>, String, IpAddr, bool),
    key_ttl: Duration,
) -> Result<Submission, GatewayError> {
    let key = IdempotencyKey::from_headers(&request.headers)
        .map_err(GatewayError::InvalidIdempotencyKey)?;
    let bytes = read_job_body(body).await?;
    let (principal, route, request_id, client_ip, frontier_restricted) = admission;
    let idempotency = match key {
        None => None,
        Some(key) => {
            let target = request.uri.path_and_query().map_or("/", |p| p.as_str());
            let fingerprint = fingerprint(
                &request.method,
                target,
                &bytes,
                &request.headers,
                &[&RUN_HEADER, &END_CUSTOMER_HEADER],
            );
            let stored = ledger
                .idempotency_key(principal.customer_id.clone(), route.clone(), key.clone())
                .await
                .map_err(|_| GatewayError::LedgerUnavailable)?;
            if let Some(stored) = stored {
                return answer_retry(stored, &fingerprint);
            }
            Some(KeyClaim {
                key,
                fingerprint,
                ttl: key_ttl,
            })
        }
    };
    let run_header = request
        .headers
        .get(&RUN_HEADER)
        .and_then(|v| v.to_str().ok());
    let spec = parse_job_spec(
        profile,
        &bytes,
        run_header,
        &SpecLimits::from_policy(&policy),
    )
    .and_then(|spec| spec.with_end_customer_header(end_customer_header(&request.headers)?))
    .map_err(|e| GatewayError::InvalidJobSpec {
        profile,
        detail: e.to_string(),
    })?;
    // Admitted only when the ledger found it to be the reseller's cleared end customer.
    let end_customer = spec.end_customer.clone();
    let estimate =
        estimate(&spec, &policy).map_err(|e| GatewayError::JobNotEstimable(e.to_string()))?;
    // Only for a keyed submission: what a concurrent claim of its key is looked up by.
    let keyed = idempotency
        .clone()
        .map(|claim| (principal.customer_id.clone(), route.clone(), claim));
    let job = JobAdmission {
        principal,
        route,
        request_id,
        client_ip,
        spec,
        estimate,
        policy,
        frontier_restricted,
        idempotency,
    };
    match ledger.admit(job).await {
        Err(AdmitError::Unavailable(_)) => Err(GatewayError::LedgerUnavailable),
        Err(AdmitError::KeyTaken) => key_taken(ledger, keyed).await,
        Ok(AdmissionOutcome::Held(hold)) => Err(GatewayError::JobHeld(hold)),
        Ok(AdmissionOutcome::Denied(refusal)) => Err(GatewayError::JobDenied(refusal)),
        Ok(AdmissionOutcome::Admitted(admitted)) => {
            let mut response_headers =
                vec![(ESTIMATE_HEADER.clone(), flop_value(admitted.estimate_flop))];
            if let Ok(run) = HeaderValue::from_str(&admitted.run_id) {
                response_headers.push((RUN_HEADER.clone(), run));
            }
            if let Some(remaining) = admitted.remaining_flop {
                response_headers.push((REMAINING_HEADER.clone(), flop_value(remaining)));
            }
            for notice in &admitted.notices {
                if let Some(value) = notice_value(notice) {
                    response_headers.push((NOTICE_HEADER.clone(), value));
                }
            }
            let mut upstream_headers = Vec::new();
            if let Ok(job) = HeaderValue::from_str(&admitted.job_id) {
                upstream_headers.push((JOB_HEADER.clone(), job));
            }
            if let Some(value) = end_customer.and_then(|e| HeaderValue::from_str(&e).ok()) {
                upstream_headers.push((END_CUSTOMER_HEADER.clone(), value));
            }
            Ok(Submission::Admitted(Admitted {
                job_id: admitted.job_id,
                body: bytes,
                upstream_headers,
                response_headers,
                keyed: keyed.is_some(),
            }))
        }
    }
}

/// The client's `X-Computegate-End-Customer`, if sent once as text; sent twice or not as
/// text, the job is refused rather than guessed at.
fn end_customer_header(headers: &http::HeaderMap) -> Result<Option<&str>, SpecError> {
    let refused = |reason: &str| SpecError::Field {
        path: "X-Computegate-End-Customer".into(),
        reason: reason.into(),
    };
    let mut values = headers.get_all(&END_CUSTOMER_HEADER).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(refused("is sent more than once")),
        (Some(value), None) => value
            .to_str()
            .map(Some)
            .map_err(|_| refused("is not visible ASCII text")),
    }
}

/// The job body, read up to [`JOB_BODY_CAP`].
async fn read_job_body(body: ClientBody) -> Result<Bytes, GatewayError> {
    match Limited::new(body, JOB_BODY_CAP as usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::JobSpecTooLarge {
                limit: JOB_BODY_CAP,
            })
        }
        Err(_) => Err(GatewayError::ClientBody),
    }
}

/// The answer to a request whose key is stored.
fn answer_retry(stored: StoredKey, fingerprint: &str) -> Result<Submission, GatewayError> {
    match judge(stored, fingerprint) {
        Judgement::Replay(answer) => Ok(Submission::Replay(answer)),
        Judgement::InFlight => Err(GatewayError::IdempotencyKeyInFlight {
            retry_after: IN_FLIGHT_RETRY_AFTER,
        }),
        Judgement::Reused => Err(GatewayError::IdempotencyKeyReused),
    }
}

/// A concurrent attempt claimed the key between the look-up and the admission: answered as
/// the key now stands (usually in flight). A key already given back again (that attempt was
/// held, denied or refused upstream) is still answered 409: the retry is judged anew.
async fn key_taken(
    ledger: &dyn ComputeLedger,
    keyed: Option<(Arc<str>, Arc<str>, KeyClaim)>,
) -> Result<Submission, GatewayError> {
    let in_flight = GatewayError::IdempotencyKeyInFlight {
        retry_after: IN_FLIGHT_RETRY_AFTER,
    };
    let Some((customer, route, claim)) = keyed else {
        return Err(in_flight);
    };
    let stored = ledger
        .idempotency_key(customer, route, claim.key.clone())
        .await
        .map_err(|_| GatewayError::LedgerUnavailable)?;
    match stored {
        Some(stored) => answer_retry(stored, &claim.fingerprint),
        None => Err(in_flight),
    }
}

/// A FLOP count as a header value in exponent form (`3.2826e23`).
fn flop_value(flop: f64) -> HeaderValue {
    HeaderValue::from_str(&format!("{flop:.4e}")).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// A notice as a header value; `None` for a label that is not a valid header value (policy labels
/// are plain ASCII, so only a broken policy loses one).
fn notice_value(notice: &Notice) -> Option<HeaderValue> {
    let text = format!(
        "{}; scope={}; threshold_flop={:.4e}",
        notice.label, notice.scope, notice.threshold_flop
    );
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_keep_what_describes_the_job_and_its_notices_only() {
        for kept in [
            &RUN_HEADER,
            &ESTIMATE_HEADER,
            &NOTICE_HEADER,
            &header::LOCATION,
        ] {
            assert!(describes_the_job(kept), "{kept}");
        }
        for dropped in [&REMAINING_HEADER, &header::SET_COOKIE] {
            assert!(!describes_the_job(dropped), "{dropped}");
        }
    }

    #[test]
    fn notice_header_names_label_scope_and_threshold() {
        let notice = Notice {
            label: "eu-ai-act-systemic-1e25".into(),
            scope: computegate_policy::Scope::Organization,
            threshold_flop: 1e25,
        };
        assert_eq!(
            notice_value(&notice).unwrap(),
            "eu-ai-act-systemic-1e25; scope=organization; threshold_flop=1.0000e25"
        );
    }

    #[test]
    fn the_end_customer_header_is_read_once_as_text() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(end_customer_header(&headers).unwrap(), None);
        headers.insert(&END_CUSTOMER_HEADER, HeaderValue::from_static("ec-1"));
        assert_eq!(end_customer_header(&headers).unwrap(), Some("ec-1"));
        headers.append(&END_CUSTOMER_HEADER, HeaderValue::from_static("ec-2"));
        assert!(end_customer_header(&headers).is_err(), "sent twice");
        let mut opaque = http::HeaderMap::new();
        let bytes = HeaderValue::from_bytes(b"ec-\xff").unwrap();
        opaque.insert(&END_CUSTOMER_HEADER, bytes);
        assert!(end_customer_header(&opaque).is_err(), "not text");
    }

    #[test]
    fn flop_header_is_exponent_form() {
        assert_eq!(flop_value(3.2826e23), "3.2826e23");
        assert_eq!(flop_value(1e19), "1.0000e19");
    }
}
