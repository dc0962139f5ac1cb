//! `computegate report export --kind annual --year YYYY` and `--kind quarterly --year YYYY
//! --quarter Q` with `--format json|csv|pdf`: assembles the attestation pack of the year (or
//! the quarterly summary, the same figures over one quarter) from the store
//! (`computegate_kyc::ledger::annual`) with the policy version in force, and renders it.

use computegate_kyc::ledger::annual::{Period, PolicyVersion};
use time::OffsetDateTime;

use crate::arguments::{ReportFormatArg, ReportKindArg};
use crate::operator::StoreTarget;
use crate::startup::StartupConfigError;

/// The period arguments of a pack export, before they are checked against the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodArgs {
    kind: ReportKindArg,
    year: Option<i32>,
    quarter: Option<u8>,
}

// === impl PeriodArgs ===

impl PeriodArgs {
    /// The pack arguments, when `kind` and its options ask for a pack: `annual` always,
    /// `quarterly` with `--year` or `--quarter` (without them it is the ledger's quarterly
    /// bundle of reports since a date).
    pub fn of(kind: ReportKindArg, year: Option<i32>, quarter: Option<u8>) -> Option<PeriodArgs> {
        let pack = match kind {
            ReportKindArg::Annual => true,
            ReportKindArg::Quarterly => year.is_some() || quarter.is_some(),
            ReportKindArg::TrainingRuns | ReportKindArg::EuArt52 => false,
        };
        pack.then_some(PeriodArgs {
            kind,
            year,
            quarter,
        })
    }

    /// The period at `now`, or the precise reason it is not one.
    fn period(self, now: OffsetDateTime) -> Result<Period, StartupConfigError> {
        let missing =
            |what: &str| StartupConfigError(format!("--kind {} needs {what}", self.kind.as_str()));
        let year = self.year.ok_or_else(|| missing("--year"))?;
        let period = match (self.kind, self.quarter) {
            (ReportKindArg::Annual, Some(_)) => {
                return Err(StartupConfigError(
                    "--kind annual takes no --quarter (use --kind quarterly)".into(),
                ));
            }
            (ReportKindArg::Quarterly, None) => return Err(missing("--quarter with --year")),
            (ReportKindArg::Quarterly, Some(q)) => Period::quarter(year, q, now),
            _ => Period::year(year, now),
        };
        period.map_err(|e| StartupConfigError(format!("--year/--quarter: {e}")))
    }
}

/// The pack for `args` in `format`, and a line saying what it is.
pub async fn export(
    target: &StoreTarget,
    args: PeriodArgs,
    format: ReportFormatArg,
) -> anyhow::Result<(Vec<u8>, String)> {
    let period = args.period(OffsetDateTime::now_utc())?;
    let (config, store) = target.open_existing().await?;
    let policy = crate::policy_file::read(config.policy.file.as_deref())?;
    let version = PolicyVersion {
        version: policy.version().to_owned(),
        effective_from: policy.effective_from().to_string(),
    };
    let pack = store
        .ledger()
        .annual_pack(&period, version)
        .await
        .map_err(|e| anyhow::anyhow!("pack failed: {e}"))?;
    let mut bytes = Vec::new();
    match format {
        ReportFormatArg::Json => pack.write_json(&mut bytes),
        ReportFormatArg::Csv => pack.write_csv(&mut bytes),
        ReportFormatArg::Pdf => {
            bytes = crate::report_pdf::render(&pack);
            Ok(())
        }
    }
    .map_err(|e| anyhow::anyhow!("pack failed: {e}"))?;
    Ok((bytes, pack.title()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn period(
        kind: ReportKindArg,
        year: Option<i32>,
        quarter: Option<u8>,
    ) -> Result<Period, String> {
        let args = PeriodArgs::of(kind, year, quarter).ok_or("not a pack")?;
        args.period(datetime!(2030-05-01 0:00 UTC)).map_err(|e| e.0)
    }

    #[test]
    fn pack_arguments_are_checked_with_precise_errors() {
        use ReportKindArg::*;
        assert_eq!(
            period(TrainingRuns, Some(2029), None),
            Err("not a pack".into())
        );
        assert_eq!(period(Quarterly, None, None), Err("not a pack".into()));
        assert!(period(Annual, Some(2029), None).is_ok());
        assert_eq!(
            period(Quarterly, Some(2030), Some(2)).unwrap().quarter,
            Some(2)
        );
        assert_eq!(
            period(Annual, None, None),
            Err("--kind annual needs --year".into())
        );
        assert_eq!(
            period(Annual, Some(2029), Some(1)),
            Err("--kind annual takes no --quarter (use --kind quarterly)".into())
        );
        assert_eq!(
            period(Quarterly, Some(2029), None),
            Err("--kind quarterly needs --quarter with --year".into())
        );
        assert_eq!(
            period(Annual, Some(3000), None),
            Err("--year/--quarter: year 3000 is not between 2000 and the current year 2030".into())
        );
    }
}
