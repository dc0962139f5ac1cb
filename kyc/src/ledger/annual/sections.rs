//! The sections of the annual attestation pack and the flat row they render to. Each section is
//! one struct (what the pack says) and one store read over the period
//! (`LedgerStore::*_section`), plus its rows for CSV and PDF; the aggregations are plain
//! functions over the rows read, tested below.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use time::OffsetDateTime;

use super::at_end::{Replay, UNKNOWN};
use super::period::Period;
use crate::audit::AuditAction;
use crate::ledger::export::rfc3339;
use crate::ledger::{LedgerError, TrainingRunReport};
use crate::store::{LedgerStore, on_pool};

/// Verification outcomes decided in the year, by tier, and failed identity verifications.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verifications {
    /// Decided applications per tier (granted, else requested) and outcome (`approved` for an
    /// application that was granted its tier, whatever happened to it since; else its status:
    /// `rejected`, `expired`, `closed`, …).
    pub by_tier: BTreeMap<String, BTreeMap<String, u64>>,
    /// Identity-verification provider results of `failed` received in the year.
    pub idv_failures: u64,
}

/// The screening list versions in use during the year.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Screening {
    /// Each list version imported in the year or screened against in it, oldest first.
    pub lists: Vec<ListUse>,
    /// Screening results in the year by decision (`clear`, `review`, `hit`).
    pub results_by_decision: BTreeMap<String, u64>,
}

/// One list version's use.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ListUse {
    /// Label given at import (file name and date).
    pub label: String,
    /// `csl`, `sdn` or `opensanctions`.
    pub format: String,
    /// When it was imported.
    #[serde(with = "time::serde::rfc3339")]
    pub imported_at: OffsetDateTime,
    /// Entries in the version.
    pub entry_count: i64,
    /// Screenings in the year against it.
    pub results: i64,
}

/// Suspensions in the year, by what suspended.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Suspensions {
    /// Count per audit action (`kyc.application.suspended`, `kyc.customer.suspended`,
    /// `kyc.rescreen.suspended`, and `customer.status.changed` to `suspended`).
    pub by_action: BTreeMap<String, u64>,
    /// All of them.
    pub total: u64,
}

/// Threshold crossings in the year.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Thresholds {
    /// Crossings per threshold label and action.
    pub by_label: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Training-run reports created in the year and whether their deadlines were met.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reports {
    /// Each report, in creation order.
    pub reports: Vec<ReportDeadline>,
    /// Count per deadline outcome.
    pub by_outcome: BTreeMap<&'static str, u64>,
}

/// One report's deadline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportDeadline {
    /// Report id.
    pub id: uuid::Uuid,
    /// Run id.
    pub run_id: String,
    /// Threshold labels it reports.
    pub thresholds: Vec<String>,
    /// When it was due.
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    /// When it was filed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub filed_at: Option<OffsetDateTime>,
    /// `met`, `missed` (filed late), `overdue` (unfiled past due), `open` or `withdrawn`.
    pub outcome: &'static str,
}

/// Abuse incidents and partner threat-indicator bundles in the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Incidents {
    /// Incidents recorded in the period, by kind.
    pub by_kind: BTreeMap<String, u64>,
    /// The same incidents by their status at the period's end (`open`, `reported`, `closed`;
    /// `unknown` when the audit record of a later-changed one was redacted).
    pub by_status: BTreeMap<String, u64>,
    /// Incidents moved to `reported` in the period (whenever they were recorded).
    pub reported: u64,
    /// Partners' bundles imported in the period.
    pub bundles_imported: u64,
    /// Review flags those imports raised on our customers.
    pub flags_raised: u64,
    /// Bundles exported in the period, by sharing kind (`partner`, `authority`).
    pub bundles_exported: BTreeMap<String, u64>,
}

/// Resellers and their end-customer counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resellers {
    /// Each organization marked as reseller before the period's end, by name.
    pub resellers: Vec<ResellerCount>,
    /// Their end customers registered before the period's end.
    pub total_end_customers: u64,
}

/// One reseller's end customers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResellerCount {
    /// The reseller's organization id.
    pub organization_id: uuid::Uuid,
    /// The organization's name.
    pub name: String,
    /// Its standing at the period's end (`active`, `flagged`, `suspended`; `unknown` when the
    /// audit record that set it was redacted).
    pub standing: String,
    /// End customers registered before the period's end.
    pub end_customers: u64,
    /// Of those, the ones registered within the period.
    pub added: u64,
    /// Of those, the ones whose account was suspended at the period's end.
    pub suspended: u64,
    /// Of those, the ones refused (denied-party hits) by the period's end.
    pub refused: u64,
}

