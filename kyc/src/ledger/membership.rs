//! Group membership queries inside one write transaction, written once for both backends
//! (see [`super::groups`] for the locking discipline they serve).

use std::future::Future;

use sqlx::{Postgres, Sqlite, Transaction};
use uuid::Uuid;

use super::attributes::AttributeHash;
use super::attributes::LinkAttribute;
use crate::store::DbTime;

/// Membership queries inside one write transaction, for both backends. Crate-visible so the
/// verification workflow can link an approved customer inside its own transaction.
pub(crate) trait GroupTx: Send {
    /// Serializes membership changes (PostgreSQL: locks the sentinel budget row).
    fn lock_membership(&mut self) -> impl Future<Output = sqlx::Result<()>> + Send;
    /// Creates (if missing) and locks a customer's budget row.
    fn lock_customer(&mut self, customer: Uuid) -> impl Future<Output = sqlx::Result<()>> + Send;
    /// Locks a group's budget row.
    fn lock_group(&mut self, group: Uuid) -> impl Future<Output = sqlx::Result<()>> + Send;
    /// The customer's group.
    fn group_id_of(
        &mut self,
        customer: Uuid,
    ) -> impl Future<Output = sqlx::Result<Option<Uuid>>> + Send;
    /// A group's member ids.
    fn member_ids(&mut self, group: Uuid) -> impl Future<Output = sqlx::Result<Vec<Uuid>>> + Send;
    /// Records an attribute (idempotent); a missing customer is a foreign-key error.
    fn insert_attribute(
        &mut self,
        kind: LinkAttribute,
        hash: &AttributeHash,
        customer: Uuid,
        now: DbTime,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;
    /// Other non-exempt customers with the same attribute.
    fn sharing(
        &mut self,
        kind: LinkAttribute,
        hash: &AttributeHash,
        except: Uuid,
    ) -> impl Future<Output = sqlx::Result<Vec<Uuid>>> + Send;
    /// Whether staff exempted the customer from automatic linking.
    fn exempt(&mut self, customer: Uuid) -> impl Future<Output = sqlx::Result<bool>> + Send;
    /// Sets or clears the exemption.
    fn set_exempt(
        &mut self,
        customer: Uuid,
        exemption: Option<(&str, &str)>,
        now: DbTime,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;
    /// Creates a group and its budget row.
    fn create_group(
        &mut self,
        id: Uuid,
        now: DbTime,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;
    /// Puts a customer in a group (replacing any membership).
    fn set_member(
        &mut self,
        customer: Uuid,
        group: Uuid,
        via: &str,
        now: DbTime,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;
    /// Removes a customer from its group.
    fn remove_member(&mut self, customer: Uuid) -> impl Future<Output = sqlx::Result<()>> + Send;
    /// Deletes an empty group and its budget row.
    fn delete_group(&mut self, id: Uuid) -> impl Future<Output = sqlx::Result<()>> + Send;
    /// The charge (used + reserved) of the jobs decided after `since` of the customer's group,
    /// or of the customer alone when it has none.
    fn part_total(
        &mut self,
        customer: Uuid,
        since: DbTime,
    ) -> impl Future<Output = sqlx::Result<f64>> + Send;
    /// The latest admitted job (reserved, running or finished) of a group's members decided
    /// after `since`.
    fn latest_group_job(
        &mut self,
        group: Uuid,
        since: DbTime,
    ) -> impl Future<Output = sqlx::Result<Option<Uuid>>> + Send;
}

/// See [`GroupTx::part_total`]: the customer's group members, or the customer alone.
const PART_TOTAL: &str = "SELECT COALESCE(SUM(j.used_flop + j.reserved_flop), 0.0) \
     FROM ledger_jobs j WHERE j.decided_at > $2 AND j.customer_id IN ( \
       SELECT m2.customer_id FROM ledger_group_members m1 \
       JOIN ledger_group_members m2 ON m2.group_id = m1.group_id WHERE m1.customer_id = $1 \
       UNION SELECT $1)";

/// See [`GroupTx::latest_group_job`].
const LATEST_GROUP_JOB: &str = "SELECT j.id FROM ledger_group_members m \
     JOIN ledger_jobs j ON j.customer_id = m.customer_id \
     WHERE m.group_id = $1 AND j.decided_at > $2 \
       AND j.status IN ('reserved', 'running', 'finished', 'closed') \
     ORDER BY j.decided_at DESC, j.id DESC LIMIT 1";

/// One body per backend; `$lock` is the locking clause.
macro_rules! group_tx_for {
    ($db:ty, lock = $lock:literal) => {
        impl GroupTx for Transaction<'_, $db> {
            async fn lock_membership(&mut self) -> sqlx::Result<()> {
                self.lock_customer(Uuid::nil()).await
            }

            async fn lock_customer(&mut self, customer: Uuid) -> sqlx::Result<()> {
                sqlx::query(
                    "INSERT INTO ledger_budgets (scope, scope_id) VALUES ('customer', $1) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(customer)
                .execute(&mut **self)
                .await?;
                sqlx::query(concat!(
                    "SELECT scope FROM ledger_budgets WHERE scope = 'customer' AND scope_id = $1",
                    $lock
                ))
                .bind(customer)
                .fetch_all(&mut **self)
                .await
                .map(drop)
            }

            async fn lock_group(&mut self, group: Uuid) -> sqlx::Result<()> {
                sqlx::query(concat!(
                    "SELECT scope FROM ledger_budgets WHERE scope = 'group' AND scope_id = $1",
                    $lock
                ))
                .bind(group)
                .fetch_all(&mut **self)
                .await
                .map(drop)
            }

            async fn group_id_of(&mut self, customer: Uuid) -> sqlx::Result<Option<Uuid>> {
                sqlx::query_scalar(
                    "SELECT group_id FROM ledger_group_members WHERE customer_id = $1",
                )
                .bind(customer)
                .fetch_optional(&mut **self)
                .await
            }

            async fn member_ids(&mut self, group: Uuid) -> sqlx::Result<Vec<Uuid>> {
                sqlx::query_scalar(
                    "SELECT customer_id FROM ledger_group_members WHERE group_id = $1 \
                     ORDER BY customer_id",
                )
                .bind(group)
                .fetch_all(&mut **self)
                .await
            }

            async fn insert_attribute(
                &mut self,
                kind: LinkAttribute,
                hash: &AttributeHash,
                customer: Uuid,
                now: DbTime,
            ) -> sqlx::Result<()> {
                sqlx::query(
                    "INSERT INTO ledger_link_attributes (kind, value_hash, customer_id, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(kind.as_str())
                .bind(hash.as_bytes().to_vec())
                .bind(customer)
                .bind(now)
                .execute(&mut **self)
                .await
                .map(drop)
            }

            async fn sharing(
                &mut self,
                kind: LinkAttribute,
                hash: &AttributeHash,
                except: Uuid,
            ) -> sqlx::Result<Vec<Uuid>> {
                sqlx::query_scalar(
                    "SELECT a.customer_id FROM ledger_link_attributes a \
                     WHERE a.kind = $1 AND a.value_hash = $2 AND a.customer_id <> $3 \
                       AND NOT EXISTS (SELECT 1 FROM ledger_link_exemptions e \
                                       WHERE e.customer_id = a.customer_id) \
                     ORDER BY a.customer_id",
                )
                .bind(kind.as_str())
                .bind(hash.as_bytes().to_vec())
                .bind(except)
                .fetch_all(&mut **self)
                .await
            }

            async fn exempt(&mut self, customer: Uuid) -> sqlx::Result<bool> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM ledger_link_exemptions WHERE customer_id = $1",
                )
                .bind(customer)
                .fetch_one(&mut **self)
                .await?;
                Ok(n > 0)
            }

            async fn set_exempt(
                &mut self,
                customer: Uuid,
                exemption: Option<(&str, &str)>,
                now: DbTime,
            ) -> sqlx::Result<()> {
                let Some((actor, reason)) = exemption else {
                    return sqlx::query("DELETE FROM ledger_link_exemptions WHERE customer_id = $1")
                        .bind(customer)
                        .execute(&mut **self)
                        .await
                        .map(drop);
                };
                sqlx::query(
                    "INSERT INTO ledger_link_exemptions (customer_id, actor, reason, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (customer_id) DO UPDATE \
                     SET actor = excluded.actor, reason = excluded.reason, \
                         created_at = excluded.created_at",
                )
                .bind(customer)
                .bind(actor)
                .bind(reason)
                .bind(now)
                .execute(&mut **self)
                .await
                .map(drop)
            }

            async fn create_group(&mut self, id: Uuid, now: DbTime) -> sqlx::Result<()> {
                sqlx::query("INSERT INTO ledger_groups (id, created_at) VALUES ($1, $2)")
                    .bind(id)
                    .bind(now)
                    .execute(&mut **self)
                    .await?;
                sqlx::query("INSERT INTO ledger_budgets (scope, scope_id) VALUES ('group', $1)")
                    .bind(id)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }

            async fn set_member(
                &mut self,
                customer: Uuid,
                group: Uuid,
                via: &str,
                now: DbTime,
            ) -> sqlx::Result<()> {
                sqlx::query(
                    "INSERT INTO ledger_group_members (customer_id, group_id, joined_at, via) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (customer_id) DO UPDATE \
                     SET group_id = excluded.group_id, joined_at = excluded.joined_at, \
                         via = excluded.via",
                )
                .bind(customer)
                .bind(group)
                .bind(now)
                .bind(via)
                .execute(&mut **self)
                .await
                .map(drop)
            }

            async fn remove_member(&mut self, customer: Uuid) -> sqlx::Result<()> {
                sqlx::query("DELETE FROM ledger_group_members WHERE customer_id = $1")
                    .bind(customer)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }

            async fn part_total(&mut self, customer: Uuid, since: DbTime) -> sqlx::Result<f64> {
                sqlx::query_scalar(PART_TOTAL)
                    .bind(customer)
                    .bind(since)
                    .fetch_one(&mut **self)
                    .await
            }

            async fn latest_group_job(
                &mut self,
                group: Uuid,
                since: DbTime,
            ) -> sqlx::Result<Option<Uuid>> {
                sqlx::query_scalar(LATEST_GROUP_JOB)
                    .bind(group)
                    .bind(since)
                    .fetch_optional(&mut **self)
                    .await
            }

            async fn delete_group(&mut self, id: Uuid) -> sqlx::Result<()> {
                sqlx::query("DELETE FROM ledger_budgets WHERE scope = 'group' AND scope_id = $1")
                    .bind(id)
                    .execute(&mut **self)
                    .await?;
                sqlx::query("DELETE FROM ledger_groups WHERE id = $1")
                    .bind(id)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }
        }
    };
}

group_tx_for!(Sqlite, lock = "");
group_tx_for!(Postgres, lock = " FOR UPDATE");
