//! Report exports in JSON or CSV: every training-run report since a date, the quarterly bundle
//! (reports grouped by calendar quarter, each bundle due the 15th of the month after the
//! quarter: 15 Jan / Apr / Jul / Oct), and the EU AI Act Art. 52 evidence pack for one
//! customer (per run: cumulative FLOP, estimation method and basis, hardware, training time).
//!
//! CSV follows RFC 4180 and neutralizes spreadsheet formulas: a field that starts with `=`,
//! `+`, `-`, `@`, tab or carriage return is prefixed with `'` (run ids are customer input).

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;
use time::{Date, Month, OffsetDateTime};
use uuid::Uuid;

use super::model::LedgerError;
use super::reads::{ReportRow, TrainingRunReport, report_columns};
use crate::store::{DbTime, LedgerStore, on_pool};

/// Largest number of reports or jobs one export reads: an export is built in memory, and one
/// that would be larger is refused whole ([`LedgerError::ExportTooLarge`]) rather than cut
/// short, so a written export is always complete for its period.
const MAX_EXPORT_ROWS: i64 = 100_000;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// Every training-run report created since the date.
    TrainingRuns,
    /// Reports grouped by calendar quarter with each bundle's due date.
    Quarterly,
    /// EU AI Act Art. 52 evidence for one customer's runs with jobs since the date.
    EuArt52 {
        /// The customer.
        customer_id: Uuid,
    },
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One pretty-printed JSON document.
    Json,
    /// RFC 4180 CSV with a header row.
    Csv,
}

// === impl ExportKind, ExportFormat ===

impl ExportKind {
    /// The kind named `name` (`training-runs`, `quarterly`, `eu-art52`); `eu-art52` needs
    /// `customer_id` and only it takes one (the others cover every customer: a customer given
    /// with them is refused rather than silently ignored). The error says what is wrong, for
    /// the CLI and the API alike.
    pub fn parse(name: &str, customer_id: Option<Uuid>) -> Result<ExportKind, String> {
        match (name, customer_id) {
            ("training-runs" | "quarterly", Some(_)) => Err(format!(
                "kind `{name}` covers every customer; only `eu-art52` takes a customer"
            )),
            ("training-runs", None) => Ok(ExportKind::TrainingRuns),
            ("quarterly", None) => Ok(ExportKind::Quarterly),
            ("eu-art52", Some(customer_id)) => Ok(ExportKind::EuArt52 { customer_id }),
            ("eu-art52", None) => {
                Err("kind `eu-art52` needs a customer id (CLI --customer, API customer_id)".into())
            }
            (other, _) => Err(format!(
                "kind `{other}` is not one of training-runs, quarterly, eu-art52"
            )),
        }
    }
}

crate::names::stored_enum!(ExportFormat { Json => "json", Csv => "csv" });

impl ExportFormat {
    /// The format named `name` (`json` or `csv`).
    pub fn parse(name: &str) -> Result<ExportFormat, String> {
        ExportFormat::from_name(name).ok_or_else(|| format!("format `{name}` is not json or csv"))
    }