/// The policy versions in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Policies {
    /// The policy in force when the pack was made (version, effective from).
    pub in_force: PolicyVersion,
    /// Every policy in force during the period, oldest first: the one in force at its start,
    /// then each loaded within it (from the `policy.version.loaded` audit records).
    pub versions: Vec<PolicyInForce>,
    /// Accelerator-table versions the year's admission decisions used.
    pub table_versions: Vec<String>,
}

/// A policy version.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyVersion {
    /// `version` of the policy file.
    pub version: String,
    /// Its `effective_from` date.
    pub effective_from: String,
}

/// A policy in force during the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyInForce {
    /// `version` of the policy (`unknown` when retention redacted its record).
    pub version: String,
    /// Its `effective_from` date.
    pub effective_from: String,
    /// SHA-256 of its text.
    pub digest: String,
    /// When it was put in force (before the period for the one in force at its start).
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// When the next one replaced it; none while it was still in force at the period's end.
    #[serde(with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
}

/// One line of the flat form (CSV, PDF): `section, key, attribute, value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackRow {
    /// Section name (`verifications`, `reports`, …).
    pub section: &'static str,
    /// What the line is about (a tier, a list label, a report id, `all`).
    pub key: String,
    /// Which figure (`approved`, `results`, `deadline`, …).
    pub attribute: String,
    /// The figure.
    pub value: String,
}

#[derive(sqlx::FromRow)]
struct DecidedRow {
    tier: String,
    status: String,
    granted: bool,
    n: i64,
}

#[derive(sqlx::FromRow)]
struct CountRow {
    name: String,
    n: i64,
}

#[derive(sqlx::FromRow)]
struct LoadRow {
    at: OffsetDateTime,
    detail: String,
}

#[derive(sqlx::FromRow)]
struct ResellerRow {
    organization_id: uuid::Uuid,
    name: String,
    /// Its standing now, and since when.
    status: String,
    status_at: OffsetDateTime,
    end_customers: i64,
    added: i64,
    /// Suspended now, and unchanged since the period's end.
    suspended: i64,
    refused: i64,
}

#[derive(sqlx::FromRow)]
struct CrossingRow {
    label: String,
    action: String,
    n: i64,
}

// === impl PackRow ===

impl PackRow {
    pub(super) fn new(
        section: &'static str,
        key: impl ToString,
        attribute: impl ToString,
        value: impl ToString,
    ) -> PackRow {
        PackRow {
            section,
            key: key.to_string(),
            attribute: attribute.to_string(),
            value: value.to_string(),
        }
    }
}

// === store reads ===

