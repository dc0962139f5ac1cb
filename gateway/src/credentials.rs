//! Bearer-credential verification on the data plane: access JWTs (EdDSA, verified locally against
//! published keys) and API keys (verified once by the identity directory, then cached), followed by
//! a check of the principal's *current* status and tier.
//!
//! Three bounded caches keep the hot path off the store and off argon2: verified tokens (keyed by
//! the SHA-256 digest of the token, expiring at `exp`), verified API keys (same keying), and
//! principals (customer id → status, tier, organization, verified jurisdictions). Change notices
//! ([`CredentialNotice`]) evict entries at once; a principal entry is also re-read after
//! `principal_ttl` so a lost notice cannot keep a suspended account alive for long.
//!
//! Work before authentication is bounded. A credential already in a cache costs nothing and is
//! never throttled. Otherwise: a client address that keeps failing (`per_address` failures per
//! `window`) is answered 429 before any signature check or hash; an API key whose id the store
//! does not know is refused after an id lookup (cached both ways, bounded), without argon2; a
//! known key id that keeps failing (`per_key` failures per `window`) is answered 429 before the
//! hash; argon2 itself runs under the directory's concurrency bound (503 beyond it).
//!
//! Two degraded modes keep those bounds honest. While notices cannot arrive (Redis down), the
//! caller runs [`CredentialVerifier::recheck`] at least every `principal_ttl / 2`: it reloads
//! revoked token ids and signing keys from the store and drops verified API keys (re-verified
//! on next use), so a revocation reaches this replica within `principal_ttl` with or without
//! notices. While the store is down, a principal entry past `principal_ttl` is still served for
//! `store_outage_grace` (its last known state) instead of failing every plain authenticated
//! request; a notice about that customer still drops it at once (fail closed).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{DecodingKey, Validation};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};

pub mod bearer;
pub mod throttle;

use self::bearer::{TokenCheck, access_token_validation, api_key_id, check_access_token, classify};
use self::throttle::WindowCounter;
use crate::auth::{
    AuthError, AuthMethod, AuthOutcome, Authenticator, BoxFuture, IdentityHeaders, Principal,
};
use crate::scope::Scopes;

/// Most entries any one cache holds; past it, expired entries go, then everything.
const CACHE_CAPACITY: usize = 100_000;
/// How long a rejected API key digest is remembered, so guessing costs no argon2 per try.
const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// How long an API-key id the store knows is remembered as known.
const KNOWN_ID_TTL: Duration = Duration::from_secs(300);
/// How long an API-key id the store does not know is remembered as unknown.
const UNKNOWN_ID_TTL: Duration = Duration::from_secs(60);
/// Most client addresses or key ids the failure throttles track at once.
const THROTTLE_CAPACITY: usize = 100_000;
/// Least time between two key-set reloads triggered by unknown `kid`s.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Account status as the directory reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccountStatus {
    /// May use the service.
    Active,
    /// Temporarily barred.
    Suspended,
    /// Closed for good.
    Closed,
}

/// A customer as the directory knows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRecord {
    /// Customer id.
    pub customer_id: String,
    /// Tier in force.
    pub tier: String,
    /// Status in force.
    pub status: AccountStatus,
    /// Why the account is not active: a bounded code (e.g. `denied_party`,
    /// `embargoed_jurisdiction`, `screening_hit`, `staff`) shown as the 403 problem's `reason`.
    pub status_reason: Option<&'static str>,
    /// Organization id.
    pub organization_id: Option<String>,
    /// ISO 3166-1 alpha-2 codes the customer is verified in (its latest approved application
    /// and its organization's); empty when none is known.
    pub jurisdictions: Vec<String>,
}

/// What a verified API key grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyGrant {
    /// Key id (public part of the key).
    pub key_id: String,
    /// Owner.
    pub customer_id: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: Option<u64>,
    /// Scope names stored with the key (see [`crate::scope`]).
    pub scopes: Vec<String>,
}

/// Why the directory could not help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The credential is not valid (unknown, wrong secret, revoked, expired).
    #[error("credential rejected")]
    Rejected,
    /// The store could not be reached.
    #[error("directory unavailable")]
    Unavailable,
    /// Credential hashing is at its concurrency bound: try again shortly.
    #[error("credential verification busy")]
    Busy,
}

