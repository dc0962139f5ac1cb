//! Linked account groups: customers that share a beneficial owner, payment fingerprint, verified ID
//! document or organization are merged into one group automatically when an application is approved
//! ([`link_attributes`], called by the verification workflow in the approval's transaction;
//! [`LedgerStore::link_by_attribute`] for one attribute); staff can link and unlink with a reason.
//! Group thresholds watch the members' combined rolling total, so a run split across accounts is
//! still seen; a staff link also re-checks them at once ([`super::link_thresholds`]).
//!
//! Attributes are stored only as keyed hashes ([`super::attributes`]). Group totals are summed
//! from the members' jobs at read time, so a merge only moves membership rows.
//!
//! Locking (PostgreSQL): every membership change first locks a sentinel budget row
//! (`customer` scope, nil id — the first of all customer rows), so changes are serialized
//! among themselves; then the budget rows of every customer that moves, in id order; then the
//! group rows, in id order. That is the `(scope, scope_id)` order admissions lock in, so lock
//! waits never form a cycle. A membership change always holds the moving customers' rows, and
//! an admission re-reads its customer's group once it holds that row (starting over when it
//! changed), so an admission never decides on a half-done merge. The audit chain's head is
//! locked after all of these (callers append the entries last).

use time::OffsetDateTime;
use uuid::Uuid;

use super::attributes::{AttributeHash, LinkAttribute};
use super::audit;
use super::link_thresholds::{self, LinkCheck};
use super::membership::GroupTx;
use super::model::LedgerError;
use super::model::{check_text, require_staff};
use crate::accounts::Actor;
use crate::audit::{AuditAction, AuditEntry};
use crate::store::{DbTime, LedgerStore, in_transaction, on_pool};
use computegate_policy::ThresholdPolicy;

/// A group and its members.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkedGroup {
    /// Group id.
    pub id: Uuid,
    /// Members, oldest first.
    pub members: Vec<GroupMember>,
}

/// A group member.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupMember {
    /// The customer.
    pub customer_id: Uuid,
    /// When they joined the group.
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    /// Why: the attribute kind (`payment_fingerprint`, …) or `staff`.
    pub via: String,
}

/// What [`LedgerStore::link_by_attribute`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOutcome {
    /// The customer's group afterwards (`None`: nobody shares the attribute yet).
    pub group: Option<LinkedGroup>,
    /// Customers whose group changed.
    pub moved: Vec<Uuid>,
}