impl LedgerStore<'_> {
    /// Verification outcomes decided in `p`.
    pub(super) async fn verifications_section(
        &self,
        p: &Period,
    ) -> Result<Verifications, LedgerError> {
        const DECIDED: &str = "SELECT COALESCE(granted_tier, requested_tier, 'none') AS tier, \
             status, (granted_tier IS NOT NULL) AS granted, COUNT(*) AS n \
             FROM verification_applications WHERE decided_at >= $1 AND decided_at < $2 \
             GROUP BY COALESCE(granted_tier, requested_tier, 'none'), status, \
                (granted_tier IS NOT NULL)";
        const IDV_FAILED: &str = "SELECT COUNT(*) FROM idv_events \
             WHERE outcome = 'failed' AND received_at >= $1 AND received_at < $2";
        let (start, end) = p.bounds();
        let (rows, failed): (Vec<DecidedRow>, (i64,)) = on_pool!(self.store, |pool| {
            let rows = sqlx::query_as(DECIDED)
                .bind(start)
                .bind(end)
                .fetch_all(pool)
                .await?;
            let failed = sqlx::query_as(IDV_FAILED)
                .bind(start)
                .bind(end)
                .fetch_one(pool)
                .await?;
            (rows, failed)
        });
        Ok(verifications(rows, failed.0))
    }

    /// Screening list versions used in `p`.
    pub(super) async fn screening_section(&self, p: &Period) -> Result<Screening, LedgerError> {
        const LISTS: &str = "SELECT l.label, l.format, l.imported_at, l.entry_count, \
             (SELECT COUNT(*) FROM screening_results r WHERE r.list_version_id = l.id \
                AND r.screened_at >= $1 AND r.screened_at < $2) AS results \
             FROM screening_lists l \
             WHERE (l.imported_at >= $1 AND l.imported_at < $2) OR EXISTS ( \
                SELECT 1 FROM screening_results r WHERE r.list_version_id = l.id \
                AND r.screened_at >= $1 AND r.screened_at < $2) \
             ORDER BY l.imported_at, l.label";
        const DECISIONS: &str = "SELECT decision AS name, COUNT(*) AS n FROM screening_results \
             WHERE screened_at >= $1 AND screened_at < $2 GROUP BY decision";
        let (start, end) = p.bounds();
        let (lists, decisions): (Vec<ListUse>, Vec<CountRow>) = on_pool!(self.store, |pool| {
            let lists = sqlx::query_as(LISTS)
                .bind(start)
                .bind(end)
                .fetch_all(pool)
                .await?;
            let decisions = sqlx::query_as(DECISIONS)
                .bind(start)
                .bind(end)
                .fetch_all(pool)
                .await?;
            (lists, decisions)
        });
        Ok(Screening {
            lists,
            results_by_decision: counts(decisions),
        })
    }

    /// Suspensions recorded in the audit chain in `p`.
    pub(super) async fn suspensions_section(&self, p: &Period) -> Result<Suspensions, LedgerError> {
        // `detail` is canonical JSON (sorted keys, no whitespace), so the staff status change
        // to `suspended` is matched on its exact text.
        const SQL: &str = "SELECT action AS name, COUNT(*) AS n FROM audit_log \
             WHERE at >= $1 AND at < $2 \
               AND (action IN ($3, $4, $5) OR (action = $6 AND detail LIKE $7)) \
             GROUP BY action";
        let (start, end) = p.bounds();
        let rows: Vec<CountRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(start)
            .bind(end)
            .bind(AuditAction::ApplicationSuspended.as_str())
            .bind(AuditAction::CustomerSuspended.as_str())
            .bind(AuditAction::RescreenSuspended.as_str())
            .bind(AuditAction::CustomerStatusChanged.as_str())
            .bind("%\"status\":\"suspended\"%")
            .fetch_all(pool)
            .await?);
        let by_action = counts(rows);
        let total = by_action.values().sum();
        Ok(Suspensions { by_action, total })
    }

    /// Threshold crossings in `p`.
    pub(super) async fn thresholds_section(&self, p: &Period) -> Result<Thresholds, LedgerError> {
        const SQL: &str = "SELECT label, action, COUNT(*) AS n FROM ledger_crossings \
             WHERE occurred_at >= $1 AND occurred_at < $2 GROUP BY label, action";
        let (start, end) = p.bounds();
        let rows: Vec<CrossingRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(start)
            .bind(end)
            .fetch_all(pool)
            .await?);
        let mut by_label: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for r in rows {
            *by_label
                .entry(r.label)
                .or_default()
                .entry(r.action)
                .or_default() += as_count(r.n);
        }
        Ok(Thresholds { by_label })
    }

    /// Reports created in `p`, judged at `p.generated_at`.
    pub(super) async fn reports_section(&self, p: &Period) -> Result<Reports, LedgerError> {
        let reports = self.reports_created_in(p.start, Some(p.end)).await?;
        Ok(report_deadlines(&reports, p.generated_at))
    }

    /// Incidents recorded in `p` and the incident audit records of `p`.
    pub(super) async fn incidents_section(&self, p: &Period) -> Result<Incidents, LedgerError> {
        const BY_KIND: &str = "SELECT kind AS name, COUNT(*) AS n FROM incidents \
             WHERE created_at >= $1 AND created_at < $2 GROUP BY kind";
        // Unchanged since the period's end: the status now is the status then.
        const BY_STATUS: &str = "SELECT status AS name, COUNT(*) AS n FROM incidents \
             WHERE created_at >= $1 AND created_at < $2 AND updated_at < $2 GROUP BY status";
        const CHANGED_SINCE: &str = "SELECT id FROM incidents \
             WHERE created_at >= $1 AND created_at < $2 AND updated_at >= $2";
        // `detail` is canonical JSON, so the move to `reported` is matched on its exact text.
        const ACTIONS: &str = "SELECT action AS name, COUNT(*) AS n FROM audit_log \
             WHERE at >= $1 AND at < $2 \
               AND (action IN ($3, $4) OR (action = $5 AND detail LIKE $6)) \
             GROUP BY action";
        const EXPORTS: &str =
            "SELECT detail FROM audit_log WHERE at >= $1 AND at < $2 AND action = $3";
        let (start, end) = p.bounds();
        let (kinds, statuses, actions, exports): (
            Vec<CountRow>,
            Vec<CountRow>,
            Vec<CountRow>,
            Vec<(String,)>,
        ) = on_pool!(self.store, |pool| {
            let kinds = sqlx::query_as(BY_KIND)
                .bind(start)
                .bind(end)
                .fetch_all(pool)
                .await?;
            let statuses = sqlx::query_as(BY_STATUS)
                .bind(start)
                .bind(end)
                .fetch_all(pool)
                .await?;
            let actions = sqlx::query_as(ACTIONS)
                .bind(start)
                .bind(end)
                .bind(AuditAction::IncidentBundleImported.as_str())
                .bind(AuditAction::IncidentFlagRaised.as_str())
                .bind(AuditAction::IncidentStatusChanged.as_str())
                .bind("%\"to\":\"reported\"%")
                .fetch_all(pool)
                .await?;
            let exports = sqlx::query_as(EXPORTS)
                .bind(start)
                .bind(end)
                .bind(AuditAction::IncidentsExported.as_str())
                .fetch_all(pool)
                .await?;
            (kinds, statuses, actions, exports)
        });
        let changed: Vec<(uuid::Uuid,)> =
            on_pool!(self.store, |pool| sqlx::query_as(CHANGED_SINCE)
                .bind(start)
                .bind(end)
                .fetch_all(pool)
                .await?);
        let mut by_status = counts(statuses);
        if !changed.is_empty() {
            let states = self.states_at(Replay::IncidentStatus, end).await?;
            for (id,) in changed {
                // Recorded `open`; no move before the end leaves it open.
                let state = states.get(&format!("incident:{id}"));
                let state = state.map_or("open", String::as_str);
                *by_status.entry(state.to_owned()).or_default() += 1;
            }
        }
        let actions = counts(actions);
        let count_of = |a: AuditAction| actions.get(a.as_str()).copied().unwrap_or(0);
        Ok(Incidents {
            by_kind: counts(kinds),
            by_status,
            reported: count_of(AuditAction::IncidentStatusChanged),
            bundles_imported: count_of(AuditAction::IncidentBundleImported),
            flags_raised: count_of(AuditAction::IncidentFlagRaised),
            bundles_exported: exports_by_sharing(exports.iter().map(|(d,)| d.as_str())),
        })
    }

    /// Resellers marked before the end of `p` and their end customers registered before it, each
    /// as it stood at the end of `p` (replayed from the audit chain when it changed since).
    pub(super) async fn resellers_section(&self, p: &Period) -> Result<Resellers, LedgerError> {
        // Per-reseller counts as correlated subqueries: portable to both stores, and each
        // runs on the `end_customers (reseller_id, created_at, id)` index. Refused by the end:
        // a refusal is final and sets `updated_at` (at registration, or staff's decision).
        // Suspended by the end: here only the accounts unchanged since; the others are replayed.
        const SQL: &str = "SELECT r.organization_id, o.name, r.status, r.status_at, \
             (SELECT COUNT(*) FROM end_customers e WHERE e.reseller_id = r.organization_id \
                AND e.created_at < $2) AS end_customers, \
             (SELECT COUNT(*) FROM end_customers e WHERE e.reseller_id = r.organization_id \
                AND e.created_at >= $1 AND e.created_at < $2) AS added, \
             (SELECT COUNT(*) FROM end_customers e JOIN customers c ON c.id = e.id \
                WHERE e.reseller_id = r.organization_id AND e.created_at < $2 \
                AND c.status = 'suspended' AND c.updated_at < $2) AS suspended, \
             (SELECT COUNT(*) FROM end_customers e WHERE e.reseller_id = r.organization_id \
                AND e.created_at < $2 AND e.screening = 'refused' AND e.updated_at < $2) AS refused \
             FROM resellers r JOIN organizations o ON o.id = r.organization_id \
             WHERE r.marked_at < $2 ORDER BY o.name, r.organization_id";
        const CHANGED_SINCE: &str = "SELECT e.id, e.reseller_id FROM end_customers e \
             JOIN customers c ON c.id = e.id WHERE e.created_at < $1 AND c.updated_at >= $1";
        let (start, end) = p.bounds();
        let (rows, changed): (Vec<ResellerRow>, Vec<(uuid::Uuid, uuid::Uuid)>) =
            on_pool!(self.store, |pool| {
                let rows = sqlx::query_as(SQL)
                    .bind(start)
                    .bind(end)
                    .fetch_all(pool)
                    .await?;
                let changed = sqlx::query_as(CHANGED_SINCE)
                    .bind(end)
                    .fetch_all(pool)
                    .await?;
                (rows, changed)
            });
        let standings = if rows.iter().any(|r| r.status_at >= p.end) {
            self.states_at(Replay::ResellerStanding, end).await?
        } else {
            HashMap::new()
        };
        let accounts = if changed.is_empty() {
            HashMap::new()
        } else {
            self.states_at(Replay::CustomerStatus, end).await?
        };
        let mut suspended_since: HashMap<uuid::Uuid, i64> = HashMap::new();
        for (id, reseller) in changed {
            // Registered active; no suspension before the end leaves it active.
            let state = accounts.get(&format!("customer:{id}"));
            if state.map(String::as_str) == Some("suspended") {
                *suspended_since.entry(reseller).or_default() += 1;
            }
        }
        let rows = rows
            .into_iter()
            .map(|mut r| {
                if r.status_at >= p.end {
                    let key = format!("organization:{}", r.organization_id);
                    r.status = standings
                        .get(&key)
                        .map_or(UNKNOWN, String::as_str)
                        .to_owned();
                }
                r.suspended += suspended_since
                    .get(&r.organization_id)
                    .copied()
                    .unwrap_or(0);
                r
            })
            .collect();
        Ok(resellers(rows))
    }

    /// The policies in force during `p`: the last `policy.version.loaded` record before it and
    /// every one within it.
    pub(super) async fn policy_versions(
        &self,
        p: &Period,
    ) -> Result<Vec<PolicyInForce>, LedgerError> {
        const SQL: &str = "SELECT at, detail FROM audit_log \
             WHERE action = $1 AND at < $3 AND seq >= COALESCE( \
                (SELECT MAX(seq) FROM audit_log WHERE action = $1 AND at < $2), 0) \
             ORDER BY seq";
        let (start, end) = p.bounds();
        let rows: Vec<LoadRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(AuditAction::PolicyLoaded.as_str())
            .bind(start)
            .bind(end)
            .fetch_all(pool)
            .await?);
        Ok(versions_in_force(rows))
    }

    /// Accelerator-table versions of the year's admission decisions.
    pub(super) async fn table_versions(&self, p: &Period) -> Result<Vec<String>, LedgerError> {
        const SQL: &str = "SELECT DISTINCT table_version FROM ledger_jobs \
             WHERE decided_at >= $1 AND decided_at < $2 ORDER BY table_version";
        let (start, end) = p.bounds();
        let rows: Vec<(String,)> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(start)
            .bind(end)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }
}

