//! Closing jobs that never sent a final usage event: `LedgerStore::expire_leases` (the lease sweep
//! closes every open job whose lease ended) and `LedgerStore::close_job` (a customer closes its own
//! job, staff close any with a reason). Each close is one transaction with its audit record.
//!
//! # Charge
//! The gateway cannot prove that a job without a final usage event did not run, so:
//! - **lease expiry** keeps the job's charge as it stands — its reservation (the estimate), or
//!   the measured usage when that is larger;
//! - **a customer's or staff's close** charges the measured usage when the platform reported
//!   any (the meter is evidence the job ran and how much), otherwise the reservation: a close is
//!   the customer's word only, and charging nothing would let a job run unmetered by closing it
//!   at once.
//!
//! Late usage events still reconcile a closed job: a `finished` event corrects its charge to the
//! measured amount (see `usage::apply`).
//!
//! # Several replicas
//! The sweep of every replica may pick the same expired job. Closing locks the job's budget rows
//! and then the job row (the order every ledger transaction uses) and re-checks, under the locks,
//! that the job is still open and its lease over; the second replica finds it closed and does
//! nothing. A job is expired once.

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::model::{JobStatus, LedgerError, MAX_ATTEMPTS, check_text, require_staff};
use super::sql::{BudgetKeys, JobClosing, LedgerTx};
use super::{audit, budgets};
use crate::accounts::{Actor, parse_column};
use crate::audit::{AuditAction, ChainTx};
use crate::names::stored_enum;
use crate::store::{DbTime, LedgerStore, in_transaction, on_pool};

/// Why a job was closed without a final usage event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Its lease (time limit plus grace) ended.
    LeaseExpired,
    /// Its customer closed it.
    Customer,
    /// Staff closed it, with a reason.
    Staff,
}

/// What a closed job is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseCharge {
    /// The usage the platform measured.
    Measured,
    /// Its reservation (or the measured usage, when larger): nothing proves it did not run.
    Reservation,
}

/// A customer's or staff member's close.
#[derive(Debug, Clone, Copy)]
pub struct JobClose<'a> {
    /// [`CloseReason::Customer`] or [`CloseReason::Staff`] (leases expire through
    /// [`LedgerStore::expire_leases`]).
    pub reason: CloseReason,
    /// Who closes it.
    pub actor: &'a Actor,
    /// Staff's reason (required for staff).
    pub note: Option<&'a str>,
    /// A customer closing its own job: any other customer's job is
    /// [`LedgerError::UnknownJob`] (answered 404, as if it did not exist).
    pub owner: Option<Uuid>,
}

/// A job just closed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClosedJob {
    /// The job.
    pub job_id: Uuid,
    /// Its customer.
    pub customer_id: Uuid,
    /// Now `closed`.
    pub status: JobStatus,
    /// Why.
    pub closed_reason: CloseReason,
    /// What it is charged.
    pub charge: CloseCharge,
    /// Measured FLOP.
    pub used_flop: f64,
    /// Charged beyond the measured FLOP.
    pub reserved_flop: f64,
    /// `used_flop + reserved_flop`.
    pub charged_flop: f64,
}

/// One run of the lease sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseSweep {
    /// Jobs this run closed.
    pub expired: Vec<Uuid>,
    /// Jobs whose close failed (retried by the next run).
    pub failed: usize,
}

/// How one close attempt ended.
enum Attempt {
    /// A linked-group change raced the locks; start over.
    Retry,
    /// The job was closed, or its lease extended, meanwhile (another replica's sweep).
    NotDue,
    /// Closed now.
    Closed(ClosedJob),
}

/// Who asks for the close.
#[derive(Clone, Copy)]
enum Closing<'a> {
    Expiry,
    By(&'a JobClose<'a>),
}

/// Most expired leases one sweep closes; the next sweep takes the rest.
const SWEEP_BATCH: i64 = 200;

// === impl CloseReason ===

