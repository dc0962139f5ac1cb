//! Retention per record class (`[retention]` of the policy file): how long each class of record
//! is kept, the legal floor below which it may not be set, and where both come from. The
//! periods are policy data like every other regulatory number; this module only reads them,
//! refuses a period below its class's stated minimum, and answers "from when on is a record of
//! this class expired?" for a given `now` (the caller's clock; no I/O here).
//!
//! A class left out of `[retention]` is kept indefinitely: keeping a record longer than a floor
//! never breaks the floor, so an absent rule errs on the lawful side.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::PolicyError;
use super::model::RuleStatus;
use super::serde_util::{human_duration, short_duration};

/// The classes of record a retention rule can cover. Exhaustive: the store must say what
/// expiry means for every class, so a new class is a compile error there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordClass {
    /// Customer accounts, counted from the account's closure.
    Accounts,
    /// Verification applications and their uploaded documents, counted from the moment the
    /// application stopped being current (rejected, expired, closed, or its customer closed).
    Verification,
    /// Sanctions screening results, counted from the screening.
    Screening,
    /// Per-event usage of metered jobs, counted from the event.
    Ledger,
    /// The access log of reads of personal data, counted from the read.
    AccessLog,
    /// Audit-chain records, counted from the record's time; expired records are redacted,
    /// never deleted, so the chain stays verifiable.
    AuditChain,
}

/// One class's rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetentionRule {
    /// How long a record is kept after its class's starting point ("1826d").
    #[serde(with = "human_duration")]
    pub period: Duration,
    /// The legal floor for this class ("730d"); `period` below it is refused at load. `"0s"`
    /// when no law sets one.
    #[serde(with = "human_duration")]
    pub minimum: Duration,
    /// The legal basis of the floor and of the period chosen (text shown in reports).
    pub basis: String,
    /// Standing of that basis.
    pub status: RuleStatus,
}

/// `[retention]`: one optional rule per class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Retention {
    /// Customer accounts.
    #[serde(default)]
    pub accounts: Option<RetentionRule>,
    /// Verification records and documents.
    #[serde(default)]
    pub verification: Option<RetentionRule>,
    /// Screening results.
    #[serde(default)]
    pub screening: Option<RetentionRule>,
    /// Ledger usage events.
    #[serde(default)]
    pub ledger: Option<RetentionRule>,
    /// Access log.
    #[serde(default)]
    pub access_log: Option<RetentionRule>,
    /// Audit chain (redacted, not deleted).
    #[serde(default)]
    pub audit_chain: Option<RetentionRule>,
}

// === impl RecordClass ===

impl RecordClass {
    /// Every class, in report order.
    pub const ALL: [RecordClass; 6] = [
        RecordClass::Accounts,
        RecordClass::Verification,
        RecordClass::Screening,
        RecordClass::Ledger,
        RecordClass::AccessLog,
        RecordClass::AuditChain,
    ];

    /// The key under `[retention]` and the name in counts and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordClass::Accounts => "accounts",
            RecordClass::Verification => "verification",
            RecordClass::Screening => "screening",
            RecordClass::Ledger => "ledger",
            RecordClass::AccessLog => "access_log",
            RecordClass::AuditChain => "audit_chain",
        }
    }
}

impl fmt::Display for RecordClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Retention ===

impl Retention {
    /// The rule of `class`, if the policy sets one.
    pub fn rule(&self, class: RecordClass) -> Option<&RetentionRule> {
        match class {
            RecordClass::Accounts => self.accounts.as_ref(),
            RecordClass::Verification => self.verification.as_ref(),
            RecordClass::Screening => self.screening.as_ref(),
            RecordClass::Ledger => self.ledger.as_ref(),
            RecordClass::AccessLog => self.access_log.as_ref(),
            RecordClass::AuditChain => self.audit_chain.as_ref(),
        }
    }

    /// The expiry cutoff of `class` at `now` (seconds since the Unix epoch): a record whose
    /// starting point lies strictly before it has expired. `None` when the class is kept
    /// indefinitely (no rule, or a period too long to subtract).
    pub fn cutoff_unix(&self, class: RecordClass, now_unix: i64) -> Option<i64> {
        let period = i64::try_from(self.rule(class)?.period.as_secs()).ok()?;
        now_unix.checked_sub(period)
    }