// === aggregations ===

fn as_count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn counts(rows: Vec<CountRow>) -> BTreeMap<String, u64> {
    rows.into_iter().map(|r| (r.name, as_count(r.n))).collect()
}

fn verifications(rows: Vec<DecidedRow>, idv_failures: i64) -> Verifications {
    let mut by_tier: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in rows {
        let outcome = if r.granted {
            "approved".to_owned()
        } else {
            r.status
        };
        *by_tier
            .entry(r.tier)
            .or_default()
            .entry(outcome)
            .or_default() += as_count(r.n);
    }
    Verifications {
        by_tier,
        idv_failures: as_count(idv_failures),
    }
}

fn resellers(rows: Vec<ResellerRow>) -> Resellers {
    let resellers: Vec<ResellerCount> = rows
        .into_iter()
        .map(|r| ResellerCount {
            organization_id: r.organization_id,
            name: r.name,
            standing: r.status,
            end_customers: as_count(r.end_customers),
            added: as_count(r.added),
            suspended: as_count(r.suspended),
            refused: as_count(r.refused),
        })
        .collect();
    let total_end_customers = resellers.iter().map(|r| r.end_customers).sum();
    Resellers {
        resellers,
        total_end_customers,
    }
}

/// Export records (their `detail` JSON) counted by `sharing`; a record whose detail no longer
/// says (redacted by retention) counts as `unknown`, so the total stays right.
fn exports_by_sharing<'a>(details: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for detail in details {
        let doc: serde_json::Value = serde_json::from_str(detail).unwrap_or_default();
        let sharing = doc["sharing"].as_str().unwrap_or("unknown").to_owned();
        *out.entry(sharing).or_default() += 1;
    }
    out
}

