//! Listens for cluster notices (Redis pub/sub, or in process on a single node) and applies them
//! to this replica's credential caches and keyring; while notices cannot arrive (Redis down),
//! re-checks the caches against the store instead, so revocations keep their bound.

use std::sync::{Arc, Weak};

use computegate_gateway::credentials::CredentialNotice;
use computegate_kyc::cluster::Notice;

use super::Identity;

/// Maps a kyc notice to the gateway's cache notice (`None` for ones the caches ignore).
fn to_credential_notice(notice: &Notice) -> Option<CredentialNotice> {
    Some(match notice {
        Notice::KeyRevoked { key_id } => CredentialNotice::KeyRevoked {
            key_id: key_id.clone(),
        },
        Notice::CustomerChanged { customer_id } => CredentialNotice::CustomerChanged {
            customer_id: customer_id.to_string(),
        },
        Notice::AccessTokenRevoked { jti, exp } => CredentialNotice::TokenRevoked {
            jti: jti.clone(),
            exp: (*exp).max(0) as u64,
        },
        Notice::SigningKeyRotated { .. } => CredentialNotice::SigningKeysChanged,
        Notice::Resync => CredentialNotice::Resync,
        _ => return None,
    })
}

/// How often signing keys are re-read even without a notice (a rotation by the CLI on a single
/// node has no notice channel to the running process).
const KEYRING_REFRESH: std::time::Duration = std::time::Duration::from_secs(60);

// === impl Identity ===

impl Identity {
    /// Applies `notice` to this replica's caches now, then tells the other replicas.
    pub async fn announce(&self, notice: Notice) {
        if let Some(local) = to_credential_notice(&notice) {
            self.verifier.apply(&local);
        }
        if let Err(e) = self.notices.publish(&notice).await {
            // The change is committed and in force here; the other replicas lost their
            // subscription too and re-check the store at least every half
            // `auth.principal_cache_ttl` until it is back (`spawn_recheck`).
            tracing::warn!(error = %e, "could not publish a credential notice to other replicas");
        }
    }

    /// Starts the tasks that apply notices and refresh the keyring until the identity service
    /// is dropped.
    pub(super) fn spawn_notice_listener(self: &Arc<Self>) {
        spawn_listener(self);
    }

    /// Starts the outage re-check task (see [`spawn_recheck`]) and registers its gauge.
    pub(super) fn spawn_notice_recheck(
        self: &Arc<Self>,
        registry: &mut prometheus_client::registry::Registry,
    ) {
        spawn_recheck(self, registry);
    }
}

fn spawn_listener(identity: &Arc<Identity>) {
    let mut subscription = identity.notices.subscribe();
    let weak: Weak<Identity> = Arc::downgrade(identity);
    let refresh = weak.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEYRING_REFRESH);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(identity) = refresh.upgrade() else {
                break;
            };
            if let Err(e) = identity.reload_keyring().await {
                tracing::warn!(error = %e, "periodic keyring reload failed");
            }
        }
    });
    tokio::spawn(async move {
        while let Some(notice) = subscription.recv().await {
            let Some(identity) = weak.upgrade() else {
                break;
            };
            match &notice {
                Notice::Resync => {
                    // Reconnected or lagged: anything may have changed meanwhile.
                    if let Err(e) = identity.verifier.resync().await {
                        tracing::warn!(error = %e, "credential resync failed; caches were cleared");
                    }
                    if let Err(e) = identity.reload_keyring().await {
                        tracing::warn!(error = %e, "keyring reload failed");
                    }
                }
                Notice::SigningKeyRotated { .. } => {
                    identity
                        .verifier
                        .apply(&CredentialNotice::SigningKeysChanged);
                    if let Err(e) = identity.reload_keyring().await {
                        tracing::warn!(error = %e, "keyring reload failed");
                    }
                }
                other => {
                    if let Some(n) = to_credential_notice(other) {
                        identity.verifier.apply(&n);
                    }
                }
            }
        }
    });
}

/// Least period of the degraded-mode recheck (a tiny `principal_cache_ttl` must not spin).
const MIN_RECHECK_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// Starts the task that, while the notice subscription is down, runs
/// [`computegate_gateway::credentials::CredentialVerifier::recheck`] at once and then every half
/// `auth.principal_cache_ttl`, so a revocation on another replica is in force here within
/// `principal_cache_ttl` of the outage being noticed. Sets `computegate_notices_degraded`.
fn spawn_recheck(identity: &Arc<Identity>, registry: &mut prometheus_client::registry::Registry) {
    let gauge = prometheus_client::metrics::gauge::Gauge::<i64>::default();
    registry.register(
        "computegate_notices_degraded",
        "1 while change notices from other replicas cannot arrive (Redis down): credential caches are re-checked against the store every half principal_cache_ttl",
        gauge.clone(),
    );
    let mut connected = identity.notices.connected();
    let period = (identity.auth.principal_cache_ttl / 2).max(MIN_RECHECK_PERIOD);
    let weak: Weak<Identity> = Arc::downgrade(identity);
    tokio::spawn(async move {
        loop {
            // Wait for an outage.
            while *connected.borrow_and_update() {
                gauge.set(0);
                if connected.changed().await.is_err() {
                    return;
                }
            }
            gauge.set(1);
            loop {
                let Some(identity) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = identity.verifier.recheck().await {
                    tracing::warn!(error = %e, "credential recheck failed (store unavailable); caches kept");
                }
                drop(identity);
                tokio::select! {
                    () = tokio::time::sleep(period) => {}
                    changed = connected.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if *connected.borrow() {
                            break;
                        }
                    }
                }
            }
        }
    });
}
