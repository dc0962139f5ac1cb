//! Typed gateway configuration: one TOML file plus `COMPUTEGATE_`-prefixed environment overrides.
//!
//! Loading is two steps, both pure over their inputs so tests never touch the process environment:
//! [`Config::from_toml`] parses a document and applies overrides from any `(name, value)` iterator,
//! then [`Config::validate`] checks what serde cannot (references between sections, address forms,
//! non-zero limits). Every error names the key at fault. Durations are human units ("30s", "1m"),
//! sizes are byte units ("32KiB", "1GiB").

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use http::HeaderName;
use http::uri::Authority;
use serde::Deserialize;

pub use computegate_policy::RouteClass;

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "COMPUTEGATE_";

/// Top-level keys (sections) that environment overrides may address; other `COMPUTEGATE_*`
/// variables (such as `COMPUTEGATE_MASTER_KEY`) are not configuration keys and are left alone.
pub const CONFIG_SECTIONS: &[&str] = &[
    "data_dir",
    "server",
    "upstreams",
    "routes",
    "database",
    "redis",
    "auth",
    "policy",
    "log",
    "authz",
];

/// The whole configuration of one Computegate process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Directory for the embedded store and generated files. Default `./computegate-data`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Listeners and connection limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Named upstream pools that routes forward to.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Routes, matched by host and longest path prefix.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// System-of-record database.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Redis for cluster-wide state when several replicas run.
    #[serde(default)]
    pub redis: RedisConfig,
    /// Token issuing and verification.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The access and metering policy.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The external-authorization listener, where edge proxies (Envoy `ext_authz`, nginx
    /// `auth_request`, Traefik `ForwardAuth`) ask for the data plane's decision instead of
    /// sending traffic through Computegate (see [`crate::authz`]). Off when absent.
    #[serde(default)]
    pub authz: Option<AuthzConfig>,
}

/// The `[authz]` section: where authorization requests are answered and whom they come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthzConfig {
    /// Listener for authorization requests, apart from the public and admin ones (it answers
    /// nothing else). Required.
    pub addr: SocketAddr,
    /// Addresses (`10.0.0.5`) or CIDR blocks (`10.0.0.0/24`) of the edge proxies allowed to
    /// ask; a request from any other peer is refused with 403. Only these proxies' `X-Original-*`,
    /// `X-Forwarded-*` and `Forwarded` headers are believed. Required, at least one.
    pub trusted_proxies: Vec<String>,
    /// Path prefix under which Envoy's `ext_authz` HTTP service asks (Envoy's
    /// `http_service.path_prefix`; the original path follows it). Default `/envoy`.
    #[serde(default = "default_envoy_path_prefix")]
    pub envoy_path_prefix: String,
}

/// Listener addresses, TLS and connection limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Public (data-plane) listener. Default `127.0.0.1:8080`.
    pub public_addr: SocketAddr,
    /// Admin listener (`/metrics`, `/healthz`, `/readyz`, staff API). Default `127.0.0.1:9090`.
    pub admin_addr: SocketAddr,
    /// Time a client has to send a complete request head; also closes idle keep-alive
    /// connections. Default 10 s.
    #[serde(with = "human_duration")]
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) accepted; larger → 431. Default 32 KiB.
    pub max_header_bytes: ByteSize,
    /// Time a client has to send a request body on the public listener, counted from the
    /// gateway's first read of it, plus one second per `body_min_rate` bytes received; a slower
    /// body gets 408 (see [`crate::client_body`]). Default 30 s.
    #[serde(with = "human_duration")]
    pub body_read_timeout: Duration,
    /// Average bytes per second a request body must keep up to earn time beyond
    /// `body_read_timeout` (one second per this many bytes). Default 4 KiB.
    pub body_min_rate: ByteSize,
    /// How long in-flight requests may finish after SIGTERM/SIGINT. Default 30 s.
    #[serde(with = "human_duration")]
    pub shutdown_grace: Duration,
    /// Trust `X-Forwarded-For` / `Forwarded` sent by the client (only behind a trusted load
    /// balancer). Default false: the gateway replaces them with what it saw.
    pub trust_forwarded_headers: bool,
    /// The same for the admin listener (staff API and console): its staff login throttle and
    /// the client address of its audit records then use the address the trusted proxy in front
    /// of it forwarded. Default false, and apart from `trust_forwarded_headers`: the two
    /// listeners usually sit behind different things, and trusting headers on a listener that
    /// clients reach directly would let them choose the address they are counted under.
    pub admin_trust_forwarded_headers: bool,
    /// Client-address and URL-override headers removed from requests bound upstream, matched
    /// after normalization (case, `_` read as `-`). Default `X-Real-IP`, `True-Client-IP`,
    /// `CF-Connecting-IP`, `X-Original-URL`, `X-Rewrite-URL`, `X-Forwarded-Port`.
    pub client_ip_headers: Vec<String>,
    /// Set `X-Real-IP` on requests bound upstream to the client address the gateway saw.
    /// Default true.
    pub set_x_real_ip: bool,
    /// How long an `Idempotency-Key` on a job submission answers retries with the first
    /// answer (see [`crate::idempotency`]); afterwards the key may be used again. Between 1 min
    /// and 30 days. Default 24 h.
    #[serde(with = "human_duration")]
    pub idempotency_key_ttl: Duration,
    /// Tokio worker threads; 0 = one per CPU the process may run on. Default 0.
    pub worker_threads: usize,
    /// How those threads run the listeners. Default `thread_per_core`.
    pub runtime: ServerRuntime,
    /// Serve the public listener over TLS when set.
    pub tls: Option<TlsConfig>,
}