/// The load records, oldest first, as versions with from/to times; consecutive records of one
/// version and digest (two nodes recording the same reload) are one version.
fn versions_in_force(rows: Vec<LoadRow>) -> Vec<PolicyInForce> {
    let mut out: Vec<PolicyInForce> = Vec::new();
    for row in rows {
        let doc: serde_json::Value = serde_json::from_str(&row.detail).unwrap_or_default();
        let field = |k: &str| doc[k].as_str().unwrap_or("unknown").to_owned();
        let (version, digest) = (field("version"), field("digest"));
        if let Some(last) = out.last_mut() {
            if last.version == version && last.digest == digest && version != "unknown" {
                continue;
            }
            last.to = Some(row.at);
        }
        out.push(PolicyInForce {
            version,
            effective_from: field("effective_from"),
            digest,
            from: row.at,
            to: None,
        });
    }
    out
}

/// Each report's deadline outcome at `now`.
fn report_deadlines(reports: &[TrainingRunReport], now: OffsetDateTime) -> Reports {
    let mut out = Reports::default();
    for r in reports {
        let outcome = match (r.withdrawn_at, r.filed_at) {
            (Some(_), _) => "withdrawn",
            (None, Some(filed)) if filed <= r.due_at => "met",
            (None, Some(_)) => "missed",
            (None, None) if r.due_at < now => "overdue",
            (None, None) => "open",
        };
        *out.by_outcome.entry(outcome).or_default() += 1;
        out.reports.push(ReportDeadline {
            id: r.id,
            run_id: r.run_id.clone(),
            thresholds: r.crossings.iter().map(|c| c.label.clone()).collect(),
            due_at: r.due_at,
            filed_at: r.filed_at,
            outcome,
        });
    }
    out
}