/// What [`LedgerStore::link_customers`] did: the merged group and the thresholds the link crossed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StaffLink {
    /// The group afterwards.
    #[serde(flatten)]
    pub group: LinkedGroup,
    /// Group thresholds re-checked at link time.
    #[serde(flatten)]
    pub check: LinkCheck,
}

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// Records that `customer_id` has an attribute and links it with every other customer that
    /// has the same one (merging their groups), unless staff unlinked it (then the attribute is
    /// only recorded). Idempotent. See [`link_attributes`] for linking inside another
    /// operation's transaction.
    pub async fn link_by_attribute(
        &self,
        customer_id: Uuid,
        kind: LinkAttribute,
        hash: &AttributeHash,
        now: OffsetDateTime,
    ) -> Result<LinkOutcome, LedgerError> {
        let moved = in_transaction!(self.store, |tx| {
            let (moved, entries) =
                link_attributes(&mut tx, customer_id, &[(kind, *hash)], now).await?;
            audit::record(&mut tx, &entries).await?;
            moved
        });
        Ok(LinkOutcome {
            group: self.group_of(customer_id).await?,
            moved,
        })
    }

    /// Staff: links two customers (merging their groups) and lifts any unlink exemption. The
    /// merged group's rolling total is re-checked against the `group` thresholds of
    /// `thresholds` at once (see [`super::link_thresholds`]); what fired is recorded in the
    /// same transaction and returned.
    pub async fn link_customers(
        &self,
        customer_a: Uuid,
        customer_b: Uuid,
        reason: &str,
        actor: &Actor,
        thresholds: &ThresholdPolicy,
        now: OffsetDateTime,
    ) -> Result<StaffLink, LedgerError> {
        require_staff(actor)?;
        check_text(reason, "reason")?;
        let at = DbTime::new(now);
        let (group, check) = in_transaction!(self.store, |tx| {
            tx.lock_membership().await?;
            for c in [customer_a, customer_b] {
                tx.set_exempt(c, None, at).await?;
            }
            let since = link_thresholds::since(thresholds, now);
            let before =
                link_thresholds::parts_before(&mut tx, &[customer_a, customer_b], since).await?;
            let (group, moved) = match merge(&mut tx, &[customer_a, customer_b], "staff", at).await
            {
                Err(LedgerError::Store(crate::StoreError::Database(sqlx::Error::Database(e))))
                    if e.is_foreign_key_violation() =>
                {
                    return Err(LedgerError::UnknownCustomer);
                }
                other => other?,
            };
            let check =
                link_thresholds::check_group(&mut tx, group, customer_a, before, thresholds, now)
                    .await?;
            let detail = serde_json::json!({
                "group_id": group, "customers": [customer_a, customer_b], "moved": moved,
                "reason": reason, "crossings": check.crossings, "report_ids": check.report_ids,
                "job_id": check.job_id,
            });
            let subject = format!("group:{group}");
            let mut entries = vec![audit::staff_action(
                now,
                actor,
                AuditAction::GroupLinked,
                subject,
                detail,
            )];
            entries.extend(check.report_ids.iter().map(|id| {
                let detail = serde_json::json!({
                    "job_id": check.job_id, "crossings": check.crossings, "phase": "link",
                });
                let subject = format!("report:{id}");
                audit::staff_action(now, actor, AuditAction::ReportCreated, subject, detail)
            }));
            audit::record(&mut tx, &entries).await?;
            (group, check)
        });
        Ok(StaffLink {
            group: self.group_members(group).await?,
            check,
        })
    }

    /// Staff: takes a customer out of its group and exempts it from automatic linking until
    /// staff link it again. Returns the group it left, if any.
    pub async fn unlink_customer(
        &self,
        customer_id: Uuid,
        reason: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, LedgerError> {
        require_staff(actor)?;
        check_text(reason, "reason")?;
        let at = DbTime::new(now);
        let left = in_transaction!(self.store, |tx| {
            tx.lock_membership().await?;
            tx.lock_customer(customer_id).await?;
            let group = tx.group_id_of(customer_id).await?;
            if let Some(g) = group {
                tx.lock_group(g).await?;
                tx.remove_member(customer_id).await?;
                if tx.member_ids(g).await?.is_empty() {
                    tx.delete_group(g).await?;
                }
            }
            match tx
                .set_exempt(customer_id, Some((&actor.name, reason)), at)
                .await
            {
                Ok(()) => {}
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                    return Err(LedgerError::UnknownCustomer);
                }
                Err(e) => return Err(e.into()),
            }
            let detail = serde_json::json!({ "group_id": group, "reason": reason });
            let subject = format!("customer:{customer_id}");
            let entry =
                audit::staff_action(now, actor, AuditAction::GroupUnlinked, subject, detail);
            audit::record(&mut tx, &[entry]).await?;
            group
        });
        Ok(left)
    }

    /// The customer's linked group, `None` when it is linked to nobody.
    pub async fn group_of(&self, customer_id: Uuid) -> Result<Option<LinkedGroup>, LedgerError> {
        let group: Option<Uuid> = on_pool!(self.store, |pool| {
            sqlx::query_scalar("SELECT group_id FROM ledger_group_members WHERE customer_id = $1")
                .bind(customer_id)
                .fetch_optional(pool)
                .await?
        });
        match group {
            Some(g) => Ok(Some(self.group_members(g).await?)),
            None => Ok(None),
        }
    }

    async fn group_members(&self, group: Uuid) -> Result<LinkedGroup, LedgerError> {
        let rows: Vec<(Uuid, OffsetDateTime, String)> = on_pool!(self.store, |pool| {
            sqlx::query_as(
                "SELECT customer_id, joined_at, via FROM ledger_group_members \
                 WHERE group_id = $1 ORDER BY joined_at, customer_id",
            )
            .bind(group)
            .fetch_all(pool)
            .await?
        });
        Ok(LinkedGroup {
            id: group,
            members: rows
                .into_iter()
                .map(|(customer_id, joined_at, via)| GroupMember {
                    customer_id,
                    joined_at,
                    via,
                })
                .collect(),
        })
    }
}

