//! Job admission, pure: the rules the compute ledger applies under its row locks
//! ([`evaluate`]: caps, threshold crossings, the proposed verdict over a [`Snapshot`] of totals),
//! the stateless checks before it is asked ([`precheck`]: tier known, accelerators per job), and
//! the typed [`Outcome`] the data plane answers with. The ledger (`computegate-kyc`) reads and
//! locks the totals and records the decision; the gateway turns the outcome into a response.
//! Neither decides anything this module does not.

mod evaluate;
mod model;
mod outcome;

pub use evaluate::{
    Evaluation, JobFigures, Proposal, Snapshot, add, evaluate, merge_crossing, reached,
    remaining_flop, usage_crossings,
};
pub use model::{Crossing, Denial, DenialReason, Totals};
pub use outcome::{
    Admitted, Decision, EndCustomerRefusal, Hold, HoldReason, JobFacts, Notice, Outcome, Refusal,
    RefusalReason, precheck,
};

#[cfg(test)]
mod tests;
