//! Linked account groups: customers that share a beneficial owner, payment fingerprint,
//! verified ID document or organization are merged into one group automatically
//! ([`Store::link_by_attribute`]); staff can link and unlink with a reason. Group thresholds
//! watch the members' combined rolling total, so a run split across accounts is still seen.
//!
//! Attributes are stored only as SHA-256 hashes. Group totals are summed from the members'
//! jobs at read time, so a merge only moves membership rows.
//!
//! Locking (PostgreSQL): every membership change first locks a sentinel budget row
//! (`customer` scope, nil id — the first of all customer rows), so changes are serialized
//! among themselves; then the budget rows of every customer that moves, in id order; then the
//! group rows, in id order. That is the `(scope, scope_id)` order admissions lock in, so lock
//! waits never form a cycle. A membership change always holds the moving customers' rows, and
//! an admission re-reads its customer's group once it holds that row (starting over when it
//! changed), so an admission never decides on a half-done merge.

use std::fmt;

use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::admission::{check_text, require_staff};
use super::membership::GroupTx;
use super::{LedgerError, audit};
use crate::accounts::Actor;
use crate::store::{DbTime, Store, in_transaction, on_pool};

/// What two accounts share that links them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkAttribute {
    /// A beneficial owner (hash of a normalized identity of the person).
    BeneficialOwner,
    /// A payment instrument fingerprint.
    PaymentFingerprint,
    /// A verified identity document (hash of issuing country and number).
    IdDocument,
    /// Membership of one organization (hash of the organization id).
    Organization,
}

/// SHA-256 of a normalized attribute value. Raw values never reach the store.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttributeHash([u8; 32]);

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

/// What [`Store::link_by_attribute`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOutcome {
    /// The customer's group afterwards (`None`: nobody shares the attribute yet).
    pub group: Option<LinkedGroup>,
    /// Customers whose group changed.
    pub moved: Vec<Uuid>,
}

// === impl AttributeHash ===

impl AttributeHash {
    /// Hashes a normalized value (the caller normalizes: trimmed, case-folded, canonical form).
    pub fn of(normalized_value: &[u8]) -> AttributeHash {
        AttributeHash(Sha256::digest(normalized_value).into())
    }

    /// An existing SHA-256 digest.
    pub fn from_bytes(digest: [u8; 32]) -> AttributeHash {
        AttributeHash(digest)
    }

    /// The digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for AttributeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttributeHash({})", hex::encode(&self.0[..4]))
    }
}

// === impl LinkAttribute ===

impl LinkAttribute {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkAttribute::BeneficialOwner => "beneficial_owner",
            LinkAttribute::PaymentFingerprint => "payment_fingerprint",
            LinkAttribute::IdDocument => "id_document",
            LinkAttribute::Organization => "organization",
        }
    }
}

// === impl Store ===

impl Store {
    /// Records that `customer_id` has an attribute and links it with every other customer that
    /// has the same one (merging their groups), unless staff unlinked it (then the attribute is
    /// only recorded). Idempotent.
    pub async fn link_by_attribute(
        &self,
        customer_id: Uuid,
        kind: LinkAttribute,
        hash: &AttributeHash,
        now: OffsetDateTime,
    ) -> Result<LinkOutcome, LedgerError> {
        let at = DbTime::new(now);
        let moved = in_transaction!(self, |tx| {
            tx.lock_membership().await?;
            match tx.insert_attribute(kind, hash, customer_id, at).await {
                Ok(()) => {}
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                    return Err(LedgerError::UnknownCustomer);
                }
                Err(e) => return Err(e.into()),
            }
            let others = if tx.exempt(customer_id).await? {
                Vec::new()
            } else {
                tx.sharing(kind, hash, customer_id).await?
            };
            if others.is_empty() {
                Vec::new()
            } else {
                let mut all = others.clone();
                all.push(customer_id);
                let (group, moved) = merge(&mut tx, &all, kind.as_str(), at).await?;
                if !moved.is_empty() {
                    let detail = serde_json::json!({
                        "group_id": group, "via": kind, "moved": moved, "matched": others,
                    });
                    let actor = Actor::system("linking");
                    let subject = format!("customer:{customer_id}");
                    let entry =
                        audit::staff_action(now, &actor, "ledger.group.linked", subject, detail);
                    audit::record(&mut tx, &[entry]).await?;
                }
                moved
            }
        });
        Ok(LinkOutcome {
            group: self.group_of(customer_id).await?,
            moved,
        })
    }

    /// Staff: links two customers (merging their groups) and lifts any unlink exemption.
    pub async fn link_customers(
        &self,
        customer_a: Uuid,
        customer_b: Uuid,
        reason: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<LinkedGroup, LedgerError> {
        require_staff(actor)?;
        check_text(reason, "reason")?;
        let at = DbTime::new(now);
        let group = in_transaction!(self, |tx| {
            tx.lock_membership().await?;
            for c in [customer_a, customer_b] {
                tx.set_exempt(c, None, at).await?;
            }
            let (group, moved) = match merge(&mut tx, &[customer_a, customer_b], "staff", at).await
            {
                Err(LedgerError::Store(crate::StoreError::Database(sqlx::Error::Database(e))))
                    if e.is_foreign_key_violation() =>
                {
                    return Err(LedgerError::UnknownCustomer);
                }
                other => other?,
            };
            let detail = serde_json::json!({
                "group_id": group, "customers": [customer_a, customer_b], "moved": moved,
                "reason": reason,
            });
            let subject = format!("group:{group}");
            let entry = audit::staff_action(now, actor, "ledger.group.linked", subject, detail);
            audit::record(&mut tx, &[entry]).await?;
            group
        });
        self.group_members(group).await
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
        let left = in_transaction!(self, |tx| {
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
            let entry = audit::staff_action(now, actor, "ledger.group.unlinked", subject, detail);
            audit::record(&mut tx, &[entry]).await?;
            group
        });
        Ok(left)
    }

    /// The customer's linked group, `None` when it is linked to nobody.
    pub async fn group_of(&self, customer_id: Uuid) -> Result<Option<LinkedGroup>, LedgerError> {
        let group: Option<Uuid> = on_pool!(self, |pool| {
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
        let rows: Vec<(Uuid, OffsetDateTime, String)> = on_pool!(self, |pool| {
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
