//! Store operations on incidents: recording one (values sealed, keyed hashes beside them),
//! reading and listing, moving its status, exporting a bundle, and importing a partner's
//! bundle into review flags. Each change writes its audit record in the same transaction;
//! exports are audited too (what left the building, and for whom). Audit details carry ids,
//! kinds and counts, never an indicator value.
//! What import compares against is read in [`super::holdings`].

use std::collections::HashMap;

use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::indicators::{Indicator, IndicatorKey, IndicatorKind};
use super::matching;
use super::model::{
    Incident, IncidentError, IncidentFlag, IncidentIndicator, IncidentStatus, IncidentSummary,
    ValidIncident,
};
use super::stix_export::{self, Provider, Sharing};
use super::stix_import::{self, PartnerBundle};
use crate::accounts::{Actor, parse_column};
use crate::audit::{self, AuditAction, AuditEntry};
use crate::crypto::MasterKey;
use crate::ledger::AttributeKey;
use crate::store::{DbTime, IncidentsStore, StoreError, in_transaction, on_pool};

/// Largest page of [`IncidentsStore::incident_page`].
pub const INCIDENT_PAGE_MAX: u32 = 501;

/// Most flags one customer's list shows (newest first).
const FLAGS_PER_CUSTOMER: i64 = 200;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// The partner bundle's id.
    pub bundle_id: String,
    /// Indicators read.
    pub indicators: usize,
    /// Indicators skipped (a pattern we do not read).
    pub skipped: usize,
    /// Indicators that matched at least one customer.
    pub matched: usize,
    /// Review flags raised (a flag raised before, by the same indicator, is not raised again).
    pub flags_raised: usize,
    /// Customers flagged by this import.
    pub customers: Vec<Uuid>,
}

#[derive(sqlx::FromRow)]
struct IncidentRow {
    id: Uuid,
    kind: String,
    description: String,
    status: String,
    created_by: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    incident_id: Uuid,
    target_kind: String,
    target_id: Uuid,
}

#[derive(sqlx::FromRow)]
struct IndicatorRow {
    id: Uuid,
    incident_id: Uuid,
    kind: String,
    value_sealed: Vec<u8>,
}

/// The incident select in [`IncidentRow`] field order, as a literal for `concat!`.
macro_rules! incident_select {
    () => {
        "SELECT id, kind, description, status, created_by, created_at, updated_at FROM incidents "
    };
}

// === impl IncidentsStore ===