stored_enum!(CloseReason {
    LeaseExpired => "lease_expired",
    Customer => "customer",
    Staff => "staff",
});

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// Closes every open job whose lease ended at or before `now` (at most a batch per call),
    /// each in its own transaction, charged at its reservation and audited
    /// `ledger.job.expired`. Safe to run on every replica at once (see the module docs).
    pub async fn expire_leases(&self, now: OffsetDateTime) -> Result<LeaseSweep, LedgerError> {
        let due: Vec<Uuid> = on_pool!(self.store, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM ledger_jobs WHERE status IN ('reserved', 'running') \
                 AND lease_expires_at <= $1 ORDER BY lease_expires_at, id LIMIT $2",
            )
            .bind(DbTime::new(now))
            .bind(SWEEP_BATCH)
            .fetch_all(pool)
            .await?
        });
        let mut sweep = LeaseSweep::default();
        for id in due {
            match self.close_with(id, Closing::Expiry, now).await {
                Ok(Some(closed)) => sweep.expired.push(closed.job_id),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "cannot expire the job's lease; retrying later");
                    sweep.failed += 1;
                }
            }
        }
        Ok(sweep)
    }

    /// A customer closes its own job or staff close any (see the module docs for the charge).
    /// [`LedgerError::UnknownJob`] for a job that does not exist or is another customer's;
    /// [`LedgerError::JobNotOpen`] for one already finished, closed, released, held or denied;
    /// [`LedgerError::NotStaff`] / [`LedgerError::Invalid`] for a staff close without staff or
    /// reason.
    pub async fn close_job(
        &self,
        job_id: Uuid,
        close: &JobClose<'_>,
        now: OffsetDateTime,
    ) -> Result<ClosedJob, LedgerError> {
        match close.reason {
            CloseReason::Staff => {
                require_staff(close.actor)?;
                match close.note {
                    Some(note) if !note.trim().is_empty() => check_text(note, "reason")?,
                    _ => return Err(LedgerError::Invalid("reason")),
                }
            }
            CloseReason::Customer if close.owner.is_some() => {}
            CloseReason::Customer | CloseReason::LeaseExpired => {
                return Err(LedgerError::Invalid("reason"));
            }
        }
        self.close_with(job_id, Closing::By(close), now)
            .await?
            .ok_or(LedgerError::UnknownJob)
    }

    async fn close_with(
        &self,
        job_id: Uuid,
        closing: Closing<'_>,
        now: OffsetDateTime,
    ) -> Result<Option<ClosedJob>, LedgerError> {
        for _ in 0..MAX_ATTEMPTS {
            let attempt = in_transaction!(self.store, |tx| close_in(&mut tx, job_id, closing, now)
                .await?);
            match attempt {
                Attempt::Retry => continue,
                Attempt::NotDue => return Ok(None),
                Attempt::Closed(c) => return Ok(Some(c)),
            }
        }
        Err(LedgerError::Contended)
    }
}

