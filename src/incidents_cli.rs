//! `computegate incidents …`: export every incident as one STIX 2.1 bundle, and import a
//! partner's bundle (each customer one of its indicators matches gets a review flag). Both
//! work on the store directly (`--config FILE` or `--data-dir DIR`, see
//! [`StoreTarget`]) and are audited as the CLI (`system:cli`).

use std::path::PathBuf;

use anyhow::Context;
use computegate_kyc::accounts::Actor;
use computegate_kyc::incidents::stix_import::MAX_BUNDLE_BYTES;
use computegate_kyc::incidents::{Provider, Sharing};
use time::OffsetDateTime;

use crate::arguments::{IncidentFormatArg, SharingArg};
use crate::operator::StoreTarget;

/// Incident subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum IncidentsCommand {
    /// Export every incident as one STIX 2.1 bundle to standard output (or `--output FILE`).
    Export {
        /// The output format.
        #[arg(long, value_enum)]
        format: IncidentFormatArg,
        /// Who the bundle is for (what personal data it carries; see docs/incidents.md).
        #[arg(long, value_enum, default_value_t = SharingArg::Partner)]
        sharing: SharingArg,
        /// The provider's name in the bundle's `identity`.
        #[arg(long, default_value = Provider::DEFAULT_NAME, value_parser = identity_name)]
        identity_name: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Where the store is.
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Import a partner's STIX 2.1 bundle: every customer an indicator matches gets a review
    /// flag with the partner's context.
    Import {
        /// The bundle (JSON).
        file: PathBuf,
        /// Where the store is.
        #[command(flatten)]
        target: StoreTarget,
    },
}

/// Longest `--identity-name`: a STIX identity's name is a display name, not a document.
const MAX_IDENTITY_NAME: usize = 200;

/// `--identity-name`: the name partners see on every shared bundle, so never empty, blank,
/// longer than [`MAX_IDENTITY_NAME`] characters or holding control characters.
fn identity_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("must name the provider (it is empty)".into());
    }
    if name.chars().count() > MAX_IDENTITY_NAME {
        return Err(format!("must be at most {MAX_IDENTITY_NAME} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(name.to_owned())
}

/// `computegate incidents …`.
pub async fn incidents(command: IncidentsCommand) -> anyhow::Result<()> {
    match command {
        IncidentsCommand::Export {
            format: IncidentFormatArg::Stix,
            sharing,
            identity_name,
            output,
            target,
        } => export(Sharing::from(sharing), &identity_name, output, target).await,
        IncidentsCommand::Import { file, target } => import(file, target).await,
    }
}

async fn export(
    sharing: Sharing,
    identity_name: &str,
    output: Option<PathBuf>,
    target: StoreTarget,
) -> anyhow::Result<()> {
    // Opened before the export is made and audited: a file that cannot be written must not
    // leave an audit record (and an annual-pack count) of a bundle that was never written.
    let file = (output.as_ref())
        .map(|path| {
            std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))
        })
        .transpose()?;
    let (_, master, store) = target.open_for_writing().await?;
    let provider = Provider::of(&master, identity_name);
    let (bundle, count) = store
        .incidents()
        .export_bundle(
            &master,
            &provider,
            None,
            sharing,
            &Actor::system("cli"),
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("export failed: {e}"))?;
    let mut text = serde_json::to_vec_pretty(&bundle)?;
    text.push(b'\n');
    use std::io::Write;
    match (output, file) {
        (Some(path), Some(mut file)) => {
            file.write_all(&text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "{count} incidents written to {} ({} sharing)",
                path.display(),
                sharing.as_str()
            );
        }
        _ => {
            std::io::stdout().write_all(&text)?;
            eprintln!("{count} incidents ({} sharing)", sharing.as_str());
        }
    }
    Ok(())
}

async fn import(file: PathBuf, target: StoreTarget) -> anyhow::Result<()> {
    let size = std::fs::metadata(&file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    // Checked before reading, so an oversized file is never loaded.
    if size > MAX_BUNDLE_BYTES as u64 {
        anyhow::bail!("{} is larger than {MAX_BUNDLE_BYTES} bytes", file.display());
    }
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let (_, master, store) = target.open_for_writing().await?;
    let provider = Provider::of(&master, Provider::DEFAULT_NAME);
    let report = store
        .incidents()
        .import_bundle(
            &master,
            &provider,
            &bytes,
            &Actor::system("cli"),
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("import failed: {e}"))?;
    println!(
        "bundle {}: {} indicators read, {} skipped, {} matched; {} review flags raised",
        report.bundle_id, report.indicators, report.skipped, report.matched, report.flags_raised
    );
    for customer in &report.customers {
        println!("flagged customer {customer}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Args {
        #[command(subcommand)]
        command: IncidentsCommand,
    }

    fn export_with(name: &str) -> Result<String, String> {
        let args = [
            "incidents",
            "export",
            "--format",
            "stix",
            "--identity-name",
            name,
        ];
        match Args::try_parse_from(args)
            .map_err(|e| e.to_string())?
            .command
        {
            IncidentsCommand::Export { identity_name, .. } => Ok(identity_name),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_identity_name_is_trimmed_and_must_name_someone() {
        assert_eq!(
            export_with("  Example Cloud ").as_deref(),
            Ok("Example Cloud")
        );
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(201)] {
            let err = export_with(bad).expect_err(bad);
            assert!(err.contains("--identity-name"), "{err}");
        }
    }
}
