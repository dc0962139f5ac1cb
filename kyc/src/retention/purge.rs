//! The retention run against the store: one transaction that claims the day (daily runs),
//! purges or redacts each class past its cutoff, and appends the one audit record.

use computegate_policy::RecordClass;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{RetentionCounts, RetentionPlan, RunKind};
use crate::accounts::Actor;
use crate::audit::{self, AuditAction, AuditEntry, REDACTED_DETAIL};
use crate::store::{DbTime, RetentionStore, StoreError, in_transaction};

/// Claims a UTC day for the daily run; no row inserted means another replica has it.
const CLAIM_DAY: &str =
    "INSERT INTO retention_runs (day, ran_at) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING";

/// Closed accounts past the cutoff that still carry their email and password.
const EXPIRED_ACCOUNTS: &str = "SELECT id FROM customers \
     WHERE status = 'closed' AND redacted_at IS NULL AND updated_at < $1";

/// Replaces one account's email (unique, so derived from the id) and password hash.
const REDACT_ACCOUNT: &str =
    "UPDATE customers SET email = $1, password_hash = '', redacted_at = $2 WHERE id = $3";

/// The `WHERE` of applications whose `verification` period has run out at cutoff `$3` (`a` the
/// application, `c` its customer): the application ended (rejected, expired or closed) before the
/// cutoff, or it is an individual's and its customer closed before the cutoff. An
/// organization's application follows its own end only: the organization outlives the member
/// who filed it.
macro_rules! application_ended {
    () => {
        "((a.status IN ('rejected', 'expired', 'closed') AND a.updated_at < $3) \
           OR (a.kind = 'individual' AND c.status = 'closed' AND c.updated_at < $3))"
    };
}

/// Purges the bytes of the documents of applications past their period
/// (`application_ended!`). Type, size and SHA-256 stay.
const PURGE_DOCUMENTS: &str = concat!(
    "UPDATE verification_documents SET ciphertext = $1, wrapped_key = $1, purged_at = $2 \
     WHERE purged_at IS NULL AND application_id IN ( \
        SELECT a.id FROM verification_applications a JOIN customers c ON c.id = a.customer_id \
        WHERE ",
    application_ended!(),
    ")"
);

/// Withdraws the sealed payload of applications past their period (`application_ended!`) that
/// no longer identify a customer who may hold compute: the customer is closed, or has a newer
/// application past the draft stage. A customer's latest such application stays while the
/// account is open, because re-screening against every new list and the jurisdiction rules read
/// it (a rejected or lapsed applicant keeps the trial tier).
const WITHDRAW_PAYLOADS: &str = concat!(
    "UPDATE verification_applications SET payload_sealed = $1, identity_purged_at = $2 \
     WHERE identity_purged_at IS NULL AND id IN ( \
        SELECT a.id FROM verification_applications a JOIN customers c ON c.id = a.customer_id \
        WHERE ",
    application_ended!(),
    " AND (c.status = 'closed' OR EXISTS ( \
            SELECT 1 FROM verification_applications n \
            WHERE n.customer_id = a.customer_id AND n.status <> 'draft' \
              AND (n.created_at > a.created_at OR (n.created_at = a.created_at AND n.id > a.id)))))"
);

/// Withdraws the sealed identity of end customers whose account closed before the cutoff: a
/// registration has no end of its own, and a closed account runs no more jobs. The row and id
/// stay (jobs, crossings and reports name it).
const WITHDRAW_END_CUSTOMERS: &str = "UPDATE end_customers \
     SET payload_sealed = $1, identity_purged_at = $2 \
     WHERE identity_purged_at IS NULL AND id IN ( \
        SELECT id FROM customers WHERE status = 'closed' AND updated_at < $3)";

/// Deletes the identity keys (keyed hashes that find a reseller's second registration of one
/// identity) of end customers whose identity was withdrawn: derived from the identity, they go
/// with it, and a registration of that identity afterwards is a new end customer.
const DROP_WITHDRAWN_IDENTITY_KEYS: &str = "DELETE FROM end_customer_identities \
     WHERE end_customer_id IN (SELECT id FROM end_customers WHERE identity_purged_at IS NOT NULL)";

/// Deletes screening results older than the cutoff.
const PURGE_SCREENING: &str = "DELETE FROM screening_results WHERE screened_at < $1";