/// Certificate and key for the public listener (PEM files, reloaded on SIGHUP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A pool of interchangeable upstream addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// `host:port` or `http://host:port` entries; requests are spread round-robin.
    pub addresses: Vec<String>,
    /// TCP connect timeout. Default 2 s.
    #[serde(default = "default_connect_timeout", with = "human_duration")]
    pub connect_timeout: Duration,
    /// Time allowed until the upstream's response head arrives; longer → 504. Default 60 s.
    #[serde(default = "default_response_timeout", with = "human_duration")]
    pub response_timeout: Duration,
    /// Passive health: an address that fails to connect sits out this long. Default 10 s.
    #[serde(default = "default_eject_for", with = "human_duration")]
    pub eject_for: Duration,
    /// Idle pooled connections are closed after this long. Default 90 s.
    #[serde(default = "default_pool_idle_timeout", with = "human_duration")]
    pub pool_idle_timeout: Duration,
    /// Most idle pooled connections kept per address. Default 256.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_host: usize,
}

/// One route: which requests it matches and where they go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteConfig {
    /// Unique name, used as the metrics label.
    pub name: String,
    /// Exact `Host` to match (port ignored); any host when absent.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix to match, at a segment boundary (`/v1/jobs` matches `/v1/jobs/7`, not `/v1/jobsx`).
    pub path_prefix: String,
    /// Methods to match; all when absent.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Name of the upstream pool.
    pub upstream: String,
    /// `public`, `authenticated` or `job_submit`. Default `authenticated`.
    #[serde(default = "default_route_class")]
    pub class: RouteClass,
    /// Job-spec profile for `job_submit` routes (`generic`, `slurm`, `kubernetes`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Largest request body; larger → 413. Default 1 GiB.
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
    /// What the tier rate limit does on this route while the cluster's rate-limit store
    /// (Redis) is unreachable: `local` (default: the replica's own limit at the full tier
    /// quota), `open` (no limit) or `closed` (503 with `Retry-After`). Without Redis it has no
    /// effect.
    #[serde(default)]
    pub rate_limit_fallback: RateLimitFallback,
    /// Ownership rule of an `authenticated` route serving a job API's objects: a path template
    /// such as `/v1/jobs/{id}` (`{id}` the upstream's job id, any other `{name}` one segment).
    /// A request whose path matches it (or continues it, `/v1/jobs/{id}/logs`) reaches the
    /// upstream only when the job with that id was submitted by the caller through a
    /// `job_submit` route of the same upstream; anyone else gets 404. None by default.
    #[serde(default)]
    pub owner_path: Option<String>,
    /// `job_submit` routes: JSON pointer (RFC 6901) to the job's id in the upstream's answer to
    /// an accepted submission, read when an `owner_path` route shares the upstream. Default per
    /// profile: generic `/id`, slurm `/job_id`, kubernetes `/metadata/name`.
    #[serde(default)]
    pub job_id_pointer: Option<String>,
}

