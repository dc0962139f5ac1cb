//! Operator commands that work on the store directly: `staff create`, `keys rotate`,
//! `report export`, and where every store command finds its store ([`StoreTarget`]). Each takes
//! `--config FILE` (the store and Redis of a deployment; master key from
//! `COMPUTEGATE_MASTER_KEY`) or `--data-dir DIR` (the demo's embedded store and key file).
//!
//! Commands that write open the store with [`StoreTarget::open_for_writing`] (creating an
//! embedded store and applying pending migrations); commands that only read use
//! [`StoreTarget::open_existing`], which creates and migrates nothing and says what to run when
//! the store is missing or behind.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use computegate_gateway::config::Config;
use computegate_kyc::accounts::{Actor, StaffRole};
use computegate_kyc::cluster::{Notice, Notices};
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::password::{Hasher, PasswordParams, check_policy};
use computegate_kyc::{Store, StoreError};
use time::OffsetDateTime;

use crate::startup::StartupConfigError;

/// Where the store is: a deployment's config file (`--config`, or `COMPUTEGATE_CONFIG` when
/// neither option is given) or an embedded data directory.
#[derive(Debug, Clone, clap::Args)]
#[group(required = false, multiple = false)]
pub struct StoreTarget {
    /// Configuration file of the deployment (default: `COMPUTEGATE_CONFIG`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded store (the demo's).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Operator subcommands on the store.
#[derive(Debug, clap::Subcommand)]
pub enum StaffCommand {
    /// Create a staff user.
    Create {
        /// Email of the staff user.
        #[arg(long)]
        email: String,
        /// The staff user's role.
        #[arg(long, value_enum)]
        role: crate::arguments::RoleArg,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Where the store is.
        #[command(flatten)]
        target: StoreTarget,
    },
}

/// Signing-key subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Add a new active signing key; old keys keep verifying until their tokens expire.
    Rotate {
        /// Where the store is.
        #[command(flatten)]
        target: StoreTarget,
    },
}

// === impl StoreTarget ===

impl StoreTarget {
    /// The configuration this target names.
    pub fn config(&self) -> anyhow::Result<Config> {
        // clap refuses --config together with --data-dir; the environment's config file only
        // stands in when neither option is given.
        if let Some(dir) = &self.data_dir {
            let mut config = Config::default();
            config.data_dir = dir.clone();
            return Ok(config);
        }
        let path = self
            .config
            .clone()
            .or_else(|| {
                crate::environment::var("COMPUTEGATE_CONFIG")
                    .filter(|p| !p.trim().is_empty())
                    .map(PathBuf::from)
            })
            .ok_or_else(|| {
                StartupConfigError(
                    "give --config FILE or --data-dir DIR (or set COMPUTEGATE_CONFIG)".into(),
                )
            })?;
        Config::load(&path, std::env::vars()).map_err(|e| StartupConfigError(e.to_string()).into())
    }

    /// The master key: the data directory's key file (created on first use) or
    /// `COMPUTEGATE_MASTER_KEY` with a configuration file.
    fn master_key(&self) -> anyhow::Result<MasterKey> {
        match &self.data_dir {
            Some(dir) => crate::identity::master_key_from_data_dir(dir),
            None => crate::identity::master_key_from_env(crate::environment::var),
        }
    }

    /// Opens the store for a command that writes: creates an embedded store that is not there
    /// yet and applies pending migrations (one progress line each).
    pub async fn open_for_writing(&self) -> anyhow::Result<(Config, MasterKey, Store)> {
        let config = self.config()?;
        let master = self.master_key()?;
        let url = config.database_url();
        if url.starts_with("sqlite:") {
            std::fs::create_dir_all(&config.data_dir)?;
        }
        let store = Store::connect(&url)
            .await
            .context("cannot open the database")?;
        crate::migrate_cli::apply(&store).await?;
        Ok((config, master, store))
    }

    /// Opens the store as it is, for a command that only reads: creates nothing, migrates
    /// nothing, and fails with what to run when the store is missing or its schema is not the
    /// one this binary needs.
    pub async fn open_existing(&self) -> anyhow::Result<(Config, Store)> {
        let (config, store) = self.connect_existing().await?;
        store.check_schema().await.map_err(not_ready)?;
        Ok((config, store))
    }

    /// Connects to the store without creating it or checking its schema (`migrate status`).
    pub async fn connect_existing(&self) -> anyhow::Result<(Config, Store)> {
        let config = self.config()?;
        let store = Store::connect_existing(&config.database_url())
            .await
            .map_err(not_ready)?;
        Ok((config, store))
    }
}

/// What a command that only reads says when the store is not ready for it.
fn not_ready(error: StoreError) -> anyhow::Error {
    match error {
        StoreError::SchemaBehind { found: None, .. } => anyhow::anyhow!(
            "the store has no schema yet: run migrations first (`computegate migrate`)"
        ),
        StoreError::SchemaBehind {
            found: Some(found),
            known,
        } => anyhow::anyhow!(
            "the store's schema is at migration {found}, this binary needs {known}: \
             run migrations first (`computegate migrate`)"
        ),
        StoreError::Missing { .. } => anyhow::Error::new(error),
        other => anyhow::Error::new(other).context("the store is not ready"),
    }
}