/// The close transaction body, generic over the backend.
async fn close_in<T: LedgerTx + ChainTx>(
    tx: &mut T,
    job_id: Uuid,
    closing: Closing<'_>,
    now: OffsetDateTime,
) -> Result<Attempt, LedgerError> {
    let Some(job) = tx.job(job_id, false).await? else {
        return Err(LedgerError::UnknownJob);
    };
    if let Closing::By(JobClose {
        owner: Some(owner), ..
    }) = closing
        && *owner != job.customer_id
    {
        return Err(LedgerError::UnknownJob);
    }
    if budgets::lock_for_job(tx, &job, now).await?.is_none() {
        return Ok(Attempt::Retry);
    }
    // Re-read under the locks: a usage event, a release or another replica's close may have
    // committed while this transaction waited.
    let job = tx.job(job_id, true).await?.ok_or(LedgerError::UnknownJob)?;
    let status: JobStatus = parse_column(&job.status, "ledger_jobs.status")?;
    if !matches!(status, JobStatus::Reserved | JobStatus::Running) {
        return match closing {
            Closing::Expiry => Ok(Attempt::NotDue),
            Closing::By(_) => Err(LedgerError::JobNotOpen { status }),
        };
    }
    if matches!(closing, Closing::Expiry) && job.lease_expires_at.is_none_or(|end| end > now) {
        return Ok(Attempt::NotDue);
    }
    let (reason, actor, note, action) = match closing {
        Closing::Expiry => (
            CloseReason::LeaseExpired,
            Actor::system("lease"),
            None,
            AuditAction::JobExpired,
        ),
        Closing::By(c) => (c.reason, c.actor.clone(), c.note, AuditAction::JobClosed),
    };
    let (charge, reserved) = close_charge(
        reason,
        job.used_flop,
        job.reserved_flop,
        job.accelerator_seconds,
    );
    tx.close_job(&JobClosing {
        id: job.id,
        reserved_flop: reserved,
        at: DbTime::new(now),
        reason: reason.as_str(),
        closed_by: &actor.name,
        note,
    })
    .await?;
    let keys = BudgetKeys {
        lineage: job.lineage_root,
        customer: job.customer_id,
        organization: job.organization_id,
    };
    tx.add_to_budgets(keys, 0.0, reserved - job.reserved_flop)
        .await?;
    let closed = ClosedJob {
        job_id: job.id,
        customer_id: job.customer_id,
        status: JobStatus::Closed,
        closed_reason: reason,
        charge,
        used_flop: job.used_flop,
        reserved_flop: reserved,
        charged_flop: job.used_flop + reserved,
    };
    let detail = json!({
        "customer_id": job.customer_id,
        "closed_reason": reason,
        "note": note,
        "previous_status": status,
        // RFC 3339, like every timestamp the APIs show (the audit API shows this detail).
        "lease_expires_at": job.lease_expires_at.and_then(|t| t.format(&Rfc3339).ok()),
        "charge": charge,
        "used_flop": closed.used_flop,
        "reserved_flop": closed.reserved_flop,
        "charged_flop": closed.charged_flop,
    });
    let entry = audit::closed(job.id, &actor, action, detail, now);
    audit::record(tx, &[entry]).await?;
    Ok(Attempt::Closed(closed))
}

/// What a job closed for `reason` is charged, and the FLOP that stays reserved (the part of the
/// charge not backed by measured usage). Pure; see the module docs for why.
pub fn close_charge(
    reason: CloseReason,
    used_flop: f64,
    reserved_flop: f64,
    accelerator_seconds: f64,
) -> (CloseCharge, f64) {
    let measured = used_flop > 0.0 || accelerator_seconds > 0.0;
    match reason {
        CloseReason::Customer | CloseReason::Staff if measured => (CloseCharge::Measured, 0.0),
        CloseReason::LeaseExpired | CloseReason::Customer | CloseReason::Staff => {
            (CloseCharge::Reservation, reserved_flop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_lease_keeps_the_reservation_charged() {
        assert_eq!(
            close_charge(CloseReason::LeaseExpired, 0.0, 1000.0, 0.0),
            (CloseCharge::Reservation, 1000.0)
        );
        // Partly measured: the measured part plus what is left of the estimate.
        assert_eq!(
            close_charge(CloseReason::LeaseExpired, 300.0, 700.0, 30.0),
            (CloseCharge::Reservation, 700.0)
        );
    }

    #[test]
    fn a_close_charges_measured_usage_when_there_is_any() {
        for reason in [CloseReason::Customer, CloseReason::Staff] {
            assert_eq!(
                close_charge(reason, 300.0, 700.0, 30.0),
                (CloseCharge::Measured, 0.0)
            );
            assert_eq!(
                close_charge(reason, 0.0, 1000.0, 0.0),
                (CloseCharge::Reservation, 1000.0),
                "nothing measured: the reservation"
            );
        }
    }

    #[test]
    fn reasons_round_trip() {
        for r in [
            CloseReason::LeaseExpired,
            CloseReason::Customer,
            CloseReason::Staff,
        ] {
            assert_eq!(r.as_str().parse::<CloseReason>().unwrap(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
