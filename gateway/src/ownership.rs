//! Job ownership on object routes: only the customer whose job an upstream id names reaches it.
//!
//! A proxy cannot filter an upstream's job list, but it can guard the job's own paths. A route
//! with an `owner_path` template (`/v1/jobs/{id}`) answers 404 to anyone but the owner of the job
//! the path names — also when the id is unknown, so a caller cannot tell another customer's job
//! from none. The gateway learns each id at admission: when an admitted job's submission is
//! accepted (2xx), the id is read from the upstream's answer (a JSON pointer per route, default
//! per profile) and bound to the ledger's job, and so to its customer, through the
//! [`JobOwners`] port, before the answer reaches the client.
//!
//! Lookups are cached per replica: a known owner for [`OWNER_TTL`], an unknown id for
//! [`UNKNOWN_TTL`] (a job bound on another replica may be probed here first). The cache is
//! bounded; when it is full of live entries, lookups go to the store uncached.

pub mod path;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Response;
use http_body_util::BodyExt;

pub use self::path::{OwnerPath, PathRefused, check_canonical};
use crate::auth::{BoxFuture, Principal};
use crate::body::ResponseBody;
use crate::body::peek::PeekedBody;
use crate::error::GatewayError;

/// How long a known owner is served from memory. Bounds how long, after an upstream reuses an
/// id for another customer's job (a Kubernetes Job name), another replica still answers with
/// the previous owner.
pub const OWNER_TTL: Duration = Duration::from_secs(30);
/// How long an id with no owner is remembered as such (a job just bound on another replica
/// reaches its owner here within this long).
pub const UNKNOWN_TTL: Duration = Duration::from_secs(2);
/// Most cached lookups per replica (about 100 bytes each).
const CACHE_CAPACITY: usize = 65_536;
/// Largest job-submission answer read to learn the job's id; a larger one is forwarded
/// unread and its job has no owner (404 to everyone).
pub const ANSWER_CAP: usize = 64 * 1024;
/// Attempts at binding an id before giving up (each is one short store write).
const BIND_ATTEMPTS: u32 = 3;

/// The store of which customer owns which upstream job (implemented by the root crate).
pub trait JobOwners: Send + Sync + 'static {
    /// Records that upstream pool `upstream` knows the ledger's job `job_id` as
    /// `upstream_job_id`. A later binding of the same upstream id replaces an earlier one.
    fn bind(
        &self,
        job_id: String,
        upstream: Arc<str>,
        upstream_job_id: String,
    ) -> BoxFuture<Result<(), OwnersUnavailable>>;

    /// The customer id owning `upstream_job_id` on `upstream` (for a reseller's end-customer job,
    /// the reseller organization's id), `None` when no job is bound to it.
    fn owner(
        &self,
        upstream: Arc<str>,
        upstream_job_id: String,
    ) -> BoxFuture<Result<Option<String>, OwnersUnavailable>>;
}

/// The ownership store could not be asked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("job ownership store unavailable")]
pub struct OwnersUnavailable;

/// The ownership check and binding of one gateway.
pub struct Ownership {
    owners: Option<Arc<dyn JobOwners>>,
    cache: Mutex<HashMap<(Arc<str>, String), CacheEntry>>,
}

#[derive(Debug, Clone)]
struct CacheEntry {
    owner: Option<Arc<str>>,
    until: Instant,
}

// === impl Ownership ===

