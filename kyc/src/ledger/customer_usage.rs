//! What a customer may see of its own metering (`GET /computegate/v1/usage`): the totals of
//! every scope it is counted in — its run lineages, itself, its organization and its linked
//! group (the group's total, never the other members' names or jobs) — its open-job count, the
//! thresholds already fired for those scopes, and the crossings recorded for them. Plain reads,
//! no locks; the figures are those of the last committed decision.

use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{LedgerError, window_start};
use crate::store::{DbTime, LedgerStore, on_pool};

/// Most run lineages and crossings the view lists (newest first).
const VIEW_LIMIT: i64 = 100;

/// Which customer and windows [`LedgerStore::customer_usage`] reads.
#[derive(Debug, Clone, Copy)]
pub struct UsageQuery {
    /// The customer.
    pub customer_id: Uuid,
    /// Its organization, if any.
    pub organization_id: Option<Uuid>,
    /// The tier's customer-cap window.
    pub cap_window: std::time::Duration,
    /// The thresholds' window (customer, organization, group).
    pub threshold_window: std::time::Duration,
    /// Now.
    pub now: OffsetDateTime,
}

/// A customer's totals per scope.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerUsage {
    /// Customer FLOP within the cap window.
    pub customer_window_flop: f64,
    /// Customer FLOP within the thresholds' window.
    pub customer_flop: f64,
    /// Organization FLOP within the thresholds' window.
    pub organization_flop: Option<f64>,
    /// The linked group and its FLOP within the thresholds' window (`None`: a group of one).
    pub group: Option<(Uuid, f64)>,
    /// Reserved or running jobs.
    pub open_jobs: u64,
    /// The customer's run lineages, newest first.
    pub lineages: Vec<LineageTotal>,
    /// `(scope id, label)` of thresholds already fired for these scopes.
    pub fired: Vec<(Uuid, String)>,
    /// Crossings recorded for these scopes, newest first.
    pub crossings: Vec<ScopeCrossing>,
}

/// A run lineage's lifetime total.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LineageTotal {
    /// The lineage root's run row id.
    pub lineage_root: Uuid,
    /// The root run's run id.
    pub root_run_id: String,
    /// Used plus reserved FLOP of the whole lineage.
    pub flop: f64,
}

/// A threshold crossing recorded for one of the customer's scopes.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScopeCrossing {
    /// The threshold's label.
    pub label: String,
    /// `run`, `customer`, `organization` or `group`.
    pub scope: String,
    /// The scope's id.
    pub scope_id: Uuid,
    /// The threshold.
    pub threshold_flop: f64,
    /// The job whose admission or usage crossed it.
    pub job_id: Uuid,
    /// When.
    pub occurred_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct Sums {
    customer_window: f64,
    customer_total: f64,
    organization_total: f64,
    group_total: f64,
    open_jobs: i64,
    group_id: Option<Uuid>,
}

const SUMS: &str = "SELECT \
     (SELECT COALESCE(SUM(used_flop + reserved_flop), 0.0) FROM ledger_jobs \
        WHERE customer_id = $1 AND decided_at > $2) AS customer_window, \
     (SELECT COALESCE(SUM(used_flop + reserved_flop), 0.0) FROM ledger_jobs \
        WHERE customer_id = $1 AND decided_at > $3) AS customer_total, \
     (SELECT COALESCE(SUM(used_flop + reserved_flop), 0.0) FROM ledger_jobs \
        WHERE organization_id = $4 AND decided_at > $3) AS organization_total, \
     (SELECT COALESCE(SUM(j.used_flop + j.reserved_flop), 0.0) FROM ledger_group_members m \
        JOIN ledger_jobs j ON j.customer_id = m.customer_id \
        WHERE m.group_id = (SELECT group_id FROM ledger_group_members WHERE customer_id = $1) \
          AND j.decided_at > $3) AS group_total, \
     (SELECT COUNT(*) FROM ledger_jobs \
        WHERE customer_id = $1 AND status IN ('reserved', 'running')) AS open_jobs, \
     (SELECT group_id FROM ledger_group_members WHERE customer_id = $1) AS group_id";

const LINEAGES: &str = "SELECT b.scope_id AS lineage_root, root.run_id AS root_run_id, \
     b.used_flop + b.reserved_flop AS flop FROM ledger_budgets b \
     JOIN ledger_runs root ON root.id = b.scope_id \
     WHERE b.scope = 'lineage' AND root.customer_id = $1 \
     ORDER BY root.first_seen_at DESC, root.id DESC LIMIT $2";

/// Crossings of admitted jobs (that did not turn out never to have run) on the customer's own
/// jobs, or on its organization or group by any member.
const CROSSINGS: &str = "SELECT c.label, c.scope, c.scope_id, c.threshold_flop, c.job_id, \
     c.occurred_at FROM ledger_crossings c JOIN ledger_jobs j ON j.id = c.job_id \
     WHERE j.status IN ('reserved', 'running', 'finished', 'closed') \
       AND (j.customer_id = $1 OR c.scope_id = $2 OR c.scope_id = $3) \
     ORDER BY c.occurred_at DESC, c.id DESC LIMIT $4";

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// The customer's own metering view (see the module docs).
    pub async fn customer_usage(&self, q: &UsageQuery) -> Result<CustomerUsage, LedgerError> {
        let cap_since = DbTime::new(window_start(q.now, q.cap_window));
        let threshold_since = DbTime::new(window_start(q.now, q.threshold_window));
        let sums: Sums = on_pool!(self.store, |pool| {
            sqlx::query_as(SUMS)
                .bind(q.customer_id)
                .bind(cap_since)
                .bind(threshold_since)
                .bind(q.organization_id)
                .fetch_one(pool)
                .await?
        });
        let lineages: Vec<LineageTotal> = on_pool!(self.store, |pool| {
            sqlx::query_as(LINEAGES)
                .bind(q.customer_id)
                .bind(VIEW_LIMIT)
                .fetch_all(pool)
                .await?
        });
        let crossings: Vec<ScopeCrossing> = on_pool!(self.store, |pool| {
            sqlx::query_as(CROSSINGS)
                .bind(q.customer_id)
                .bind(q.organization_id)
                .bind(sums.group_id)
                .bind(VIEW_LIMIT)
                .fetch_all(pool)
                .await?
        });
        let mut fired: Vec<(Uuid, String)> = crossings
            .iter()
            .map(|c| (c.scope_id, c.label.clone()))
            .collect();
        fired.sort();
        fired.dedup();
        Ok(CustomerUsage {
            customer_window_flop: sums.customer_window,
            customer_flop: sums.customer_total,
            organization_flop: q.organization_id.map(|_| sums.organization_total),
            group: sums.group_id.map(|g| (g, sums.group_total)),
            open_jobs: u64::try_from(sums.open_jobs).unwrap_or(0),
            lineages,
            fired,
            crossings,
        })
    }
}