/// `computegate staff …`.
pub async fn staff(command: StaffCommand) -> anyhow::Result<()> {
    let StaffCommand::Create {
        email,
        role,
        password_stdin,
        target,
    } = command;
    let role = StaffRole::from(role);
    let (password, generated) = if password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the password from standard input")?;
        (text.trim_end_matches(['\r', '\n']).to_string(), false)
    } else {
        (generate_password(), true)
    };
    check_policy(&password).map_err(|e| StartupConfigError(format!("password: {e}")))?;
    let (config, _, store) = target.open_for_writing().await?;
    let a = &config.auth;
    let hasher = Hasher::new(PasswordParams {
        memory_kib: a.argon2_memory_kib,
        iterations: a.argon2_iterations,
        parallelism: a.argon2_parallelism,
    })?;
    let hash = hasher.hash_async(password.clone()).await?;
    let staff = store
        .accounts()
        .create_staff(
            &email,
            role,
            &hash,
            &Actor::system("cli"),
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the staff user: {e}"))?;
    println!(
        "staff user {} created ({}, id {})",
        staff.email,
        role.as_str(),
        staff.id
    );
    if generated {
        println!("password (shown once): {password}");
    }
    Ok(())
}

/// `computegate keys …`.
pub async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Rotate { target } = command;
    let (config, master, store) = target.open_for_writing().await?;
    let verify_for = crate::identity::span(config.auth.access_token_ttl + config.auth.leeway);
    let kid = store
        .credentials()
        .rotate_signing_key(
            &master,
            &Actor::system("cli"),
            OffsetDateTime::now_utc(),
            verify_for,
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot rotate the signing key: {e}"))?;
    println!(
        "new signing key {kid} is active; previous keys keep verifying until their tokens expire"
    );
    if let Some(url) = &config.redis.url {
        let client = computegate_kyc::cluster::redis_client(url)?;
        let notices = Notices::redis(client, &config.redis.key_prefix).await?;
        notices.publish(&Notice::SigningKeyRotated { kid }).await?;
        println!("replicas notified through Redis");
    } else {
        println!("running gateways pick the new key up within a minute");
    }
    Ok(())
}

/// A random password for a new staff user (about 120 bits).
fn generate_password() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}-{}", &a[..10], &b[..10], &a[20..30])
}

/// Report subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// Export compliance reports as JSON, CSV or (annual pack) PDF to standard output (or
    /// `--output FILE`).
    Export {
        /// What to export.
        #[arg(long, value_enum)]
        kind: crate::arguments::ReportKindArg,
        /// Start date, `YYYY-MM-DD` or RFC 3339 (every kind but `annual`).
        #[arg(long)]
        since: Option<String>,
        /// Calendar year of the `annual` pack, or of the `quarterly` summary with `--quarter`
        /// (UTC).
        #[arg(long)]
        year: Option<i32>,
        /// Quarter (1–4) of the `quarterly` summary: the annual pack's figures over one quarter.
        #[arg(long)]
        quarter: Option<u8>,
        /// The output format (`pdf` for `annual` only).
        #[arg(long, value_enum, default_value_t = crate::arguments::ReportFormatArg::Json)]
        format: crate::arguments::ReportFormatArg,
        /// Customer id for `eu-art52`.
        #[arg(long)]
        customer: Option<uuid::Uuid>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Where the store is.
        #[command(flatten)]
        target: StoreTarget,
    },
}

/// `computegate report …`.
pub async fn report(command: ReportCommand) -> anyhow::Result<()> {
    use computegate_kyc::ledger::ExportKind;
    let ReportCommand::Export {
        kind,
        since,
        year,
        quarter,
        format,
        customer,
        output,
        target,
    } = command;
    if let Some(period) = crate::annual_report::PeriodArgs::of(kind, year, quarter) {
        if since.is_some() || customer.is_some() {
            let why = format!(
                "--kind {} --year takes no --since or --customer",
                kind.as_str()
            );
            return Err(StartupConfigError(why).into());
        }
        let (bytes, what) = crate::annual_report::export(&target, period, format).await?;
        return deliver(&bytes, &what, output.as_deref());
    }
    if year.is_some() || quarter.is_some() {
        let why = "--year and --quarter are for --kind annual and quarterly summaries only";
        return Err(StartupConfigError(why.into()).into());
    }
    let kind_name = kind.as_str();
    let kind = ExportKind::parse(kind_name, customer)
        .map_err(|why| StartupConfigError(format!("--kind: {why}")))?;
    let format = format.ledger().ok_or_else(|| {
        StartupConfigError(
            "--format pdf is for the annual pack and quarterly summaries only".into(),
        )
    })?;
    let since =
        since.ok_or_else(|| StartupConfigError(format!("--kind {} needs --since", kind_name)))?;
    let since = parse_since(&since)?;
    let (_, store) = target.open_existing().await?;
    let mut buffer: Vec<u8> = Vec::new();
    let count = store
        .ledger()
        .export_reports(kind, since, format, &mut buffer)
        .await
        .map_err(|e| anyhow::anyhow!("export failed: {e}"))?;
    deliver(&buffer, &format!("{count} records"), output.as_deref())
}

/// Writes an export to `output` or standard output and says `what` on standard error.
fn deliver(bytes: &[u8], what: &str, output: Option<&std::path::Path>) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("{what} written to {}", path.display());
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(bytes)?;
            eprintln!("{what}");
        }
    }
    Ok(())
}

/// `--since`: an RFC 3339 time or a `YYYY-MM-DD` date (midnight UTC), as the audit filters take it.
pub fn parse_since(text: &str) -> anyhow::Result<OffsetDateTime> {
    crate::verification::parse_since(text).ok_or_else(|| {
        StartupConfigError(format!("--since `{text}` is not YYYY-MM-DD or RFC 3339")).into()
    })
}
