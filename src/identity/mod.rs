//! The identity service of one process: the store, password hashing, signing keys, the login
//! throttle, cluster notices and the data-plane credential verifier, built from configuration.
//!
//! Changes that invalidate credentials (key revocation, logout, suspension, tier change) are
//! applied to this replica's caches first and then published, so they take effect here at once
//! and on other replicas as soon as the notice arrives.

mod api_keys;
pub mod browser;
mod directory;
mod error;
mod notices;
mod sessions;
mod staff;

use std::sync::{Arc, RwLock};

use anyhow::Context;
use computegate_gateway::config::{AuthConfig, Config};
use computegate_gateway::credentials::throttle::WindowCounter;
use computegate_gateway::credentials::{CredentialVerifier, FailureLimits, VerifierSettings};
use computegate_kyc::Store;
use computegate_kyc::accounts::Actor;
use computegate_kyc::cluster::{LoginThrottle, Notices, ThrottleLimits};
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::password::{Concurrency, Hasher, PasswordParams};
use computegate_kyc::tokens::{AccessClaims, Keyring};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;
use uuid::Uuid;

pub use self::browser::ResumedSession;
use self::directory::SharedKeyring;
pub use self::directory::{StoreDirectory, UPSTREAM_AUDIENCE};
pub use self::error::IdentityError;

/// Everything the control plane and the data plane need to know who is calling.
pub struct Identity {
    /// System of record.
    pub store: Store,
    /// argon2id with the configured parameters.
    pub hasher: Hasher,
    /// Failed-login throttle (Redis or in process).
    pub throttle: LoginThrottle,
    /// Sign-ups per client address (in process: each replica counts its own).
    pub signups: WindowCounter<std::net::IpAddr>,
    /// Data-plane credential verifier and its caches.
    pub verifier: Arc<CredentialVerifier>,
    /// Token settings.
    pub auth: AuthConfig,
    master: MasterKey,
    keyring: SharedKeyring,
    notices: Notices,
    redis: Option<redis::aio::ConnectionManager>,
    logins: Family<LoginLabels, Counter>,
}

/// The claims the staff API relies on.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct StaffClaims {
    /// `staff:<uuid>` or a bare uuid.
    pub sub: String,
    /// Token id.
    pub jti: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
}

impl StaffClaims {
    /// The staff user the token names, from `sub` (`staff:<uuid>` or a bare uuid).
    pub fn staff_id(&self) -> Option<Uuid> {
        let id = self.sub.strip_prefix("staff:").unwrap_or(&self.sub);
        Uuid::parse_str(id).ok()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    kind: &'static str,
    result: &'static str,
}

/// Whose password grant: a customer's (customer API audience) or a staff user's (staff API
/// audience).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// A customer on the public listener.
    Customer,
    /// A staff user on the admin listener.
    Staff,
}

// === impl AccountKind ===

impl AccountKind {
    /// The `kind` label of the login counter.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Customer => "customer",
            AccountKind::Staff => "staff",
        }
    }
}

/// A sign-up request as typed by the customer.
#[derive(Debug)]
pub struct SignUp<'a> {
    /// Email address.
    pub email: &'a str,
    /// Password (checked against the password policy).
    pub password: &'a str,
    /// `individual` or `organization`.
    pub kind: &'a str,
}

/// Issued tokens in the RFC 6749 response shape.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// Signed access JWT.
    pub access_token: String,
    /// Opaque refresh token.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
}

// === impl Identity ===