    /// The media type of an export in this format.
    pub fn media_type(self) -> &'static str {
        match self {
            ExportFormat::Json => "application/json",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// Per-run Art. 52 evidence.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct Art52Run {
    run_id: String,
    parent_run_id: Option<String>,
    lineage_root_run_id: String,
    jobs: u64,
    estimate_flop: f64,
    hardware_flop: f64,
    declared_flop: f64,
    measured_flop: f64,
    charged_flop: f64,
    lineage_flop: f64,
    bases: Vec<String>,
    table_versions: Vec<String>,
    accelerator_types: Vec<String>,
    max_accelerators: i64,
    accelerator_seconds: f64,
    #[serde(with = "time::serde::rfc3339::option")]
    first_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_end: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct Art52JobRow {
    run_id: String,
    parent_run_id: Option<String>,
    lineage_root_run_id: String,
    estimate_flop: f64,
    hardware_flop: Option<f64>,
    declared_flop: Option<f64>,
    used_flop: f64,
    reserved_flop: f64,
    lineage_flop: f64,
    basis: String,
    table_version: String,
    accelerators: i64,
    accelerator_type: Option<String>,
    accelerator_seconds: f64,
    started_at: Option<OffsetDateTime>,
    finished_at: Option<OffsetDateTime>,
    last_usage_at: Option<OffsetDateTime>,
}

const ART52_JOBS: &str = "SELECT r.run_id, r.parent_run_id, root.run_id AS lineage_root_run_id, \
     j.estimate_flop, j.hardware_flop, j.declared_flop, j.used_flop, j.reserved_flop, \
     COALESCE((SELECT b.used_flop + b.reserved_flop FROM ledger_budgets b \
        WHERE b.scope = 'lineage' AND b.scope_id = j.lineage_root), 0.0) AS lineage_flop, \
     j.basis, j.table_version, j.accelerators, j.accelerator_type, j.accelerator_seconds, \
     j.started_at, j.finished_at, j.last_usage_at \
     FROM ledger_jobs j JOIN ledger_runs r ON r.id = j.run \
     JOIN ledger_runs root ON root.id = j.lineage_root \
     WHERE j.customer_id = $1 AND j.decided_at >= $2 \
       AND j.status IN ('reserved', 'running', 'finished', 'closed') \
     ORDER BY r.run_id, j.decided_at LIMIT $3";

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// Writes an export to `out` and returns how many records (reports or runs) it holds.
    pub async fn export_reports<W: Write + Send>(
        &self,
        kind: ExportKind,
        since: OffsetDateTime,
        format: ExportFormat,
        out: &mut W,
    ) -> Result<usize, LedgerError> {
        let written = match kind {
            ExportKind::TrainingRuns => {
                let reports = self.reports_created_in(since, None).await?;
                write_reports(&reports, format, out)?;
                reports.len()
            }
            ExportKind::Quarterly => {
                let reports = self.reports_created_in(since, None).await?;
                write_quarterly(&reports, format, out)?;
                reports.len()
            }
            ExportKind::EuArt52 { customer_id } => {
                let runs = self.art52_runs(customer_id, since).await?;
                write_art52(customer_id, since, &runs, format, out)?;
                runs.len()
            }
        };
        out.flush().map_err(LedgerError::Export)?;
        Ok(written)
    }

    /// Reports created at or after `since` and, if given, before `until`, oldest first.
    pub(super) async fn reports_created_in(
        &self,
        since: OffsetDateTime,
        until: Option<OffsetDateTime>,
    ) -> Result<Vec<TrainingRunReport>, LedgerError> {
        const SQL: &str = concat!(
            "SELECT ",
            report_columns!(),
            " FROM ledger_reports WHERE created_at >= $1 AND ($3 IS NULL OR created_at < $3) \
             ORDER BY created_at, id LIMIT $2"
        );
        let rows: Vec<ReportRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(SQL)
                .bind(DbTime::new(since))
                .bind(MAX_EXPORT_ROWS + 1)
                .bind(until.map(DbTime::new))
                .fetch_all(pool)
                .await?
        });
        within_export_limit(rows.len())?;
        Ok(rows.into_iter().map(ReportRow::into_report).collect())
    }

    async fn art52_runs(
        &self,
        customer_id: Uuid,
        since: OffsetDateTime,
    ) -> Result<Vec<Art52Run>, LedgerError> {
        let rows: Vec<Art52JobRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(ART52_JOBS)
                .bind(customer_id)
                .bind(DbTime::new(since))
                .bind(MAX_EXPORT_ROWS + 1)
                .fetch_all(pool)
                .await?
        });
        within_export_limit(rows.len())?;
        Ok(art52_by_run(rows))
    }
}

/// Refuses an export that read more rows than one export may hold.
fn within_export_limit(rows: usize) -> Result<(), LedgerError> {
    if i64::try_from(rows).unwrap_or(i64::MAX) > MAX_EXPORT_ROWS {
        return Err(LedgerError::ExportTooLarge {
            limit: MAX_EXPORT_ROWS,
        });
    }
    Ok(())
}

