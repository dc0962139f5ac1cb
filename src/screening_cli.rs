//! Operator commands of verification: `screening import` (a denied-party list version, then a
//! re-screen of every screened customer) and `audit verify` / `audit export`. Each takes
//! `--config FILE` (master key from `COMPUTEGATE_MASTER_KEY`) or `--data-dir DIR`, like the
//! other store commands.
//!
//! `screening import` re-screens in this process (it has the store and the master key): new
//! hits suspend the customer pending review, with an audit record each. It ends with a
//! `screening.rescreen.completed` audit record, from which running gateways pick up the new
//! list and the suspensions within seconds; with Redis configured it also publishes the
//! suspensions to every replica at once.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use computegate_kyc::Store;
use computegate_kyc::accounts::Actor;
use computegate_kyc::audit::{AuditAction, AuditEntry, ExportFormat};
use computegate_kyc::cluster::{Notice, Notices};
use computegate_kyc::screening::{
    EntryKind, ImportRequest, ListFormat, ListInput, ListVersion, RankedMatch, ScoringConfig,
    ScreeningSubject,
};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt as _;

use crate::arguments::{AuditFormatArg, ListFormatArg};
use crate::operator::StoreTarget;
use crate::progress::{Counting, Progress};
use crate::startup::StartupConfigError;
use crate::verification::{LoadedList, rescreen_customers_reporting};

/// `computegate screening …`.
#[derive(Debug, clap::Subcommand)]
pub enum ScreeningCommand {
    /// Import a denied-party list as a new version, then re-screen every screened customer (approved or at the trial tier).
    Import {
        /// The list format.
        #[arg(long, value_enum)]
        format: ListFormatArg,
        /// SDN `alt.csv` (aliases), with `--format sdn`.
        #[arg(long)]
        alt: Option<PathBuf>,
        /// SDN `add.csv` (addresses), with `--format sdn`.
        #[arg(long)]
        add: Option<PathBuf>,
        /// A label for people (default: format, date and digest prefix).
        #[arg(long)]
        label: Option<String>,
        /// The list file (CSL CSV/JSON, `sdn.csv`, OpenSanctions JSON lines).
        file: PathBuf,
        /// Where the store is.
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Screen one name against the latest imported list and print the ranked matches with the
    /// features that made each score (an ad-hoc check; nothing is recorded).
    Check {
        /// The name, in any script and order.
        name: String,
        /// Date of birth: YYYY-MM-DD, YYYY-MM or YYYY.
        #[arg(long)]
        dob: Option<String>,
        /// Country: ISO 3166 alpha-2 code or English name (repeatable).
        #[arg(long)]
        country: Vec<String>,
        /// Whom the name belongs to.
        #[arg(long, value_enum, default_value_t = SubjectKind::Person)]
        kind: SubjectKind,
        /// How many matches to print.
        #[arg(long, default_value_t = 5)]
        limit: usize,
        /// Where the store is.
        #[command(flatten)]
        target: StoreTarget,
    },
}

/// The kind of a name checked with `screening check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SubjectKind {
    /// An individual.
    Person,
    /// A company or other organization.
    Organization,
}

/// `computegate audit …`.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; exit 1 with the first broken link.
    Verify {
        /// Where the store is.
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Export records from a time on, as JSON lines (re-verifiable) or CSV.
    Export {
        /// RFC 3339 time or YYYY-MM-DD (midnight UTC).
        #[arg(long)]
        since: String,
        /// The output format.
        #[arg(long, value_enum, default_value_t = AuditFormatArg::Jsonl)]
        format: AuditFormatArg,
        /// Output file (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Where the store is.
        #[command(flatten)]
        target: StoreTarget,
    },
}

/// Runs `computegate screening …`.
pub async fn screening(command: ScreeningCommand) -> anyhow::Result<()> {
    match command {
        ScreeningCommand::Import {
            format,
            alt,
            add,
            label,
            file,
            target,
        } => import(format.into(), alt, add, label, &file, &target).await,
        ScreeningCommand::Check {
            name,
            dob,
            country,
            kind,
            limit,
            target,
        } => {
            let subject = check_subject(name, dob.as_deref(), country, kind)?;
            check(&subject, limit, &target).await
        }
    }
}