/// The port to wherever identities live (implemented by the root crate with the store).
pub trait IdentityDirectory: Send + Sync + 'static {
    /// The customer's current record; `None` when unknown.
    fn principal(
        &self,
        customer_id: String,
    ) -> BoxFuture<Result<Option<PrincipalRecord>, DirectoryError>>;
    /// Verifies a full API key (slow: argon2) and records its use from `ip`.
    fn verify_api_key(
        &self,
        key: String,
        ip: IpAddr,
    ) -> BoxFuture<Result<ApiKeyGrant, DirectoryError>>;
    /// Whether an API key with this id exists (revoked and expired keys included): a cheap
    /// lookup that lets unknown ids be refused without hashing anything.
    fn api_key_id_known(&self, key_id: String) -> BoxFuture<Result<bool, DirectoryError>> {
        let _ = key_id;
        Box::pin(async { Ok(true) })
    }
    /// Public keys that may verify access tokens, by `kid`.
    fn verification_keys(&self) -> BoxFuture<Result<Vec<(String, DecodingKey)>, DirectoryError>>;
    /// Access-token ids revoked before their expiry (logout), with their `exp`.
    fn revoked_token_ids(&self) -> BoxFuture<Result<Vec<(String, u64)>, DirectoryError>>;
    /// A signed identity token for upstreams, valid at least `valid_for`, when the deployment
    /// forwards one (`auth.forward_identity_token`); `None` otherwise. Called once per
    /// principal-cache fill, never per request.
    fn identity_token(&self, record: &PrincipalRecord, valid_for: Duration) -> Option<String> {
        let _ = (record, valid_for);
        None
    }
}

/// A change that invalidates cached credentials (from this replica or, via Redis, another).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialNotice {
    /// An API key was revoked.
    KeyRevoked {
        /// Key id.
        key_id: String,
    },
    /// A customer's status, tier or verified jurisdictions changed.
    CustomerChanged {
        /// Customer id.
        customer_id: String,
    },
    /// An access token was revoked before expiry.
    TokenRevoked {
        /// Token id (`jti`).
        jti: String,
        /// Its `exp`.
        exp: u64,
    },
    /// Signing keys were added or removed.
    SigningKeysChanged,
    /// Notices may have been missed (reconnect): drop every cache.
    Resync,
}

/// Settings of token validation.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Clock-skew leeway.
    pub leeway: Duration,
    /// Longest a principal entry is served without re-reading the store.
    pub principal_ttl: Duration,
    /// How much longer than `principal_ttl` an entry is served while the store cannot be
    /// reached (zero: never past `principal_ttl`).
    pub store_outage_grace: Duration,
    /// Throttles of failed authentications.
    pub failures: FailureLimits,
}

/// How many failed authentications are tolerated before further attempts that would need a
/// signature check or a hash are answered 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimits {
    /// Failures per client address per window (0 = no limit).
    pub per_address: u32,
    /// Failures per API-key id per window (0 = no limit).
    pub per_key: u32,
    /// The window.
    pub window: Duration,
    /// How long a refusal (401 or 429) to a client address over its limit waits before it is
    /// sent (zero: at once).
    pub throttled_delay: Duration,
}

