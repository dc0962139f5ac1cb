//! The enum-valued command-line arguments as [`clap::ValueEnum`]s, so `--help` lists their
//! values, a wrong value is clap's usage error (exit 2) naming the valid ones, and
//! `computegate completions SHELL` completes them.
//!
//! The domain enums live in crates that do not depend on clap (and the orphan rule keeps clap's
//! trait off them here), so each argument is a small mirror enum that converts into its domain
//! type. The mirrors spell their values with the domain's own names; the tests below check that
//! every mirror covers every domain variant under the same name, so the two cannot drift.

use computegate_gateway::metering::Profile;
use computegate_kyc::accounts::StaffRole;
use computegate_kyc::audit::ExportFormat as AuditFormat;
use computegate_kyc::incidents::Sharing;
use computegate_kyc::ledger::ExportFormat as ReportFormat;
use computegate_kyc::screening::ListFormat;

/// Declares a mirror enum deriving [`clap::ValueEnum`] with the given value names, and its
/// conversion into the domain enum.
macro_rules! value_enum {
    (
        $(#[$meta:meta])*
        $name:ident => $domain:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
        pub enum $name {
            $($(#[$vmeta])* #[value(name = $text)] $variant),+
        }

        impl From<$name> for $domain {
            fn from(value: $name) -> $domain {
                match value {
                    $($name::$variant => $domain::$variant),+
                }
            }
        }
    };
}

value_enum! {
    /// `estimate --profile`: how the job specification is read.
    ProfileArg => Profile {
        /// The simulator's job API (`POST /v1/jobs`).
        Generic => "generic",
        /// slurmrestd job submission.
        Slurm => "slurm",
        /// Kubernetes `batch/v1` Job.
        Kubernetes => "kubernetes",
    }
}

value_enum! {
    /// `staff create --role`.
    RoleArg => StaffRole {
        /// Works the review queue.
        Reviewer => "reviewer",
        /// Reviewer who may give top-tier approvals.
        SeniorReviewer => "senior_reviewer",
        /// Read-only access to records and the audit chain.
        Auditor => "auditor",
        /// Manages staff, keys and configuration.
        Admin => "admin",
    }
}

value_enum! {
    /// `screening import --format`.
    ListFormatArg => ListFormat {
        /// US Consolidated Screening List, CSV or JSON.
        Csl => "csl",
        /// OFAC SDN `sdn.csv` (with `--alt` / `--add`).
        Sdn => "sdn",
        /// OpenSanctions entities, JSON lines.
        OpenSanctions => "opensanctions",
    }
}

/// `report export --format`. Not a plain mirror: `pdf` exists for the annual pack only, which
/// [`ReportFormatArg::ledger`] and the annual export check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormatArg {
    /// One pretty-printed JSON document.
    #[value(name = "json")]
    Json,
    /// CSV with a header row.
    #[value(name = "csv")]
    Csv,
    /// A PDF for people (`--kind annual` only).
    #[value(name = "pdf")]
    Pdf,
}

value_enum! {
    /// `audit export --format`.
    AuditFormatArg => AuditFormat {
        /// One JSON object per line, re-verifiable as is.
        Jsonl => "jsonl",
        /// CSV with a header row, for spreadsheets.
        Csv => "csv",
    }
}

value_enum! {
    /// `incidents export --sharing`: how much personal data the bundle carries.
    SharingArg => Sharing {
        /// For another provider: addresses, email domains, payment fingerprints and API key
        /// ids as their SHA-256; no customer, organization or run ids.
        Partner => "partner",
        /// For an authority: every value in clear, with our customer, organization and run ids.
        Authority => "authority",
    }
}

/// `incidents export --format`: the one format there is, named so a second can join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IncidentFormatArg {
    /// A STIX 2.1 bundle (JSON).
    #[value(name = "stix")]
    Stix,
}

/// `report export --kind`. Not a plain mirror: `eu-art52` also needs `--customer`, which
/// [`computegate_kyc::ledger::ExportKind::parse`] checks together with the name, and `annual`
/// is the attestation pack (`--year`), not a ledger export kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportKindArg {
    /// Every training-run report created since the date.
    #[value(name = "training-runs")]
    TrainingRuns,
    /// Reports grouped by calendar quarter with each bundle's due date.
    #[value(name = "quarterly")]
    Quarterly,
    /// One customer's EU AI Act Art. 52 evidence pack (needs `--customer`).
    #[value(name = "eu-art52")]
    EuArt52,
    /// The annual attestation pack of one calendar year (needs `--year`).
    #[value(name = "annual")]
    Annual,
}

// === impl ReportKindArg ===

impl ReportKindArg {
    /// The name `ExportKind::parse` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKindArg::TrainingRuns => "training-runs",
            ReportKindArg::Quarterly => "quarterly",
            ReportKindArg::EuArt52 => "eu-art52",
            ReportKindArg::Annual => "annual",
        }
    }
}

// === impl ReportFormatArg ===

impl ReportFormatArg {
    /// The ledger export format, or `None` for `pdf` (annual pack only).
    pub fn ledger(self) -> Option<ReportFormat> {
        match self {
            ReportFormatArg::Json => Some(ReportFormat::Json),
            ReportFormatArg::Csv => Some(ReportFormat::Csv),
            ReportFormatArg::Pdf => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;
    use computegate_kyc::ledger::ExportKind;

    use super::*;

    /// Every mirror value converts to the domain variant of the same name, and the mirror has
    /// as many values as the domain has variants (so a new domain variant fails here).
    fn mirrors<A, D>(domain_all: &[D], name: fn(D) -> &'static str)
    where
        A: ValueEnum + Copy + Into<D>,
        D: Copy,
    {
        assert_eq!(A::value_variants().len(), domain_all.len());
        for arg in A::value_variants() {
            let value = arg.to_possible_value().expect("no value is skipped");
            assert_eq!(value.get_name(), name((*arg).into()));
        }
    }

    #[test]
    fn mirrors_match_their_domain_enums() {
        mirrors::<ProfileArg, Profile>(&Profile::ALL, Profile::as_str);
        mirrors::<RoleArg, StaffRole>(&StaffRole::ALL, StaffRole::as_str);
        mirrors::<ListFormatArg, ListFormat>(&ListFormat::ALL, ListFormat::as_str);
        mirrors::<AuditFormatArg, AuditFormat>(&AuditFormat::ALL, AuditFormat::as_str);
        mirrors::<SharingArg, Sharing>(&Sharing::ALL, Sharing::as_str);
    }

    #[test]
    fn report_formats_cover_the_ledger_formats_under_their_names() {
        for format in ReportFormat::ALL {
            let arg = ReportFormatArg::value_variants()
                .iter()
                .find(|a| a.ledger() == Some(format))
                .expect("every ledger format has an argument");
            let value = arg.to_possible_value().expect("no value is skipped");
            assert_eq!(value.get_name(), format.as_str());
        }
        assert_eq!(ReportFormatArg::Pdf.ledger(), None);
    }

    #[test]
    fn report_kinds_are_the_names_the_ledger_parses() {
        let customer = Some(uuid::Uuid::nil());
        for kind in ReportKindArg::value_variants() {
            if *kind == ReportKindArg::Annual {
                continue;
            }
            let value = kind.to_possible_value().expect("no value is skipped");
            assert_eq!(value.get_name(), kind.as_str());
            let with = ExportKind::parse(kind.as_str(), customer);
            let without = ExportKind::parse(kind.as_str(), None);
            assert!(with.is_ok() || without.is_ok(), "{kind:?} is not a kind");
        }
    }
}