/// How the serve process schedules its work over `server.worker_threads` threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerRuntime {
    /// One multi-thread tokio runtime; any worker runs any connection (work stealing).
    WorkStealing,
    /// One current-thread tokio runtime per thread, each accepting on its own `SO_REUSEPORT`
    /// socket of every data-plane listener; a connection stays on the thread that accepted it.
    /// The first thread also runs the admin listener and the background tasks. The default:
    /// 10–20 % less CPU per proxied request than `WorkStealing` (BENCHMARKS.md).
    #[default]
    ThreadPerCore,
}

/// A route's rate limiting while the shared rate-limit store is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RateLimitFallback {
    /// Each replica limits at the full tier quota (the cluster admits up to `replicas ×`).
    #[default]
    Local,
    /// No limit (availability first).
    Open,
    /// Refuse with 503 until the store answers again (strictness first).
    Closed,
}

/// The system-of-record database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://…`; default a SQLite file `computegate.db` in `data_dir`.
    pub url: Option<String>,
    /// Time between health probes of the database. While the last probe failed, every store
    /// call fails at once (503 + `Retry-After`) instead of waiting for a pooled connection.
    /// Default 1 s.
    #[serde(with = "human_duration")]
    pub probe_interval: Duration,
    /// Longest a probe may wait for an answer before the database counts as down (a hung
    /// server). Default 1 s.
    #[serde(with = "human_duration")]
    pub probe_timeout: Duration,
    /// How long the replica that gets the next turn to decide job admissions waits for more of
    /// them, to decide in the same transaction (group commit). 0 (the default): a batch is
    /// whatever queued while the previous one ran. At most [`MAX_ADMISSION_BATCH_WINDOW`].
    #[serde(with = "human_duration")]
    pub admission_batch_window: Duration,
}

/// The largest `database.admission_batch_window`: every admission may wait that much longer.
pub const MAX_ADMISSION_BATCH_WINDOW: Duration = Duration::from_millis(10);

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(1),
            admission_batch_window: Duration::ZERO,
        }
    }
}

/// Redis connection for cluster-wide state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://host:port`; none = single node, state kept in process.
    pub url: Option<String>,
    /// Prefix of every key and channel, so several deployments can share a server.
    /// Default `computegate:`.
    pub key_prefix: String,
    /// Replicas expected to share the rate limits (at least 1). Sizes the token batches each
    /// replica leases so that all of them together hold at most half a tier's burst. More
    /// replicas than this still stay within the documented bound, with a larger slack.
    /// Default 2.
    pub rate_limit_replicas: u32,
}

/// Token issuing and verification settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AuthConfig {
    /// `iss` of issued tokens. Default `computegate`.
    pub issuer: String,
    /// `aud` of customer tokens. Default `computegate-api`.
    pub audience: String,
    /// `aud` of staff tokens. Default `computegate-staff`.
    pub staff_audience: String,
    /// Lifetime of access tokens. Default 15 min.
    #[serde(with = "human_duration")]
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens. Default 30 days.
    #[serde(with = "human_duration")]
    pub refresh_token_ttl: Duration,
    /// Clock-skew leeway when checking `exp`/`nbf`. Default 30 s.
    #[serde(with = "human_duration")]
    pub leeway: Duration,
    /// argon2id memory cost in KiB. Default 19456 (19 MiB, the OWASP minimum).
    pub argon2_memory_kib: u32,
    /// argon2id iterations. Default 2.
    pub argon2_iterations: u32,
    /// argon2id lanes. Default 1.
    pub argon2_parallelism: u32,
    /// Failed logins per account before throttling, per `login_window`. Default 5.
    pub login_max_failures_per_account: u32,
    /// Failed logins per client IP before throttling, per `login_window`. Default 50.
    pub login_max_failures_per_ip: u32,
    /// Window of the login throttle. Default 15 min.
    #[serde(with = "human_duration")]
    pub login_window: Duration,
    /// Hashes (argon2) run at once; 0 = one per CPU the process may use. Default 0.
    pub argon2_concurrency: usize,
    /// Hashes that may wait for a slot; beyond, or after 2 s of waiting, 503. 0 = four per
    /// slot. Default 0.
    pub argon2_queue: usize,
    /// Failed bearer authentications per client address per `failed_auth_window` before
    /// credentials that are not cached are answered 429 without being checked (0 = off).
    /// Default 50.
    pub failed_auth_per_address: u32,
    /// Failed verifications per API-key id per `failed_auth_window` before that key id is
    /// answered 429 without hashing (0 = off). Default 10.
    pub failed_auth_per_key: u32,
    /// Window of the failed-authentication throttles. Default 1 min.
    #[serde(with = "human_duration")]
    pub failed_auth_window: Duration,
    /// How long a refused authentication from a client address over
    /// `failed_auth_per_address` waits before its 401/429 is sent — and a throttled login's 429
    /// or "argon2 busy" 503 — so each connection of a forger makes at most one attempt per this
    /// long (0 s = answer at once). At most 10 s. Default 1 s.
    #[serde(with = "human_duration")]
    pub failed_auth_delay: Duration,
    /// Sign-ups per client address per `signup_window` (0 = off). Default 60.
    pub signup_max_per_ip: u32,
    /// Window of the sign-up throttle. Default 10 min.
    #[serde(with = "human_duration")]
    pub signup_window: Duration,
    /// Forward a short-lived signed internal JWT upstream in `X-Computegate-Identity`. Default false.
    pub forward_identity_token: bool,
    /// How long a principal's status may be served from memory without a store re-check when no
    /// change notice arrives (bounds staleness if a notice is lost). Default 60 s.
    #[serde(with = "human_duration")]
    pub principal_cache_ttl: Duration,
    /// How much longer than `principal_cache_ttl` a principal's last known state is served
    /// while the database cannot be reached (plain authenticated routes only; admissions fail
    /// closed). `0s` turns the grace off. Default 5 min.
    #[serde(with = "human_duration")]
    pub store_outage_grace: Duration,
}