/// The due date of the quarterly bundle for the quarter holding `date`.
pub fn quarter_due_date(date: Date) -> Date {
    let (year, month) = match date.month() {
        Month::January | Month::February | Month::March => (date.year(), Month::April),
        Month::April | Month::May | Month::June => (date.year(), Month::July),
        Month::July | Month::August | Month::September => (date.year(), Month::October),
        Month::October | Month::November | Month::December => (date.year() + 1, Month::January),
    };
    // The 15th exists in every month of every year `time` represents; the fallback is unreachable.
    Date::from_calendar_date(year, month, 15).unwrap_or(date)
}

/// `2030-Q1`.
fn quarter_label(date: Date) -> String {
    let q = (u8::from(date.month()) - 1) / 3 + 1;
    format!("{}-Q{q}", date.year())
}

/// Groups admitted jobs by run into Art. 52 evidence (rows arrive ordered by run id).
fn art52_by_run(rows: Vec<Art52JobRow>) -> Vec<Art52Run> {
    let mut runs: BTreeMap<String, Art52Run> = BTreeMap::new();
    for j in rows {
        let run = runs.entry(j.run_id.clone()).or_insert_with(|| Art52Run {
            run_id: j.run_id.clone(),
            parent_run_id: j.parent_run_id.clone(),
            lineage_root_run_id: j.lineage_root_run_id.clone(),
            jobs: 0,
            estimate_flop: 0.0,
            hardware_flop: 0.0,
            declared_flop: 0.0,
            measured_flop: 0.0,
            charged_flop: 0.0,
            lineage_flop: j.lineage_flop,
            bases: Vec::new(),
            table_versions: Vec::new(),
            accelerator_types: Vec::new(),
            max_accelerators: 0,
            accelerator_seconds: 0.0,
            first_start: None,
            last_end: None,
        });
        run.jobs += 1;
        run.estimate_flop += j.estimate_flop;
        run.hardware_flop += j.hardware_flop.unwrap_or(0.0);
        run.declared_flop += j.declared_flop.unwrap_or(0.0);
        run.measured_flop += j.used_flop;
        run.charged_flop += j.used_flop + j.reserved_flop;
        push_unique(&mut run.bases, j.basis);
        push_unique(&mut run.table_versions, j.table_version);
        if let Some(t) = j.accelerator_type {
            push_unique(&mut run.accelerator_types, t);
        }
        run.max_accelerators = run.max_accelerators.max(j.accelerators);
        run.accelerator_seconds += j.accelerator_seconds;
        run.first_start = min_time(run.first_start, j.started_at);
        run.last_end = max_time(run.last_end, j.finished_at.or(j.last_usage_at));
    }
    runs.into_values().collect()
}

fn push_unique(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}