impl Ownership {
    /// Ownership over `owners`; without a port every owner-checked request fails closed (503).
    pub fn new(owners: Option<Arc<dyn JobOwners>>) -> Self {
        Self {
            owners,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Lets `principal` through to `path` on a route of `upstream` guarded by `template`, or
    /// says why not: 404 when the path names a job the caller does not own (or no known job),
    /// 400 for a path that is not canonical, 503 when owners cannot be looked up.
    pub async fn check(
        &self,
        template: &OwnerPath,
        upstream: &Arc<str>,
        path: &str,
        principal: &Principal,
    ) -> Result<(), GatewayError> {
        let id = match template.job_id(path) {
            Ok(Some(id)) => id,
            Ok(None) => return Ok(()),
            Err(refused) => return Err(GatewayError::BadRequest(refused.to_string())),
        };
        let owner = self.owner(upstream, id).await?;
        // The owner is a customer, or the reseller organization whose end customer's job it is
        // (any account of the reseller submits for its end customers).
        let owns = owner.as_deref().is_some_and(|o| {
            o == &*principal.customer_id || principal.organization_id.as_deref() == Some(o)
        });
        if owns {
            Ok(())
        } else {
            Err(GatewayError::NotOwner)
        }
    }

    async fn owner(
        &self,
        upstream: &Arc<str>,
        id: String,
    ) -> Result<Option<Arc<str>>, GatewayError> {
        let key = (upstream.clone(), id);
        let now = Instant::now();
        if let Some(hit) = self.cached(&key, now) {
            return Ok(hit);
        }
        let Some(owners) = &self.owners else {
            return Err(unavailable());
        };
        let owner = owners
            .owner(key.0.clone(), key.1.clone())
            .await
            .map_err(|_| unavailable())?
            .map(Arc::<str>::from);
        self.remember(key, owner.clone(), Instant::now());
        Ok(owner)
    }

    /// Reads the answer to an accepted job submission far enough to learn the upstream's id for
    /// the ledger's `job_id` (at `pointer`), binds it to the job's owner, and returns the answer
    /// with its body intact. An id that cannot be learned or bound leaves the job without an
    /// owner: nobody reaches it through owner-checked routes (fail closed), which is logged.
    pub async fn learn(
        &self,
        upstream: &Arc<str>,
        pointer: &str,
        job_id: String,
        principal: &Principal,
        resp: Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        let (parts, body) = resp.into_parts();
        let replay = PeekedBody::read(body, ANSWER_CAP).await;
        match replay
            .complete_data()
            .and_then(|data| id_at(&data, pointer))
        {
            Some(upstream_id) => {
                if self.bind(upstream, job_id, upstream_id.clone()).await {
                    let owner = Some(principal.customer_id.clone());
                    self.remember((upstream.clone(), upstream_id), owner, Instant::now());
                }
            }
            None => tracing::warn!(
                job = %job_id,
                upstream = %upstream,
                "the upstream's answer to an accepted job names no id at the route's \
                 job_id_pointer (or is too large); the job has no owner on owner-checked routes"
            ),
        }
        Response::from_parts(parts, ResponseBody::Boxed(replay.boxed_unsync()))
    }

    async fn bind(&self, upstream: &Arc<str>, job_id: String, upstream_id: String) -> bool {
        let Some(owners) = &self.owners else {
            return false;
        };
        for attempt in 1..=BIND_ATTEMPTS {
            let bound = owners
                .bind(job_id.clone(), upstream.clone(), upstream_id.clone())
                .await;
            match bound {
                Ok(()) => return true,
                Err(_) if attempt == BIND_ATTEMPTS => {
                    tracing::warn!(job = %job_id, upstream = %upstream,
                        "could not bind the upstream's job id to its owner; nobody reaches the \
                         job through owner-checked routes");
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
            }
        }
        false
    }

    fn cached(&self, key: &(Arc<str>, String), now: Instant) -> Option<Option<Arc<str>>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|e| e.until > now)
            .map(|e| e.owner.clone())
    }

    fn remember(&self, key: (Arc<str>, String), owner: Option<Arc<str>>, now: Instant) {
        let ttl = if owner.is_some() {
            OWNER_TTL
        } else {
            UNKNOWN_TTL
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(&key) {
            cache.retain(|_, e| e.until > now);
            if cache.len() >= CACHE_CAPACITY {
                // Full of live entries: serve this one uncached rather than evict blindly.
                return;
            }
        }
        cache.insert(
            key,
            CacheEntry {
                owner,
                until: now + ttl,
            },
        );
    }
}

fn unavailable() -> GatewayError {
    GatewayError::Unavailable {
        reason: "job ownership cannot be checked right now",
        retry_after: Duration::from_secs(5),
    }
}

/// The default JSON pointer to a job's id in the answer to its submission, per job-spec
/// profile: the simulator's and generic APIs' `id`, slurmrestd's `job_id`, a Kubernetes Job's
/// `metadata.name`.
pub fn default_job_id_pointer(profile: &str) -> Option<&'static str> {
    match profile {
        "generic" => Some("/id"),
        "slurm" => Some("/job_id"),
        "kubernetes" => Some("/metadata/name"),
        _ => None,
    }
}

/// The job id at `pointer` in a JSON answer: a non-empty string or an integer.
fn id_at(body: &[u8], pointer: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match value.pointer(pointer)? {
        serde_json::Value::String(s) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
