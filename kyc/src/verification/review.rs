//! Store operations on the staff side: the queue, the case file, claims, decisions (with the
//! four-eyes rule in the state machine), screening overrides, customer-level suspension, and
//! the expiry sweep for the background task.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::applications::{REASON, REVIEW, ReviewFile, apply, system};
use super::records::{
    AppRow, CaseTx, CustomerChange, Extra, Loaded, PAYLOAD_OF, SealedPayload, app_select,
    open_json, open_payload, seal_json,
};
use super::state::{ApprovalEvidence, CaseContext, Event, Party, StaffParty, check_conflict};
use super::{
    ApplicationStatus, CustomerCaller, StaffApplicationView, StaffCaller, VerificationError,
};
use crate::accounts::{CustomerStatus, StaffRole, Tier, parse_column};
use crate::audit::{self, AuditAction, AuditEntry};
use crate::crypto::MasterKey;
use crate::store::{DbTime, VerificationStore, in_transaction, on_pool};

/// Largest queue page.
pub const MAX_QUEUE_PAGE: u32 = 1000;

/// Roles that may read case files and the queue.
const READERS: &[StaffRole] = &[
    StaffRole::Reviewer,
    StaffRole::SeniorReviewer,
    StaffRole::Auditor,
];

/// Roles that may claim cases.
const CLAIMERS: &[StaffRole] = &[StaffRole::Reviewer, StaffRole::SeniorReviewer];

/// A staff decision on a case in `pending_review`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaffDecision {
    /// Approve to a tier (the top tier records the first of two approvals).
    Approve {
        /// The tier to grant.
        tier: Tier,
    },
    /// Reject.
    Reject,
    /// Ask the applicant for more.
    RequestInfo,
}

/// A staff decision with its reason, as the staff API receives it
/// (`{"action","tier","reason"}`) plus the policy's re-verification period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRequest {
    /// What to do.
    pub action: StaffDecision,
    /// Why (required, 1..=1000 characters).
    pub reason: String,
    /// Re-verification period of the tier being granted (policy data); `None` for no expiry.
    pub reverify_after: Option<Duration>,
    /// For an approval: the evidence the tier's policy requires and the reviewer's manual checks
    /// (empty for other actions).
    pub evidence: ApprovalEvidence,
}

/// Which applications the queue lists; unset filters match everything. Oldest submission
/// first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    /// Only this status (`None`: `pending_review`).
    pub status: Option<ApplicationStatus>,
    /// Only risk scores at or above this.
    pub min_risk: Option<u8>,
    /// Only applications submitted at or before this time (older than an age).
    pub submitted_before: Option<OffsetDateTime>,
    /// Only this primary country (ISO 3166-1 alpha-2).
    pub country: Option<String>,
    /// Page size; 0 means 100, at most [`MAX_QUEUE_PAGE`].
    pub limit: u32,
    /// Keyset cursor: only applications after this `(queued_at, id)` in queue order (pass
    /// [`QueueItem::cursor`] of the last item of the previous page to walk the whole queue).
    pub after: Option<(OffsetDateTime, Uuid)>,
}

/// One queue line: clear columns only, nothing personal.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct QueueItem {
    /// Application id.
    pub id: Uuid,
    /// Applicant.
    pub customer_id: Uuid,
    /// Individual or organization.
    #[schema(value_type = String)]
    pub kind: super::ApplicantKind,
    /// Status.
    #[schema(value_type = String)]
    pub status: ApplicationStatus,
    /// Tier applied for.
    pub requested_tier: Option<String>,
    /// Residence or headquarters country.
    pub country: Option<String>,
    /// Risk score.
    pub risk_score: Option<i64>,
    /// Screening decision (before override).
    pub screening_decision: Option<String>,
    /// Whether staff overrode the screening.
    pub screening_overridden: bool,
    /// Latest IDV outcome.
    pub idv_outcome: Option<String>,
    /// Last submission.
    #[serde(with = "time::serde::rfc3339::option")]
    pub submitted_at: Option<OffsetDateTime>,
    /// Creation.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who claimed it.
    pub claimed_by: Option<Uuid>,
}

// === impl QueueItem ===