/// Where the policy (tiers, accelerator table, thresholds) comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// Policy TOML file, reloaded on SIGHUP and when it changes; default: the shipped
    /// `deploy/policy/default.toml`, built into the binary.
    pub file: Option<PathBuf>,
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `computegate=debug`. Default `info`.
    pub level: String,
    /// `text` or `json`. Default `text`.
    pub format: LogFormat,
    /// Access log of every data-plane request (JSON lines): `stderr`, `off` or a file path
    /// (appended). Default `stderr`.
    pub access: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration that could not be read or is not valid; each variant names the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The document is not TOML.
    #[error("config is not valid TOML: {0}")]
    Syntax(String),
    /// An environment override names a key in a way that cannot be applied.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable.
        var: String,
        /// Why.
        reason: String,
    },
    /// A key has a wrong type or value.
    #[error("config key `{key}`: {reason}")]
    Invalid {
        /// Dotted path of the key, e.g. `server.public_addr` or `routes[2].upstream`.
        key: String,
        /// Why.
        reason: String,
    },
}

// === impl Config ===

impl Config {
    /// Reads `path`, applies overrides from `env` (pairs of variable name and value) and validates.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Self::from_toml(&text, env)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document and applies environment overrides, without validation.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax(e.to_string()))?;
        for (var, value) in env {
            apply_env_override(&mut doc, &var, &value)?;
        }
        let value = toml::Value::Table(doc);
        serde_path_to_error::deserialize(value).map_err(|e| ConfigError::Invalid {
            key: computegate_policy::display_path(e.path()),
            reason: e.inner().message().trim().to_string(),
        })
    }

    /// Checks cross-references and values serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_string(),
        };
        let s = &self.server;
        if s.header_read_timeout.is_zero() {
            return Err(invalid("server.header_read_timeout".into(), "must be > 0"));
        }
        if s.body_read_timeout.is_zero() || s.body_read_timeout > Duration::from_secs(3600) {
            return Err(invalid(
                "server.body_read_timeout".into(),
                "must be > 0 and at most 1h",
            ));
        }
        if self.auth.failed_auth_delay > Duration::from_secs(10) {
            return Err(invalid(
                "auth.failed_auth_delay".into(),
                "must be at most 10s",
            ));
        }
        let ttl = s.idempotency_key_ttl;
        if ttl < Duration::from_secs(60) || ttl > Duration::from_secs(30 * 86_400) {
            return Err(invalid(
                "server.idempotency_key_ttl".into(),
                "must be between 1m and 30 days",
            ));
        }
        if s.body_min_rate.as_u64() == 0 {
            return Err(invalid("server.body_min_rate".into(), "must be > 0"));
        }
        if s.max_header_bytes.as_u64() < 1024 || s.max_header_bytes.as_u64() > 1024 * 1024 {
            return Err(invalid(
                "server.max_header_bytes".into(),
                "must be between 1KiB and 1MiB",
            ));
        }
        for (i, name) in s.client_ip_headers.iter().enumerate() {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(
                    format!("server.client_ip_headers[{i}]"),
                    "not a header name",
                ));
            }
        }
        if let Some(tls) = &s.tls {
            for (key, path) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
                if !path.is_file() {
                    return Err(ConfigError::Invalid {
                        key: key.into(),
                        reason: format!("file {} does not exist", path.display()),
                    });
                }
            }
        }
        for (name, up) in &self.upstreams {
            let key = |field: &str| format!("upstreams.{name}.{field}");
            if up.addresses.is_empty() {
                return Err(invalid(key("addresses"), "needs at least one address"));
            }
            for (i, addr) in up.addresses.iter().enumerate() {
                parse_upstream_address(addr).map_err(|reason| {
                    invalid(format!("upstreams.{name}.addresses[{i}]"), &reason)
                })?;
            }
            if up.connect_timeout.is_zero() {
                return Err(invalid(key("connect_timeout"), "must be > 0"));
            }
            if up.response_timeout.is_zero() {
                return Err(invalid(key("response_timeout"), "must be > 0"));
            }
        }
        if self.database.probe_interval.is_zero() {
            return Err(invalid("database.probe_interval".into(), "must be > 0"));
        }
        if self.database.probe_timeout.is_zero() {
            return Err(invalid("database.probe_timeout".into(), "must be > 0"));
        }
        if self.database.admission_batch_window > MAX_ADMISSION_BATCH_WINDOW {
            return Err(invalid(
                "database.admission_batch_window".into(),
                "must be at most 10ms",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let key = |field: &str| format!("routes[{i}].{field}");
            if route.name.is_empty() || !names.insert(route.name.as_str()) {
                return Err(invalid(key("name"), "must be non-empty and unique"));
            }
            if !route.path_prefix.starts_with('/') {
                return Err(invalid(key("path_prefix"), "must start with '/'"));
            }
            if !self.upstreams.contains_key(&route.upstream) {
                return Err(ConfigError::Invalid {
                    key: key("upstream"),
                    reason: format!("no upstream named `{}` in [upstreams]", route.upstream),
                });
            }
            if let Some(methods) = &route.methods {
                for m in methods {
                    if http::Method::from_bytes(m.as_bytes()).is_err() {
                        return Err(invalid(key("methods"), "contains an invalid method"));
                    }
                }
            }
            if route.max_body.as_u64() == 0 {
                return Err(invalid(key("max_body"), "must be > 0"));
            }
            match (route.class, route.profile.as_deref()) {
                (RouteClass::JobSubmit, None) => {
                    return Err(invalid(key("profile"), "job_submit routes need a profile"));
                }
                (RouteClass::JobSubmit, Some(p)) if !JOB_PROFILES.contains(&p) => {
                    return Err(invalid(
                        key("profile"),
                        "must be one of generic, slurm, kubernetes",
                    ));
                }
                (RouteClass::Public | RouteClass::Authenticated, Some(_)) => {
                    return Err(invalid(
                        key("profile"),
                        "only job_submit routes take a profile",
                    ));
                }
                _ => {}
            }
            self.validate_ownership(i, route)?;
        }
        if let Some(url) = &self.database.url
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
        {
            return Err(invalid(
                "database.url".into(),
                "must start with postgres://, postgresql:// or sqlite:",
            ));
        }
        if let Some(url) = &self.redis.url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(invalid(
                "redis.url".into(),
                "must start with redis:// or rediss://",
            ));
        }
        if self.redis.rate_limit_replicas == 0 {
            return Err(invalid(
                "redis.rate_limit_replicas".into(),
                "must be at least 1",
            ));
        }
        if let Some(file) = &self.policy.file
            && !file.is_file()
        {
            return Err(ConfigError::Invalid {
                key: "policy.file".into(),
                reason: format!("file {} does not exist", file.display()),
            });
        }
        if let Some(authz) = &self.authz {
            authz.validate(&self.server)?;
        }
        let a = &self.auth;
        if a.access_token_ttl < Duration::from_secs(10) {
            return Err(invalid(
                "auth.access_token_ttl".into(),
                "must be at least 10s",
            ));
        }
        if a.argon2_memory_kib < 8 * a.argon2_parallelism.max(1) || a.argon2_iterations == 0 {
            return Err(invalid(
                "auth.argon2_memory_kib".into(),
                "argon2 parameters out of range",
            ));
        }
        Ok(())
    }

    /// The ownership keys of route `i`: a valid `owner_path` only on `authenticated` routes whose
    /// upstream has a `job_submit` route (or no id would ever be bound), a JSON pointer only on
    /// `job_submit` routes.
    fn validate_ownership(&self, i: usize, route: &RouteConfig) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            key: format!("routes[{i}].{field}"),
            reason,
        };
        if let Some(template) = &route.owner_path {
            crate::ownership::OwnerPath::parse(template).map_err(|r| invalid("owner_path", r))?;
            if route.class != RouteClass::Authenticated {
                return Err(invalid(
                    "owner_path",
                    "only authenticated routes take an owner rule".into(),
                ));
            }
            let submits = self
                .routes
                .iter()
                .any(|r| r.class == RouteClass::JobSubmit && r.upstream == route.upstream);
            if !submits {
                return Err(invalid(
                    "owner_path",
                    format!(
                        "upstream `{}` has no job_submit route, so no job would have an owner",
                        route.upstream
                    ),
                ));
            }
        }
        if let Some(pointer) = &route.job_id_pointer {
            if route.class != RouteClass::JobSubmit {
                return Err(invalid(
                    "job_id_pointer",
                    "only job_submit routes take a job_id_pointer".into(),
                ));
            }
            if !pointer.starts_with('/') {
                return Err(invalid(
                    "job_id_pointer",
                    "must be a JSON pointer starting with '/'".into(),
                ));
            }
        }
        Ok(())
    }

    /// The database URL in force: the configured one or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("computegate.db").display()
            ),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            server: ServerConfig::default(),
            upstreams: BTreeMap::new(),
            routes: Vec::new(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            auth: AuthConfig::default(),
            policy: PolicyConfig::default(),
            log: LogConfig::default(),
            authz: None,
        }
    }
}