impl IncidentsStore<'_> {
    /// Records `incident`; audited as `incident.incident.created`. Every customer,
    /// organization and run it names must exist (else [`IncidentError::Invalid`] names it).
    pub async fn create_incident(
        &self,
        master: &MasterKey,
        incident: &ValidIncident,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Incident, IncidentError> {
        let id = Uuid::now_v7();
        let key = IndicatorKey::derive(master);
        let mut indicators = Vec::with_capacity(incident.indicators.len());
        for value in &incident.indicators {
            let indicator_id = Uuid::now_v7();
            let sealed = master.seal(value.value().as_bytes(), &aad(indicator_id))?;
            indicators.push((indicator_id, value, sealed, key.hash(value)));
        }
        let at = DbTime::new(now);
        in_transaction!(self.store, |tx| {
            let targets = [
                (
                    "customer",
                    "customers",
                    "SELECT COUNT(*) FROM customers WHERE id = $1",
                    &incident.customers,
                ),
                (
                    "organization",
                    "organizations",
                    "SELECT COUNT(*) FROM organizations WHERE id = $1",
                    &incident.organizations,
                ),
                (
                    "run",
                    "runs",
                    "SELECT COUNT(*) FROM ledger_runs WHERE id = $1",
                    &incident.runs,
                ),
            ];
            let mut unknown = Vec::new();
            for (_, field, sql, ids) in &targets {
                for target in ids.iter() {
                    let n: i64 = sqlx::query_scalar(*sql)
                        .bind(target)
                        .fetch_one(&mut *tx)
                        .await?;
                    if n == 0 {
                        unknown.push(((*field).to_owned(), format!("no such id: {target}")));
                    }
                }
            }
            if !unknown.is_empty() {
                return Err(IncidentError::Invalid(unknown));
            }
            sqlx::query(
                "INSERT INTO incidents (id, kind, description, status, created_by, created_at, \
                 updated_at) VALUES ($1, $2, $3, 'open', $4, $5, $5)",
            )
            .bind(id)
            .bind(&incident.kind)
            .bind(&incident.description)
            .bind(&actor.name)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            for (kind, _, _, ids) in &targets {
                for target in ids.iter() {
                    sqlx::query(
                        "INSERT INTO incident_links (incident_id, target_kind, target_id) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(id)
                    .bind(*kind)
                    .bind(target)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for (position, (indicator_id, value, sealed, hash)) in indicators.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO incident_indicators (id, incident_id, position, kind, \
                     value_sealed, value_hash) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(indicator_id)
                .bind(id)
                .bind(position as i64)
                .bind(value.kind().as_str())
                .bind(sealed)
                .bind(hash.as_bytes().as_slice())
                .execute(&mut *tx)
                .await?;
            }
            let kinds: Vec<&str> = incident
                .indicators
                .iter()
                .map(|i| i.kind().as_str())
                .collect();
            let entry = AuditEntry::new(now, actor, AuditAction::IncidentCreated, subject(id))
                .with_detail(json!({
                    "kind": incident.kind,
                    "customers": incident.customers,
                    "organizations": incident.organizations,
                    "runs": incident.runs,
                    "indicator_types": kinds,
                }));
            audit::append(&mut tx, &entry).await?;
        });
        Ok(Incident {
            id,
            kind: incident.kind.clone(),
            description: incident.description.clone(),
            status: IncidentStatus::Open,
            customers: incident.customers.clone(),
            organizations: incident.organizations.clone(),
            runs: incident.runs.clone(),
            indicators: indicators
                .into_iter()
                .map(|(id, value, _, _)| IncidentIndicator {
                    id,
                    indicator: value.clone(),
                })
                .collect(),
            created_by: actor.name.clone(),
            created_at: at.get(),
            updated_at: at.get(),
        })
    }

    /// Incident `id` with its indicators opened.
    pub async fn incident(
        &self,
        master: &MasterKey,
        id: Uuid,
    ) -> Result<Option<Incident>, IncidentError> {
        let (row, links, indicators): (Option<IncidentRow>, Vec<LinkRow>, Vec<IndicatorRow>) =
            on_pool!(self.store, |pool| {
                let row = sqlx::query_as(concat!(incident_select!(), "WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
                let links = sqlx::query_as(
                    "SELECT incident_id, target_kind, target_id FROM incident_links \
                     WHERE incident_id = $1",
                )
                .bind(id)
                .fetch_all(pool)
                .await?;
                let indicators = sqlx::query_as(
                    "SELECT id, incident_id, kind, value_sealed FROM incident_indicators \
                     WHERE incident_id = $1 ORDER BY position",
                )
                .bind(id)
                .fetch_all(pool)
                .await?;
                (row, links, indicators)
            });
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(assemble(master, vec![row], links, indicators)?.pop())
    }

    /// Every incident with its indicators opened, oldest first (exports).
    pub async fn all_incidents(&self, master: &MasterKey) -> Result<Vec<Incident>, IncidentError> {
        let (rows, links, indicators): (Vec<IncidentRow>, Vec<LinkRow>, Vec<IndicatorRow>) =
            on_pool!(self.store, |pool| {
                let rows = sqlx::query_as(concat!(incident_select!(), "ORDER BY created_at, id"))
                    .fetch_all(pool)
                    .await?;
                let links = sqlx::query_as(
                    "SELECT incident_id, target_kind, target_id FROM incident_links",
                )
                .fetch_all(pool)
                .await?;
                let indicators = sqlx::query_as(
                    "SELECT id, incident_id, kind, value_sealed FROM incident_indicators \
                     ORDER BY incident_id, position",
                )
                .fetch_all(pool)
                .await?;
                (rows, links, indicators)
            });
        assemble(master, rows, links, indicators)
    }

    /// A page of incidents, newest first, after the `(created_at, id)` of the previous page's
    /// last line; at most `limit` lines (capped at [`INCIDENT_PAGE_MAX`]).
    pub async fn incident_page(
        &self,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: u32,
    ) -> Result<Vec<IncidentSummary>, IncidentError> {
        let limit = i64::from(limit.min(INCIDENT_PAGE_MAX));
        const FIRST: &str = "SELECT id, kind, status, created_at, updated_at FROM incidents \
             ORDER BY created_at DESC, id DESC LIMIT $1";
        const AFTER: &str = "SELECT id, kind, status, created_at, updated_at FROM incidents \
             WHERE created_at < $2 OR (created_at = $2 AND id < $3) \
             ORDER BY created_at DESC, id DESC LIMIT $1";
        let rows: Vec<IncidentSummary> = on_pool!(self.store, |pool| match after {
            None => sqlx::query_as(FIRST).bind(limit).fetch_all(pool).await?,
            Some((at, id)) => {
                sqlx::query_as(AFTER)
                    .bind(limit)
                    .bind(DbTime::new(at))
                    .bind(id)
                    .fetch_all(pool)
                    .await?
            }
        });
        Ok(rows)
    }

    /// Moves incident `id` to `to` (open → reported → closed only); audited as
    /// `incident.status.changed`.
    pub async fn set_incident_status(
        &self,
        id: Uuid,
        to: IncidentStatus,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<IncidentSummary, IncidentError> {
        let at = DbTime::new(now);
        let summary = in_transaction!(self.store, |tx| {
            let row: Option<IncidentSummary> = sqlx::query_as(
                "SELECT id, kind, status, created_at, updated_at FROM incidents WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let mut row = row.ok_or(IncidentError::NotFound)?;
            let from: IncidentStatus = parse_column(&row.status, "incidents.status")?;
            let next = from.move_to(to)?;
            // Only while it still has the status read: two staff moving it at once, one wins.
            let moved = sqlx::query(
                "UPDATE incidents SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
            )
            .bind(next.as_str())
            .bind(at)
            .bind(id)
            .bind(from.as_str())
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() == 0 {
                return Err(IncidentError::Transition { from, to });
            }
            let entry =
                AuditEntry::new(now, actor, AuditAction::IncidentStatusChanged, subject(id))
                    .with_detail(json!({ "from": from.as_str(), "to": next.as_str() }));
            audit::append(&mut tx, &entry).await?;
            row.status = next.as_str().to_owned();
            row.updated_at = at.get();
            row
        });
        Ok(summary)
    }

    /// The bundle of incident `only` (or of every incident) for `sharing`, with the number of
    /// incidents in it; audited as `incident.bundle.exported`.
    pub async fn export_bundle(
        &self,
        master: &MasterKey,
        provider: &Provider,
        only: Option<Uuid>,
        sharing: Sharing,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(Value, usize), IncidentError> {
        let incidents = match only {
            Some(id) => vec![
                self.incident(master, id)
                    .await?
                    .ok_or(IncidentError::NotFound)?,
            ],
            None => self.all_incidents(master).await?,
        };
        let bundle = stix_export::bundle(provider, &incidents, sharing);
        let ids: Vec<Uuid> = incidents.iter().map(|i| i.id).collect();
        let target = match only {
            Some(id) => subject(id),
            None => "incidents".to_owned(),
        };
        let entry = AuditEntry::new(now, actor, AuditAction::IncidentsExported, target)
            .with_detail(
                json!({ "sharing": sharing.as_str(), "incidents": ids, "bundle_id": bundle["id"] }),
            );
        self.store.audit().record_audit(&entry).await?;
        Ok((bundle, incidents.len()))
    }

    /// Imports a partner's bundle: every customer one of its indicators matches gets a review
    /// flag with the partner's context; audited as `incident.flag.raised` per new flag and
    /// `incident.bundle.imported` once. Our own export is refused ([`IncidentError::OwnBundle`]).
    pub async fn import_bundle(
        &self,
        master: &MasterKey,
        provider: &Provider,
        bytes: &[u8],
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<ImportReport, IncidentError> {
        let bundle = stix_import::parse_bundle(bytes)?;
        if bundle.identity_ids.contains(&provider.stix_id()) {
            return Err(IncidentError::OwnBundle);
        }
        let key = IndicatorKey::derive(master);
        let holdings = self
            .holdings(key, &matching::kinds_asked(&bundle.indicators))
            .await?;
        let matches = holdings.matches(&bundle.indicators, &AttributeKey::derive(master));
        self.raise_flags(&bundle, &matches, actor, now).await
    }

    /// The review flags raised on `customer_id`, newest first.
    pub async fn flags_of_customer(
        &self,
        customer_id: Uuid,
    ) -> Result<Vec<IncidentFlag>, IncidentError> {
        let flags = on_pool!(self.store, |pool| {
            sqlx::query_as(
                "SELECT id, customer_id, partner, partner_indicator, \
                 indicator_kind AS indicator_type, context, bundle_id, created_at \
                 FROM incident_flags WHERE customer_id = $1 \
                 ORDER BY created_at DESC, id DESC LIMIT $2",
            )
            .bind(customer_id)
            .bind(FLAGS_PER_CUSTOMER)
            .fetch_all(pool)
            .await?
        });
        Ok(flags)
    }

    /// Writes the flags of `matches` and the audit records, in one transaction.
    async fn raise_flags(
        &self,
        bundle: &PartnerBundle,
        matches: &[matching::Match],
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<ImportReport, IncidentError> {
        let at = DbTime::new(now);
        let mut matched: Vec<usize> = matches.iter().map(|m| m.partner_index).collect();
        matched.dedup();
        let (raised, customers) = in_transaction!(self.store, |tx| {
            let mut raised = 0;
            let mut customers: Vec<Uuid> = Vec::new();
            for m in matches {
                let partner = &bundle.indicators[m.partner_index];
                let flag_id = Uuid::now_v7();
                let inserted = sqlx::query(
                    "INSERT INTO incident_flags (id, customer_id, partner, partner_indicator, \
                     indicator_kind, value_hash, context, bundle_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (customer_id, partner_indicator) DO NOTHING",
                )
                .bind(flag_id)
                .bind(m.customer_id)
                .bind(&partner.partner)
                .bind(&partner.stix_id)
                .bind(m.kind.as_str())
                .bind(m.hash.as_bytes().as_slice())
                .bind(&partner.context)
                .bind(&bundle.id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    continue;
                }
                raised += 1;
                if !customers.contains(&m.customer_id) {
                    customers.push(m.customer_id);
                }
                let entry = AuditEntry::new(
                    now,
                    actor,
                    AuditAction::IncidentFlagRaised,
                    format!("customer:{}", m.customer_id),
                )
                .with_detail(json!({
                    "flag_id": flag_id,
                    "partner": partner.partner,
                    "partner_indicator": partner.stix_id,
                    "indicator_type": m.kind.as_str(),
                    "bundle_id": bundle.id,
                }));
                audit::append(&mut tx, &entry).await?;
            }
            let entry = AuditEntry::new(
                now,
                actor,
                AuditAction::IncidentBundleImported,
                format!("bundle:{}", bundle.id),
            )
            .with_detail(json!({
                "indicators": bundle.indicators.len(),
                "skipped": bundle.skipped,
                "matched": matched.len(),
                "flags_raised": raised,
            }));
            audit::append(&mut tx, &entry).await?;
            (raised, customers)
        });
        Ok(ImportReport {
            bundle_id: bundle.id.clone(),
            indicators: bundle.indicators.len(),
            skipped: bundle.skipped,
            matched: matched.len(),
            flags_raised: raised,
            customers,
        })
    }
}

/// The audit subject of incident `id`.
fn subject(id: Uuid) -> String {
    format!("incident:{id}")
}

/// The associated data a sealed indicator value is bound to: its row.
fn aad(indicator_id: Uuid) -> Vec<u8> {
    format!("incident_indicator:{indicator_id}").into_bytes()
}

/// Incidents from their rows, links and indicator rows (values opened).
fn assemble(
    master: &MasterKey,
    rows: Vec<IncidentRow>,
    links: Vec<LinkRow>,
    indicators: Vec<IndicatorRow>,
) -> Result<Vec<Incident>, IncidentError> {
    let mut out: Vec<Incident> = Vec::with_capacity(rows.len());
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for row in rows {
        index.insert(row.id, out.len());
        out.push(Incident {
            id: row.id,
            kind: row.kind,
            description: row.description,
            status: parse_column(&row.status, "incidents.status")?,
            customers: Vec::new(),
            organizations: Vec::new(),
            runs: Vec::new(),
            indicators: Vec::new(),
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        });
    }
    for link in links {
        let Some(incident) = index.get(&link.incident_id).map(|&i| &mut out[i]) else {
            continue;
        };
        match link.target_kind.as_str() {
            "customer" => incident.customers.push(link.target_id),
            "organization" => incident.organizations.push(link.target_id),
            "run" => incident.runs.push(link.target_id),
            _ => {
                return Err(StoreError::CorruptRow {
                    column: "incident_links.target_kind",
                }
                .into());
            }
        }
    }
    for row in indicators {
        let Some(incident) = index.get(&row.incident_id).map(|&i| &mut out[i]) else {
            continue;
        };
        let kind: IndicatorKind = parse_column(&row.kind, "incident_indicators.kind")?;
        let value = master.open(&row.value_sealed, &aad(row.id))?;
        let value = String::from_utf8(value).map_err(|_| StoreError::CorruptRow {
            column: "incident_indicators.value_sealed",
        })?;
        let indicator = Indicator::parse(kind, &value).map_err(|_| StoreError::CorruptRow {
            column: "incident_indicators.value_sealed",
        })?;
        incident.indicators.push(IncidentIndicator {
            id: row.id,
            indicator,
        });
    }
    Ok(out)
}
