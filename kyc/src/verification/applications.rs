//! Store operations on the customer's side (create, edit, read, submit) and the system's
//! intake steps (begin and record screening, IDV events).

use time::OffsetDateTime;
use uuid::Uuid;

use super::payload::{ApplicationPayload, Person, ValidationMode};
use super::records::{
    CaseTx, Extra, Loaded, PAYLOAD_OF, SealedPayload, app_select, open_json, open_payload,
    seal_json,
};
use super::risk::{self, RiskInputs};
use super::state::{CaseContext, Event, Party, ScreeningOutcome, Transition};
use super::webhooks::IdvEvent;
use super::{
    ApplicationStatus, ApplicationView, CustomerCaller, IdvRecorded, JurisdictionRules,
    RiskAssessment, ScreeningSubject, ScreeningSummary, VerificationError,
};
use crate::accounts::{Actor, parse_column};
use crate::audit::{self, AuditAction, AuditEntry};
use crate::crypto::MasterKey;
use crate::store::{DbTime, VerificationStore, in_transaction, on_pool};

/// Purpose labels of the sealed columns.
pub(super) const PAYLOAD: &str = "";
pub(super) const REVIEW: &str = "review";
pub(super) const REASON: &str = "reason";

/// What the review file (sealed) holds: per-party screening, risk, jurisdiction finding.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct ReviewFile {
    pub(super) screening: ScreeningSummary,
    pub(super) risk: RiskAssessment,
    pub(super) ip_country: Option<String>,
}

/// The outcome of recording a screening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreeningRecorded {
    /// `pending_review`, or `rejected` for an embargoed jurisdiction.
    pub status: ApplicationStatus,
    /// The risk assessment stored with it.
    pub risk: RiskAssessment,
}

#[derive(sqlx::FromRow)]
struct SealedColumns {
    payload_sealed: Vec<u8>,
    identity_purged_at: Option<OffsetDateTime>,
    reason_sealed: Option<Vec<u8>>,
}

// === impl VerificationStore ===

