//! Job admission on `job_submit` routes: read the job body (capped), parse it with the route's
//! profile, estimate its FLOP under the policy in force, and ask the compute ledger — one atomic
//! step in the store — whether it may run. Only an admitted job is forwarded, with the body
//! unchanged.
//!
//! The ledger is a port ([`ComputeLedger`]) the root crate implements with the SQL store. When the
//! ledger cannot be reached the job is refused with 503 (fail closed): nothing is admitted that is
//! not recorded.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Limited};

use crate::auth::{BoxFuture, Principal};
use crate::client_body::ClientBody;
use crate::error::GatewayError;
use crate::metering::{Estimate, JobSpec, Profile, SpecLimits, estimate, parse_job_spec};
use crate::policy::Policy;

/// Largest job-specification body read for metering, whatever the route's `max_body`.
pub const JOB_BODY_CAP: u64 = 1024 * 1024;

/// `X-Computegate-Run`: the run id, from the client (request) and as admitted (response).
pub static RUN_HEADER: HeaderName = HeaderName::from_static("x-computegate-run");
/// `X-Computegate-Estimate-Flop` on admitted responses.
pub static ESTIMATE_HEADER: HeaderName = HeaderName::from_static("x-computegate-estimate-flop");
/// `X-Computegate-Remaining-Flop` on admitted responses.
pub static REMAINING_HEADER: HeaderName = HeaderName::from_static("x-computegate-remaining-flop");
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
}

/// The ledger's typed answer (admitted, held with a reason, refused with a reason), defined
/// with the rest of the admission vocabulary in the policy crate.
pub use computegate_policy::admission::Outcome as AdmissionOutcome;

/// The ledger could not be asked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("compute ledger unavailable")]
pub struct LedgerUnavailable;

/// The port to the compute ledger.
pub trait ComputeLedger: Send + Sync + 'static {
    /// Reserves the job's estimate against every budget scope and records the decision.
    fn admit(&self, job: JobAdmission) -> BoxFuture<Result<AdmissionOutcome, LedgerUnavailable>>;

    /// Returns the reservation of an admitted job that will not run: forwarding failed or the
    /// upstream did not accept it (`reason` says which, for the audit record). Best effort — the
    /// implementation retries and logs; a release that still fails leaves the reservation
    /// counted until it leaves the rolling windows (it can only over-count, never admit more).
    fn release(&self, job_id: String, reason: String) -> BoxFuture<()>;
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
}

/// Reads, meters and admits one job submission; `Err` is what to answer instead (its problem
/// document comes from [`GatewayError::to_problem`], the one mapping to HTTP).
pub async fn admit_job(
    ledger: &dyn ComputeLedger,
    policy: Arc<Policy>,
    profile: Profile,
    body: ClientBody,
    headers: &HeaderMap,
    admission: (Principal, Arc<str>, String, IpAddr, bool),
) -> Result<Admitted, GatewayError> {
    let bytes = match Limited::new(body, JOB_BODY_CAP as usize).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(GatewayError::JobSpecTooLarge {
                limit: JOB_BODY_CAP,
            });
        }
        Err(_) => return Err(GatewayError::ClientBody),
    };
    let run_header = headers.get(&RUN_HEADER).and_then(|v| v.to_str().ok());
    let spec = parse_job_spec(
        profile,
        &bytes,
        run_header,
        &SpecLimits::from_policy(&policy),
    )
    .map_err(|e| GatewayError::InvalidJobSpec {
        profile,
        detail: e.to_string(),
    })?;
    let estimate =
        estimate(&spec, &policy).map_err(|e| GatewayError::JobNotEstimable(e.to_string()))?;
    let (principal, route, request_id, client_ip, frontier_restricted) = admission;
    let job = JobAdmission {
        principal,
        route,
        request_id,
        client_ip,
        spec,
        estimate,
        policy,
        frontier_restricted,
    };
    match ledger.admit(job).await {
        Err(LedgerUnavailable) => Err(GatewayError::LedgerUnavailable),
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
            let mut upstream_headers = Vec::new();
            if let Ok(job) = HeaderValue::from_str(&admitted.job_id) {
                upstream_headers.push((JOB_HEADER.clone(), job));
            }
            Ok(Admitted {
                job_id: admitted.job_id,
                body: bytes,
                upstream_headers,
                response_headers,
            })
        }
    }
}

/// A FLOP count as a header value in exponent form (`3.2826e23`).
fn flop_value(flop: f64) -> HeaderValue {
    HeaderValue::from_str(&format!("{flop:.4e}")).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_header_is_exponent_form() {
        assert_eq!(flop_value(3.2826e23), "3.2826e23");
        assert_eq!(flop_value(1e19), "1.0000e19");
    }
}