impl Default for FailureLimits {
    fn default() -> Self {
        Self {
            per_address: 50,
            per_key: 10,
            window: Duration::from_secs(60),
            throttled_delay: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone)]
struct TokenEntry {
    customer_id: Arc<str>,
    exp: u64,
    jti: Option<Arc<str>>,
}

#[derive(Debug, Clone)]
struct KeyEntry {
    key_id: Arc<str>,
    customer_id: Arc<str>,
    expires_at: Option<u64>,
    scopes: Scopes,
}

/// What a verified credential says: whose it is, its id and what it may do.
#[derive(Debug, Clone)]
struct Grant {
    customer_id: Arc<str>,
    credential_id: Option<Arc<str>>,
    scopes: Scopes,
}

#[derive(Debug, Clone)]
struct PrincipalEntry {
    record: Arc<PrincipalRecord>,
    /// `record.customer_id`, `record.tier` and `record.organization_id`, shared so a cache hit
    /// copies no strings.
    customer_id: Arc<str>,
    tier: Arc<str>,
    organization_id: Option<Arc<str>>,
    /// `record.jurisdictions`, shared so a cache hit copies no strings.
    jurisdictions: Arc<[String]>,
    headers: IdentityHeaders,
    fetched: Instant,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    method: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

type Digest32 = [u8; 32];

/// Methods of `computegate_auth_attempts`, in [`Handles`] index order.
const ATTEMPT_METHODS: [&str; 3] = ["none", "jwt", "api_key"];
/// Results of `computegate_auth_attempts`, in [`Handles`] index order.
const ATTEMPT_RESULTS: [&str; 7] = [
    "ok",
    "missing",
    "invalid",
    "inactive",
    "unavailable",
    "throttled",
    "busy",
];
/// Caches of `computegate_auth_cache`, in [`Handles`] index order.
const CACHES: [&str; 3] = ["token", "api_key", "principal"];

/// Counter handles of a family with a small fixed label set, each resolved on first use: the
/// hot path then skips the family's label hashing and map lookup, and a series still appears
/// only once it has been counted.
struct Handles<L, const N: usize> {
    family: Family<L, Counter>,
    slots: [OnceLock<Counter>; N],
}

/// Verifies bearer credentials; see the module docs.
pub struct CredentialVerifier {
    me: Weak<CredentialVerifier>,
    directory: Arc<dyn IdentityDirectory>,
    validation: Validation,
    principal_ttl: Duration,
    store_outage_grace: Duration,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_key_reload: Mutex<Option<Instant>>,
    tokens: RwLock<HashMap<Digest32, TokenEntry>>,
    api_keys: RwLock<HashMap<Digest32, KeyEntry>>,
    rejected_keys: RwLock<HashMap<Digest32, Instant>>,
    principals: RwLock<HashMap<Arc<str>, PrincipalEntry>>,
    revoked_jti: RwLock<HashMap<Arc<str>, u64>>,
    /// API-key id → (known to the store, when asked).
    key_ids: RwLock<HashMap<Arc<str>, (bool, Instant)>>,
    failures_by_address: WindowCounter<IpAddr>,
    failures_by_key: WindowCounter<Arc<str>>,
    /// How late refusals to a throttled address are sent.
    throttled_delay: Duration,
    attempts: Handles<AttemptLabels, 21>,
    cache: Handles<CacheLabels, 6>,
    clock: fn() -> u64,
}

// === impl CredentialVerifier ===

impl CredentialVerifier {
    /// Builds a verifier and registers its metrics. Call [`CredentialVerifier::resync`] once at
    /// start to load keys and revocations.
    pub fn new(
        settings: VerifierSettings,
        directory: Arc<dyn IdentityDirectory>,
        registry: &mut Registry,
    ) -> Arc<Self> {
        Self::with_clock(settings, directory, registry, unix_now)
    }