async fn import(
    format: ListFormat,
    alt: Option<PathBuf>,
    add: Option<PathBuf>,
    label: Option<String>,
    file: &Path,
    target: &StoreTarget,
) -> anyhow::Result<()> {
    if format != ListFormat::Sdn && (alt.is_some() || add.is_some()) {
        return Err(StartupConfigError("--alt and --add go with --format sdn".into()).into());
    }
    let request = ImportRequest {
        format,
        main: input(file)?,
        aliases: alt.as_deref().map(input).transpose()?,
        addresses: add.as_deref().map(input).transpose()?,
        label,
    };
    let (config, master, store) = target.open_for_writing().await?;
    let started = Instant::now();
    let mut progress = Progress::start("screening import", "entries", None);
    let version = import_list(
        &store,
        request,
        &Actor::system("cli"),
        OffsetDateTime::now_utc(),
        |stored| progress.set(stored),
    )
    .await
    .with_context(|| format!("cannot import {}", file.display()))?;
    progress.finish();
    let import_secs = started.elapsed().as_secs_f64();
    println!(
        "imported list version {} ({}, {} entries, sha256 {}) in {import_secs:.2}s",
        version.id, version.format, version.entry_count, version.sha256
    );

    let started = Instant::now();
    let index = store
        .screening()
        .load_screening_index(version.id, ScoringConfig::default())
        .await
        .context("cannot load the new list")?;
    let list = LoadedList { version, index };
    let mut progress = Progress::start("screening rescreen", "applications", None);
    let report = rescreen_customers_reporting(
        &store,
        &master,
        &list,
        OffsetDateTime::now_utc(),
        &mut |screened| progress.set(screened),
    )
    .await
    .context("re-screening customers failed")?;
    progress.finish();
    println!(
        "re-screened {} applications and end customers in {:.2}s: {} hits, {} customers suspended pending review",
        report.screened,
        started.elapsed().as_secs_f64(),
        report.hits,
        report.suspended.len()
    );
    for customer in &report.suspended {
        println!("suspended customer {customer}");
    }
    if let Some(url) = &config.redis.url
        && !report.suspended.is_empty()
    {
        let client = computegate_kyc::cluster::redis_client(url)?;
        let notices = Notices::redis(client, &config.redis.key_prefix).await?;
        for customer_id in &report.suspended {
            notices
                .publish(&Notice::CustomerChanged {
                    customer_id: *customer_id,
                })
                .await?;
        }
        println!("replicas notified through Redis");
    }
    Ok(())
}

/// Imports a list version and records the import in the audit chain (the CLI and the demo).
/// `progress` is called with the number of entries stored after each committed batch.
pub(crate) async fn import_list<R: std::io::Read + Send + 'static>(
    store: &Store,
    request: ImportRequest<R>,
    actor: &Actor,
    now: OffsetDateTime,
    progress: impl FnMut(u64),
) -> anyhow::Result<ListVersion> {
    let version = store
        .screening()
        .import_screening_list_reporting(request, now, progress)
        .await?;
    let entry = AuditEntry::new(
        now,
        actor,
        AuditAction::ScreeningListImported,
        format!("screening_list:{}", version.id),
    )
    .with_detail(serde_json::json!({
        "format": version.format,
        "label": version.label,
        "source_file": version.source_file,
        "entries": version.entry_count,
        "sha256": version.sha256,
    }));
    store
        .audit()
        .record_audit(&entry)
        .await
        .context("cannot record the import")?;
    Ok(version)
}

/// The subject of `screening check`, every argument checked.
fn check_subject(
    name: String,
    dob: Option<&str>,
    countries: Vec<String>,
    kind: SubjectKind,
) -> Result<ScreeningSubject, StartupConfigError> {
    let kind = match kind {
        SubjectKind::Person => EntryKind::Person,
        SubjectKind::Organization => EntryKind::Organization,
    };
    crate::verification::adhoc_subject(&name, dob, &countries, kind).map_err(|errors| {
        let problems: Vec<String> = errors
            .iter()
            .map(|(field, why)| match field.as_str() {
                "name" => format!("the name to check {why}"),
                flag => format!("--{flag} {why}"),
            })
            .collect();
        StartupConfigError(problems.join("; "))
    })
}

