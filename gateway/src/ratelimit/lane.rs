//! One key's state in the cluster-wide mode, as pure decisions: the [`LeasedBucket`] of tokens
//! this replica holds, the quota they were leased under, and what Redis last said (tokens left
//! globally, or "empty until …"). [`super::cluster::ClusterLimiter`] does the I/O around it.
//!
//! A request either spends a local token ([`Step::Allow`]), is denied from memory because
//! Redis said the global bucket is empty until a known time ([`Step::Deny`]), or finds the local
//! bucket empty and must wait for a lease ([`Step::Wait`]) — on a key's first request, after an
//! idle spell longer than the lease TTL, or when the customer spends faster than the background
//! refill. After the wait, [`LaneState::after_wait`] decides without waiting again.

use std::time::Duration;

use super::{Decision, Lease, LeasedBucket, Quota, Take};

/// Shortest lifetime of leased tokens: below it a customer sending a request every few
/// milliseconds would wait for Redis on most requests.
const MIN_LEASE_TTL: Duration = Duration::from_secs(1);
/// Longest lifetime of leased tokens, so a lane holding tokens is forgotten within the hour.
const MAX_LEASE_TTL: Duration = Duration::from_secs(3600);

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Allow; start a background lease of `lease` tokens if set.
    Allow {
        decision: Decision,
        lease: Option<u64>,
    },
    /// Deny from memory; start a background lease of `lease` tokens if set.
    Deny {
        decision: Decision,
        lease: Option<u64>,
    },
    /// No local token: lease `lease` tokens now (when set) or wait for the lease in flight,
    /// then call [`LaneState::after_wait`].
    Wait { lease: Option<u64> },
}

/// One key's leased tokens and what the global bucket last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LaneState {
    bucket: LeasedBucket,
    quota: Quota,
    /// Global tokens left after the last lease (for `RateLimit-Remaining`).
    available: u64,
    /// Redis said the global bucket is empty until then: deny without asking again.
    blocked_until_ns: u64,
}

// === impl LaneState ===

impl LaneState {
    /// An empty lane for `quota` on a cluster of about `replicas`.
    pub(crate) fn new(quota: Quota, replicas: u32) -> Self {
        let batch = LeasedBucket::batch_for(quota, replicas);
        Self {
            bucket: LeasedBucket::new(batch, batch / 2),
            quota,
            available: 0,
            blocked_until_ns: 0,
        }
    }

    /// How long leased tokens stay spendable: one burst window (by then the global bucket
    /// would have refilled them anyway), clamped to [1 s, 1 h].
    pub(crate) fn lease_ttl(quota: Quota) -> Duration {
        Duration::from_nanos(quota.horizon_ns()).clamp(MIN_LEASE_TTL, MAX_LEASE_TTL)
    }

    /// Decides one request under `quota` (the policy in force) at `now_ns`. A quota different
    /// from the one the lane's tokens were leased under starts the lane afresh, so a policy
    /// reload applies at the next request (Redis is always asked with the quota in force).
    pub(crate) fn decide(&mut self, quota: Quota, replicas: u32, now_ns: u64) -> Step {
        if quota != self.quota {
            *self = LaneState::new(quota, replicas);
        }
        if now_ns < self.blocked_until_ns {
            return Step::Deny {
                decision: self.denied(self.blocked_until_ns - now_ns),
                lease: None,
            };
        }
        match self.bucket.take(now_ns) {
            Take::Granted { lease } => Step::Allow {
                decision: self.allowed(now_ns),
                lease,
            },
            Take::Empty { lease } => Step::Wait { lease },
        }
    }

    /// Decides a request that waited for a lease: allow if a token arrived, deny otherwise
    /// (with the wait Redis gave, or one emission interval when other requests took the
    /// tokens first).
    pub(crate) fn after_wait(&mut self, now_ns: u64) -> Step {
        if now_ns < self.blocked_until_ns {
            return Step::Deny {
                decision: self.denied(self.blocked_until_ns - now_ns),
                lease: None,
            };
        }
        match self.bucket.take(now_ns) {
            Take::Granted { lease } => Step::Allow {
                decision: self.allowed(now_ns),
                lease,
            },
            Take::Empty { lease } => Step::Deny {
                decision: self.denied(self.quota.interval_ns),
                lease,
            },
        }
    }