    /// As [`CredentialVerifier::new`] with an explicit clock (seconds since the Unix epoch).
    pub fn with_clock(
        settings: VerifierSettings,
        directory: Arc<dyn IdentityDirectory>,
        registry: &mut Registry,
        clock: fn() -> u64,
    ) -> Arc<Self> {
        let validation =
            access_token_validation(&settings.issuer, &settings.audience, settings.leeway);
        let attempts = Family::<AttemptLabels, Counter>::default();
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "computegate_auth_attempts",
            "Data-plane authentications by method (jwt, api_key, none) and result",
            attempts.clone(),
        );
        registry.register(
            "computegate_auth_cache",
            "Credential cache lookups by cache (token, api_key, principal) and result (hit, miss)",
            cache.clone(),
        );
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            directory,
            validation,
            principal_ttl: settings.principal_ttl,
            store_outage_grace: settings.store_outage_grace,
            keys: RwLock::new(HashMap::new()),
            last_key_reload: Mutex::new(None),
            tokens: RwLock::new(HashMap::new()),
            api_keys: RwLock::new(HashMap::new()),
            rejected_keys: RwLock::new(HashMap::new()),
            principals: RwLock::new(HashMap::new()),
            revoked_jti: RwLock::new(HashMap::new()),
            key_ids: RwLock::new(HashMap::new()),
            failures_by_address: WindowCounter::new(
                settings.failures.per_address,
                settings.failures.window,
                THROTTLE_CAPACITY,
            ),
            failures_by_key: WindowCounter::new(
                settings.failures.per_key,
                settings.failures.window,
                THROTTLE_CAPACITY,
            ),
            throttled_delay: settings.failures.throttled_delay,
            attempts: Handles::new(attempts),
            cache: Handles::new(cache),
            clock,
        })
    }

    /// Drops every cache and reloads verification keys and token revocations from the directory.
    /// When the directory cannot be reached the caches are kept and the error returned: a
    /// revocation needs the store, so none can have been missed meanwhile, and clearing would
    /// end the `store_outage_grace` of every principal at once.
    pub async fn resync(&self) -> Result<(), DirectoryError> {
        let keys = self.directory.verification_keys().await?;
        let revoked = self.directory.revoked_token_ids().await?;
        write(&self.tokens).clear();
        write(&self.api_keys).clear();
        write(&self.rejected_keys).clear();
        write(&self.key_ids).clear();
        write(&self.principals).clear();
        *write(&self.keys) = keys.into_iter().collect();
        *lock(&self.last_key_reload) = Some(Instant::now());
        let now = (self.clock)();
        let mut map = write(&self.revoked_jti);
        map.clear();
        for (jti, exp) in revoked.into_iter().filter(|(_, exp)| *exp + 300 > now) {
            map.insert(Arc::from(jti), exp);
        }
        Ok(())
    }

    /// Re-checks against the store what a lost notice could have changed (run periodically while
    /// notices are unavailable): revoked token ids and signing keys are reloaded, verified tokens
    /// and API keys dropped (tokens re-verify locally, keys through the directory). Principals
    /// need nothing: they are re-read after `principal_ttl` anyway. When the store cannot be
    /// reached, every cache is kept (a revocation needs the store, so none can be missed) and
    /// the error is returned.
    pub async fn recheck(&self) -> Result<(), DirectoryError> {
        let revoked = self.directory.revoked_token_ids().await?;
        let keys = self.directory.verification_keys().await?;
        let now = (self.clock)();
        {
            let mut map = write(&self.revoked_jti);
            map.clear();
            for (jti, exp) in revoked.into_iter().filter(|(_, exp)| *exp + 300 > now) {
                map.insert(Arc::from(jti), exp);
            }
        }
        *write(&self.keys) = keys.into_iter().collect();
        *lock(&self.last_key_reload) = Some(Instant::now());
        write(&self.tokens).clear();
        write(&self.api_keys).clear();
        Ok(())
    }

    /// Applies a change notice to the caches at once.
    pub fn apply(&self, notice: &CredentialNotice) {
        match notice {
            CredentialNotice::KeyRevoked { key_id } => {
                write(&self.api_keys).retain(|_, e| &*e.key_id != key_id);
            }
            CredentialNotice::CustomerChanged { customer_id } => {
                write(&self.principals).remove(customer_id.as_str());
            }
            CredentialNotice::TokenRevoked { jti, exp } => {
                let now = (self.clock)();
                let mut map = write(&self.revoked_jti);
                map.retain(|_, e| *e + 300 > now);
                map.insert(Arc::from(jti.as_str()), *exp);
            }
            CredentialNotice::SigningKeysChanged => {
                *lock(&self.last_key_reload) = None;
                // Reloaded lazily on the next unknown kid; removed keys must stop verifying now.
                write(&self.tokens).clear();
                write(&self.keys).clear();
            }
            CredentialNotice::Resync => {
                write(&self.tokens).clear();
                write(&self.api_keys).clear();
                write(&self.principals).clear();
                *lock(&self.last_key_reload) = None;
            }
        }
    }

    /// Counts an attempt; `method` indexes [`ATTEMPT_METHODS`], `result` [`ATTEMPT_RESULTS`].
    fn count(&self, method: usize, result: usize) {
        let i = method * ATTEMPT_RESULTS.len() + result;
        self.attempts.inc(i, || AttemptLabels {
            method: ATTEMPT_METHODS[method],
            result: ATTEMPT_RESULTS[result],
        });
    }

    /// Counts a lookup of cache `cache` (an index of [`CACHES`]).
    fn count_cache(&self, cache: usize, hit: bool) {
        let i = cache * 2 + usize::from(!hit);
        self.cache.inc(i, || CacheLabels {
            cache: CACHES[cache],
            result: if hit { "hit" } else { "miss" },
        });
    }

    /// Token → customer id from memory, or what is missing.
    fn token_from_memory(&self, token: &str, digest: &Digest32) -> Lookup<Grant> {
        let now = (self.clock)();
        if let Some(entry) = read(&self.tokens).get(digest).cloned() {
            if entry.exp + self.validation.leeway <= now {
                return Lookup::Done(Err(AuthError::Invalid("token expired")));
            }
            self.count_cache(0, true);
            return Lookup::Done(self.check_jti(entry));
        }
        self.count_cache(0, false);
        let checked = check_access_token(token, &read(&self.keys), &self.validation, now);
        match checked {
            Ok(TokenCheck::Verified(claims)) => {
                let entry = TokenEntry {
                    customer_id: Arc::from(claims.sub),
                    exp: claims.exp,
                    jti: claims.jti.map(Arc::from),
                };
                insert_bounded(&self.tokens, *digest, entry.clone(), |e| e.exp > now);
                Lookup::Done(self.check_jti(entry))
            }
            Ok(TokenCheck::UnknownKey) => Lookup::NeedKeys,
            Err(e) => Lookup::Done(Err(e)),
        }
    }

    fn check_jti(&self, entry: TokenEntry) -> Result<Grant, AuthError> {
        if let Some(jti) = &entry.jti {
            let revoked = read(&self.revoked_jti);
            if !revoked.is_empty() && revoked.contains_key(jti) {
                return Err(AuthError::Invalid("token revoked"));
            }
        }
        Ok(Grant {
            customer_id: entry.customer_id,
            credential_id: entry.jti,
            scopes: Scopes::ALL,
        })
    }

    fn key_from_memory(&self, digest: &Digest32) -> Option<Result<Grant, AuthError>> {
        let now = (self.clock)();
        if let Some(entry) = read(&self.api_keys).get(digest) {
            self.count_cache(1, true);
            if entry.expires_at.is_some_and(|exp| exp <= now) {
                return Some(Err(AuthError::Invalid("API key expired")));
            }
            return Some(Ok(entry.grant()));
        }
        self.count_cache(1, false);
        if let Some(at) = read(&self.rejected_keys).get(digest)
            && at.elapsed() < NEGATIVE_TTL
        {
            return Some(Err(AuthError::Invalid("unknown API key")));
        }
        None
    }

    fn principal_from_memory(&self, customer_id: &str) -> Option<Result<Principal, AuthError>> {
        let found = read(&self.principals)
            .get(customer_id)
            .filter(|e| e.fetched.elapsed() < self.principal_ttl)
            .map(principal_of);
        match found {
            Some(p) => {
                self.count_cache(2, true);
                Some(p)
            }
            _ => {
                self.count_cache(2, false);
                None
            }
        }
    }

    /// The store cannot be reached: the principal's last known state while its entry is
    /// younger than `principal_ttl + store_outage_grace`, else unavailable.
    fn principal_in_outage(&self, customer_id: &str) -> Result<Principal, AuthError> {
        let limit = self.principal_ttl + self.store_outage_grace;
        read(&self.principals)
            .get(customer_id)
            .filter(|e| e.fetched.elapsed() < limit)
            .map_or(Err(AuthError::Unavailable), principal_of)
    }

    async fn reload_keys(&self) -> Result<(), DirectoryError> {
        let keys = self.directory.verification_keys().await?;
        *write(&self.keys) = keys.into_iter().collect();
        *lock(&self.last_key_reload) = Some(Instant::now());
        Ok(())
    }

    async fn slow_path(
        self: Arc<Self>,
        credential: String,
        ip: IpAddr,
        method: AuthMethod,
    ) -> Result<Principal, AuthError> {
        let digest = digest(&credential);
        let grant = match method {
            AuthMethod::Jwt => match self.token_from_memory(&credential, &digest) {
                Lookup::Done(r) => r?,
                Lookup::NeedKeys => {
                    let recently = lock(&self.last_key_reload)
                        .is_some_and(|at| at.elapsed() < KEY_RELOAD_INTERVAL);
                    if !recently {
                        self.reload_keys()
                            .await
                            .map_err(|_| AuthError::Unavailable)?;
                    }
                    match self.token_from_memory(&credential, &digest) {
                        Lookup::Done(r) => r?,
                        Lookup::NeedKeys => return Err(AuthError::Invalid("unknown signing key")),
                    }
                }
            },
            _ => match self.key_from_memory(&digest) {
                Some(r) => r?,
                None => {
                    let key_id = self.known_key_id(&credential).await?;
                    if let Err(after) = self.failures_by_key.check(&key_id, Instant::now()) {
                        return Err(AuthError::Throttled(after));
                    }
                    self.verify_key(credential, digest, key_id, ip).await?
                }
            },
        };
        self.principal_of_customer(grant).await
    }

    /// The key id of a well-formed API key, when the store knows it (cached both ways).
    async fn known_key_id(&self, credential: &str) -> Result<Arc<str>, AuthError> {
        let id = api_key_id(credential).ok_or(AuthError::Invalid("malformed API key"))?;
        let cached = read(&self.key_ids).get(id).and_then(|(known, at)| {
            let ttl = if *known { KNOWN_ID_TTL } else { UNKNOWN_ID_TTL };
            (at.elapsed() < ttl).then_some(*known)
        });
        let id: Arc<str> = Arc::from(id);
        let known = match cached {
            Some(known) => known,
            None => {
                let known = match self.directory.api_key_id_known(id.to_string()).await {
                    Ok(k) => k,
                    Err(DirectoryError::Unavailable) => return Err(AuthError::Unavailable),
                    Err(DirectoryError::Busy) => return Err(AuthError::Busy),
                    Err(DirectoryError::Rejected) => false,
                };
                insert_bounded(&self.key_ids, id.clone(), (known, Instant::now()), |e| {
                    e.1.elapsed() < if e.0 { KNOWN_ID_TTL } else { UNKNOWN_ID_TTL }
                });
                known
            }
        };
        if known {
            Ok(id)
        } else {
            Err(AuthError::Invalid("unknown API key"))
        }
    }

    /// Verifies an API key of a known id against the store (argon2) and caches the answer.
    async fn verify_key(
        &self,
        credential: String,
        digest: Digest32,
        key_id: Arc<str>,
        ip: IpAddr,
    ) -> Result<Grant, AuthError> {
        Ok(match self.directory.verify_api_key(credential, ip).await {
            Ok(grant) => {
                let now = (self.clock)();
                if grant.expires_at.is_some_and(|e| e <= now) {
                    return Err(AuthError::Invalid("API key expired"));
                }
                let entry = KeyEntry {
                    key_id: Arc::from(grant.key_id),
                    customer_id: Arc::from(grant.customer_id),
                    expires_at: grant.expires_at,
                    scopes: Scopes::of_key(&grant.scopes),
                };
                let granted = entry.grant();
                insert_bounded(&self.api_keys, digest, entry, |e| {
                    e.expires_at.is_none_or(|x| x > now)
                });
                granted
            }
            Err(DirectoryError::Rejected) => {
                insert_bounded(&self.rejected_keys, digest, Instant::now(), |at| {
                    at.elapsed() < NEGATIVE_TTL
                });
                self.failures_by_key.hit(&key_id, Instant::now());
                return Err(AuthError::Invalid("unknown API key"));
            }
            Err(DirectoryError::Unavailable) => return Err(AuthError::Unavailable),
            Err(DirectoryError::Busy) => return Err(AuthError::Busy),
        })
    }

    /// The principal of a verified credential's customer, from memory or the store, as the
    /// credential presents it (its scopes and id).
    async fn principal_of_customer(&self, grant: Grant) -> Result<Principal, AuthError> {
        let customer_id = grant.customer_id.clone();
        if let Some(r) = self.principal_from_memory(&customer_id) {
            return r.map(|p| grant.apply(p));
        }
        let record = match self.directory.principal(customer_id.to_string()).await {
            Ok(found) => found.ok_or(AuthError::Invalid("unknown account"))?,
            Err(_) => {
                return self
                    .principal_in_outage(&customer_id)
                    .map(|p| grant.apply(p));
            }
        };
        let mut headers = IdentityHeaders::new(
            &record.customer_id,
            &record.tier,
            record.organization_id.as_deref(),
        )
        .ok_or(AuthError::Invalid(
            "account identifiers are not header-safe",
        ))?;
        // Signed once per cache fill; the token must outlive the cache entry that carries it.
        headers.identity_token = self
            .directory
            .identity_token(&record, self.principal_ttl + Duration::from_secs(60))
            .and_then(|t| http::HeaderValue::from_str(&t).ok());
        let entry = PrincipalEntry {
            customer_id: Arc::from(record.customer_id.as_str()),
            tier: Arc::from(record.tier.as_str()),
            organization_id: record.organization_id.as_deref().map(Arc::from),
            jurisdictions: Arc::from(record.jurisdictions.as_slice()),
            record: Arc::new(record),
            headers,
            fetched: Instant::now(),
        };
        let result = principal_of(&entry).map(|p| grant.apply(p));
        let keep_for = self.principal_ttl + self.store_outage_grace;
        insert_bounded(&self.principals, customer_id, entry, |e| {
            e.fetched.elapsed() < keep_for
        });
        result
    }

    /// Counts the outcome, and a failure against the client address's throttle.
    fn finish(
        &self,
        method: AuthMethod,
        ip: IpAddr,
        result: Result<Principal, AuthError>,
    ) -> Result<Principal, AuthError> {
        let m = method_index(method);
        self.count(m, result_index(&result));
        if let Err(AuthError::Invalid(_)) = &result {
            self.failures_by_address.hit(&ip, Instant::now());
        }
        result.map(|mut p| {
            p.method = method;
            p
        })
    }
}

