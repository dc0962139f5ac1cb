//! States as they stood at a period's end, for a pack of a past period: a reseller's standing,
//! whether an account was suspended, an incident's status. The store keeps only the state now
//! and when it last changed; a row unchanged since the period's end is read as it is, and one
//! changed since is replayed from the audit chain, which records every change in the same
//! transaction — the last record before the end that says a state is the state at the end.
//!
//! A record retention redacted (after ten years) may no longer say which state it set: the
//! state is then `unknown`, never a guess.

use std::collections::HashMap;

use serde_json::Value;

use crate::audit::AuditAction;
use crate::ledger::LedgerError;
use crate::store::{DbTime, LedgerStore, on_pool};

/// What a replay reports when the deciding record no longer says (redacted).
pub(super) const UNKNOWN: &str = "unknown";

/// One audit record of a state change.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct ChangeRow {
    pub(super) seq: i64,
    pub(super) subject: String,
    pub(super) action: String,
    pub(super) detail: String,
}

/// Which state changes a replay reads, and the state each record sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replay {
    /// A reseller's standing (subject `organization:<id>`): marked and resumed set `active`,
    /// flagged `flagged`, suspended `suspended`.
    ResellerStanding,
    /// An account's status (subject `customer:<id>`): the verification flow's and a re-screen's
    /// suspensions set `suspended`; a staff status change the `status` it names.
    CustomerStatus,
    /// An incident's status (subject `incident:<id>`): each change the `to` it names.
    IncidentStatus,
}

// === impl Replay ===

impl Replay {
    /// The audit actions that change the state.
    fn actions(self) -> &'static [AuditAction] {
        match self {
            Replay::ResellerStanding => &[
                AuditAction::ResellerMarked,
                AuditAction::ResellerFlagged,
                AuditAction::ResellerSuspended,
                AuditAction::ResellerResumed,
            ],
            Replay::CustomerStatus => &[
                AuditAction::CustomerSuspended,
                AuditAction::RescreenSuspended,
                AuditAction::CustomerStatusChanged,
            ],
            Replay::IncidentStatus => &[AuditAction::IncidentStatusChanged],
        }
    }

    /// The state record `action` with `detail` set; `None` when its detail no longer says.
    fn state(self, action: &str, detail: &str) -> Option<String> {
        let fixed = |a: AuditAction, state: &str| (action == a.as_str()).then(|| state.to_owned());
        let named = |field: &str| {
            let doc: Value = serde_json::from_str(detail).unwrap_or_default();
            doc[field].as_str().map(str::to_owned)
        };
        match self {
            Replay::ResellerStanding => fixed(AuditAction::ResellerMarked, "active")
                .or_else(|| fixed(AuditAction::ResellerResumed, "active"))
                .or_else(|| fixed(AuditAction::ResellerFlagged, "flagged"))
                .or_else(|| fixed(AuditAction::ResellerSuspended, "suspended")),
            Replay::CustomerStatus => fixed(AuditAction::CustomerSuspended, "suspended")
                .or_else(|| fixed(AuditAction::RescreenSuspended, "suspended"))
                .or_else(|| named("status")),
            Replay::IncidentStatus => named("to"),
        }
    }

    /// Each subject's state after its last record among `rows` (any order): the state that
    /// record set, or [`UNKNOWN`] when it no longer says.
    pub(super) fn fold(self, mut rows: Vec<ChangeRow>) -> HashMap<String, String> {
        rows.sort_by_key(|r| r.seq);
        let mut out = HashMap::new();
        for r in rows {
            let state = self
                .state(&r.action, &r.detail)
                .unwrap_or_else(|| UNKNOWN.to_owned());
            out.insert(r.subject, state);
        }
        out
    }
}

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// Each subject's state at `end` as `replay` reads the audit chain (subjects with no record
    /// before `end` are absent).
    pub(super) async fn states_at(
        &self,
        replay: Replay,
        end: DbTime,
    ) -> Result<HashMap<String, String>, LedgerError> {
        const SQL: &str = "SELECT seq, subject, action, detail FROM audit_log \
             WHERE action = $1 AND at < $2";
        let mut rows: Vec<ChangeRow> = Vec::new();
        for action in replay.actions() {
            let found: Vec<ChangeRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
                .bind(action.as_str())
                .bind(end)
                .fetch_all(pool)
                .await?);
            rows.extend(found);
        }
        Ok(replay.fold(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, subject: &str, action: AuditAction, detail: &str) -> ChangeRow {
        ChangeRow {
            seq,
            subject: subject.into(),
            action: action.as_str().into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn a_reseller_stands_as_its_last_change_left_it() {
        let org = "organization:a";
        let states = Replay::ResellerStanding.fold(vec![
            row(5, org, AuditAction::ResellerSuspended, "{}"),
            row(1, org, AuditAction::ResellerMarked, "{}"),
            row(3, org, AuditAction::ResellerFlagged, "{}"),
            row(2, "organization:b", AuditAction::ResellerMarked, "{}"),
        ]);
        assert_eq!(states[org], "suspended", "by seq, not by arrival");
        assert_eq!(states["organization:b"], "active");
        let resumed = Replay::ResellerStanding.fold(vec![
            row(
                1,
                org,
                AuditAction::ResellerSuspended,
                r#"{"redacted":true}"#,
            ),
            row(2, org, AuditAction::ResellerResumed, r#"{"redacted":true}"#),
        ]);
        assert_eq!(
            resumed[org], "active",
            "the action says it, redacted or not"
        );
    }

    #[test]
    fn an_account_is_suspended_or_as_staff_set_it_and_unknown_when_redacted() {
        let c = "customer:c";
        let staff = |seq, status: &str| {
            row(
                seq,
                c,
                AuditAction::CustomerStatusChanged,
                &format!(r#"{{"reason":"r","status":"{status}"}}"#),
            )
        };
        let fold = |rows| Replay::CustomerStatus.fold(rows)[c].clone();
        assert_eq!(
            fold(vec![row(1, c, AuditAction::CustomerSuspended, "{}")]),
            "suspended"
        );
        assert_eq!(
            fold(vec![
                row(1, c, AuditAction::RescreenSuspended, "{}"),
                staff(2, "active")
            ]),
            "active"
        );
        assert_eq!(
            fold(vec![
                staff(1, "active"),
                row(
                    2,
                    c,
                    AuditAction::CustomerStatusChanged,
                    r#"{"redacted":true}"#
                )
            ]),
            UNKNOWN
        );
    }

    #[test]
    fn an_incident_has_the_status_its_last_move_named() {
        let i = "incident:i";
        let moved = |seq, to: &str| {
            row(
                seq,
                i,
                AuditAction::IncidentStatusChanged,
                &format!(r#"{{"from":"x","to":"{to}"}}"#),
            )
        };
        let states = Replay::IncidentStatus.fold(vec![moved(2, "closed"), moved(1, "reported")]);
        assert_eq!(states[i], "closed");
    }
}
