//! The reseller store operations (`impl VerificationStore`): marking, end-customer
//! registration with its screening, linking and audit, the reads admission and the APIs need,
//! pass-through refusals and flags, and staff decisions — each change with its audit record in
//! one transaction.

use time::OffsetDateTime;
use uuid::Uuid;

use super::identity::{IdentityHash, identity_hashes};
use super::{
    EndCustomer, EndCustomerDecision, EndCustomerScreening, EndCustomerStanding, NewEndCustomer,
    RefusalCounts, Registration, Reseller, ResellerAction, ResellerError, ResellerStatus,
    SameIdentity, StaffEndCustomer,
};
use crate::accounts::{Actor, CustomerStatus, parse_column};
use crate::audit::{self, AuditAction, AuditEntry};
use crate::crypto::MasterKey;
use crate::store::{DbTime, StoreError, VerificationStore, in_transaction, on_pool};
use crate::verification::linking::link_approved;
use crate::verification::payload::ApplicationPayload;
use crate::verification::records::{open_json, seal_json};
use crate::verification::suspension::{SUSPENDED_ACTION, SuspensionReason, suspend};

/// Purpose label of the sealed end-customer identity (bound to the end customer's id).
const IDENTITY: &str = "end_customer";

/// Domain of the placeholder addresses of end-customer accounts: `.invalid` (RFC 2606) can never
/// be delivered to or registered, and login never looks end customers up.
const ACCOUNT_DOMAIN: &str = "end-customers.invalid";

#[derive(sqlx::FromRow)]
struct ResellerRow {
    organization_id: Uuid,
    name: String,
    status: String,
    marked_at: OffsetDateTime,
    flagged_at: Option<OffsetDateTime>,
    refused_share: Option<f64>,
    status_at: OffsetDateTime,
}