// === impl KeyEntry ===

impl KeyEntry {
    fn grant(&self) -> Grant {
        Grant {
            customer_id: self.customer_id.clone(),
            credential_id: Some(self.key_id.clone()),
            scopes: self.scopes,
        }
    }
}

// === impl Grant ===

impl Grant {
    /// The principal as this credential presents it.
    fn apply(&self, mut p: Principal) -> Principal {
        p.scopes = self.scopes;
        p.credential_id = self.credential_id.clone();
        p
    }
}

// === impl Handles ===

impl<L, const N: usize> Handles<L, N>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    fn new(family: Family<L, Counter>) -> Self {
        Self {
            family,
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Increments the counter in slot `i`, labelled `labels()` (called on first use only).
    fn inc(&self, i: usize, labels: impl FnOnce() -> L) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        slot.get_or_init(|| self.family.get_or_create(&labels()).clone())
            .inc();
    }
}

enum Lookup<T> {
    Done(Result<T, AuthError>),
    NeedKeys,
}

impl Authenticator for CredentialVerifier {
    fn authenticate(&self, bearer: &str, client_ip: IpAddr) -> AuthOutcome {
        let (outcome, late) = self.decide(bearer, client_ip);
        let delay = self.throttled_delay;
        // A client address that keeps failing gets its refusals late: each of its connections
        // then makes at most one attempt per `throttled_delay`, so a flood costs the gateway a
        // sleeping task instead of a request loop. Valid (cached) credentials are not refused
        // and so never wait.
        match outcome {
            AuthOutcome::Ready(r) if late && !delay.is_zero() => {
                AuthOutcome::Pending(Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    r
                }))
            }
            other => other,
        }
    }
}

