//! A tier's caps as plain data, and which cap a job's needs exceed: what the policy uses to name
//! the lowest tier that would allow a job (`required_tier` in denials).
//!
//! The admission decision itself — caps against the cumulative totals locked in the store, and
//! threshold crossings — is [`crate::admission::evaluate`], which the compute ledger applies
//! under its row locks; this module only compares numbers the caller already has.

/// A tier's caps (`None` = unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TierCaps {
    /// Most accelerators per job.
    pub max_accelerators_per_job: Option<u64>,
    /// Most FLOP per run lineage.
    pub max_flop_per_run: Option<f64>,
    /// Most FLOP per customer over the tier's window.
    pub max_flop_per_customer_window: Option<f64>,
    /// Most jobs at once.
    pub max_concurrent_jobs: Option<u64>,
}

/// What a job would need from a tier's caps.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CapNeeds {
    /// Accelerators of the job.
    pub accelerators: u64,
    /// Run-lineage total including this job, FLOP.
    pub run_flop: f64,
    /// Customer window total including this job, FLOP.
    pub customer_window_flop: f64,
    /// Active jobs including this one.
    pub concurrent_jobs: u64,
}

/// The cap a job exceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapExceeded {
    /// More accelerators than the tier allows per job.
    AcceleratorsPerJob,
    /// The run lineage would exceed the tier's FLOP per run.
    FlopPerRun,
    /// The customer would exceed the tier's FLOP per window.
    FlopPerCustomerWindow,
    /// Too many jobs at once.
    ConcurrentJobs,
}

// === impl TierCaps ===

impl TierCaps {
    /// The first cap `needs` exceeds, if any (a need equal to its cap is allowed).
    pub fn first_exceeded(&self, needs: &CapNeeds) -> Option<CapExceeded> {
        let over_u = |cap: Option<u64>, v: u64| cap.is_some_and(|c| v > c);
        let over_f = |cap: Option<f64>, v: f64| cap.is_some_and(|c| v > c);
        if over_u(self.max_accelerators_per_job, needs.accelerators) {
            Some(CapExceeded::AcceleratorsPerJob)
        } else if over_f(self.max_flop_per_run, needs.run_flop) {
            Some(CapExceeded::FlopPerRun)
        } else if over_f(
            self.max_flop_per_customer_window,
            needs.customer_window_flop,
        ) {
            Some(CapExceeded::FlopPerCustomerWindow)
        } else if over_u(self.max_concurrent_jobs, needs.concurrent_jobs) {
            Some(CapExceeded::ConcurrentJobs)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: TierCaps = TierCaps {
        max_accelerators_per_job: Some(8),
        max_flop_per_run: Some(1e21),
        max_flop_per_customer_window: Some(5e21),
        max_concurrent_jobs: Some(2),
    };

    fn needs(accelerators: u64, run: f64, window: f64, jobs: u64) -> CapNeeds {
        CapNeeds {
            accelerators,
            run_flop: run,
            customer_window_flop: window,
            concurrent_jobs: jobs,
        }
    }

    #[test]
    fn a_need_at_its_cap_is_allowed_and_one_above_is_not() {
        assert_eq!(CAPS.first_exceeded(&needs(8, 1e21, 5e21, 2)), None);
        assert_eq!(
            CAPS.first_exceeded(&needs(9, 0.0, 0.0, 1)),
            Some(CapExceeded::AcceleratorsPerJob)
        );
        assert_eq!(
            CAPS.first_exceeded(&needs(1, 1.1e21, 0.0, 1)),
            Some(CapExceeded::FlopPerRun)
        );
        assert_eq!(
            CAPS.first_exceeded(&needs(1, 0.0, 5.1e21, 1)),
            Some(CapExceeded::FlopPerCustomerWindow)
        );
        assert_eq!(
            CAPS.first_exceeded(&needs(1, 0.0, 0.0, 3)),
            Some(CapExceeded::ConcurrentJobs)
        );
    }

    #[test]
    fn caps_are_checked_in_a_fixed_order() {
        // Everything exceeded: the per-job cap is named first.
        assert_eq!(
            CAPS.first_exceeded(&needs(9, 2e21, 6e21, 3)),
            Some(CapExceeded::AcceleratorsPerJob)
        );
        assert_eq!(
            TierCaps::default().first_exceeded(&needs(u64::MAX, f64::MAX, f64::MAX, u64::MAX)),
            None
        );
    }
}