impl Identity {
    /// Opens the store (migrating it), loads signing keys (creating the first one), connects to
    /// Redis when configured and starts the notice listener.
    pub async fn open(
        config: &Config,
        master: MasterKey,
        registry: &mut Registry,
    ) -> anyhow::Result<Arc<Identity>> {
        let url = config.database_url();
        if url.starts_with("sqlite:") {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
        }
        let store = Store::connect(&url)
            .await
            .context("cannot open the database (database.url)")?;
        store.migrate().await.context("database migration failed")?;
        spawn_store_probe(&store, config, registry);
        store
            .ledger()
            .set_admission_batch_window(config.database.admission_batch_window);
        let now = OffsetDateTime::now_utc();
        store
            .credentials().ensure_signing_key(&master, &Actor::system("startup"), now)
            .await
            .context("cannot create or read the signing key (is COMPUTEGATE_MASTER_KEY the one the store was created with?)")?;
        let keyring = store
            .credentials()
            .load_keyring(&master, now)
            .await
            .context("cannot load signing keys")?;
        let a = &config.auth;
        let hasher = Hasher::with_concurrency(
            PasswordParams {
                memory_kib: a.argon2_memory_kib,
                iterations: a.argon2_iterations,
                parallelism: a.argon2_parallelism,
            },
            Concurrency {
                running: a.argon2_concurrency,
                queued: a.argon2_queue,
            },
        )
        .context("auth.argon2_* parameters are not usable")?;
        let limits = ThrottleLimits {
            per_account: a.login_max_failures_per_account,
            per_ip: a.login_max_failures_per_ip,
            window: a.login_window,
        };
        let prefix = &config.redis.key_prefix;
        let (notices, throttle, redis) = match &config.redis.url {
            Some(url) => {
                let client = computegate_kyc::cluster::redis_client(url)
                    .context("redis.url is not a valid Redis URL")?;
                // None of these needs Redis to be up now: a replica starts during an outage
                // with notices degraded (see `Identity::spawn_notice_recheck`) and the login throttle
                // on its local counters, and reconnects by itself.
                let notices = Notices::redis_degradable(client.clone(), prefix)
                    .await
                    .context("redis.url is not usable for notices")?;
                let throttle = LoginThrottle::redis_lazy(client.clone(), prefix, limits)
                    .context("redis.url is not usable for the login throttle")?;
                let manager = redis::aio::ConnectionManager::new_lazy_with_config(
                    client,
                    redis::aio::ConnectionManagerConfig::new()
                        .set_number_of_retries(1)
                        .set_max_delay(std::time::Duration::from_millis(200)),
                )
                .context("redis.url is not usable")?;
                (notices, throttle, Some(manager))
            }
            None => (
                Notices::in_process(),
                LoginThrottle::in_process(limits),
                None,
            ),
        };
        let settings = VerifierSettings {
            issuer: a.issuer.clone(),
            audience: a.audience.clone(),
            leeway: a.leeway,
            principal_ttl: a.principal_cache_ttl,
            failures: FailureLimits {
                per_address: a.failed_auth_per_address,
                per_key: a.failed_auth_per_key,
                window: a.failed_auth_window,
                throttled_delay: a.failed_auth_delay,
            },
            store_outage_grace: a.store_outage_grace,
        };
        let keyring: SharedKeyring = Arc::new(RwLock::new(Arc::new(keyring)));
        let signer = a
            .forward_identity_token
            .then(|| (keyring.clone(), a.issuer.clone()));
        let directory = Arc::new(StoreDirectory::new(
            store.clone(),
            hasher.clone(),
            master.clone(),
            signer,
        ));
        let verifier = CredentialVerifier::new(settings, directory, registry);
        verifier
            .resync()
            .await
            .map_err(|e| anyhow::anyhow!("cannot load credentials from the store: {e}"))?;
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "computegate_logins",
            "Password logins by kind (customer, staff) and result (ok, invalid, throttled, inactive, error)",
            logins.clone(),
        );
        // Present at 0 before the first login, so that the dashboard's and the alert's rates
        // read a series on every replica.
        for kind in [AccountKind::Customer, AccountKind::Staff] {
            for result in ["ok", "invalid"] {
                let _ = logins.get_or_create(&LoginLabels {
                    kind: kind.as_str(),
                    result,
                });
            }
        }
        let identity = Arc::new(Identity {
            store,
            hasher,
            throttle,
            signups: WindowCounter::new(a.signup_max_per_ip, a.signup_window, 100_000),
            verifier,
            auth: config.auth.clone(),
            master,
            keyring,
            notices,
            redis,
            logins,
        });
        identity.spawn_notice_listener();
        identity.spawn_notice_recheck(registry);
        Ok(identity)
    }

    /// The current signing keyring.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keyring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads signing keys from the store (after a rotation anywhere in the cluster).
    pub async fn reload_keyring(&self) -> anyhow::Result<()> {
        let keyring = self
            .store
            .credentials()
            .load_keyring(&self.master, OffsetDateTime::now_utc())
            .await?;
        *self
            .keyring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keyring);
        Ok(())
    }

    /// Signs claims with the active key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, IdentityError> {
        self.keyring()
            .sign_access(claims)
            .map_err(|e| IdentityError::Internal(e.to_string()))
    }

    /// Counts a login attempt.
    fn count_login(&self, kind: AccountKind, result: &'static str) {
        let kind = kind.as_str();
        self.logins
            .get_or_create(&LoginLabels { kind, result })
            .inc();
    }

    /// Readiness checks for `/readyz`: the store, and Redis when configured.
    pub fn readiness_checks(
        self: &Arc<Self>,
    ) -> Vec<Arc<dyn computegate_gateway::admin::ReadinessCheck>> {
        let mut checks: Vec<Arc<dyn computegate_gateway::admin::ReadinessCheck>> =
            vec![Arc::new(directory::StoreCheck(self.store.clone()))];
        if let Some(redis) = &self.redis {
            checks.push(Arc::new(directory::RedisCheck(redis.clone())));
        }
        checks
    }
}