impl CredentialVerifier {
    /// The decision, and whether its refusal is to be sent late: a refusal to an address that
    /// was over its failure limit before this attempt (the attempt that reaches the limit is
    /// answered at once). The limit is read only where the throttle already reads it — never
    /// for a cached credential.
    fn decide(&self, bearer: &str, client_ip: IpAddr) -> (AuthOutcome, bool) {
        let method = match classify(bearer) {
            Ok(m) => m,
            Err(e) => {
                self.count(0, 2);
                let now = Instant::now();
                let late = self.failures_by_address.check(&client_ip, now).is_err();
                self.failures_by_address.hit(&client_ip, now);
                return (AuthOutcome::Ready(Err(e)), late);
            }
        };
        let digest = digest(bearer);
        // A credential verified before costs nothing and is served even to a throttled
        // address; anything that would need a signature check or a hash is not.
        let cached = match method {
            AuthMethod::Jwt => read(&self.tokens).contains_key(&digest),
            _ => read(&self.api_keys).contains_key(&digest),
        };
        if !cached && let Err(after) = self.failures_by_address.check(&client_ip, Instant::now()) {
            let refused = Err(AuthError::Throttled(after));
            return (
                AuthOutcome::Ready(self.finish(method, client_ip, refused)),
                true,
            );
        }
        let customer = match method {
            AuthMethod::Jwt => match self.token_from_memory(bearer, &digest) {
                Lookup::Done(r) => Some(r),
                Lookup::NeedKeys => None,
            },
            _ => self.key_from_memory(&digest),
        };
        match customer {
            Some(Err(e)) => {
                return (
                    AuthOutcome::Ready(self.finish(method, client_ip, Err(e))),
                    false,
                );
            }
            Some(Ok(grant)) => {
                if let Some(r) = self.principal_from_memory(&grant.customer_id) {
                    let r = r.map(|p| grant.apply(p));
                    return (AuthOutcome::Ready(self.finish(method, client_ip, r)), false);
                }
            }
            None => {}
        }
        let Some(me) = self.me.upgrade() else {
            return (AuthOutcome::Ready(Err(AuthError::Unavailable)), false);
        };
        let credential = bearer.to_string();
        let pending = AuthOutcome::Pending(Box::pin(async move {
            let result = me.clone().slow_path(credential, client_ip, method).await;
            me.finish(method, client_ip, result)
        }));
        (pending, false)
    }
}