impl VerificationStore<'_> {
    /// Creates a draft for the customer. The payload is checked field by field (drafts may be
    /// incomplete) and sealed. A customer has at most one open application.
    pub async fn create_draft(
        &self,
        key: &MasterKey,
        caller: &CustomerCaller,
        payload: &ApplicationPayload,
        now: OffsetDateTime,
    ) -> Result<ApplicationView, VerificationError> {
        check(payload, ValidationMode::Draft, now)?;
        let id = Uuid::now_v7();
        let sealed = seal_json(key, id, PAYLOAD, payload)?;
        let entry = AuditEntry::new(
            now,
            &caller.actor(),
            AuditAction::ApplicationCreated,
            format!("application:{id}"),
        )
        .with_detail(serde_json::json!({
            "kind": payload.kind,
            "customer_id": caller.customer_id,
            "requested_tier": payload.requested_tier,
        }));
        in_transaction!(self.store, |tx| {
            // The refusal names the open application, so the customer can go on with it.
            let open: Option<(Uuid, String)> = sqlx::query_as(
                "SELECT id, status FROM verification_applications WHERE customer_id = $1 \
                 AND status IN ('draft', 'submitted', 'screening', 'pending_review', 'needs_info') \
                 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(caller.customer_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((id, status)) = open {
                let status = parse_column(&status, "verification_applications.status")?;
                return Err(VerificationError::ApplicationInProgress { id, status });
            }
            let inserted = sqlx::query(
                "INSERT INTO verification_applications (id, customer_id, kind, status, \
                 requested_tier, country, payload_sealed, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'draft', $4, $5, $6, 0, $7, $7)",
            )
            .bind(id)
            .bind(caller.customer_id)
            .bind(payload.kind.as_str())
            .bind(payload.requested_tier.as_deref())
            .bind(payload.primary_country())
            .bind(&sealed)
            .bind(DbTime::new(now))
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                    return Err(VerificationError::NotFound);
                }
                Err(e) => return Err(e.into()),
            }
            audit::append(&mut tx, &entry).await?;
        });
        self.get_application(key, caller, id).await
    }

    /// Replaces the payload of one of the customer's own applications while it is a draft or
    /// waiting for more information.
    pub async fn update_draft(
        &self,
        key: &MasterKey,
        caller: &CustomerCaller,
        id: Uuid,
        payload: &ApplicationPayload,
        now: OffsetDateTime,
    ) -> Result<ApplicationView, VerificationError> {
        check(payload, ValidationMode::Draft, now)?;
        let sealed = seal_json(key, id, PAYLOAD, payload)?;
        in_transaction!(self.store, |tx| {
            let loaded = own(tx.load_case(id).await?, caller)?;
            let status = loaded.row.status()?;
            if !matches!(
                status,
                ApplicationStatus::Draft | ApplicationStatus::NeedsInfo
            ) {
                return Err(VerificationError::NotEditable(status));
            }
            if loaded.row.kind()? != payload.kind && status != ApplicationStatus::Draft {
                return Err(VerificationError::NotEditable(status));
            }
            // An identity-verification outcome is about one person: when the verified person's
            // identity changes (name, date of birth, nationality, document), it no longer counts
            // and IDV must be done again.
            let idv_cleared = loaded.row.idv()?.is_some() && {
                let old_sealed: SealedPayload = sqlx::query_as(PAYLOAD_OF)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let old = open_payload(key, id, &old_sealed)?;
                match (old.verified_person(), payload.verified_person()) {
                    (Some(a), Some(b)) => !a.same_identity(b),
                    (None, None) => false,
                    _ => true,
                }
            };
            let done = sqlx::query(
                "UPDATE verification_applications SET kind = $1, requested_tier = $2, country = $3, \
                 payload_sealed = $4, updated_at = $5, version = version + 1, \
                 idv_outcome = CASE WHEN $8 THEN NULL ELSE idv_outcome END \
                 WHERE id = $6 AND version = $7",
            )
            .bind(payload.kind.as_str())
            .bind(payload.requested_tier.as_deref())
            .bind(payload.primary_country())
            .bind(&sealed)
            .bind(DbTime::new(now))
            .bind(id)
            .bind(loaded.row.version)
            .bind(idv_cleared)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(VerificationError::ConcurrentUpdate);
            }
            let entry = AuditEntry::new(
                now,
                &caller.actor(),
                AuditAction::ApplicationUpdated,
                format!("application:{id}"),
            )
            .with_detail(serde_json::json!({ "status": status, "idv_cleared": idv_cleared }));
            audit::append(&mut tx, &entry).await?;
        });
        self.get_application(key, caller, id).await
    }

    /// One of the customer's own applications, decrypted. Any other id — unknown or someone
    /// else's — is [`VerificationError::NotFound`].
    pub async fn get_application(
        &self,
        key: &MasterKey,
        caller: &CustomerCaller,
        id: Uuid,
    ) -> Result<ApplicationView, VerificationError> {
        let row: Option<super::records::AppRow> = on_pool!(self.store, |pool| sqlx::query_as(
            concat!(app_select!(), "WHERE a.id = $1 AND a.customer_id = $2")
        )
        .bind(id)
        .bind(caller.customer_id)
        .fetch_optional(pool)
        .await?);
        let row = row.ok_or(VerificationError::NotFound)?;
        self.view(key, &row).await
    }

    /// Hands in one of the customer's own applications: full validation (every missing or bad
    /// field at once), then `draft|needs_info → submitted`. An application naming an embargoed
    /// country is rejected at once (`submitted → rejected`, a second audit record).
    pub async fn submit_application(
        &self,
        key: &MasterKey,
        caller: &CustomerCaller,
        id: Uuid,
        rules: &JurisdictionRules,
        now: OffsetDateTime,
    ) -> Result<ApplicationView, VerificationError> {
        let payload = self.payload_of(key, caller, id).await?;
        check(&payload, ValidationMode::Submit, now)?;
        let embargoed = rules.check(&payload.countries()).embargoed;
        in_transaction!(self.store, |tx| {
            let loaded = own(tx.load_case(id).await?, caller)?;
            let t = apply(
                &loaded,
                &Party::Customer(caller.customer_id),
                Event::Submit,
                now,
            )?;
            tx.persist(&loaded, &t, Extra::default(), &caller.actor(), now)
                .await?;
            if !embargoed.is_empty() {
                let loaded = tx.load_case(id).await?.ok_or(VerificationError::NotFound)?;
                let reason = format!("embargoed jurisdiction: {}", embargoed.join(", "));
                let extra = Extra {
                    reason_sealed: Some(seal_json(key, id, REASON, &reason)?),
                    ..Extra::default()
                };
                let t = apply(&loaded, &Party::System, Event::AutoReject { reason }, now)?;
                tx.persist(&loaded, &t, extra, &system(), now).await?;
                embargo_suspension(&mut tx, &loaded, &embargoed, now).await?;
            }
        });
        self.get_application(key, caller, id).await
    }

    /// System step: `submitted → screening`. Returns the parties the screening engine must
    /// check (applicant; or organization, representative and every beneficial owner).
    pub async fn begin_application_screening(
        &self,
        key: &MasterKey,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<ScreeningSubject>, VerificationError> {
        let payload: ApplicationPayload = in_transaction!(self.store, |tx| {
            let loaded = tx.load_case(id).await?.ok_or(VerificationError::NotFound)?;
            let t = apply(&loaded, &Party::System, Event::BeginScreening, now)?;
            let sealed: SealedPayload = sqlx::query_as(PAYLOAD_OF)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let payload = open_payload(key, id, &sealed)?;
            tx.persist(&loaded, &t, Extra::default(), &system(), now)
                .await?;
            payload
        });
        Ok(screening_subjects(&payload))
    }

    /// System step: records the screening summary, scores risk and moves
    /// `screening → pending_review` — or `screening → rejected` when the application names an
    /// embargoed country. `ip_country` is where the application was submitted from, if known.
    pub async fn record_application_screening(
        &self,
        key: &MasterKey,
        id: Uuid,
        summary: &ScreeningSummary,
        ip_country: Option<&str>,
        rules: &JurisdictionRules,
        now: OffsetDateTime,
    ) -> Result<ScreeningRecorded, VerificationError> {
        let recorded = in_transaction!(self.store, |tx| {
            let loaded = tx.load_case(id).await?.ok_or(VerificationError::NotFound)?;
            let sealed: SealedPayload = sqlx::query_as(PAYLOAD_OF)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let payload = open_payload(key, id, &sealed)?;
            let risk = risk::assess(&RiskInputs {
                payload: &payload,
                screening_decision: summary.decision(),
                screening_score: summary.score(),
                idv: loaded.row.idv()?,
                ip_country,
                rules,
            });
            let file = ReviewFile {
                screening: summary.clone(),
                risk: risk.clone(),
                ip_country: ip_country.map(str::to_owned),
            };
            let mut extra = Extra {
                review_sealed: Some(seal_json(key, id, REVIEW, &file)?),
                risk_score: Some(i64::from(risk.score)),
                ..Extra::default()
            };
            let embargoed = rules.check(&payload.countries()).embargoed;
            let event = if embargoed.is_empty() {
                Event::CompleteScreening(ScreeningOutcome {
                    list_version: summary.list_version.clone(),
                    score: summary.score(),
                    decision: summary.decision(),
                    overridden_by: None,
                })
            } else {
                let reason = format!("embargoed jurisdiction: {}", embargoed.join(", "));
                extra.reason_sealed = Some(seal_json(key, id, REASON, &reason)?);
                Event::AutoReject { reason }
            };
            let t = apply(&loaded, &Party::System, event, now)?;
            let status = t.next.status();
            tx.persist(&loaded, &t, extra, &system(), now).await?;
            if !embargoed.is_empty() {
                embargo_suspension(&mut tx, &loaded, &embargoed, now).await?;
            }
            ScreeningRecorded { status, risk }
        });
        Ok(recorded)
    }

    /// Records a verified IDV webhook event on its application, idempotently: the same
    /// `(provider, event_id)` again is [`IdvRecorded::Duplicate`] and stores nothing. An
    /// unknown application is [`VerificationError::NotFound`] (nothing stored).
    pub async fn record_idv_event(
        &self,
        event: &IdvEvent,
        now: OffsetDateTime,
    ) -> Result<IdvRecorded, VerificationError> {
        let actor = Actor::system(&format!("idv:{}", event.provider));
        let entry = AuditEntry::new(
            now,
            &actor,
            AuditAction::IdvRecorded,
            format!("application:{}", event.application_id),
        )
        .with_detail(serde_json::json!({
            "provider": event.provider,
            "event_id": event.event_id,
            "outcome": event.outcome,
        }));
        let recorded = in_transaction!(self.store, |tx| {
            let exists: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM verification_applications WHERE id = $1")
                    .bind(event.application_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                return Err(VerificationError::NotFound);
            }
            let inserted = sqlx::query(
                "INSERT INTO idv_events (provider, event_id, application_id, outcome, received_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, event_id) DO NOTHING",
            )
            .bind(event.provider.as_str())
            .bind(&event.event_id)
            .bind(event.application_id)
            .bind(event.outcome.as_str())
            .bind(DbTime::new(now))
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                IdvRecorded::Duplicate
            } else {
                sqlx::query(
                    "UPDATE verification_applications SET idv_outcome = $1, updated_at = $2, \
                     version = version + 1 WHERE id = $3",
                )
                .bind(event.outcome.as_str())
                .bind(DbTime::new(now))
                .bind(event.application_id)
                .execute(&mut *tx)
                .await?;
                audit::append(&mut tx, &entry).await?;
                IdvRecorded::Recorded
            }
        });
        Ok(recorded)
    }

    /// The decrypted payload of one of the customer's own applications.
    async fn payload_of(
        &self,
        key: &MasterKey,
        caller: &CustomerCaller,
        id: Uuid,
    ) -> Result<ApplicationPayload, VerificationError> {
        let sealed: Option<SealedPayload> = on_pool!(self.store, |pool| {
            sqlx::query_as(
                "SELECT payload_sealed, identity_purged_at FROM verification_applications \
                 WHERE id = $1 AND customer_id = $2",
            )
            .bind(id)
            .bind(caller.customer_id)
            .fetch_optional(pool)
            .await?
        });
        let sealed = sealed.ok_or(VerificationError::NotFound)?;
        open_payload(key, id, &sealed)
    }

    /// The owner's view of a row (no ownership check here).
    pub(super) async fn view(
        &self,
        key: &MasterKey,
        row: &super::records::AppRow,
    ) -> Result<ApplicationView, VerificationError> {
        let sealed: SealedColumns = on_pool!(self.store, |pool| sqlx::query_as(
            "SELECT payload_sealed, identity_purged_at, reason_sealed \
             FROM verification_applications WHERE id = $1"
        )
        .bind(row.id)
        .fetch_one(pool)
        .await?);
        let status = row.status()?;
        let reason = match (&sealed.reason_sealed, status) {
            (Some(r), ApplicationStatus::NeedsInfo | ApplicationStatus::Rejected) => {
                Some(open_json::<String>(key, row.id, REASON, r)?)
            }
            _ => None,
        };
        Ok(ApplicationView {
            id: row.id,
            kind: row.kind()?,
            status,
            requested_tier: row.requested_tier.clone(),
            granted_tier: row.granted_tier()?,
            expires_at: row.expires_at,
            reason,
            // Retention withdrew the payload of an ended application: the view says when.
            payload: match sealed.identity_purged_at {
                Some(_) => None,
                None => Some(open_json(key, row.id, PAYLOAD, &sealed.payload_sealed)?),
            },
            identity_purged_at: sealed.identity_purged_at,
            documents: self.documents_of(row.id).await?,
            created_at: row.created_at,
            updated_at: row.updated_at,
            submitted_at: row.submitted_at,
        })
    }
}