    /// Records what the global bucket answered at `now_ns`.
    pub(crate) fn on_lease(&mut self, lease: Lease, now_ns: u64) {
        self.bucket
            .on_lease(lease.granted, now_ns, Self::lease_ttl(self.quota));
        self.available = lease.available;
        if lease.granted == 0 {
            let wait = u64::try_from(lease.retry_after.as_nanos()).unwrap_or(u64::MAX);
            self.blocked_until_ns = now_ns.saturating_add(wait.max(1));
        }
    }

    /// Records a failed lease.
    pub(crate) fn on_lease_failed(&mut self) {
        self.bucket.on_lease_failed();
    }

    /// Whether the lane holds nothing worth keeping at `now_ns` (forgetting it loses nothing).
    pub(crate) fn is_idle(&self, now_ns: u64) -> bool {
        self.bucket.tokens(now_ns) == 0
            && !self.bucket.lease_in_flight()
            && now_ns >= self.blocked_until_ns
    }

    /// An allowed decision: remaining is this replica's tokens plus what Redis had left at the
    /// last lease (approximate: other replicas spend too, and the bucket refills meanwhile).
    fn allowed(&self, now_ns: u64) -> Decision {
        let burst = u64::from(self.quota.burst);
        let remaining = self
            .bucket
            .tokens(now_ns)
            .saturating_add(self.available)
            .min(burst.saturating_sub(1));
        Decision {
            allowed: true,
            limit: self.quota.burst,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            retry_after: Duration::ZERO,
            reset: Duration::from_nanos(self.quota.interval_ns.saturating_mul(burst - remaining)),
        }
    }

