//! `computegate migrate` (apply the pending schema migrations, one progress line each) and
//! `computegate migrate status` (a table of every migration: applied when, or pending; it only
//! reads, so it never creates a store or changes one). The store commands that write apply
//! pending migrations through [`apply`] too; the ones that only read never do.
//!
//! `migrate status` exits 0 whatever it finds; with `--check` it exits 1 when a migration is
//! pending or the store holds one this binary does not know (a deploy gate).

use anyhow::Context;
use computegate_kyc::Store;
use computegate_kyc::store::{MigrationState, MigrationStatus};

use crate::operator::StoreTarget;
use crate::progress::Progress;

/// `computegate migrate [status]`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MigrateArgs {
    /// `status` lists the migrations instead of applying them.
    #[command(subcommand)]
    command: Option<MigrateCommand>,
    /// Where the store is.
    #[command(flatten)]
    target: StoreTarget,
}

/// Subcommands of `migrate`.
#[derive(Debug, clap::Subcommand)]
enum MigrateCommand {
    /// List every migration with when it was applied, or `pending`; changes nothing.
    Status {
        /// Exit 1 when a migration is pending or unknown to this binary.
        #[arg(long)]
        check: bool,
        /// Where the store is.
        #[command(flatten)]
        target: StoreTarget,
    },
}

/// Runs `computegate migrate …`.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    match args.command {
        None => {
            let (_, _, store) = args.target.open_for_writing().await?;
            let version = store
                .migration_status()
                .await?
                .iter()
                .map(|m| m.version)
                .max();
            println!(
                "database schema is up to date (migration {})",
                version.unwrap_or(0)
            );
            Ok(())
        }
        Some(MigrateCommand::Status { check, target }) => {
            let (_, store) = target.connect_existing().await?;
            let status = store
                .migration_status()
                .await
                .context("cannot read the migrations")?;
            {
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                out.write_all(render_status(&status).as_bytes())
                    .and_then(|()| out.flush())
                    .context("cannot write to standard output")?;
            }
            let not_current = status
                .iter()
                .any(|m| !matches!(m.state, MigrationState::Applied { .. }));
            if check && not_current {
                return Err(anyhow::anyhow!(
                    "the schema is not current: run `computegate migrate` (or upgrade the \
                     binary when a migration is unknown to it)"
                ));
            }
            Ok(())
        }
    }
}

/// Applies the pending migrations, reporting each as it is applied.
pub async fn apply(store: &Store) -> anyhow::Result<()> {
    let pending = store
        .migration_status()
        .await
        .context("cannot read the migrations")?
        .iter()
        .filter(|m| m.state == MigrationState::Pending)
        .count();
    if pending == 0 {
        // Nothing to apply, but a schema migrated by a newer binary (a rollback) must still be
        // refused before a writing command touches it; `migrate` checks that and applies nothing.
        return store.migrate().await.context("migration failed");
    }
    let mut progress = Progress::start("migrate", "migrations", u64::try_from(pending).ok());
    let mut done = 0;
    store
        .migrate_reporting(|m| {
            done += 1;
            tracing::info!(
                version = m.version,
                description = %m.description,
                millis = m.elapsed.as_millis(),
                "migration applied"
            );
            progress.set(done);
        })
        .await
        .context("migration failed")?;
    progress.finish();
    Ok(())
}

/// The table `migrate status` prints: version, state (applied time, `pending`, or `unknown`
/// for a migration of a newer binary) and description, then a summary line.
fn render_status(status: &[MigrationStatus]) -> String {
    use std::fmt::Write as _;
    let mut out = format!("{:<16} {:<22} {}\n", "VERSION", "APPLIED", "DESCRIPTION");
    let (mut applied, mut pending, mut unknown) = (0, 0, 0);
    for m in status {
        let state = match m.state {
            MigrationState::Applied { at } => {
                applied += 1;
                applied_at(at)
            }
            MigrationState::Pending => {
                pending += 1;
                "pending".to_string()
            }
            MigrationState::Unknown { at } => {
                unknown += 1;
                format!("unknown, {}", applied_at(at))
            }
            _ => "?".to_string(),
        };
        let _ = writeln!(out, "{:<16} {:<22} {}", m.version, state, m.description);
    }
    let _ = writeln!(
        out,
        "{applied} applied, {pending} pending{}",
        if unknown > 0 {
            format!(", {unknown} unknown to this binary (upgrade it)")
        } else {
            String::new()
        }
    );
    out
}

/// An applied time as `2026-12-07 07:01:23Z` (UTC), or `applied` when the database's record of
/// the time is unreadable.
fn applied_at(at: Option<time::OffsetDateTime>) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    at.and_then(|at| at.format(format).ok())
        .unwrap_or_else(|| "applied".to_string())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn migration(version: i64, description: &str, state: MigrationState) -> MigrationStatus {
        MigrationStatus {
            version,
            description: description.into(),
            state,
        }
    }

    #[test]
    fn the_table_lists_applied_pending_and_unknown_migrations() {
        let at = Some(datetime!(2026-12-07 07:01:23 UTC));
        let table = render_status(&[
            migration(1, "identity", MigrationState::Applied { at }),
            migration(2, "audit", MigrationState::Pending),
            migration(99, "newer", MigrationState::Unknown { at: None }),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[0].starts_with("VERSION"));
        assert!(lines[1].starts_with("1 ") && lines[1].contains("2026-12-07 07:01:23Z"));
        assert!(lines[2].contains("pending") && lines[2].ends_with("audit"));
        assert!(lines[3].contains("unknown, applied"));
        assert_eq!(
            lines[4],
            "1 applied, 1 pending, 1 unknown to this binary (upgrade it)"
        );
        assert!(!table.contains("Applied {"), "no Debug output: {table}");
    }
}