/// Names of the job-spec profiles a `job_submit` route may use.
pub const JOB_PROFILES: &[&str] = &["generic", "slurm", "kubernetes"];

/// Parses an upstream address (`host:port` or `http://host:port`) into its authority.
pub fn parse_upstream_address(addr: &str) -> Result<Authority, String> {
    let rest = match addr.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!("scheme `{scheme}` is not supported (use http)"));
        }
        None => addr,
    };
    let rest = rest.trim_end_matches('/');
    let authority: Authority = rest
        .parse()
        .map_err(|_| format!("`{addr}` is not host:port"))?;
    if authority.port_u16().is_none() {
        return Err(format!("`{addr}` has no port"));
    }
    Ok(authority)
}

// === impl AuthzConfig ===

impl AuthzConfig {
    /// The trusted proxies as networks (a bare address is a one-address network).
    pub fn trusted_networks(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, text)| {
                parse_network(text).ok_or_else(|| ConfigError::Invalid {
                    key: format!("authz.trusted_proxies[{i}]"),
                    reason: "not an IP address or CIDR block".into(),
                })
            })
            .collect()
    }

    fn validate(&self, server: &ServerConfig) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: format!("authz.{key}"),
            reason: reason.to_string(),
        };
        if self.addr.port() != 0
            && (self.addr == server.public_addr || self.addr == server.admin_addr)
        {
            return Err(invalid(
                "addr",
                "must differ from server.public_addr and server.admin_addr",
            ));
        }
        if self.trusted_proxies.is_empty() {
            return Err(invalid("trusted_proxies", "needs at least one address"));
        }
        self.trusted_networks()?;
        let prefix = &self.envoy_path_prefix;
        let reserved = crate::authz::FIXED_PATHS
            .iter()
            .any(|p| prefix.starts_with(p) || p.starts_with(prefix.as_str()));
        if !prefix.starts_with('/') || prefix.len() < 2 || prefix.ends_with('/') || reserved {
            return Err(invalid(
                "envoy_path_prefix",
                "must start with '/', not end with '/', and not overlap /nginx or /traefik",
            ));
        }
        Ok(())
    }
}