/// Arms the store circuit (fail fast while the database is known down) and exports its state
/// as `computegate_store_down`.
fn spawn_store_probe(store: &Store, config: &Config, registry: &mut Registry) {
    let gauge = prometheus_client::metrics::gauge::Gauge::<i64>::default();
    registry.register(
        "computegate_store_down",
        "1 while the database is known down (health probe failing): store calls fail fast with 503",
        gauge.clone(),
    );
    let probe = computegate_kyc::store::HealthProbe {
        interval: config.database.probe_interval,
        timeout: config.database.probe_timeout,
    };
    // Runs for the life of the process, like the listeners (PostgreSQL only: an embedded
    // SQLite file has no server to lose).
    let _probe = store.watch_health(probe, move |down| {
        gauge.set(i64::from(down));
    });
}

/// Reads the master key from `COMPUTEGATE_MASTER_KEY`.
pub fn master_key_from_env(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<MasterKey> {
    let value = env("COMPUTEGATE_MASTER_KEY").ok_or_else(|| {
        crate::startup::StartupConfigError(
            "COMPUTEGATE_MASTER_KEY is not set: it must hold 32 random bytes in base64 \
             (generate one with `head -c 32 /dev/urandom | base64`)"
                .into(),
        )
    })?;
    MasterKey::from_base64(value.trim()).map_err(|e| {
        crate::startup::StartupConfigError(format!("COMPUTEGATE_MASTER_KEY: {e}")).into()
    })
}

/// The master key of an embedded (data-dir) store: `data_dir/master.key`, created on first use
/// with owner-only permissions. For the demo and local tools; production sets the environment.
pub fn master_key_from_data_dir(data_dir: &std::path::Path) -> anyhow::Result<MasterKey> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("master.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return MasterKey::from_base64(text.trim())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let key = MasterKey::generate().map_err(|e| anyhow::anyhow!("cannot generate a key: {e}"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(key.to_base64().as_bytes())?;
    Ok(key)
}

/// A configured duration as the store's time span (saturating; configured values are small).
pub(crate) fn span(d: std::time::Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}
