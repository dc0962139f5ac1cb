//! The annual attestation pack: the provider's yearly certification figures for one calendar
//! year (UTC) — verification outcomes by tier and failed identity verifications, screening list
//! versions used, suspensions, threshold crossings, training-run reports with their deadlines
//! met or missed, abuse incidents and partner bundles, resellers and their end-customer counts,
//! and the policy versions in force.
//!
//! `Period::quarter` gives the same pack over one calendar quarter (the quarterly summary,
//! `kind: quarterly`).
//!
//! `period.rs` holds the period; `at_end.rs` replays from the audit chain the states that
//! changed after the period's end (a reseller's standing, an account's suspension, an
//! incident's status), so a past period's pack says how things stood then, not now; a section
//! is one struct and one store read (`sections.rs`)
//! plus its flat rows; adding one is a field of [`AnnualPack`], a line in
//! [`LedgerStore::annual_pack`] and a line in [`AnnualPack::rows`]. JSON is the pack as one document; CSV is one flat table
//! with a `section` column (`section,key,attribute,value`), the same rows a PDF renders.

mod at_end;
mod period;
mod sections;

use std::io::Write;

use serde::Serialize;
use time::OffsetDateTime;

pub use self::period::{FIRST_YEAR, Period, PeriodError};
pub use self::sections::{
    Incidents, ListUse, PackRow, Policies, PolicyInForce, PolicyVersion, ReportDeadline, Reports,
    ResellerCount, Resellers, Screening, Suspensions, Thresholds, Verifications,
};
use super::export::{rfc3339, write_json, write_row};
use crate::ledger::LedgerError;
use crate::store::LedgerStore;

/// The pack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnualPack {
    /// `annual`, or `quarterly` for the same figures over one quarter.
    pub kind: &'static str,
    /// The calendar year.
    pub year: i32,
    /// The quarter of a quarterly summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarter: Option<u8>,
    /// When the pack was made.
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// Verification outcomes.
    pub verifications: Verifications,
    /// Screening list versions used.
    pub screening: Screening,
    /// Suspensions.
    pub suspensions: Suspensions,
    /// Threshold crossings.
    pub threshold_crossings: Thresholds,
    /// Training-run reports and their deadlines.
    pub reports: Reports,
    /// Abuse incidents and partner bundles.
    pub incidents: Incidents,
    /// Resellers and their end-customer counts.
    pub resellers: Resellers,
    /// Policy versions in force.
    pub policy: Policies,
}

// === impl AnnualPack ===

impl AnnualPack {
    /// `Computegate annual attestation 2026` or `Computegate quarterly summary 2026-Q4`.
    pub fn title(&self) -> String {
        match self.quarter {
            None => format!("Computegate annual attestation {}", self.year),
            Some(q) => format!("Computegate quarterly summary {}-Q{q}", self.year),
        }
    }

    /// Every section's rows, in pack order, after a `pack` section naming the period.
    pub fn rows(&self) -> Vec<PackRow> {
        let mut rows = vec![PackRow::new("pack", self.kind, "year", self.year)];
        if let Some(q) = self.quarter {
            rows.push(PackRow::new("pack", self.kind, "quarter", q));
        }
        rows.push(PackRow::new(
            "pack",
            self.kind,
            "generated_at",
            rfc3339(self.generated_at),
        ));
        rows.extend(self.verifications.rows());
        rows.extend(self.screening.rows());
        rows.extend(self.suspensions.rows());
        rows.extend(self.threshold_crossings.rows());
        rows.extend(self.reports.rows());
        rows.extend(self.incidents.rows());
        rows.extend(self.resellers.rows());
        rows.extend(self.policy.rows());
        rows
    }

    /// The pack as one pretty-printed JSON document.
    pub fn write_json<W: Write>(&self, out: &mut W) -> Result<(), LedgerError> {
        let doc = serde_json::to_value(self)
            .map_err(|e| LedgerError::Export(std::io::Error::other(e)))?;
        write_json(&doc, out)
    }

    /// The pack as one CSV table (RFC 4180, header `section,key,attribute,value`).
    pub fn write_csv<W: Write>(&self, out: &mut W) -> Result<(), LedgerError> {
        let header = ["section", "key", "attribute", "value"];
        write_row(out, header.iter().map(|h| (*h).to_owned()))?;
        for r in self.rows() {
            let fields = [r.section.to_owned(), r.key, r.attribute, r.value];
            write_row(out, fields.into_iter())?;
        }
        Ok(())
    }
}

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// Assembles the pack for `period` (a year, or a quarter for the quarterly summary);
    /// `policy` is the version in force now.
    pub async fn annual_pack(
        &self,
        period: &Period,
        policy: PolicyVersion,
    ) -> Result<AnnualPack, LedgerError> {
        Ok(AnnualPack {
            kind: period.kind(),
            year: period.year,
            quarter: period.quarter,
            generated_at: period.generated_at,
            verifications: self.verifications_section(period).await?,
            screening: self.screening_section(period).await?,
            suspensions: self.suspensions_section(period).await?,
            threshold_crossings: self.thresholds_section(period).await?,
            reports: self.reports_section(period).await?,
            incidents: self.incidents_section(period).await?,
            resellers: self.resellers_section(period).await?,
            policy: Policies {
                in_force: policy,
                versions: self.policy_versions(period).await?,
                table_versions: self.table_versions(period).await?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_empty_year_is_all_zeros_in_every_form() {
        let pack = AnnualPack {
            kind: "annual",
            year: 2029,
            quarter: None,
            generated_at: datetime!(2030-01-02 0:00 UTC),
            verifications: Verifications::default(),
            screening: Screening::default(),
            suspensions: Suspensions::default(),
            threshold_crossings: Thresholds::default(),
            reports: Reports::default(),
            incidents: Incidents::default(),
            resellers: Resellers::default(),
            policy: Policies::default(),
        };
        let mut csv = Vec::new();
        pack.write_csv(&mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.starts_with("section,key,attribute,value\r\npack,annual,year,2029\r\n"));
        assert!(
            csv.contains("verifications,all,idv_failures,0\r\n"),
            "{csv}"
        );
        for total in [
            "screening,all,results,0",
            "suspensions,all,total,0",
            "threshold_crossings,all,total,0",
            "reports,all,total,0",
            "incidents,all,recorded,0",
            "incidents,all,bundles_exported,0",
            "resellers,all,end_customers,0",
        ] {
            assert!(csv.contains(&format!("{total}\r\n")), "{total} in {csv}");
        }
        let mut json = Vec::new();
        pack.write_json(&mut json).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(doc["suspensions"]["total"], 0);
        assert_eq!(doc["kind"], "annual");
    }
}