fn min_time(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_time(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

// === writers ===

const REPORT_HEADER: [&str; 21] = [
    "id",
    "job_id",
    "customer_id",
    "organization_id",
    "run_id",
    "lineage_root",
    "thresholds",
    "estimate_flop",
    "hardware_flop",
    "declared_flop",
    "basis",
    "table_version",
    "accelerators",
    "accelerator_type",
    "cumulative_flop",
    "created_at",
    "due_at",
    "filed_at",
    "filed_by",
    "filing_reference",
    "identity_snapshot",
];

fn write_reports<W: Write>(
    reports: &[TrainingRunReport],
    format: ExportFormat,
    out: &mut W,
) -> Result<(), LedgerError> {
    match format {
        ExportFormat::Json => {
            write_json(&json!({ "kind": "training_runs", "reports": reports }), out)
        }
        ExportFormat::Csv => {
            write_row(out, REPORT_HEADER.iter().map(|s| (*s).to_owned()))?;
            for r in reports {
                write_row(out, report_fields(r))?;
            }
            Ok(())
        }
    }
}

fn write_quarterly<W: Write>(
    reports: &[TrainingRunReport],
    format: ExportFormat,
    out: &mut W,
) -> Result<(), LedgerError> {
    let mut quarters: BTreeMap<String, (Date, Vec<&TrainingRunReport>)> = BTreeMap::new();
    for r in reports {
        let date = r.created_at.date();
        quarters
            .entry(quarter_label(date))
            .or_insert_with(|| (quarter_due_date(date), Vec::new()))
            .1
            .push(r);
    }
    match format {
        ExportFormat::Json => {
            let bundles: Vec<_> = quarters
                .iter()
                .map(|(q, (due, rs))| json!({ "quarter": q, "due_date": due.to_string(), "reports": rs }))
                .collect();
            write_json(&json!({ "kind": "quarterly", "bundles": bundles }), out)
        }
        ExportFormat::Csv => {
            let header = ["quarter", "due_date"].into_iter().chain(REPORT_HEADER);
            write_row(out, header.map(str::to_owned))?;
            for (q, (due, rs)) in &quarters {
                for r in rs {
                    let lead = [q.clone(), due.to_string()];
                    write_row(out, lead.into_iter().chain(report_fields(r)))?;
                }
            }
            Ok(())
        }
    }
}

fn write_art52<W: Write>(
    customer_id: Uuid,
    since: OffsetDateTime,
    runs: &[Art52Run],
    format: ExportFormat,
    out: &mut W,
) -> Result<(), LedgerError> {
    match format {
        ExportFormat::Json => {
            let total: f64 = runs.iter().map(|r| r.charged_flop).sum();
            let doc = json!({
                "kind": "eu_art52",
                "customer_id": customer_id,
                "since": rfc3339(since),
                "method": "hardware: accelerators x peak dense FLOP/s x time x utilization; \
                           declared: 6 x parameters x tokens; measured: accelerator-seconds x \
                           peak x utilization",
                "charged_flop_total": total,
                "runs": runs,
            });
            write_json(&doc, out)
        }
        ExportFormat::Csv => {
            const HEADER: [&str; 17] = [
                "run_id",
                "parent_run_id",
                "lineage_root_run_id",
                "jobs",
                "estimate_flop",
                "hardware_flop",
                "declared_flop",
                "measured_flop",
                "charged_flop",
                "lineage_flop",
                "bases",
                "table_versions",
                "accelerator_types",
                "max_accelerators",
                "accelerator_seconds",
                "first_start",
                "last_end",
            ];
            write_row(out, HEADER.iter().map(|s| (*s).to_owned()))?;
            for r in runs {
                write_row(out, art52_fields(r))?;
            }
            Ok(())
        }
    }
}

fn report_fields(r: &TrainingRunReport) -> impl Iterator<Item = String> {
    let labels: Vec<&str> = r.crossings.iter().map(|c| c.label.as_str()).collect();
    let snapshot = r.identity_snapshot.as_ref().map(|v| v.to_string());
    [
        r.id.to_string(),
        r.job_id.to_string(),
        r.customer_id.to_string(),
        opt(r.organization_id),
        r.run_id.clone(),
        r.lineage_root.to_string(),
        labels.join(";"),
        r.estimate_flop.to_string(),
        opt(r.hardware_flop),
        opt(r.declared_flop),
        r.basis.clone(),
        r.table_version.clone(),
        r.accelerators.to_string(),
        r.accelerator_type.clone().unwrap_or_default(),
        r.cumulative_flop.to_string(),
        rfc3339(r.created_at),
        rfc3339(r.due_at),
        r.filed_at.map(rfc3339).unwrap_or_default(),
        r.filed_by.clone().unwrap_or_default(),
        r.filing_reference.clone().unwrap_or_default(),
        snapshot.unwrap_or_default(),
    ]
    .into_iter()
}

fn art52_fields(r: &Art52Run) -> impl Iterator<Item = String> {
    [
        r.run_id.clone(),
        r.parent_run_id.clone().unwrap_or_default(),
        r.lineage_root_run_id.clone(),
        r.jobs.to_string(),
        r.estimate_flop.to_string(),
        r.hardware_flop.to_string(),
        r.declared_flop.to_string(),
        r.measured_flop.to_string(),
        r.charged_flop.to_string(),
        r.lineage_flop.to_string(),
        r.bases.join(";"),
        r.table_versions.join(";"),
        r.accelerator_types.join(";"),
        r.max_accelerators.to_string(),
        r.accelerator_seconds.to_string(),
        r.first_start.map(rfc3339).unwrap_or_default(),
        r.last_end.map(rfc3339).unwrap_or_default(),
    ]
    .into_iter()
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(super) fn write_json<W: Write>(
    doc: &serde_json::Value,
    out: &mut W,
) -> Result<(), LedgerError> {
    serde_json::to_writer_pretty(&mut *out, doc)
        .map_err(|e| LedgerError::Export(std::io::Error::other(e)))?;
    out.write_all(b"\n").map_err(LedgerError::Export)
}

/// One CSV record (RFC 4180, CRLF line ends).
pub(super) fn write_row<W: Write>(
    out: &mut W,
    fields: impl Iterator<Item = String>,
) -> Result<(), LedgerError> {
    let line: Vec<String> = fields.map(|f| csv_field(&f)).collect();
    out.write_all(line.join(",").as_bytes())
        .and_then(|()| out.write_all(b"\r\n"))
        .map_err(LedgerError::Export)
}

/// Quotes a field when needed and defuses spreadsheet formulas.
fn csv_field(value: &str) -> String {
    let defused = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kinds_and_formats_parse_with_precise_errors() {
        let id = Uuid::nil();
        assert_eq!(
            ExportKind::parse("quarterly", None),
            Ok(ExportKind::Quarterly)
        );
        assert_eq!(
            ExportKind::parse("eu-art52", Some(id)),
            Ok(ExportKind::EuArt52 { customer_id: id })
        );
        assert!(
            ExportKind::parse("eu-art52", None)
                .unwrap_err()
                .contains("customer")
        );
        assert!(
            ExportKind::parse("yearly", None)
                .unwrap_err()
                .contains("`yearly`")
        );
        assert!(
            ExportKind::parse("quarterly", Some(id))
                .unwrap_err()
                .contains("only `eu-art52`")
        );
        assert_eq!(ExportFormat::parse("csv"), Ok(ExportFormat::Csv));
        assert!(ExportFormat::parse("xml").unwrap_err().contains("`xml`"));
    }

    #[test]
    fn an_export_over_the_limit_is_refused_not_cut_short() {
        let limit = usize::try_from(MAX_EXPORT_ROWS).unwrap();
        assert!(within_export_limit(limit).is_ok());
        assert!(matches!(
            within_export_limit(limit + 1),
            Err(LedgerError::ExportTooLarge {
                limit: MAX_EXPORT_ROWS
            })
        ));
    }

    use super::*;
    use time::macros::date;

    #[test]
    fn quarterly_bundles_are_due_the_15th_after_the_quarter() {
        assert_eq!(
            quarter_due_date(date!(2030 - 01 - 01)),
            date!(2030 - 04 - 15)
        );
        assert_eq!(
            quarter_due_date(date!(2030 - 03 - 31)),
            date!(2030 - 04 - 15)
        );
        assert_eq!(
            quarter_due_date(date!(2030 - 04 - 01)),
            date!(2030 - 07 - 15)
        );
        assert_eq!(
            quarter_due_date(date!(2030 - 09 - 30)),
            date!(2030 - 10 - 15)
        );
        assert_eq!(
            quarter_due_date(date!(2030 - 12 - 31)),
            date!(2031 - 01 - 15)
        );
        assert_eq!(quarter_label(date!(2030 - 11 - 02)), "2030-Q4");
        assert_eq!(quarter_label(date!(2030 - 02 - 02)), "2030-Q1");
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("@cmd"), "'@cmd");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }
}