fn principal_of(entry: &PrincipalEntry) -> Result<Principal, AuthError> {
    match entry.record.status {
        AccountStatus::Active => Ok(Principal {
            customer_id: entry.customer_id.clone(),
            tier: entry.tier.clone(),
            organization_id: entry.organization_id.clone(),
            jurisdictions: entry.jurisdictions.clone(),
            method: AuthMethod::Jwt,
            scopes: Scopes::ALL,
            credential_id: None,
            headers: entry.headers.clone(),
        }),
        AccountStatus::Suspended => Err(AuthError::AccountInactive {
            state: "suspended",
            reason: entry.record.status_reason,
        }),
        AccountStatus::Closed => Err(AuthError::AccountInactive {
            state: "closed",
            reason: entry.record.status_reason,
        }),
    }
}

/// Index of an outcome in [`ATTEMPT_RESULTS`].
fn result_index(result: &Result<Principal, AuthError>) -> usize {
    match result {
        Ok(_) => 0,
        Err(AuthError::Missing) => 1,
        Err(AuthError::Invalid(_)) => 2,
        Err(AuthError::AccountInactive { .. }) => 3,
        Err(AuthError::Unavailable) => 4,
        Err(AuthError::Throttled(_)) => 5,
        Err(AuthError::Busy) => 6,
    }
}

/// Index of `method` in [`ATTEMPT_METHODS`].
fn method_index(method: AuthMethod) -> usize {
    match method {
        AuthMethod::Jwt => 1,
        _ => 2,
    }
}

fn digest(text: &str) -> Digest32 {
    Sha256::digest(text.as_bytes()).into()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Inserts into a bounded map: at capacity, drops entries `keep` rejects, then all if still full.
fn insert_bounded<K: std::hash::Hash + Eq, V>(
    map: &RwLock<HashMap<K, V>>,
    key: K,
    value: V,
    keep: impl Fn(&V) -> bool,
) {
    let mut m = write(map);
    if m.len() >= CACHE_CAPACITY {
        m.retain(|_, v| keep(v));
        if m.len() >= CACHE_CAPACITY {
            m.clear();
        }
    }
    m.insert(key, value);
}

// Poisoning only follows a panic while holding the lock; the maps stay structurally valid, so
// serving from them is still correct.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