impl QueueItem {
    /// The item's place in queue order, for [`QueueFilter::after`]: its last submission, or its
    /// creation for a draft never submitted (so the order is total whatever the status).
    pub fn cursor(&self) -> (OffsetDateTime, Uuid) {
        (self.submitted_at.unwrap_or(self.created_at), self.id)
    }
}

/// The result of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionOutcome {
    /// Status after the decision (`pending_review` after a first top-tier approval).
    pub status: ApplicationStatus,
    /// The customer's new tier, when the decision approved.
    pub granted_tier: Option<Tier>,
}

/// Counts for metrics: applications per status and the oldest waiting review.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApplicationStats {
    /// Applications per status.
    pub by_status: Vec<(ApplicationStatus, i64)>,
    /// Submission time of the oldest application in `pending_review`.
    pub oldest_pending: Option<OffsetDateTime>,
}

// === impl VerificationStore ===

impl VerificationStore<'_> {
    /// The staff member as the state machine needs them: role and email from the store (a
    /// disabled or unknown user is refused), organizations from the caller and from a customer
    /// account with the same email.
    pub(crate) async fn staff_party(
        &self,
        caller: &StaffCaller,
    ) -> Result<StaffParty, VerificationError> {
        let row: Option<(String, String, Option<OffsetDateTime>)> = on_pool!(self.store, |pool| {
            sqlx::query_as("SELECT role, email, disabled_at FROM staff_users WHERE id = $1")
                .bind(caller.staff_id)
                .fetch_optional(pool)
                .await?
        });
        match row {
            Some((role, email, None)) => {
                // Tied to the caller's organizations and to those of a customer account the
                // staff member holds under the same email (see `conflict`).
                let mut organization_ids = caller.organization_ids.clone();
                for org in self.organizations_of_email(&email).await? {
                    if !organization_ids.contains(&org) {
                        organization_ids.push(org);
                    }
                }
                Ok(StaffParty {
                    id: caller.staff_id,
                    role: parse_column(&role, "staff_users.role")?,
                    email,
                    organization_ids,
                })
            }
            _ => Err(VerificationError::StaffUnknown),
        }
    }

    /// The review queue (see [`QueueFilter`]).
    pub async fn application_queue(
        &self,
        filter: &QueueFilter,
    ) -> Result<Vec<QueueItem>, VerificationError> {
        const SQL: &str = concat!(
            app_select!(),
            "WHERE a.status = $1 AND ($2 IS NULL OR a.risk_score >= $2) \
             AND ($3 IS NULL OR a.submitted_at <= $3) AND ($4 IS NULL OR a.country = $4) \
             AND ($6 IS NULL OR COALESCE(a.submitted_at, a.created_at) > $6 \
                  OR (COALESCE(a.submitted_at, a.created_at) = $6 AND a.id > $7)) \
             ORDER BY COALESCE(a.submitted_at, a.created_at), a.id LIMIT $5"
        );
        let status = filter.status.unwrap_or(ApplicationStatus::PendingReview);
        let limit = match filter.limit {
            0 => 100,
            n => n.min(MAX_QUEUE_PAGE),
        };
        let rows: Vec<AppRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(status.as_str())
            .bind(filter.min_risk.map(i64::from))
            .bind(filter.submitted_before.map(DbTime::new))
            .bind(filter.country.as_deref())
            .bind(i64::from(limit))
            .bind(filter.after.map(|(at, _)| DbTime::new(at)))
            .bind(filter.after.map(|(_, id)| id))
            .fetch_all(pool)
            .await?);
        rows.into_iter()
            .map(|r| {
                Ok(QueueItem {
                    id: r.id,
                    customer_id: r.customer_id,
                    kind: r.kind()?,
                    status: r.status()?,
                    requested_tier: r.requested_tier,
                    country: r.country,
                    risk_score: r.risk_score,
                    screening_decision: r.screening_decision,
                    screening_overridden: r.screening_overridden_by.is_some(),
                    idv_outcome: r.idv_outcome,
                    submitted_at: r.submitted_at,
                    created_at: r.created_at,
                    claimed_by: r.claimed_by,
                })
            })
            .collect()
    }

    /// The full case file for staff (reviewers, senior reviewers, auditors not tied to the
    /// applicant), decrypted; the read itself is audited (`kyc.application.viewed`).
    pub async fn application_for_staff(
        &self,
        key: &MasterKey,
        staff: &StaffCaller,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<StaffApplicationView, VerificationError> {
        let party = self.staff_party(staff).await?;
        if !READERS.contains(&party.role) {
            return Err(VerificationError::RoleNotPermitted);
        }
        let row: Option<AppRow> = on_pool!(self.store, |pool| sqlx::query_as(concat!(
            app_select!(),
            "WHERE a.id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?);
        let row = row.ok_or(VerificationError::NotFound)?;
        check_conflict(&party, &row.applicant()?)?;
        let application = self.view(key, &row).await?;
        let review: Option<Vec<u8>> = on_pool!(self.store, |pool| sqlx::query_scalar(
            "SELECT review_sealed FROM verification_applications WHERE id = $1"
        )
        .bind(id)
        .fetch_one(pool)
        .await?);
        let review: Option<ReviewFile> = review
            .map(|sealed| open_json(key, id, REVIEW, &sealed))
            .transpose()?;
        let approvals = self.approvals_of(id).await?;
        let entry = AuditEntry::new(
            now,
            &staff.actor(),
            AuditAction::ApplicationViewed,
            format!("application:{id}"),
        )
        .with_detail(serde_json::json!({ "role": party.role }));
        self.store.audit().record_audit(&entry).await?;
        Ok(StaffApplicationView {
            application,
            customer_id: row.customer_id,
            customer_email: row.email.clone(),
            organization_id: row.organization_id,
            screening: row.screening()?,
            screening_parties: review
                .as_ref()
                .map(|r| r.screening.parties.clone())
                .unwrap_or_default(),
            risk: review.map(|r| r.risk),
            idv_outcome: row.idv()?,
            approvals,
            claimed_by: row.claimed_by,
            version: row.version,
        })
    }

    /// Claims a case in `pending_review` for the calling reviewer (idempotent for the same
    /// reviewer; another's claim is [`VerificationError::ClaimedByOther`]).
    pub async fn claim_application(
        &self,
        staff: &StaffCaller,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        self.set_claim(staff, id, true, now).await
    }

    /// Releases the calling reviewer's claim.
    pub async fn unclaim_application(
        &self,
        staff: &StaffCaller,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        self.set_claim(staff, id, false, now).await
    }

    async fn set_claim(
        &self,
        staff: &StaffCaller,
        id: Uuid,
        claim: bool,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        let party = self.staff_party(staff).await?;
        if !CLAIMERS.contains(&party.role) {
            return Err(VerificationError::RoleNotPermitted);
        }
        in_transaction!(self.store, |tx| {
            let loaded = tx.load_case(id).await?.ok_or(VerificationError::NotFound)?;
            check_conflict(&party, &loaded.row.applicant()?)?;
            let status = loaded.row.status()?;
            if status != ApplicationStatus::PendingReview {
                return Err(super::TransitionError::NotAllowed {
                    from: status,
                    event: if claim { "claim" } else { "unclaim" },
                }
                .into());
            }
            match loaded.row.claimed_by {
                Some(other) if other != staff.staff_id => {
                    return Err(VerificationError::ClaimedByOther);
                }
                _ => {}
            }
            let (by, at) = if claim {
                (Some(staff.staff_id), Some(DbTime::new(now)))
            } else {
                (None, None)
            };
            let done = sqlx::query(
                "UPDATE verification_applications SET claimed_by = $1, claimed_at = $2, \
                 updated_at = $3, version = version + 1 WHERE id = $4 AND version = $5",
            )
            .bind(by)
            .bind(at)
            .bind(DbTime::new(now))
            .bind(id)
            .bind(loaded.row.version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(VerificationError::ConcurrentUpdate);
            }
            let action = if claim {
                AuditAction::ApplicationClaimed
            } else {
                AuditAction::ApplicationUnclaimed
            };
            let entry = AuditEntry::new(now, &staff.actor(), action, format!("application:{id}"));
            audit::append(&mut tx, &entry).await?;
        });
        Ok(())
    }

    /// Decides a case in `pending_review` (see [`DecisionRequest`]): approve to a tier, reject,
    /// or request information, with a reason (sealed; shown to the applicant for rejections
    /// and requests). Approval
    /// needs a cleared screening; the top tier two distinct senior reviewers and a compliance
    /// plan. On approval the customer's tier changes in the same transaction (and an older
    /// approval of theirs is superseded). A case claimed by another reviewer is refused,
    /// except for the second approval of the top tier.
    pub async fn decide_application(
        &self,
        key: &MasterKey,
        staff: &StaffCaller,
        id: Uuid,
        request: DecisionRequest,
        now: OffsetDateTime,
    ) -> Result<DecisionOutcome, VerificationError> {
        let DecisionRequest {
            action: decision,
            reason,
            reverify_after,
            evidence,
        } = request;
        let reason = reason.as_str();
        let party = self.staff_party(staff).await?;
        let event = match &decision {
            StaffDecision::Approve { tier } => Event::Approve {
                tier: tier.clone(),
                reason: reason.to_owned(),
                evidence,
            },
            StaffDecision::Reject => Event::Reject {
                reason: reason.to_owned(),
            },
            StaffDecision::RequestInfo => Event::RequestInfo {
                reason: reason.to_owned(),
            },
        };
        let reason_sealed = seal_json(key, id, REASON, &reason.trim())?;
        let actor = staff.actor();
        let outcome = in_transaction!(self.store, |tx| {
            let loaded = tx.load_case(id).await?.ok_or(VerificationError::NotFound)?;
            let ctx = CaseContext {
                applicant: loaded.row.applicant()?,
                has_compliance_plan: tx.has_compliance_plan(id).await?,
                idv_verified: loaded.row.idv()? == Some(super::IdvOutcome::Verified),
                reverify_after,
                now,
            };
            let mut t = loaded
                .case
                .clone()
                .apply(&Party::Staff(party.clone()), event, &ctx)?;
            if let (Some(other), super::state::Case::PendingReview { approvals, .. }) =
                (loaded.row.claimed_by, &loaded.case)
            {
                let second_approval =
                    matches!(decision, StaffDecision::Approve { .. }) && !approvals.is_empty();
                if other != staff.staff_id && !second_approval {
                    return Err(VerificationError::ClaimedByOther);
                }
            }
            let granted = match &t.next {
                super::state::Case::Approved(g) => Some(g.tier.clone()),
                _ => None,
            };
            if let Some(tier) = &granted {
                let change = CustomerChange::Tier(tier.clone());
                let previous = tx
                    .change_customer(loaded.row.customer_id, &change, &actor, reason, now)
                    .await?;
                if let Some(map) = t.detail.as_object_mut() {
                    map.insert("customer_tier".into(), serde_json::json!(tier));
                    map.insert("previous_tier".into(), serde_json::json!(previous));
                }
                // Link the customer with accounts sharing an owner, card, document or
                // organization, before the audit records below (it locks budget rows).
                let sealed: SealedPayload = sqlx::query_as(PAYLOAD_OF)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let payload = open_payload(key, id, &sealed)?;
                let (customer, org) = (loaded.row.customer_id, loaded.row.organization_id);
                // A KYB approval establishes the organization (and its owner) first.
                let (org, established) =
                    super::kyb::establish(&mut tx, customer, org, &payload, &actor, now).await?;
                super::linking::link_approved(&mut tx, key, customer, org, &payload, now).await?;
                if let Some(entry) = &established {
                    audit::append(&mut tx, entry).await?;
                }
            }
            let status = t.next.status();
            let extra = Extra {
                reason_sealed: Some(reason_sealed),
                ..Extra::default()
            };
            tx.persist(&loaded, &t, extra, &actor, now).await?;
            if matches!(decision, StaffDecision::Reject) && confirmed_hit(&loaded.case) {
                // Rejecting a case whose screening is a standing hit confirms the match: the
                // customer keeps no compute, not even the trial.
                let detail = serde_json::json!({ "application_id": id });
                super::suspension::suspend(
                    &mut tx,
                    loaded.row.customer_id,
                    super::SuspensionReason::DeniedParty,
                    super::SUSPENDED_ACTION,
                    detail,
                    &actor,
                    now,
                )
                .await?;
            }
            if granted.is_some() {
                // Older approvals of this customer are replaced by this one. Every other writer
                // of those rows locks the customer row first, which this transaction holds.
                let older: Vec<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM verification_applications \
                     WHERE customer_id = $1 AND status = 'approved' AND id <> $2",
                )
                .bind(loaded.row.customer_id)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                for old in older {
                    let old = tx
                        .load_case(old)
                        .await?
                        .ok_or(VerificationError::NotFound)?;
                    let t = apply(&old, &Party::System, Event::Supersede, now)?;
                    tx.persist(&old, &t, Extra::default(), &system(), now)
                        .await?;
                }
            }
            DecisionOutcome {
                status,
                granted_tier: granted,
            }
        });
        Ok(outcome)
    }

    /// Rules a `review` / `hit` screening match a false positive (a `hit` needs a senior
    /// reviewer), which makes the case approvable.
    pub async fn override_application_screening(
        &self,
        staff: &StaffCaller,
        id: Uuid,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        let party = Party::Staff(self.staff_party(staff).await?);
        in_transaction!(self.store, |tx| {
            let loaded = tx.load_case(id).await?.ok_or(VerificationError::NotFound)?;
            let ctx = context(&loaded, now)?;
            let t = loaded.case.clone().apply(
                &party,
                Event::OverrideScreening {
                    reason: reason.to_owned(),
                },
                &ctx,
            )?;
            tx.persist(&loaded, &t, Extra::default(), &staff.actor(), now)
                .await?;
        });
        Ok(())
    }

    /// Suspends a customer: status `suspended` (refresh tokens revoked) and their approved
    /// application `approved → suspended`, in one transaction with the audit record.
    /// Callers publish `Notice::CustomerChanged` afterwards.
    pub async fn suspend_customer(
        &self,
        staff: &StaffCaller,
        customer_id: Uuid,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        self.customer_action(staff, customer_id, CustomerAction::Suspend, reason, now)
            .await
    }

    /// Lifts a suspension (senior reviewer or admin): status `active`, application
    /// `suspended → approved`.
    pub async fn resume_customer(
        &self,
        staff: &StaffCaller,
        customer_id: Uuid,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        self.customer_action(staff, customer_id, CustomerAction::Resume, reason, now)
            .await
    }

    /// Closes a customer for good (senior reviewer or admin): status `closed`, tier
    /// `unverified`, application `approved|suspended → closed`.
    pub async fn close_customer(
        &self,
        staff: &StaffCaller,
        customer_id: Uuid,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        self.customer_action(staff, customer_id, CustomerAction::Close, reason, now)
            .await
    }

    async fn customer_action(
        &self,
        staff: &StaffCaller,
        customer_id: Uuid,
        action: CustomerAction,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        let party = self.staff_party(staff).await?;
        let allowed: &[StaffRole] = match action {
            CustomerAction::Suspend => &[
                StaffRole::Reviewer,
                StaffRole::SeniorReviewer,
                StaffRole::Admin,
            ],
            CustomerAction::Resume | CustomerAction::Close => {
                &[StaffRole::SeniorReviewer, StaffRole::Admin]
            }
        };
        if !allowed.contains(&party.role) {
            return Err(VerificationError::RoleNotPermitted);
        }
        let reason_ok =
            super::state::MAX_REASON_CHARS >= reason.chars().count() && !reason.trim().is_empty();
        if !reason_ok {
            return Err(super::TransitionError::ReasonRequired.into());
        }
        let actor = staff.actor();
        let party = Party::Staff(party);
        let (event_for, status, from) = action.parts(reason);
        in_transaction!(self.store, |tx| {
            let app: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM verification_applications WHERE customer_id = $1 \
                 AND status IN ($2, $3) ORDER BY created_at DESC LIMIT 1",
            )
            .bind(customer_id)
            .bind(from[0].as_str())
            .bind(from[from.len() - 1].as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let loaded = match app {
                Some(app) => tx.load_case(app).await?,
                None => None,
            };
            // Conflict checks need the applicant; without an application, check the customer.
            let applicant = match &loaded {
                Some(l) => l.row.applicant()?,
                None => {
                    let row: Option<(String, Option<Uuid>, String)> = sqlx::query_as(
                        "SELECT email, organization_id, kind FROM customers WHERE id = $1",
                    )
                    .bind(customer_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let (email, organization_id, kind) = row.ok_or(VerificationError::NotFound)?;
                    super::state::Applicant {
                        customer_id,
                        email,
                        organization_id,
                        kind: parse_column(&kind, "customers.kind")?,
                    }
                }
            };
            if let Party::Staff(s) = &party {
                check_conflict(s, &applicant)?;
            }
            let transition = match &loaded {
                Some(l) => Some(l.case.clone().apply(&party, event_for, &context(l, now)?)?),
                None => None,
            };
            tx.change_customer(
                customer_id,
                &CustomerChange::Status(status),
                &actor,
                reason,
                now,
            )
            .await?;
            if matches!(action, CustomerAction::Close) {
                tx.change_customer(
                    customer_id,
                    &CustomerChange::Tier(Tier::unverified()),
                    &actor,
                    reason,
                    now,
                )
                .await?;
            }
            match (&loaded, transition) {
                (Some(l), Some(t)) => tx.persist(l, &t, Extra::default(), &actor, now).await?,
                _ => {
                    let entry = AuditEntry::new(
                        now,
                        &actor,
                        AuditAction::CustomerStatusChanged,
                        format!("customer:{customer_id}"),
                    )
                    .with_detail(serde_json::json!({
                        "status": status.as_str(),
                        "reason": reason.trim(),
                    }));
                    audit::append(&mut tx, &entry).await?;
                }
            }
        });
        Ok(())
    }

    /// Lets every approval whose re-verification is due at `now` lapse (`approved → expired`),
    /// dropping the customer to `unverified` when that approval's tier is their current tier.
    /// One transaction per application; returns the customers whose tier dropped (publish
    /// `Notice::CustomerChanged` for each). For a periodic background task.
    pub async fn expire_due(&self, now: OffsetDateTime) -> Result<Vec<Uuid>, VerificationError> {
        let due: Vec<Uuid> = on_pool!(self.store, |pool| sqlx::query_scalar(
            "SELECT id FROM verification_applications WHERE status = 'approved' \
             AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT 1000"
        )
        .bind(DbTime::new(now))
        .fetch_all(pool)
        .await?);
        let mut dropped = Vec::new();
        for id in due {
            let customer = in_transaction!(self.store, |tx| {
                let Some(loaded) = tx.load_case(id).await? else {
                    continue;
                };
                let Ok(mut t) = apply(&loaded, &Party::System, Event::Expire, now) else {
                    continue; // changed since the scan
                };
                let granted = loaded.row.granted_tier()?;
                // A no-op update: locks the customer row first, like every other writer of an
                // approved application (see `decide_application`).
                let current: String = sqlx::query_scalar(
                    "UPDATE customers SET updated_at = updated_at WHERE id = $1 RETURNING tier",
                )
                .bind(loaded.row.customer_id)
                .fetch_one(&mut *tx)
                .await?;
                let lapse = granted.as_ref().is_some_and(|g| g.as_str() == current);
                if lapse {
                    let change = CustomerChange::Tier(Tier::unverified());
                    tx.change_customer(
                        loaded.row.customer_id,
                        &change,
                        &system(),
                        "re-verification due",
                        now,
                    )
                    .await?;
                    if let Some(map) = t.detail.as_object_mut() {
                        map.insert("customer_tier".into(), serde_json::json!(Tier::UNVERIFIED));
                    }
                }
                tx.persist(&loaded, &t, Extra::default(), &system(), now)
                    .await?;
                lapse.then_some(loaded.row.customer_id)
            });
            dropped.extend(customer);
        }
        Ok(dropped)
    }

    /// Counts for the metrics exporter.
    pub async fn application_stats(&self) -> Result<ApplicationStats, VerificationError> {
        let rows: Vec<(String, i64)> = on_pool!(self.store, |pool| {
            sqlx::query_as(
            "SELECT status, COUNT(*) FROM verification_applications GROUP BY status ORDER BY status"
        )
        .fetch_all(pool)
        .await?
        });
        let oldest: Option<OffsetDateTime> = on_pool!(self.store, |pool| {
            sqlx::query_scalar(
            "SELECT submitted_at FROM verification_applications WHERE status = 'pending_review' \
             ORDER BY submitted_at LIMIT 1"
        )
        .fetch_optional(pool)
        .await?
        .flatten()
        });
        Ok(ApplicationStats {
            by_status: rows
                .into_iter()
                .map(|(s, n)| Ok((parse_column(&s, "verification_applications.status")?, n)))
                .collect::<Result<_, VerificationError>>()?,
            oldest_pending: oldest,
        })
    }

    /// Approvals recorded on a case.
    async fn approvals_of(&self, id: Uuid) -> Result<Vec<super::Approval>, VerificationError> {
        let rows: Vec<(Uuid, String, OffsetDateTime)> =
            on_pool!(self.store, |pool| sqlx::query_as(
                "SELECT staff_id, tier, approved_at FROM verification_approvals \
             WHERE application_id = $1 ORDER BY approved_at, staff_id"
            )
            .bind(id)
            .fetch_all(pool)
            .await?);
        rows.into_iter()
            .map(|(staff_id, tier, at)| {
                Ok(super::Approval {
                    staff_id,
                    tier: Tier::new(&tier).map_err(|_| crate::store::StoreError::CorruptRow {
                        column: "verification_approvals.tier",
                    })?,
                    at,
                })
            })
            .collect()
    }

    /// The id of the customer's newest application (the case file staff open for a customer
    /// named elsewhere, such as an incident); `None` when they never applied.
    pub async fn latest_application_of(
        &self,
        customer_id: Uuid,
    ) -> Result<Option<Uuid>, VerificationError> {
        Ok(on_pool!(self.store, |pool| sqlx::query_scalar(
            "SELECT id FROM verification_applications WHERE customer_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        )
        .bind(customer_id)
        .fetch_optional(pool)
        .await?))
    }

    /// A page of the customer's own applications, newest first (for "what do I need for a
    /// higher tier"): at most `limit`, after the `(created_at, id)` of `after` in that order (a
    /// keyset cursor: the last application of the previous page).
    pub async fn customer_applications(
        &self,
        key: &MasterKey,
        caller: &CustomerCaller,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: u32,
    ) -> Result<Vec<super::ApplicationView>, VerificationError> {
        let rows: Vec<AppRow> = on_pool!(self.store, |pool| sqlx::query_as(concat!(
            app_select!(),
            "WHERE a.customer_id = $1 \
             AND ($2 IS NULL OR a.created_at < $2 OR (a.created_at = $2 AND a.id < $3)) \
             ORDER BY a.created_at DESC, a.id DESC LIMIT $4"
        ))
        .bind(caller.customer_id)
        .bind(after.map(|(at, _)| DbTime::new(at)))
        .bind(after.map(|(_, id)| id))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.view(key, row).await?);
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy)]
enum CustomerAction {
    Suspend,
    Resume,
    Close,
}

impl CustomerAction {
    /// The application event, the customer status, and the application statuses it acts on.
    fn parts(self, reason: &str) -> (Event, CustomerStatus, &'static [ApplicationStatus]) {
        let reason = reason.to_owned();
        match self {
            CustomerAction::Suspend => (
                Event::Suspend { reason },
                CustomerStatus::Suspended,
                &[ApplicationStatus::Approved],
            ),
            CustomerAction::Resume => (
                Event::Resume { reason },
                CustomerStatus::Active,
                &[ApplicationStatus::Suspended],
            ),
            CustomerAction::Close => (
                Event::Close { reason },
                CustomerStatus::Closed,
                &[ApplicationStatus::Approved, ApplicationStatus::Suspended],
            ),
        }
    }
}

/// Whether `case` rests on a screening `hit` nobody ruled a false positive.
fn confirmed_hit(case: &super::state::Case) -> bool {
    matches!(
        case,
        super::state::Case::PendingReview { screening, .. }
            if screening.decision == super::ScreeningDecision::Hit
                && screening.overridden_by.is_none()
    )
}

/// Context for staff events that need no policy input.
fn context(loaded: &Loaded, now: OffsetDateTime) -> Result<CaseContext, VerificationError> {
    Ok(CaseContext {
        applicant: loaded.row.applicant()?,
        has_compliance_plan: false,
        idv_verified: false,
        reverify_after: None,
        now,
    })
}