// === rows ===

impl Verifications {
    pub(super) fn rows(&self) -> Vec<PackRow> {
        let mut rows: Vec<PackRow> = self
            .by_tier
            .iter()
            .flat_map(|(tier, outcomes)| {
                outcomes
                    .iter()
                    .map(move |(o, n)| PackRow::new("verifications", tier, o, n))
            })
            .collect();
        rows.push(PackRow::new(
            "verifications",
            "all",
            "idv_failures",
            self.idv_failures,
        ));
        rows
    }
}

impl Screening {
    pub(super) fn rows(&self) -> Vec<PackRow> {
        let mut rows = Vec::new();
        for l in &self.lists {
            let imported = rfc3339(l.imported_at);
            rows.push(PackRow::new("screening", &l.label, "format", &l.format));
            rows.push(PackRow::new("screening", &l.label, "imported_at", imported));
            rows.push(PackRow::new(
                "screening",
                &l.label,
                "entries",
                l.entry_count,
            ));
            rows.push(PackRow::new("screening", &l.label, "results", l.results));
        }
        for (decision, n) in &self.results_by_decision {
            rows.push(PackRow::new("screening", "all", decision, n));
        }
        let total: u64 = self.results_by_decision.values().sum();
        rows.push(PackRow::new("screening", "all", "results", total));
        rows
    }
}

impl Suspensions {
    pub(super) fn rows(&self) -> Vec<PackRow> {
        let mut rows: Vec<PackRow> = self
            .by_action
            .iter()
            .map(|(a, n)| PackRow::new("suspensions", a, "count", n))
            .collect();
        rows.push(PackRow::new("suspensions", "all", "total", self.total));
        rows
    }
}

impl Thresholds {
    pub(super) fn rows(&self) -> Vec<PackRow> {
        let mut rows: Vec<PackRow> = self
            .by_label
            .iter()
            .flat_map(|(label, actions)| {
                actions
                    .iter()
                    .map(move |(a, n)| PackRow::new("threshold_crossings", label, a, n))
            })
            .collect();
        let total: u64 = self.by_label.values().flat_map(|a| a.values()).sum();
        rows.push(PackRow::new("threshold_crossings", "all", "total", total));
        rows
    }
}

impl Reports {
    pub(super) fn rows(&self) -> Vec<PackRow> {
        let mut rows = Vec::new();
        for r in &self.reports {
            let key = r.id.to_string();
            rows.push(PackRow::new("reports", &key, "run_id", &r.run_id));
            rows.push(PackRow::new(
                "reports",
                &key,
                "thresholds",
                r.thresholds.join(";"),
            ));
            rows.push(PackRow::new("reports", &key, "due_at", rfc3339(r.due_at)));
            let filed = r.filed_at.map(rfc3339).unwrap_or_default();
            rows.push(PackRow::new("reports", &key, "filed_at", filed));
            rows.push(PackRow::new("reports", &key, "deadline", r.outcome));
        }
        for (outcome, n) in &self.by_outcome {
            rows.push(PackRow::new("reports", "all", outcome, n));
        }
        rows.push(PackRow::new("reports", "all", "total", self.reports.len()));
        rows
    }
}

