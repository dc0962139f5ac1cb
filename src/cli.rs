//! Command-line interface: subcommands, their arguments, and exit codes
//! (0 success, 1 runtime failure, 2 bad configuration or usage).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use computegate_gateway::config::Config;

/// Exit code for invalid configuration or arguments.
pub const EXIT_CONFIG: u8 = 2;

/// Computegate: know-your-customer gateway for GPU / training-compute APIs.
#[derive(Debug, Parser)]
#[command(name = "computegate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway from a configuration file.
    Serve {
        /// TOML configuration file (default: `COMPUTEGATE_CONFIG`).
        #[arg(long, env = "COMPUTEGATE_CONFIG")]
        config: PathBuf,
    },
    /// Run gateway + simulated compute API + embedded store in one process, with next steps.
    Demo(crate::demo::DemoArgs),
    /// Run the simulated training-compute API alone.
    Sim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        addr: SocketAddr,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 3600.0)]
        speedup: f64,
        /// Report the usage of admitted jobs, signed with `COMPUTEGATE_USAGE_SECRET`, to this
        /// gateway endpoint (`http://HOST:PORT/computegate/v1/meter/usage`) once a second.
        #[arg(long, value_name = "URL")]
        usage_url: Option<http::Uri>,
    },
    /// Apply database migrations (`migrate status` lists them and changes nothing).
    Migrate(crate::migrate_cli::MigrateArgs),
    /// Staff users.
    Staff {
        #[command(subcommand)]
        command: crate::operator::StaffCommand,
    },
    /// Token signing keys.
    Keys {
        #[command(subcommand)]
        command: crate::operator::KeysCommand,
    },
    /// Compliance reports.
    Report {
        #[command(subcommand)]
        command: crate::operator::ReportCommand,
    },
    /// Abuse incidents: STIX 2.1 export and import of partners' bundles.
    Incidents {
        #[command(subcommand)]
        command: crate::incidents_cli::IncidentsCommand,
    },
    /// Retention: purge or redact records whose retention period has run out.
    Retention {
        #[command(subcommand)]
        command: crate::retention::RetentionCommand,
    },
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Print the FLOP estimate and its basis for a job specification, without running anything.
    Estimate {
        /// How the job specification is read.
        #[arg(long, value_enum)]
        profile: crate::arguments::ProfileArg,
        /// Policy file (default: the shipped default policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The job specification (JSON).
        file: PathBuf,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Denied-party screening lists.
    Screening {
        #[command(subcommand)]
        command: crate::screening_cli::ScreeningCommand,
    },
    /// The tamper-evident audit chain.
    Audit {
        #[command(subcommand)]
        command: crate::screening_cli::AuditCommand,
    },
    /// Print a shell completion script (subcommands, options and their values) to standard
    /// output, e.g. `computegate completions bash > /etc/bash_completion.d/computegate`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy file and print its summary.
    Check {
        /// Policy TOML file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file (with COMPUTEGATE_* overrides applied) and exit.
    Check {
        /// TOML configuration file (default: `COMPUTEGATE_CONFIG`).
        #[arg(env = "COMPUTEGATE_CONFIG")]
        file: PathBuf,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match crate::environment::Environment::from_process() {
        Ok(env) => env.install(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match load_config(&file) {
            Ok(config) => {
                // The metered count tells an operator at a glance whether any job is admitted
                // against budgets: a file with none meters nothing.
                let metered = config
                    .routes
                    .iter()
                    .filter(|r| r.class == computegate_gateway::config::RouteClass::JobSubmit)
                    .count();
                // Job routes without an owner rule let any customer reach any job by its id.
                let owned = config
                    .routes
                    .iter()
                    .filter(|r| r.owner_path.is_some())
                    .count();
                println!(
                    "{}: ok ({} upstreams, {} routes, {} metered job_submit routes, \
                     {} owner-checked routes)",
                    file.display(),
                    config.upstreams.len(),
                    config.routes.len(),
                    metered,
                    owned
                );
                if let Some(authz) = &config.authz {
                    println!(
                        "authorization service on {} for {} trusted proxies (Envoy prefix {}, \
                         nginx /nginx, Traefik /traefik)",
                        authz.addr,
                        authz.trusted_proxies.len(),
                        authz.envoy_path_prefix
                    );
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => match computegate_gateway::policy::load(&file) {
            Ok(policy) => {
                println!("{}: ok\n{policy}", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Estimate {
            profile,
            policy,
            file,
        } => estimate(profile.into(), policy.as_deref(), &file),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            // Rendered first, then written: clap_complete panics on a write error, and a closed
            // pipe (`… | head`) is an ordinary way for standard output to end.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "computegate", &mut script);
            write_stdout(&script)
        }
        Command::Serve { config } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            crate::telemetry::init(&config.log);
            run_on(serve_runtime(&config.server), crate::serve::run(config))
        }
        Command::Demo(args) => {
            crate::telemetry::init(&Default::default());
            run_async(0, crate::demo::run(args))
        }
        Command::Report { command } => {
            crate::telemetry::init(&Default::default());
            run_async(1, crate::operator::report(command))
        }
        Command::Incidents { command } => {
            crate::telemetry::init(&Default::default());
            run_async(1, crate::incidents_cli::incidents(command))
        }
        Command::Retention { command } => {
            crate::telemetry::init(&Default::default());
            run_async(1, crate::retention::retention(command))
        }
        Command::Migrate(args) => {
            crate::telemetry::init(&Default::default());
            run_async(1, crate::migrate_cli::migrate(args))
        }
        Command::Staff { command } => {
            crate::telemetry::init(&Default::default());
            run_async(1, crate::operator::staff(command))
        }
        Command::Keys { command } => {
            crate::telemetry::init(&Default::default());
            run_async(1, crate::operator::keys(command))
        }
        Command::Screening { command } => {
            crate::telemetry::init(&Default::default());
            run_async(0, crate::screening_cli::screening(command))
        }
        Command::Audit { command } => {
            crate::telemetry::init(&Default::default());
            run_async(1, crate::screening_cli::audit(command))
        }
        Command::Sim {
            addr,
            speedup,
            usage_url,
        } => {
            crate::telemetry::init(&Default::default());
            let usage = match usage_url.map(crate::serve::sim_usage_reporting).transpose() {
                Ok(usage) => usage,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            run_async(0, crate::serve::run_sim(addr, speedup, usage))
        }
    }
}

/// Writes `bytes` to standard output; a closed pipe or another write error is exit 1 with its
/// message, never a panic.
pub fn write_stdout(bytes: &[u8]) -> ExitCode {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads and validates a configuration file, printing a precise error on failure.
pub fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path, std::env::vars()).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Runs `fut` on a multi-thread runtime of `worker_threads` (0 = one per CPU), mapping its
/// error to exit code 1 (or 2 for config errors).
fn run_async(
    worker_threads: usize,
    fut: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    run_on(multi_thread(worker_threads), fut)
}

/// A multi-thread runtime of `worker_threads` workers; tokio's default (one per CPU) when 0.
fn multi_thread(worker_threads: usize) -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if worker_threads > 0 {
        builder.worker_threads(worker_threads);
    }
    builder
}

/// The runtime `serve` starts on: the multi-thread one (`work_stealing`), or a current-thread
/// one (`thread_per_core`) that is the first serving thread of
/// [`computegate_gateway::listeners::Threads`], which starts the others.
fn serve_runtime(server: &computegate_gateway::config::ServerConfig) -> tokio::runtime::Builder {
    use computegate_gateway::config::ServerRuntime;
    match server.runtime {
        ServerRuntime::ThreadPerCore => tokio::runtime::Builder::new_current_thread(),
        _ => multi_thread(server.worker_threads),
    }
}

/// Builds the runtime `builder` describes and runs `fut` on it, mapping its error to exit
/// code 1 (or 2 for config errors).
fn run_on(
    mut builder: tokio::runtime::Builder,
    fut: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<crate::startup::StartupConfigError>()
                .is_some()
            {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `computegate estimate`: the estimate and its basis for a job spec.
fn estimate(
    profile: computegate_gateway::metering::Profile,
    policy: Option<&std::path::Path>,
    file: &std::path::Path,
) -> ExitCode {
    use computegate_gateway::metering::{EstimateReport, estimate_file};
    use computegate_gateway::policy::Policy;
    let policy = match policy {
        Some(path) => {
            computegate_gateway::policy::load(path).map_err(|e| format!("{}: {e}", path.display()))
        }
        None => Policy::from_toml(crate::policy_file::DEFAULT_POLICY).map_err(|e| e.to_string()),
    };
    let policy = match policy {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: policy {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match estimate_file(profile, &bytes, &policy) {
        Ok((spec, estimate)) => {
            println!(
                "{}",
                EstimateReport {
                    spec: &spec,
                    estimate: &estimate
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
