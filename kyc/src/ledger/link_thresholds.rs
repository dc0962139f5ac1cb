//! Group thresholds re-checked when staff link two accounts: a split found after the fact is
//! reported at once, not only when the group next runs something.
//!
//! The rule: a `group` threshold whose label the group has not fired yet fires at link time
//! when the link itself takes the group over it — the largest rolling total of the parts
//! before (each customer's group, or the customer alone) is below the threshold and the merged
//! group's total reaches it. Only thresholds whose strongest action is `notify` or `report`
//! fire here: nothing is running that a `review` could hold or a `block` refuse, so those are
//! left unfired and the group's next job fires them (held or refused, as at any admission).
//! Biological-sequence thresholds are left to admission too (they apply per run).
//!
//! A crossing fired here is recorded with phase `link` against the group's latest admitted job
//! in the window (a crossing row names a job, and only admitted jobs' crossings count as
//! fired), and a report for `report` thresholds is written for that job, with the group total
//! as its cumulative FLOP.

use time::OffsetDateTime;
use uuid::Uuid;

use super::membership::GroupTx;
use super::model::{Crossing, LedgerError, window_start};
use super::sql::LedgerTx;
use crate::store::DbTime;
use computegate_policy::{Scope, ThresholdPolicy, ThresholdRule};

/// What a link-time re-check fired.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LinkCheck {
    /// Group thresholds the link crossed (recorded, counted as fired).
    pub crossings: Vec<Crossing>,
    /// The report written for them, if any crossing calls for one.
    pub report_ids: Vec<Uuid>,
    /// The job the crossings and report were recorded against.
    pub job_id: Option<Uuid>,
}

/// The window start of `policy` at `now`, as stored.
pub(super) fn since(policy: &ThresholdPolicy, now: OffsetDateTime) -> DbTime {
    DbTime::new(window_start(now, policy.window))
}

/// The rolling totals of the customers' parts (their groups, or themselves) before a link.
pub(super) async fn parts_before<T: GroupTx>(
    tx: &mut T,
    customers: &[Uuid],
    since: DbTime,
) -> Result<f64, LedgerError> {
    let mut largest: f64 = 0.0;
    for &c in customers {
        largest = largest.max(tx.part_total(c, since).await?);
    }
    Ok(largest)
}

/// Re-checks `group` (already merged, `member` one of its members, its rows locked by the
/// caller) and records what fired.
pub(super) async fn check_group<T: GroupTx + LedgerTx>(
    tx: &mut T,
    group: Uuid,
    member: Uuid,
    before: f64,
    policy: &ThresholdPolicy,
    now: OffsetDateTime,
) -> Result<LinkCheck, LedgerError> {
    let since = since(policy, now);
    let after = tx.part_total(member, since).await?;
    if link_candidates(&policy.rules, before, after).is_empty() {
        return Ok(LinkCheck::default());
    }
    let fired = tx.fired([Some(group), None, None, None]).await?;
    let crossings = link_crossings(&policy.rules, group, before, after, &fired);
    if crossings.is_empty() {
        return Ok(LinkCheck::default());
    }
    let Some(job_id) = tx.latest_group_job(group, since).await? else {
        return Ok(LinkCheck::default());
    };
    let job = tx
        .job(job_id, false)
        .await?
        .ok_or(LedgerError::UnknownJob)?;
    let at = DbTime::new(now);
    for c in &crossings {
        tx.insert_crossing(job.id, "link", c, at).await?;
    }
    let report_ids = super::admit_tx::write_report(tx, &job, &crossings, None, after, now).await?;
    Ok(LinkCheck {
        crossings,
        report_ids,
        job_id: Some(job.id),
    })
}

/// Group rules (not biological-sequence ones) that `before → after` passes.
fn link_candidates(rules: &[ThresholdRule], before: f64, after: f64) -> Vec<&ThresholdRule> {
    rules
        .iter()
        .filter(|r| r.scope == Scope::Group && !r.bio_sequence_only)
        .filter(|r| before < r.flop && r.flop <= after)
        .collect()
}

/// The crossings a link fires (see the module docs): one per label the link takes the group
/// past and the group has not fired, with the strongest action of the label's rules, only
/// when that action is `notify` or `report`.
pub(super) fn link_crossings(
    rules: &[ThresholdRule],
    group: Uuid,
    before: f64,
    after: f64,
    fired: &[(Uuid, String)],
) -> Vec<Crossing> {
    let mut out: Vec<Crossing> = Vec::new();
    for r in link_candidates(rules, before, after) {
        if fired.iter().any(|(id, l)| *id == group && *l == r.label) {
            continue;
        }
        // Every candidate is a group rule (`link_candidates`), so all merge per label.
        computegate_policy::admission::merge_crossing(&mut out, r, group, before, after);
    }
    // Labels whose strongest action needs a job to act on stay unfired for the next job.
    out.retain(|c| !c.action.acts_on_the_job());
    out
}

#[cfg(test)]
mod tests {
    use computegate_policy::Action;

    use super::*;

    fn rule(label: &str, flop: f64, scope: Scope, action: Action) -> ThresholdRule {
        ThresholdRule {
            label: label.into(),
            flop,
            scope,
            action,
            bio_sequence_only: false,
            report_due_days: 15,
        }
    }

    fn rules() -> Vec<ThresholdRule> {
        use Action::*;
        use Scope::*;
        let mut bio = rule("bio", 1e19, Group, Report);
        bio.bio_sequence_only = true;
        let mut report = rule("g2e19", 2e19, Group, Report);
        report.report_due_days = 14;
        vec![
            rule("g2e19", 2e19, Group, Notify),
            report,
            rule("g5e19", 5e19, Group, Notify),
            rule("g5e19", 5e19, Group, Review),
            rule("r1e19", 1e19, Run, Report),
            bio,
        ]
    }

    #[test]
    fn a_link_that_takes_the_group_over_fires_notify_and_report_labels() {
        let g = Uuid::now_v7();
        let c = link_crossings(&rules(), g, 1.2e19, 6e19, &[]);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].label, "g2e19");
        assert_eq!(c[0].action, Action::Report);
        assert_eq!(c[0].report_due_days, 14);
        assert_eq!((c[0].scope, c[0].scope_id), (Scope::Group, g));
        assert_eq!((c[0].previous_flop, c[0].projected_flop), (1.2e19, 6e19));
    }

    #[test]
    fn nothing_fires_below_when_already_past_or_when_fired() {
        let g = Uuid::now_v7();
        assert!(link_crossings(&rules(), g, 0.5e19, 1.9e19, &[]).is_empty());
        assert!(
            link_crossings(&rules(), g, 2e19, 4e19, &[]).is_empty(),
            "a part was already past it"
        );
        let fired = [(g, "g2e19".to_string())];
        assert!(link_crossings(&rules(), g, 1e19, 3e19, &fired).is_empty());
        let elsewhere = [(Uuid::now_v7(), "g2e19".to_string())];
        assert_eq!(link_crossings(&rules(), g, 1e19, 3e19, &elsewhere).len(), 1);
    }
}