impl Incidents {
    pub(super) fn rows(&self) -> Vec<PackRow> {
        let mut rows = Vec::new();
        for (kind, n) in &self.by_kind {
            rows.push(PackRow::new("incidents", kind, "recorded", n));
        }
        for (status, n) in &self.by_status {
            rows.push(PackRow::new(
                "incidents",
                "all",
                format!("status_{status}"),
                n,
            ));
        }
        let recorded: u64 = self.by_kind.values().sum();
        rows.push(PackRow::new("incidents", "all", "recorded", recorded));
        rows.push(PackRow::new("incidents", "all", "reported", self.reported));
        let imported = self.bundles_imported;
        rows.push(PackRow::new(
            "incidents",
            "all",
            "bundles_imported",
            imported,
        ));
        rows.push(PackRow::new(
            "incidents",
            "all",
            "flags_raised",
            self.flags_raised,
        ));
        for (sharing, n) in &self.bundles_exported {
            rows.push(PackRow::new("incidents", sharing, "bundles_exported", n));
        }
        let exported: u64 = self.bundles_exported.values().sum();
        rows.push(PackRow::new(
            "incidents",
            "all",
            "bundles_exported",
            exported,
        ));
        rows
    }
}

impl Resellers {
    pub(super) fn rows(&self) -> Vec<PackRow> {
        let mut rows = Vec::new();
        for r in &self.resellers {
            let key = r.organization_id.to_string();
            rows.push(PackRow::new("resellers", &key, "name", &r.name));
            rows.push(PackRow::new("resellers", &key, "standing", &r.standing));
            rows.push(PackRow::new(
                "resellers",
                &key,
                "end_customers",
                r.end_customers,
            ));
            rows.push(PackRow::new("resellers", &key, "added", r.added));
            rows.push(PackRow::new("resellers", &key, "suspended", r.suspended));
            rows.push(PackRow::new("resellers", &key, "refused", r.refused));
        }
        rows.push(PackRow::new(
            "resellers",
            "all",
            "end_customers",
            self.total_end_customers,
        ));
        rows
    }
}