    /// Refuses a period below its class's minimum and an empty basis, naming the key.
    pub(super) fn validate(&self) -> Result<(), PolicyError> {
        for class in RecordClass::ALL {
            let Some(rule) = self.rule(class) else {
                continue;
            };
            let key = |field: &str| format!("retention.{class}.{field}");
            if rule.basis.trim().is_empty() {
                return Err(PolicyError::Invalid {
                    key: key("basis"),
                    reason: "must name the legal basis of the period".into(),
                });
            }
            if rule.period.is_zero() {
                return Err(PolicyError::Invalid {
                    key: key("period"),
                    reason: "must be longer than 0 (leave the class out to keep it indefinitely)"
                        .into(),
                });
            }
            if rule.period < rule.minimum {
                return Err(PolicyError::Invalid {
                    key: key("period"),
                    reason: format!(
                        "{} is below the legal minimum of {} for {class} ({})",
                        short_duration(rule.period),
                        short_duration(rule.minimum),
                        rule.basis.trim()
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;

    const DAY: i64 = 86_400;

    fn with_retention(section: &str) -> Result<Policy, PolicyError> {
        let text = include_str!("../../deploy/policy/default.toml");
        let start = text
            .find("\n[retention")
            .expect("default policy has [retention]");
        let end = text[start + 1..]
            .find("\n# ---")
            .map_or(text.len(), |i| start + 1 + i);
        Policy::from_toml(&format!("{}\n{section}\n{}", &text[..start], &text[end..]))
    }

    fn rule(period: &str, minimum: &str) -> String {
        format!(
            "period = {period:?}\nminimum = {minimum:?}\nbasis = \"b\"\nstatus = \"in_force\"\n"
        )
    }

    #[test]
    fn shipped_defaults_keep_every_class_at_or_above_its_floor() {
        let policy = Policy::from_toml(include_str!("../../deploy/policy/default.toml")).unwrap();
        let r = policy.retention();
        for class in RecordClass::ALL {
            let rule = r
                .rule(class)
                .unwrap_or_else(|| panic!("{class} has a rule"));
            assert!(rule.period >= rule.minimum, "{class}");
        }
        let years = |class| r.rule(class).unwrap().minimum.as_secs() as i64 / DAY;
        assert_eq!(years(RecordClass::Accounts), 731);
        assert_eq!(years(RecordClass::Verification), 731);
        assert_eq!(years(RecordClass::Screening), 3653);
    }

    #[test]
    fn a_period_below_the_minimum_is_refused_naming_the_key_and_floor() {
        let err = with_retention(&format!("[retention.screening]\n{}", rule("365d", "3653d")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("retention.screening.period"), "{err}");
        assert!(err.contains("below the legal minimum of 3653d"), "{err}");
    }

    #[test]
    fn zero_period_empty_basis_and_unknown_class_are_refused() {
        let zero = with_retention(&format!("[retention.ledger]\n{}", rule("0s", "0s")));
        assert!(
            zero.unwrap_err()
                .to_string()
                .contains("retention.ledger.period")
        );
        let empty = "[retention.ledger]\nperiod = \"1d\"\nminimum = \"0s\"\nbasis = \" \"\n\
                     status = \"recommended\"\n";
        let err = with_retention(empty).unwrap_err().to_string();
        assert!(err.contains("retention.ledger.basis"), "{err}");
        let unknown = with_retention(&format!("[retention.emails]\n{}", rule("1d", "0s")));
        assert!(unknown.unwrap_err().to_string().contains("retention"));
    }

    #[test]
    fn cutoff_is_now_minus_period_and_absent_classes_never_expire() {
        let policy =
            with_retention(&format!("[retention.access_log]\n{}", rule("2d", "1d"))).unwrap();
        let r = policy.retention();
        let now = 1_900_000_000;
        assert_eq!(
            r.cutoff_unix(RecordClass::AccessLog, now),
            Some(now - 2 * DAY)
        );
        assert_eq!(r.cutoff_unix(RecordClass::AuditChain, now), None);
        let none = with_retention("").unwrap();
        for class in RecordClass::ALL {
            assert_eq!(none.retention().cutoff_unix(class, now), None, "{class}");
        }
    }

    #[test]
    fn class_names_are_the_policy_keys() {
        let names: Vec<&str> = RecordClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "accounts",
                "verification",
                "screening",
                "ledger",
                "access_log",
                "audit_chain"
            ]
        );
    }
}