/// Deletes usage events older than the cutoff of jobs that take no more usage.
const PURGE_USAGE: &str = "DELETE FROM ledger_usage_events WHERE occurred_at < $1 \
     AND job_id IN (SELECT id FROM ledger_jobs \
        WHERE status IN ('finished', 'released', 'closed', 'denied'))";

/// Deletes access-log rows older than the cutoff.
const PURGE_ACCESS_LOG: &str = "DELETE FROM access_log WHERE occurred_at < $1";

/// Redacts audit records older than the cutoff (the triggers allow exactly this change).
const REDACT_AUDIT: &str = "UPDATE audit_log SET actor_ip = NULL, detail = $1, redacted_at = $2 \
     WHERE redacted_at IS NULL AND at < $3";

/// The highest redacted audit position.
const REDACTED_THROUGH: &str =
    "SELECT COALESCE(MAX(seq), 0) FROM audit_log WHERE redacted_at IS NOT NULL";

// === impl RetentionStore ===

impl RetentionStore<'_> {
    /// Runs retention as `kind` says at `now` and returns the counts per class, or `None` for a
    /// daily run whose day another replica (or an earlier tick) already took. A real run
    /// appends one audit record as `actor`; a dry run rolls everything back.
    pub async fn run_retention(
        &self,
        plan: &RetentionPlan,
        kind: RunKind,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Option<RetentionCounts>, StoreError> {
        let at = DbTime::new(now);
        let cutoff = |class| plan.cutoff(class).map(DbTime::new);
        in_transaction!(self.store, |tx| {
            if let RunKind::Daily(day) = kind {
                let claimed = sqlx::query(CLAIM_DAY)
                    .bind(day.to_string())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if claimed == 0 {
                    return Ok(None);
                }
            }
            let mut counts = RetentionCounts {
                counts: Default::default(),
                redacted_through_seq: 0,
            };
            for class in plan.classes() {
                let Some(before) = cutoff(class) else {
                    continue;
                };
                let n = match class {
                    RecordClass::Accounts => {
                        let ids: Vec<(Uuid,)> = sqlx::query_as(EXPIRED_ACCOUNTS)
                            .bind(before)
                            .fetch_all(&mut *tx)
                            .await?;
                        for (id,) in &ids {
                            sqlx::query(REDACT_ACCOUNT)
                                .bind(format!("redacted-{}@invalid", id.simple()))
                                .bind(at)
                                .bind(id)
                                .execute(&mut *tx)
                                .await?;
                        }
                        ids.len() as u64
                    }
                    RecordClass::Verification => {
                        // Documents' bytes, applications' payloads and end customers'
                        // identities: one count, every record whose content went.
                        let mut n = 0;
                        for sql in [PURGE_DOCUMENTS, WITHDRAW_PAYLOADS, WITHDRAW_END_CUSTOMERS] {
                            n += sqlx::query(sql)
                                .bind(Vec::<u8>::new())
                                .bind(at)
                                .bind(before)
                                .execute(&mut *tx)
                                .await?
                                .rows_affected();
                        }
                        sqlx::query(DROP_WITHDRAWN_IDENTITY_KEYS)
                            .execute(&mut *tx)
                            .await?;
                        n
                    }
                    RecordClass::Screening => sqlx::query(PURGE_SCREENING)
                        .bind(before)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                    RecordClass::Ledger => sqlx::query(PURGE_USAGE)
                        .bind(before)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                    RecordClass::AccessLog => sqlx::query(PURGE_ACCESS_LOG)
                        .bind(before)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                    RecordClass::AuditChain => sqlx::query(REDACT_AUDIT)
                        .bind(REDACTED_DETAIL)
                        .bind(at)
                        .bind(before)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                };
                counts.counts.insert(class.as_str(), n);
            }
            let (through,): (i64,) = sqlx::query_as(REDACTED_THROUGH).fetch_one(&mut *tx).await?;
            counts.redacted_through_seq = through;
            if kind == RunKind::DryRun {
                // Dropping the transaction rolls every statement above back.
                return Ok(Some(counts));
            }
            let entry = AuditEntry::new(now, actor, AuditAction::RetentionApplied, "retention")
                .with_detail(counts.audit_detail(plan, kind));
            audit::append(&mut tx, &entry).await?;
            Ok(Some(counts))
        })
    }
}