async fn check(
    subject: &ScreeningSubject,
    limit: usize,
    target: &StoreTarget,
) -> anyhow::Result<()> {
    let (_, store) = target.open_existing().await?;
    let Some(version) = store.screening().latest_screening_version().await? else {
        return Err(anyhow::anyhow!(
            "no denied-party list has been imported yet: run `computegate screening import` first"
        ));
    };
    let index = store
        .screening()
        .load_screening_index(version.id, ScoringConfig::default())
        .await
        .context("cannot load the list")?;
    let matches = index.search(subject, limit);
    print!("{}", render_matches(&version, index.config(), &matches));
    Ok(())
}

/// The ranked matches as `screening check` prints them.
fn render_matches(
    version: &ListVersion,
    config: &ScoringConfig,
    matches: &[RankedMatch<'_>],
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "list {} ({}, {} entries, imported {}); review at {:.2}, hit at {:.2}",
        version.label,
        version.id,
        version.entry_count,
        version.imported_at.date(),
        config.thresholds.review,
        config.thresholds.hit,
    );
    if matches.is_empty() {
        let _ = writeln!(
            out,
            "no match: the name shares no candidate token with the list"
        );
        return out;
    }
    for (rank, m) in matches.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n{}. {:.3} {:<6} {} [{}; {}; {}]",
            rank + 1,
            m.score,
            m.decision.as_str(),
            m.entry.names.first().map_or("", String::as_str),
            m.entry.key,
            m.entry.source,
            m.entry.kind.as_str(),
        );
        let _ = writeln!(out, "   matched name: {}", m.explanation.matched_name);
        if !m.entry.programs.is_empty() {
            let _ = writeln!(out, "   programs: {}", m.entry.programs.join(", "));
        }
        for f in &m.explanation.features {
            let _ = writeln!(
                out,
                "   {:<20} {:>6.3} {:>+7.3}  {}",
                f.name, f.value, f.weight, f.note
            );
        }
    }
    out
}

/// Runs `computegate audit …`.
pub async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { target } => verify(&target).await,
        AuditCommand::Export {
            since,
            format,
            output,
            target,
        } => export(&target, &since, format.into(), output.as_deref()).await,
    }
}

async fn verify(target: &StoreTarget) -> anyhow::Result<()> {
    let (_, store) = target.open_existing().await?;
    let result = store
        .audit()
        .verify_audit_chain()
        .await
        .context("cannot read the audit chain")?;
    match result.first_broken {
        None => {
            println!(
                "chain intact, {} records, {} redacted (head seq {}, hash {})",
                result.records, result.redacted, result.head.seq, result.head.hash
            );
            Ok(())
        }
        Some(broken) => {
            let reason = broken.reason.as_str();
            println!(
                "chain broken at seq {}: {reason} ({} records verified before it)",
                broken.seq, result.records
            );
            Err(anyhow::anyhow!(
                "audit chain broken at seq {} ({reason})",
                broken.seq
            ))
        }
    }
}

async fn export(
    target: &StoreTarget,
    since: &str,
    format: ExportFormat,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let since = crate::operator::parse_since(since)?;
    let (_, store) = target.open_existing().await?;
    let progress = Progress::start("audit export", "bytes", None);
    let written = match output {
        Some(path) => {
            let file = tokio::fs::File::create(path)
                .await
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = Counting::new(file, progress);
            let n = store.audit().audit_export(since, format, &mut out).await?;
            out.flush().await?;
            let (file, progress) = out.into_parts();
            file.sync_all().await?;
            progress.finish();
            println!("exported {n} records to {}", path.display());
            n
        }
        None => {
            let mut out = Counting::new(StdoutWriter(std::io::stdout()), progress);
            let n = store.audit().audit_export(since, format, &mut out).await?;
            out.flush().await?;
            out.into_parts().1.finish();
            n
        }
    };
    tracing::info!(records = written, "audit export written");
    Ok(())
}

/// Standard output as an `AsyncWrite` (the CLI runs nothing else meanwhile, so the blocking
/// writes hold up no other task).
struct StdoutWriter(std::io::Stdout);

impl tokio::io::AsyncWrite for StdoutWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(std::io::Write::write(&mut self.0, buf))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(std::io::Write::flush(&mut self.0))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

fn input(path: &Path) -> anyhow::Result<ListInput<std::fs::File>> {
    let reader = std::fs::File::open(path)
        .map_err(|e| StartupConfigError(format!("cannot open {}: {e}", path.display())))?;
    let file_name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(ListInput { file_name, reader })
}