    /// A denial with `retry_ns` until the next token; the full burst is back `burst - 1`
    /// intervals after that.
    fn denied(&self, retry_ns: u64) -> Decision {
        let refill = self
            .quota
            .interval_ns
            .saturating_mul(u64::from(self.quota.burst) - 1);
        Decision {
            allowed: false,
            limit: self.quota.burst,
            remaining: 0,
            retry_after: Duration::from_nanos(retry_ns),
            reset: Duration::from_nanos(retry_ns.saturating_add(refill)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn quota(rps: f64, burst: u32) -> Quota {
        Quota::new(rps, burst).expect("valid quota")
    }

    fn lease(granted: u64, available: u64, retry_ms: u64) -> Lease {
        Lease::new(granted, available, Duration::from_millis(retry_ms))
    }

    #[test]
    fn first_request_waits_for_a_lease_then_spends_locally() {
        let q = quota(10.0, 20);
        let mut lane = LaneState::new(q, 2);
        // batch 20 / (2 × 2) = 5, low water 2.
        assert_eq!(lane.decide(q, 2, SEC), Step::Wait { lease: Some(5) });
        lane.on_lease(lease(5, 15, 0), SEC);
        let Step::Allow { decision, lease } = lane.after_wait(SEC) else {
            panic!("a granted token allows");
        };
        assert_eq!(lease, None, "4 left, above the low water");
        assert_eq!((decision.limit, decision.remaining), (20, 19));
        assert_eq!(decision.reset, Duration::from_millis(100));
        // Two more from memory; the third leaves 1 ≤ low water 2 and starts a refill.
        assert!(matches!(
            lane.decide(q, 2, SEC),
            Step::Allow { lease: None, .. }
        ));
        assert!(matches!(
            lane.decide(q, 2, SEC),
            Step::Allow { lease: Some(5), .. }
        ));
        // The refill is in flight: no second one; the last two tokens are spent, then wait.
        for _ in 0..2 {
            assert!(matches!(
                lane.decide(q, 2, SEC),
                Step::Allow { lease: None, .. }
            ));
        }
        assert_eq!(lane.decide(q, 2, SEC), Step::Wait { lease: None });
        assert!(!lane.is_idle(SEC), "a lease is in flight");
    }

    #[test]
    fn an_empty_global_bucket_denies_from_memory_until_the_wait_ends() {
        let q = quota(2.0, 4);
        let mut lane = LaneState::new(q, 2);
        assert_eq!(lane.decide(q, 2, SEC), Step::Wait { lease: Some(1) });
        lane.on_lease(lease(0, 0, 300), SEC);
        let Step::Deny { decision, lease } = lane.after_wait(SEC) else {
            panic!("nothing granted denies");
        };
        assert_eq!(lease, None, "no new lease before Redis's wait ends");
        assert_eq!(decision.retry_after, Duration::from_millis(300));
        assert_eq!(decision.retry_after_secs(), 1);
        assert_eq!(decision.reset, Duration::from_millis(300 + 3 * 500));
        // Still blocked 100 ms later, without asking Redis.
        let Step::Deny { decision, lease } = lane.decide(q, 2, SEC + SEC / 10) else {
            panic!("blocked");
        };
        assert_eq!(
            (decision.retry_after, lease),
            (Duration::from_millis(200), None)
        );
        // Once the wait is over, the next request asks again.
        assert_eq!(
            lane.decide(q, 2, SEC + SEC * 3 / 10),
            Step::Wait { lease: Some(1) }
        );
    }

    #[test]
    fn tokens_taken_by_others_while_waiting_deny_for_one_interval() {
        let q = quota(4.0, 8);
        let mut lane = LaneState::new(q, 2);
        assert_eq!(lane.decide(q, 2, SEC), Step::Wait { lease: Some(2) });
        lane.on_lease(lease(1, 0, 0), SEC);
        assert!(matches!(
            lane.after_wait(SEC),
            Step::Allow { lease: Some(2), .. }
        ));
        // A second waiter of the same lease finds nothing left; the refill is in flight.
        let Step::Deny { decision, lease } = lane.after_wait(SEC) else {
            panic!("no token left");
        };
        assert_eq!(decision.retry_after, Duration::from_millis(250));
        assert_eq!(lease, None);
    }

    #[test]
    fn a_quota_change_starts_the_lane_afresh() {
        let old = quota(10.0, 20);
        let mut lane = LaneState::new(old, 2);
        assert_eq!(lane.decide(old, 2, SEC), Step::Wait { lease: Some(5) });
        lane.on_lease(lease(5, 15, 0), SEC);
        assert!(matches!(lane.after_wait(SEC), Step::Allow { .. }));
        // The policy now says burst 8: tokens of the old quota are dropped, batch is 2.
        let new = quota(10.0, 8);
        assert_eq!(lane.decide(new, 2, SEC), Step::Wait { lease: Some(2) });
        lane.on_lease(lease(2, 3, 0), SEC);
        let Step::Allow { decision, .. } = lane.after_wait(SEC) else {
            panic!("granted");
        };
        assert_eq!((decision.limit, decision.remaining), (8, 4));
        // A block under the old quota does not outlive a change either.
        lane.on_lease(lease(0, 0, 60_000), SEC);
        assert!(matches!(lane.after_wait(SEC), Step::Deny { .. }));
        assert!(matches!(lane.decide(old, 2, SEC), Step::Wait { .. }));
    }

    #[test]
    fn leased_tokens_expire_after_the_ttl_and_idle_lanes_are_forgettable() {
        let q = quota(1.0, 4); // horizon 4 s
        assert_eq!(LaneState::lease_ttl(q), Duration::from_secs(4));
        assert_eq!(LaneState::lease_ttl(quota(1000.0, 5)), MIN_LEASE_TTL);
        assert_eq!(LaneState::lease_ttl(quota(0.0001, 10)), MAX_LEASE_TTL);
        let mut lane = LaneState::new(q, 1);
        assert_eq!(lane.decide(q, 1, SEC), Step::Wait { lease: Some(2) });
        lane.on_lease(lease(2, 2, 0), SEC);
        assert!(!lane.is_idle(SEC), "holds tokens");
        assert!(lane.is_idle(5 * SEC), "its tokens expired");
        assert_eq!(lane.decide(q, 1, 5 * SEC), Step::Wait { lease: Some(2) });
    }
}