/// Validates at the date of `now`.
fn check(
    payload: &ApplicationPayload,
    mode: ValidationMode,
    now: OffsetDateTime,
) -> Result<(), VerificationError> {
    let errors = payload.validate(mode, now.date());
    if errors.is_empty() {
        Ok(())
    } else {
        Err(VerificationError::Invalid(errors))
    }
}

/// The loaded case if it belongs to the caller; otherwise not found.
fn own(loaded: Option<Loaded>, caller: &CustomerCaller) -> Result<Loaded, VerificationError> {
    match loaded {
        Some(l) if l.row.customer_id == caller.customer_id => Ok(l),
        _ => Err(VerificationError::NotFound),
    }
}

/// Applies an event that needs no staff context.
pub(super) fn apply(
    loaded: &Loaded,
    party: &Party,
    event: Event,
    now: OffsetDateTime,
) -> Result<Transition, VerificationError> {
    let ctx = CaseContext {
        applicant: loaded.row.applicant()?,
        has_compliance_plan: false,
        idv_verified: false,
        reverify_after: None,
        now,
    };
    Ok(loaded.case.clone().apply(party, event, &ctx)?)
}

/// The system actor of intake steps.
pub(super) fn system() -> Actor {
    Actor::system("verification")
}

/// The parties of an application to screen: the applicant, or the organization, its
/// representative and every beneficial owner.
pub fn screening_subjects(p: &ApplicationPayload) -> Vec<ScreeningSubject> {
    let person = |role: String, person: &Person| ScreeningSubject {
        role,
        entity: "person",
        name: person.legal_name.clone().unwrap_or_default(),
        date_of_birth: person.date_of_birth.clone(),
        countries: [
            person.nationality.clone(),
            person.address.as_ref().and_then(|a| a.country.clone()),
        ]
        .into_iter()
        .flatten()
        .collect(),
        identifiers: person
            .id_document
            .as_ref()
            .and_then(|d| d.number.clone())
            .into_iter()
            .collect(),
    };
    let mut out = Vec::new();
    if let Some(p) = &p.individual {
        out.push(person("applicant".into(), p));
    }
    if let Some(o) = &p.organization {
        out.push(ScreeningSubject {
            role: "organization".into(),
            entity: "organization",
            name: o.legal_name.clone().unwrap_or_default(),
            date_of_birth: None,
            countries: [
                o.jurisdiction.clone(),
                o.headquarters_country.clone(),
                o.ultimate_parent_country.clone(),
            ]
            .into_iter()
            .flatten()
            .collect(),
            identifiers: o.registration_number.clone().into_iter().collect(),
        });
        if let Some(r) = &o.representative {
            out.push(person("representative".into(), r));
        }
        for (i, owner) in o.beneficial_owners.iter().enumerate() {
            out.push(person(format!("beneficial_owner[{i}]"), &owner.person));
        }
    }
    out
}

/// Suspends the applicant of an application auto-rejected for naming `embargoed` countries
/// (see [`super::suspension`]): no trial compute for an embargoed jurisdiction either.
async fn embargo_suspension<T: CaseTx>(
    tx: &mut T,
    loaded: &Loaded,
    embargoed: &[String],
    now: OffsetDateTime,
) -> Result<(), VerificationError> {
    let detail = serde_json::json!({
        "application_id": loaded.row.id,
        "countries": embargoed,
    });
    super::suspension::suspend(
        tx,
        loaded.row.customer_id,
        super::SuspensionReason::EmbargoedJurisdiction,
        super::SUSPENDED_ACTION,
        detail,
        &system(),
        now,
    )
    .await?;
    Ok(())
}