/// Records `attributes` of `customer_id` and links it with every other customer sharing one
/// (merging groups), inside the caller's transaction: for approvals, in the transaction that
/// approves. A customer staff unlinked only has its attributes recorded. Idempotent. Returns
/// the customers whose group changed and one `ledger.group.linked` audit entry per attribute
/// that moved someone, which the caller appends last (after every budget lock).
pub(crate) async fn link_attributes<T: GroupTx>(
    tx: &mut T,
    customer_id: Uuid,
    attributes: &[(LinkAttribute, AttributeHash)],
    now: OffsetDateTime,
) -> Result<(Vec<Uuid>, Vec<AuditEntry>), LedgerError> {
    let at = DbTime::new(now);
    tx.lock_membership().await?;
    let mut all_moved = Vec::new();
    let mut entries = Vec::new();
    for (kind, hash) in attributes {
        match tx.insert_attribute(*kind, hash, customer_id, at).await {
            Ok(()) => {}
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(LedgerError::UnknownCustomer);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if tx.exempt(customer_id).await? {
        return Ok((all_moved, entries));
    }
    for (kind, hash) in attributes {
        let others = tx.sharing(*kind, hash, customer_id).await?;
        if others.is_empty() {
            continue;
        }
        let mut all = others.clone();
        all.push(customer_id);
        let (group, moved) = merge(tx, &all, kind.as_str(), at).await?;
        if moved.is_empty() {
            continue;
        }
        let detail = serde_json::json!({
            "group_id": group, "via": kind, "moved": moved, "matched": others,
        });
        let subject = format!("customer:{customer_id}");
        let actor = Actor::system("linking");
        entries.push(audit::staff_action(
            now,
            &actor,
            AuditAction::GroupLinked,
            subject,
            detail,
        ));
        all_moved.extend(moved);
    }
    all_moved.sort();
    all_moved.dedup();
    Ok((all_moved, entries))
}

/// Merges the groups of `customers` (a customer without a group is a group of one) into the
/// largest of them, or a new group. Returns the group and the customers that moved. The caller
/// holds the membership lock.
async fn merge<T: GroupTx>(
    tx: &mut T,
    customers: &[Uuid],
    via: &str,
    now: DbTime,
) -> Result<(Uuid, Vec<Uuid>), LedgerError> {
    // Membership is stable under the membership lock: read it, then lock in order.
    let mut groups: Vec<(Uuid, Vec<Uuid>)> = Vec::new();
    let mut singletons = Vec::new();
    for &c in customers {
        match tx.group_id_of(c).await? {
            Some(g) if groups.iter().any(|(id, _)| *id == g) => {}
            Some(g) => {
                let members = tx.member_ids(g).await?;
                groups.push((g, members));
            }
            None if !singletons.contains(&c) => singletons.push(c),
            None => {}
        }
    }
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    let survivor = groups.first().map(|(id, _)| *id);
    let mut moving: Vec<Uuid> = groups
        .iter()
        .skip(1)
        .flat_map(|(_, m)| m.iter().copied())
        .chain(singletons.iter().copied())
        .collect();
    moving.sort();
    moving.dedup();
    for &c in &moving {
        tx.lock_customer(c).await?;
    }
    let mut group_ids: Vec<Uuid> = groups.iter().map(|(id, _)| *id).collect();
    group_ids.sort();
    for &g in &group_ids {
        tx.lock_group(g).await?;
    }
    let target = match survivor {
        Some(g) => g,
        None => {
            let g = Uuid::now_v7();
            tx.create_group(g, now).await?;
            g
        }
    };
    for &c in &moving {
        tx.set_member(c, target, via, now).await?;
    }
    for &g in group_ids.iter().filter(|g| **g != target) {
        tx.delete_group(g).await?;
    }
    Ok((target, moving))
}
