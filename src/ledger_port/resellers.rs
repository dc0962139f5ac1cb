//! Whom a job is metered to when resellers are involved: a reseller's job runs for the end
//! customer it names — which must be one of its own, cleared and active — and is metered,
//! thresholded and reported as that end customer's; anything else is refused with an
//! [`EndCustomerRefusal`]. A refusal that shows the reseller not passing identities through is
//! kept, and the policy's pass-through rule may flag the reseller for review.
//!
//! Everything is read live from the store (not the principal cache): a suspension or a staff
//! decision counts on the next job, on every replica.

use computegate_gateway::admission::{AdmitError, JobAdmission, LedgerUnavailable};
use computegate_kyc::Store;
use computegate_kyc::verification::{EndCustomerStanding, ResellerError, ResellerStatus};
use computegate_policy::admission::EndCustomerRefusal;
use computegate_policy::resellers::{PassThrough, PassThroughCounts};
use time::OffsetDateTime;
use uuid::Uuid;

/// The account a job is metered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Account {
    /// The caller's own account (not a reseller).
    Own(Uuid),
    /// A reseller's end customer.
    EndCustomer {
        /// The end customer's account.
        id: Uuid,
        /// The reseller (its organization).
        reseller: Uuid,
    },
}

// === impl Account ===

impl Account {
    /// The account id the ledger meters.
    pub(super) fn id(self) -> Uuid {
        match self {
            Account::Own(id) | Account::EndCustomer { id, .. } => id,
        }
    }
}

/// The account `job` of `caller` is metered to, or why it is refused. `Err` only when the
/// store cannot be read (fail closed).
pub(super) async fn account_of(
    store: &Store,
    job: &JobAdmission,
    caller: Uuid,
) -> Result<Result<Account, EndCustomerRefusal>, AdmitError> {
    let named = job.spec.end_customer.as_deref();
    let reseller = store
        .verification()
        .reseller_of(caller)
        .await
        .map_err(unavailable)?;
    let decided = match (reseller, named) {
        (None, None) => return Ok(Ok(Account::Own(caller))),
        (None, Some(_)) => Err(EndCustomerRefusal::NotReseller),
        (Some((_, ResellerStatus::Suspended)), _) => Err(EndCustomerRefusal::ResellerSuspended),
        (Some(_), None) => Err(EndCustomerRefusal::Missing),
        (Some((reseller, _)), Some(named)) => end_customer(store, reseller, named).await?,
    };
    if let (Err(why), Some((reseller, _))) = (decided, reseller)
        && why.counts_against_pass_through()
    {
        count_refusal(store, job, reseller, why).await;
    }
    Ok(decided)
}

/// Whether `named` is a cleared end customer of `reseller`.
async fn end_customer(
    store: &Store,
    reseller: Uuid,
    named: &str,
) -> Result<Result<Account, EndCustomerRefusal>, AdmitError> {
    let Ok(id) = Uuid::parse_str(named) else {
        return Ok(Err(EndCustomerRefusal::Unknown));
    };
    let standing = store
        .verification()
        .end_customer_standing(reseller, id)
        .await
        .map_err(unavailable)?;
    Ok(match standing {
        EndCustomerStanding::Unknown => Err(EndCustomerRefusal::Unknown),
        EndCustomerStanding::NotCleared => Err(EndCustomerRefusal::NotCleared),
        EndCustomerStanding::Cleared => Ok(Account::EndCustomer { id, reseller }),
    })
}

/// Keeps a pass-through refusal and applies the policy's rule to the reseller's decisions
/// over its window. Best effort: the job is refused either way, and a refusal that cannot be
/// counted only delays a flag (logged).
async fn count_refusal(store: &Store, job: &JobAdmission, reseller: Uuid, why: EndCustomerRefusal) {
    let rule = job.policy.resellers();
    let now = OffsetDateTime::now_utc();
    let since = now - rule.window;
    let verification = store.verification();
    let counted = verification
        .record_reseller_refusal(reseller, why.as_str(), since, now)
        .await;
    let counts = match counted {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(reseller = %reseller, error = %e, "could not count a reseller's refused job");
            return;
        }
    };
    let judged = rule.judge(PassThroughCounts {
        refused: counts.refused,
        total: counts.total,
    });
    let PassThrough::Flag { share } = judged else {
        return;
    };
    match verification
        .flag_reseller(reseller, counts, share, now)
        .await
    {
        Ok(true) => {
            tracing::info!(reseller = %reseller, refused_share = share, "reseller flagged for review: end customers not passed through");
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(reseller = %reseller, error = %e, "could not flag a reseller for review");
        }
    }
}

fn unavailable(e: ResellerError) -> AdmitError {
    tracing::warn!(error = %e, "reseller lookup failed; refusing (fail closed)");
    LedgerUnavailable.into()
}
