//! Operator commands that work on the store directly: `migrate`, `staff create`, `keys rotate`.
//! Each takes `--config FILE` (the store and Redis of a deployment; master key from
//! `COMPUTEGATE_MASTER_KEY`) or `--data-dir DIR` (the demo's embedded store and key file).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use computegate_gateway::config::Config;
use computegate_kyc::Store;
use computegate_kyc::accounts::{Actor, StaffRole};
use computegate_kyc::cluster::{Notice, Notices};
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::password::{Hasher, PasswordParams, check_policy};
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
        /// Role: reviewer, senior_reviewer, auditor or admin.
        #[arg(long)]
        role: String,
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
    /// The configuration and master key this target names.
    pub fn resolve(&self) -> anyhow::Result<(Config, MasterKey)> {
        // clap refuses --config together with --data-dir; the environment's config file only
        // stands in when neither option is given.
        if let Some(dir) = &self.data_dir {
            let mut config = Config::default();
            config.data_dir = dir.clone();
            let master = crate::identity::master_key_from_data_dir(dir)?;
            return Ok((config, master));
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
        let config =
            Config::load(&path, std::env::vars()).map_err(|e| StartupConfigError(e.to_string()))?;
        let master = crate::identity::master_key_from_env(crate::environment::var)?;
        Ok((config, master))
    }

    async fn open(&self) -> anyhow::Result<(Config, MasterKey, Store)> {
        let (config, master) = self.resolve()?;
        let url = config.database_url();
        if url.starts_with("sqlite:") {
            std::fs::create_dir_all(&config.data_dir)?;
        }
        let store = Store::connect(&url)
            .await
            .context("cannot open the database")?;
        Ok((config, master, store))
    }
}

/// `computegate migrate`.
pub async fn migrate(target: StoreTarget) -> anyhow::Result<()> {
    let (_, _, store) = target.open().await?;
    store.migrate().await.context("migration failed")?;
    println!(
        "database schema is up to date ({:?})",
        store.schema_state().await?
    );
    Ok(())
}

/// `computegate staff …`.
pub async fn staff(command: StaffCommand) -> anyhow::Result<()> {
    let StaffCommand::Create {
        email,
        role,
        password_stdin,
        target,
    } = command;
    let role: StaffRole = role.parse().map_err(|_| {
        StartupConfigError(format!(
            "--role `{role}` is not one of reviewer, senior_reviewer, auditor, admin"
        ))
    })?;
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
    let (config, _, store) = target.open().await?;
    store.migrate().await.context("migration failed")?;
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
    let (config, master, store) = target.open().await?;
    store.migrate().await.context("migration failed")?;
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
    /// Export compliance reports as JSON or CSV to standard output (or `--output FILE`).
    Export {
        /// `training-runs` (threshold reports), `quarterly` (bundle with due dates) or
        /// `eu-art52` (one customer's evidence pack; needs `--customer`).
        #[arg(long)]
        kind: String,
        /// Start date, `YYYY-MM-DD` or RFC 3339.
        #[arg(long)]
        since: String,
        /// `json` or `csv`.
        #[arg(long, default_value = "json")]
        format: String,
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
    use computegate_kyc::ledger::{ExportFormat, ExportKind};
    let ReportCommand::Export {
        kind,
        since,
        format,
        customer,
        output,
        target,
    } = command;
    let kind = ExportKind::parse(&kind, customer)
        .map_err(|why| StartupConfigError(format!("--kind: {why}")))?;
    let format = ExportFormat::parse(&format)
        .map_err(|why| StartupConfigError(format!("--format: {why}")))?;
    let since = parse_since(&since)?;
    let (_, _, store) = target.open().await?;
    store.migrate().await.context("migration failed")?;
    let mut buffer: Vec<u8> = Vec::new();
    let count = store
        .ledger()
        .export_reports(kind, since, format, &mut buffer)
        .await
        .map_err(|e| anyhow::anyhow!("export failed: {e}"))?;
    match output {
        Some(path) => {
            std::fs::write(&path, &buffer)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("{count} records written to {}", path.display());
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&buffer)?;
            eprintln!("{count} records");
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