impl Policies {
    pub(super) fn rows(&self) -> Vec<PackRow> {
        let v = &self.in_force;
        let mut rows = vec![PackRow::new(
            "policy",
            &v.version,
            "effective_from",
            &v.effective_from,
        )];
        for p in &self.versions {
            let key = format!("{}@{}", p.version, p.from.unix_timestamp());
            rows.push(PackRow::new("policy", &key, "version", &p.version));
            rows.push(PackRow::new(
                "policy",
                &key,
                "effective_from",
                &p.effective_from,
            ));
            rows.push(PackRow::new("policy", &key, "digest", &p.digest));
            rows.push(PackRow::new(
                "policy",
                &key,
                "in_force_from",
                rfc3339(p.from),
            ));
            let to = p.to.map(rfc3339).unwrap_or_default();
            rows.push(PackRow::new("policy", &key, "in_force_to", to));
        }
        for t in &self.table_versions {
            rows.push(PackRow::new("policy", t, "accelerator_table", "used"));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn granted_applications_count_as_approved_whatever_their_status_now() {
        let row = |tier: &str, status: &str, granted, n| DecidedRow {
            tier: tier.into(),
            status: status.into(),
            granted,
            n,
        };
        let v = verifications(
            vec![
                row("identity_verified", "approved", true, 2),
                row("identity_verified", "suspended", true, 1),
                row("identity_verified", "rejected", false, 1),
                row("organization_verified", "expired", false, 3),
            ],
            4,
        );
        assert_eq!(v.by_tier["identity_verified"]["approved"], 3);
        assert_eq!(v.by_tier["identity_verified"]["rejected"], 1);
        assert_eq!(v.by_tier["organization_verified"]["expired"], 3);
        assert_eq!(v.idv_failures, 4);
        assert_eq!(v.rows().len(), 4);
    }

    #[test]
    fn exports_count_by_sharing_and_redacted_records_still_count() {
        let details = [
            r#"{"bundle_id":"b1","incidents":[],"sharing":"partner"}"#,
            r#"{"bundle_id":"b2","incidents":[],"sharing":"authority"}"#,
            r#"{"bundle_id":"b3","incidents":[],"sharing":"partner"}"#,
            r#"{"redacted":true}"#,
        ];
        let by = exports_by_sharing(details.into_iter());
        assert_eq!(by["partner"], 2);
        assert_eq!(by["authority"], 1);
        assert_eq!(by["unknown"], 1);
        let section = Incidents {
            bundles_exported: by,
            ..Incidents::default()
        };
        let rows = section.rows();
        let total = rows
            .iter()
            .find(|r| r.key == "all" && r.attribute == "bundles_exported")
            .expect("total row");
        assert_eq!(total.value, "4");
    }

    #[test]
    fn each_load_ends_the_previous_version_and_repeats_fold_together() {
        let at = |h| datetime!(2030-01-01 0:00 UTC) + time::Duration::hours(h);
        let row = |h, version: &str, digest: &str| LoadRow {
            at: at(h),
            detail: format!(
                r#"{{"digest":"{digest}","effective_from":"2030-01-01","trigger":"sighup","version":"{version}"}}"#
            ),
        };
        let versions = versions_in_force(vec![
            row(-100, "1", "a"),
            row(5, "2", "b"),
            row(6, "2", "b"),
            row(9, "2", "c"),
            LoadRow {
                at: at(12),
                detail: crate::audit::REDACTED_DETAIL.into(),
            },
        ]);
        let seen: Vec<(&str, &str, OffsetDateTime, Option<OffsetDateTime>)> = versions
            .iter()
            .map(|v| (v.version.as_str(), v.digest.as_str(), v.from, v.to))
            .collect();
        assert_eq!(
            seen,
            [
                ("1", "a", at(-100), Some(at(5))),
                ("2", "b", at(5), Some(at(9))),
                ("2", "c", at(9), Some(at(12))),
                ("unknown", "unknown", at(12), None),
            ]
        );
        let policies = Policies {
            versions,
            ..Policies::default()
        };
        let rows = policies.rows();
        assert_eq!(rows.iter().filter(|r| r.attribute == "version").count(), 4);
    }

    #[test]
    fn resellers_total_their_end_customers_one_row_each_figure() {
        let row = |name: &str, n, added| ResellerRow {
            organization_id: uuid::Uuid::new_v4(),
            name: name.into(),
            status: "active".into(),
            status_at: datetime!(2030-01-01 0:00 UTC),
            end_customers: n,
            added,
            suspended: 1,
            refused: 0,
        };
        let section = resellers(vec![row("Helios AB", 3, 2), row("Nordic AB", 4, 0)]);
        assert_eq!(section.total_end_customers, 7);
        assert_eq!(section.resellers[0].added, 2);
        let rows = section.rows();
        assert_eq!(rows.len(), 2 * 6 + 1);
        let last = rows.last().expect("total row");
        assert_eq!(
            (
                last.key.as_str(),
                last.attribute.as_str(),
                last.value.as_str()
            ),
            ("all", "end_customers", "7")
        );
        let key = section.resellers[1].organization_id.to_string();
        assert!(
            rows.iter()
                .any(|r| r.key == key && r.attribute == "end_customers" && r.value == "4")
        );
        assert_eq!(Resellers::default().rows().len(), 1);
    }

    #[test]
    fn report_deadlines_are_met_missed_overdue_open_or_withdrawn() {
        let due = datetime!(2030-06-15 0:00 UTC);
        let now = datetime!(2030-07-01 0:00 UTC);
        let report = |filed, withdrawn, due_at| TrainingRunReport {
            id: uuid::Uuid::nil(),
            job_id: uuid::Uuid::nil(),
            customer_id: uuid::Uuid::nil(),
            organization_id: None,
            run_id: "run".into(),
            lineage_root: uuid::Uuid::nil(),
            crossings: Vec::new(),
            identity_snapshot: None,
            estimate_flop: 1.0,
            hardware_flop: None,
            declared_flop: None,
            basis: "hardware".into(),
            table_version: "t".into(),
            accelerators: 1,
            accelerator_type: None,
            cumulative_flop: 1.0,
            created_at: due_at,
            due_at,
            filed_at: filed,
            filed_by: None,
            filing_reference: None,
            withdrawn_at: withdrawn,
            withdrawn_reason: None,
        };
        let reports = [
            report(Some(due), None, due),
            report(Some(due + time::Duration::days(1)), None, due),
            report(None, None, due),
            report(None, None, now + time::Duration::days(1)),
            report(None, Some(due), due),
        ];
        let out = report_deadlines(&reports, now);
        let outcomes: Vec<&str> = out.reports.iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, ["met", "missed", "overdue", "open", "withdrawn"]);
        assert_eq!(out.by_outcome["missed"], 1);
    }
}