/// `10.0.0.5`, `::1` or `10.0.0.0/24`.
fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

fn default_envoy_path_prefix() -> String {
    "/envoy".into()
}

// === impl ServerConfig ===

impl ServerConfig {
    /// Threads the serve process runs on: `worker_threads`, or one per CPU the process may run
    /// on (its affinity mask, as tokio counts them) when 0.
    pub fn threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Threads each data-plane listener accepts on: every thread with `thread_per_core`; one
    /// with `work_stealing`, whose runtime hands connections to any worker itself.
    pub fn listener_threads(&self) -> usize {
        match self.runtime {
            ServerRuntime::WorkStealing => 1,
            ServerRuntime::ThreadPerCore => self.threads(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            public_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: ByteSize::kib(32),
            body_read_timeout: Duration::from_secs(30),
            body_min_rate: ByteSize::kib(4),
            shutdown_grace: Duration::from_secs(30),
            trust_forwarded_headers: false,
            admin_trust_forwarded_headers: false,
            client_ip_headers: crate::forward::untrusted::DEFAULT_CLIENT_IP_HEADERS
                .iter()
                .map(|n| n.to_string())
                .collect(),
            set_x_real_ip: true,
            idempotency_key_ttl: crate::idempotency::DEFAULT_KEY_TTL,
            worker_threads: 0,
            runtime: ServerRuntime::ThreadPerCore,
            tls: None,
        }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "computegate:".into(),
            rate_limit_replicas: 2,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "computegate".into(),
            audience: "computegate-api".into(),
            staff_audience: "computegate-staff".into(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            leeway: Duration::from_secs(30),
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            login_max_failures_per_account: 5,
            login_max_failures_per_ip: 50,
            login_window: Duration::from_secs(15 * 60),
            argon2_concurrency: 0,
            argon2_queue: 0,
            failed_auth_per_address: 50,
            failed_auth_per_key: 10,
            failed_auth_window: Duration::from_secs(60),
            failed_auth_delay: Duration::from_secs(1),
            signup_max_per_ip: 60,
            signup_window: Duration::from_secs(600),
            forward_identity_token: false,
            principal_cache_ttl: Duration::from_secs(60),
            store_outage_grace: Duration::from_secs(5 * 60),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
            access: "stderr".into(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./computegate-data")
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_response_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_eject_for() -> Duration {
    Duration::from_secs(10)
}
fn default_pool_idle_timeout() -> Duration {
    Duration::from_secs(90)
}
fn default_pool_max_idle() -> usize {
    256
}
fn default_route_class() -> RouteClass {
    RouteClass::Authenticated
}
fn default_max_body() -> ByteSize {
    ByteSize::gib(1)
}

/// Applies `COMPUTEGATE_A__B__0__C=value` to `doc` as `a.b[0].c = value`.
fn apply_env_override(doc: &mut toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let Some(name) = var.strip_prefix(ENV_PREFIX) else {
        return Ok(());
    };
    let lower = name.to_ascii_lowercase();
    let segments: Vec<&str> = lower.split("__").collect();
    if !CONFIG_SECTIONS.contains(&segments[0]) {
        return Ok(());
    }
    let env_err = |reason: &str| ConfigError::Env {
        var: var.to_string(),
        reason: reason.to_string(),
    };
    if segments.iter().any(|s| s.is_empty()) {
        return Err(env_err("empty key segment"));
    }
    let parsed = parse_env_value(value);
    let mut slot: &mut toml::Value = doc
        .entry(segments[0].to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    for segment in &segments[1..] {
        slot = match slot {
            toml::Value::Table(t) => t
                .entry(segment.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new())),
            toml::Value::Array(items) => {
                let index: usize = segment
                    .parse()
                    .map_err(|_| env_err("array keys take a numeric index"))?;
                items
                    .get_mut(index)
                    .ok_or_else(|| env_err("array index out of range"))?
            }
            _ => return Err(env_err("addresses a key below a plain value")),
        };
    }
    *slot = parsed;
    Ok(())
}

/// Reads an override value as TOML when it is one (`8080`, `true`, `["a","b"]`), else as a string.
fn parse_env_value(value: &str) -> toml::Value {
    let doc = format!("v = {value}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.into()),
    }
}

/// Serde adapter for durations written as human units ("30s", "15m", "2h").
mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration like \"30s\" or \"15m\" ({e})"
            ))
        })
    }
}

#[cfg(test)]
mod tests;