impl ResellerRow {
    fn into_reseller(self) -> Result<Reseller, StoreError> {
        Ok(Reseller {
            organization_id: self.organization_id,
            name: self.name,
            status: parse_column(&self.status, "resellers.status")?,
            marked_at: self.marked_at,
            flagged_at: self.flagged_at,
            refused_share: self.refused_share,
            status_at: self.status_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EndCustomerRow {
    id: Uuid,
    reseller_id: Uuid,
    kind: String,
    screening: String,
    status: String,
    created_at: OffsetDateTime,
}

impl EndCustomerRow {
    fn into_end_customer(self) -> Result<EndCustomer, StoreError> {
        let status: CustomerStatus = parse_column(&self.status, "customers.status")?;
        Ok(EndCustomer {
            id: self.id,
            reseller_id: self.reseller_id,
            kind: parse_column(&self.kind, "end_customers.kind")?,
            status: parse_column(&self.screening, "end_customers.screening")?,
            suspended: status != CustomerStatus::Active,
            created_at: self.created_at,
        })
    }
}

/// The end-customer select in [`EndCustomerRow`] field order.
macro_rules! end_customer_select {
    () => {
        "SELECT e.id, e.reseller_id, e.kind, e.screening, c.status, e.created_at \
         FROM end_customers e JOIN customers c ON c.id = e.id "
    };
}

/// The reseller select in [`ResellerRow`] field order.
macro_rules! reseller_select {
    () => {
        "SELECT r.organization_id, o.name, r.status, r.marked_at, r.flagged_at, \
         r.refused_share, r.status_at FROM resellers r \
         JOIN organizations o ON o.id = r.organization_id "
    };
}

// === impl VerificationStore ===

/// The end customer reseller `$1` registered with identity key `$2`.
const REGISTERED_IDENTITY: &str = "SELECT end_customer_id FROM end_customer_identities \
     WHERE reseller_id = $1 AND identity_hash = $2";

/// The end customers of other resellers than `$2` registered with identity key `$1`.
const IDENTITY_ELSEWHERE: &str = "SELECT end_customer_id FROM end_customer_identities \
     WHERE identity_hash = $1 AND reseller_id <> $2 ORDER BY end_customer_id";

/// Whether customer `$1` shares a linked group with an account in status `$2` (suspended).
const LINKED_TO_SUSPENDED: &str = "SELECT EXISTS (SELECT 1 FROM ledger_group_members me \
     JOIN ledger_group_members m ON m.group_id = me.group_id AND m.customer_id <> me.customer_id \
     JOIN customers c ON c.id = m.customer_id \
     WHERE me.customer_id = $1 AND c.status = $2)";

impl VerificationStore<'_> {
    /// Marks organization `organization_id` as a reseller (audited as `kyc.reseller.marked`).
    /// Only a KYB-verified organization qualifies: its owner holds an approved organization
    /// application and an active account.
    pub async fn mark_reseller(
        &self,
        organization_id: Uuid,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Reseller, ResellerError> {
        in_transaction!(self.store, |tx| {
            let exists: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM organizations WHERE id = $1")
                    .bind(organization_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                return Err(ResellerError::NotFound);
            }
            let verified: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM organization_members m \
                 JOIN customers c ON c.id = m.customer_id \
                 JOIN verification_applications a ON a.customer_id = c.id \
                 WHERE m.organization_id = $1 AND m.role = 'owner' AND c.status = 'active' \
                 AND a.kind = 'organization' AND a.status = 'approved'",
            )
            .bind(organization_id)
            .fetch_one(&mut *tx)
            .await?;
            if verified == 0 {
                return Err(ResellerError::NotVerified);
            }
            let inserted = sqlx::query(
                "INSERT INTO resellers (organization_id, status, marked_at, marked_by, status_at) \
                 VALUES ($1, $2, $3, $4, $3) ON CONFLICT (organization_id) DO NOTHING",
            )
            .bind(organization_id)
            .bind(ResellerStatus::Active.as_str())
            .bind(DbTime::new(now))
            .bind(&actor.name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(ResellerError::AlreadyReseller);
            }
            let entry = AuditEntry::new(
                now,
                actor,
                AuditAction::ResellerMarked,
                format!("organization:{organization_id}"),
            );
            audit::append(&mut tx, &entry).await?;
        });
        self.reseller(organization_id)
            .await?
            .ok_or(ResellerError::NotFound)
    }

    /// The reseller `organization_id`, if it is one.
    pub async fn reseller(&self, organization_id: Uuid) -> Result<Option<Reseller>, ResellerError> {
        const SQL: &str = concat!(reseller_select!(), "WHERE r.organization_id = $1");
        let row: Option<ResellerRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(organization_id)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(ResellerRow::into_reseller).transpose()?)
    }

    /// The reseller (organization and standing) `customer_id` acts for: `None` when the
    /// customer's organization is not a reseller, or it is in none.
    pub async fn reseller_of(
        &self,
        customer_id: Uuid,
    ) -> Result<Option<(Uuid, ResellerStatus)>, ResellerError> {
        let row: Option<(Uuid, String)> = on_pool!(self.store, |pool| sqlx::query_as(
            "SELECT r.organization_id, r.status FROM customers c \
             JOIN resellers r ON r.organization_id = c.organization_id WHERE c.id = $1"
        )
        .bind(customer_id)
        .fetch_optional(pool)
        .await?);
        row.map(|(org, status)| Ok((org, parse_column(&status, "resellers.status")?)))
            .transpose()
    }

    /// A page of resellers, optionally of one standing, in the order staff work them: the
    /// longest in their standing first (`status_at`, then id), after the keyset cursor `after`.
    pub async fn resellers_page(
        &self,
        status: Option<ResellerStatus>,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Reseller>, ResellerError> {
        const SQL: &str = concat!(
            reseller_select!(),
            "WHERE ($1 IS NULL OR r.status = $1) \
             AND ($2 IS NULL OR r.status_at > $2 OR (r.status_at = $2 AND r.organization_id > $3)) \
             ORDER BY r.status_at, r.organization_id LIMIT $4"
        );
        let rows: Vec<ResellerRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(status.map(ResellerStatus::as_str))
            .bind(after.map(|(at, _)| DbTime::new(at)))
            .bind(after.map(|(_, id)| id))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?);
        rows.into_iter()
            .map(|r| r.into_reseller().map_err(ResellerError::from))
            .collect()
    }

    /// Registers an end customer of a reseller: its account row (suspended at once, with its
    /// own audit record, when screening found a hit), its sealed identity, its keyed identity
    /// keys and its screening, and the audit record `kyc.end_customer.registered` — in one
    /// transaction. The caller validated the identity and screened it.
    ///
    /// An identity the reseller registered before (one of its identity keys is the reseller's
    /// already) writes nothing and answers with that end customer (`already_registered`); of two
    /// registrations racing on two replicas, the store's unique key lets one insert, and the
    /// other gives the same answer.
    pub async fn register_end_customer(
        &self,
        key: &MasterKey,
        new: &NewEndCustomer<'_>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Registration, ResellerError> {
        let id = Uuid::now_v7();
        let kind = new.payload.kind;
        let mut standing = EndCustomerScreening::of(new.screening);
        let sealed = seal_json(key, id, IDENTITY, new.payload)?;
        let hashes = identity_hashes(key, new.payload);
        let at = DbTime::new(now);
        let existing: Option<Uuid> = in_transaction!(self.store, |tx| {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM resellers WHERE organization_id = $1")
                    .bind(new.reseller_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            match status
                .as_deref()
                .map(|s| parse_column::<ResellerStatus>(s, "resellers.status"))
            {
                None => return Err(ResellerError::NotReseller),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(ResellerStatus::Suspended)) => return Err(ResellerError::Suspended),
                Some(Ok(_)) => {}
            }
            let mut registered = None;
            for hash in &hashes {
                registered = sqlx::query_scalar(REGISTERED_IDENTITY)
                    .bind(new.reseller_id)
                    .bind(&hash[..])
                    .fetch_optional(&mut *tx)
                    .await?;
                if registered.is_some() {
                    break;
                }
            }
            if registered.is_some() {
                // Nothing written: the transaction commits empty.
                registered
            } else {
                // The account has no password (login never finds it) and an address no one can
                // register; it exists so the ledger's rows have their customer.
                sqlx::query(
                "INSERT INTO customers \
                 (id, email, password_hash, kind, status, tier, organization_id, created_at, updated_at) \
                 VALUES ($1, $2, '', $3, $4, $5, NULL, $6, $6)",
            )
            .bind(id)
            .bind(format!("{}@{ACCOUNT_DOMAIN}", id.simple()))
            .bind(kind.as_str())
            .bind(CustomerStatus::Active.as_str())
            .bind(new.tier.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await?;
                sqlx::query(
                    "INSERT INTO end_customers (id, reseller_id, kind, screening, \
                 screening_list_version, screening_score, payload_sealed, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                )
                .bind(id)
                .bind(new.reseller_id)
                .bind(kind.as_str())
                .bind(standing.as_str())
                .bind(new.screening.list_version.as_deref())
                .bind(new.screening.score)
                .bind(&sealed)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                for hash in &hashes {
                    let inserted = sqlx::query(
                        "INSERT INTO end_customer_identities \
                     (reseller_id, identity_hash, end_customer_id) VALUES ($1, $2, $3)",
                    )
                    .bind(new.reseller_id)
                    .bind(&hash[..])
                    .bind(id)
                    .execute(&mut *tx)
                    .await;
                    match inserted {
                        Ok(_) => {}
                        // Another replica registered the identity since the check above (the
                        // insert waited for its commit): its end customer answers. Returning drops
                        // this transaction, which rolls back.
                        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                            return self.already_registered(new.reseller_id, &hashes).await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                let mut elsewhere: Vec<Uuid> = Vec::new();
                for hash in &hashes {
                    let ids: Vec<Uuid> = sqlx::query_scalar(IDENTITY_ELSEWHERE)
                        .bind(&hash[..])
                        .bind(new.reseller_id)
                        .fetch_all(&mut *tx)
                        .await?;
                    for other in ids {
                        if !elsewhere.contains(&other) {
                            elsewhere.push(other);
                        }
                    }
                }
                // Linked like an approved customer (same document, beneficial owner, payment):
                // a person or company behind several resellers, or also our own customer, is one
                // group whose runs are summed. Before the audit appends (it locks budget rows).
                link_approved(&mut tx, key, id, None, new.payload, now).await?;
                // A person or company staff suspended must not come back cleared through a reseller
                // under a new document: linked to a suspended account, the end customer waits for
                // staff like one in the screening's review band.
                let linked_suspended: bool = sqlx::query_scalar(LINKED_TO_SUSPENDED)
                    .bind(id)
                    .bind(CustomerStatus::Suspended.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                if linked_suspended && standing == EndCustomerScreening::Cleared {
                    standing = EndCustomerScreening::Review;
                    sqlx::query("UPDATE end_customers SET screening = $1 WHERE id = $2")
                        .bind(standing.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                let entry = AuditEntry::new(
                    now,
                    actor,
                    AuditAction::EndCustomerRegistered,
                    format!("customer:{id}"),
                )
                .with_detail(serde_json::json!({
                    "reseller_id": new.reseller_id,
                    "kind": kind.as_str(),
                    "screening": standing.as_str(),
                    "list_version": new.screening.list_version,
                    "score": new.screening.score,
                    "linked_to_suspended": linked_suspended,
                    "same_identity": elsewhere,
                }));
                audit::append(&mut tx, &entry).await?;
                if standing == EndCustomerScreening::Refused {
                    let detail = serde_json::json!({ "reseller_id": new.reseller_id });
                    let system = Actor::system("resellers");
                    let reason = SuspensionReason::ScreeningHit;
                    suspend(&mut tx, id, reason, SUSPENDED_ACTION, detail, &system, now).await?;
                }
                None
            }
        });
        match existing {
            Some(existing) => self.registration(new.reseller_id, existing, true).await,
            None => self.registration(new.reseller_id, id, false).await,
        }
    }

    /// The answer for an identity reseller `reseller_id` registered already under one of
    /// `hashes`, read after the registration that raced this one committed.
    async fn already_registered(
        &self,
        reseller_id: Uuid,
        hashes: &[IdentityHash],
    ) -> Result<Registration, ResellerError> {
        for hash in hashes {
            let found: Option<Uuid> =
                on_pool!(self.store, |pool| sqlx::query_scalar(REGISTERED_IDENTITY)
                    .bind(reseller_id)
                    .bind(&hash[..])
                    .fetch_optional(pool)
                    .await?);
            if let Some(existing) = found {
                return self.registration(reseller_id, existing, true).await;
            }
        }
        Err(ResellerError::NotFound)
    }

    /// End customer `id` of `reseller_id` as a registration's answer.
    async fn registration(
        &self,
        reseller_id: Uuid,
        id: Uuid,
        already_registered: bool,
    ) -> Result<Registration, ResellerError> {
        let end_customer = self
            .end_customer(reseller_id, id)
            .await?
            .ok_or(ResellerError::NotFound)?;
        Ok(Registration {
            end_customer,
            already_registered,
        })
    }

    /// The end customer `id` of reseller `reseller_id` (`None`: unknown, or another's).
    pub async fn end_customer(
        &self,
        reseller_id: Uuid,
        id: Uuid,
    ) -> Result<Option<EndCustomer>, ResellerError> {
        const SQL: &str = concat!(
            end_customer_select!(),
            "WHERE e.id = $1 AND e.reseller_id = $2"
        );
        let row: Option<EndCustomerRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(id)
            .bind(reseller_id)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(EndCustomerRow::into_end_customer).transpose()?)
    }

    /// A page of reseller `reseller_id`'s end customers, newest first (`created_at`, then id),
    /// after the keyset cursor `after`.
    pub async fn end_customers_page(
        &self,
        reseller_id: Uuid,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: u32,
    ) -> Result<Vec<EndCustomer>, ResellerError> {
        const SQL: &str = concat!(
            end_customer_select!(),
            "WHERE e.reseller_id = $1 \
             AND ($2 IS NULL OR e.created_at < $2 OR (e.created_at = $2 AND e.id < $3)) \
             ORDER BY e.created_at DESC, e.id DESC LIMIT $4"
        );
        let rows: Vec<EndCustomerRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(reseller_id)
            .bind(after.map(|(at, _)| DbTime::new(at)))
            .bind(after.map(|(_, id)| id))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?);
        rows.into_iter()
            .map(|r| r.into_end_customer().map_err(ResellerError::from))
            .collect()
    }

    /// The end customer's identity as registered (staff reads only; the caller audits them);
    /// `None` for an unknown end customer or one whose identity retention withdrew.
    pub async fn end_customer_identity(
        &self,
        key: &MasterKey,
        id: Uuid,
    ) -> Result<Option<ApplicationPayload>, ResellerError> {
        let sealed: Option<Vec<u8>> = on_pool!(self.store, |pool| {
            sqlx::query_scalar(
            "SELECT payload_sealed FROM end_customers WHERE id = $1 AND identity_purged_at IS NULL"
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
        });
        Ok(sealed
            .map(|s| open_json(key, id, IDENTITY, &s))
            .transpose()?)
    }

    /// The reseller of end customer `id`; `None` when `id` is no end customer.
    pub async fn reseller_of_end_customer(&self, id: Uuid) -> Result<Option<Uuid>, ResellerError> {
        Ok(on_pool!(self.store, |pool| sqlx::query_scalar(
            "SELECT reseller_id FROM end_customers WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(pool)
        .await?))
    }

    /// A page of the active end customers of every reseller with their identities, in id
    /// order after `after` (the re-screen after a list import walks them all).
    pub async fn active_end_customers(
        &self,
        key: &MasterKey,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<(Uuid, ApplicationPayload)>, ResellerError> {
        let rows: Vec<(Uuid, Vec<u8>)> = on_pool!(self.store, |pool| {
            sqlx::query_as(
            "SELECT e.id, e.payload_sealed FROM end_customers e JOIN customers c ON c.id = e.id \
             WHERE c.status = 'active' AND e.identity_purged_at IS NULL \
               AND ($1 IS NULL OR e.id > $1) ORDER BY e.id LIMIT $2"
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
        });
        rows.into_iter()
            .map(|(id, sealed)| Ok((id, open_json(key, id, IDENTITY, &sealed)?)))
            .collect()
    }

    /// Whether end customer `id` of `reseller_id` may run a job now — read live, so a
    /// suspension or a screening result counts at once on every replica.
    pub async fn end_customer_standing(
        &self,
        reseller_id: Uuid,
        id: Uuid,
    ) -> Result<EndCustomerStanding, ResellerError> {
        Ok(match self.end_customer(reseller_id, id).await? {
            None => EndCustomerStanding::Unknown,
            Some(e) if e.status == EndCustomerScreening::Cleared && !e.suspended => {
                EndCustomerStanding::Cleared
            }
            Some(_) => EndCustomerStanding::NotCleared,
        })
    }

    /// Records one of the reseller's jobs refused for its end customer (`reason` is the bounded
    /// refusal code) and returns its decisions since `since`, this one included. The reseller's
    /// refusals older than `since` are deleted on the way: they only ever feed this count, so
    /// the table holds at most one window of refusals per reseller instead of growing forever.
    pub async fn record_reseller_refusal(
        &self,
        reseller_id: Uuid,
        reason: &str,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<RefusalCounts, ResellerError> {
        on_pool!(self.store, |pool| sqlx::query(
            "DELETE FROM reseller_refusals WHERE reseller_id = $1 AND occurred_at < $2"
        )
        .bind(reseller_id)
        .bind(DbTime::new(since))
        .execute(pool)
        .await
        .map(|_| ())?);
        on_pool!(self.store, |pool| sqlx::query(
            "INSERT INTO reseller_refusals (id, reseller_id, reason, occurred_at) \
             VALUES ($1, $2, $3, $4)"
        )
        .bind(Uuid::now_v7())
        .bind(reseller_id)
        .bind(reason)
        .bind(DbTime::new(now))
        .execute(pool)
        .await
        .map(|_| ())?);
        let (refused, decided): (i64, i64) = on_pool!(self.store, |pool| {
            sqlx::query_as(
            "SELECT \
             (SELECT COUNT(*) FROM reseller_refusals WHERE reseller_id = $1 AND occurred_at >= $2), \
             (SELECT COUNT(*) FROM ledger_jobs j JOIN end_customers e ON e.id = j.customer_id \
              WHERE e.reseller_id = $1 AND j.decided_at >= $2)"
        )
        .bind(reseller_id)
        .bind(DbTime::new(since))
        .fetch_one(pool)
        .await?
        });
        let refused = u64::try_from(refused).unwrap_or(0);
        let decided = u64::try_from(decided).unwrap_or(0);
        Ok(RefusalCounts {
            refused,
            total: refused + decided,
        })
    }

    /// Flags an active reseller for review with the refused `share` that tripped the rule
    /// (audited as `kyc.reseller.flagged`); `false` when it is not active (flagged or
    /// suspended already: staff are on it).
    pub async fn flag_reseller(
        &self,
        reseller_id: Uuid,
        counts: RefusalCounts,
        share: f64,
        now: OffsetDateTime,
    ) -> Result<bool, ResellerError> {
        let flagged = in_transaction!(self.store, |tx| {
            let changed = sqlx::query(
                "UPDATE resellers SET status = $2, flagged_at = $3, status_at = $3, \
                 refused_share = $4 WHERE organization_id = $1 AND status = $5",
            )
            .bind(reseller_id)
            .bind(ResellerStatus::Flagged.as_str())
            .bind(DbTime::new(now))
            .bind(share)
            .bind(ResellerStatus::Active.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed > 0 {
                let entry = AuditEntry::new(
                    now,
                    &Actor::system("resellers"),
                    AuditAction::ResellerFlagged,
                    format!("organization:{reseller_id}"),
                )
                .with_detail(serde_json::json!({
                    "refused": counts.refused,
                    "total": counts.total,
                    "refused_share": share,
                }));
                audit::append(&mut tx, &entry).await?;
            }
            changed > 0
        });
        Ok(flagged)
    }

    /// Staff suspend or resume a reseller, with their reason in the audit record
    /// (`kyc.reseller.suspended` / `kyc.reseller.resumed`).
    pub async fn change_reseller(
        &self,
        reseller_id: Uuid,
        action: ResellerAction,
        reason: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Reseller, ResellerError> {
        in_transaction!(self.store, |tx| {
            // Lock the row first (a no-op update) so two staff actions apply one after the other.
            let locked =
                sqlx::query("UPDATE resellers SET status = status WHERE organization_id = $1")
                    .bind(reseller_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if locked == 0 {
                return Err(ResellerError::NotFound);
            }
            let from: String =
                sqlx::query_scalar("SELECT status FROM resellers WHERE organization_id = $1")
                    .bind(reseller_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let from: ResellerStatus = parse_column(&from, "resellers.status")?;
            let to = action.apply(from)?;
            sqlx::query(
                "UPDATE resellers SET status = $2, status_at = $3 WHERE organization_id = $1",
            )
            .bind(reseller_id)
            .bind(to.as_str())
            .bind(DbTime::new(now))
            .execute(&mut *tx)
            .await?;
            let entry = AuditEntry::new(
                now,
                actor,
                action.audit_action(),
                format!("organization:{reseller_id}"),
            )
            .with_detail(serde_json::json!({
                "from": from.as_str(),
                "to": to.as_str(),
                "reason": reason,
            }));
            audit::append(&mut tx, &entry).await?;
        });
        self.reseller(reseller_id)
            .await?
            .ok_or(ResellerError::NotFound)
    }

    /// Staff clear or refuse end customer `id` whose screening is in the review band, with
    /// `reason` in the audit record (`kyc.end_customer.decided`); refusing suspends its account
    /// as a confirmed denied party, in the same transaction. Returns the end customer's reseller.
    pub async fn decide_end_customer(
        &self,
        id: Uuid,
        decision: EndCustomerDecision,
        reason: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Uuid, ResellerError> {
        let to = match decision {
            EndCustomerDecision::Clear => EndCustomerScreening::Cleared,
            EndCustomerDecision::Refuse => EndCustomerScreening::Refused,
        };
        let reseller = in_transaction!(self.store, |tx| {
            // Only from `review`, in one statement: two decisions never both apply.
            let reseller: Option<Uuid> = sqlx::query_scalar(
                "UPDATE end_customers SET screening = $2, updated_at = $3 \
                 WHERE id = $1 AND screening = $4 RETURNING reseller_id",
            )
            .bind(id)
            .bind(to.as_str())
            .bind(DbTime::new(now))
            .bind(EndCustomerScreening::Review.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(reseller) = reseller else {
                let found: Option<String> =
                    sqlx::query_scalar("SELECT screening FROM end_customers WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(match found {
                    None => ResellerError::NotFound,
                    Some(s) => {
                        ResellerError::NotUnderReview(parse_column(&s, "end_customers.screening")?)
                    }
                });
            };
            let entry = AuditEntry::new(
                now,
                actor,
                AuditAction::EndCustomerDecided,
                format!("customer:{id}"),
            )
            .with_detail(serde_json::json!({
                "reseller_id": reseller,
                "screening": to.as_str(),
                "reason": reason,
            }));
            audit::append(&mut tx, &entry).await?;
            if decision == EndCustomerDecision::Refuse {
                let detail = serde_json::json!({ "reseller_id": reseller });
                let why = SuspensionReason::DeniedParty;
                suspend(&mut tx, id, why, SUSPENDED_ACTION, detail, actor, now).await?;
            }
            reseller
        });
        Ok(reseller)
    }

    /// End customer `id` with its identity and screening, for staff; the caller audits the
    /// read.
    pub async fn end_customer_for_staff(
        &self,
        key: &MasterKey,
        id: Uuid,
    ) -> Result<Option<StaffEndCustomer>, ResellerError> {
        type Row = (Uuid, Option<String>, Option<f64>, Option<OffsetDateTime>);
        let row: Option<Row> = on_pool!(self.store, |pool| {
            sqlx::query_as(
                "SELECT reseller_id, screening_list_version, screening_score, identity_purged_at \
                 FROM end_customers WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        let Some((reseller, list_version, score, identity_purged_at)) = row else {
            return Ok(None);
        };
        let Some(end_customer) = self.end_customer(reseller, id).await? else {
            return Ok(None);
        };
        // Retention withdrew the identity of an end customer closed long ago: the marker says
        // when, instead of an identity.
        let identity = match identity_purged_at {
            Some(_) => None,
            None => Some(
                self.end_customer_identity(key, id)
                    .await?
                    .ok_or(ResellerError::NotFound)?,
            ),
        };
        let same: Vec<(Uuid, Uuid)> = on_pool!(self.store, |pool| {
            sqlx::query_as(
                "SELECT DISTINCT o.end_customer_id, o.reseller_id \
                 FROM end_customer_identities me JOIN end_customer_identities o \
                 ON o.identity_hash = me.identity_hash AND o.end_customer_id <> me.end_customer_id \
                 WHERE me.end_customer_id = $1 ORDER BY o.end_customer_id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        Ok(Some(StaffEndCustomer {
            end_customer,
            identity,
            identity_purged_at,
            screening_list_version: list_version,
            screening_score: score,
            same_identity: same
                .into_iter()
                .map(|(id, reseller_id)| SameIdentity { id, reseller_id })
                .collect(),
        }))
    }

    /// The owner of organization `organization_id` (the account staff actions on it are
    /// checked against for conflicts of interest).
    pub async fn organization_owner(
        &self,
        organization_id: Uuid,
    ) -> Result<Option<Uuid>, ResellerError> {
        Ok(on_pool!(self.store, |pool| {
            sqlx::query_scalar(
            "SELECT customer_id FROM organization_members WHERE organization_id = $1 AND role = 'owner'"
        )
        .bind(organization_id)
        .fetch_optional(pool)
        .await?
        }))
    }
}
