//! What a reviewer's approval to a tier must have on file: the evidence kinds a tier's
//! `requires` list names, and which of them a reviewer may stand in for with a documented manual
//! check. The verification workflow asks [`Evidence::on_file`]-style facts of an application and
//! refuses an approval that lacks one, naming it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::UnknownName;

/// One kind of evidence an approval can require (`requires = ["idv_verified"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
// Exhaustive on purpose: a new kind must be a compile error where the workflow reads the facts.
pub enum Evidence {
    /// The identity-verification provider reported a `verified` outcome for the application (the
    /// applicant, or an organization's representative).
    IdvVerified,
    /// A `compliance_plan` document was uploaded with the application.
    CompliancePlan,
}

// === impl Evidence ===

impl Evidence {
    /// Every kind, in a stable order.
    pub const ALL: [Evidence; 2] = [Evidence::IdvVerified, Evidence::CompliancePlan];

    /// The name used in policy files, API bodies and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::IdvVerified => "idv_verified",
            Evidence::CompliancePlan => "compliance_plan",
        }
    }

    /// Whether a reviewer may approve without it by documenting a manual check with a note
    /// (audited as such). An identity can be checked by other means (a video call against the
    /// document, a notarised copy); a compliance plan is a document that must be on file.
    pub fn manual_check_allowed(self) -> bool {
        match self {
            Evidence::IdvVerified => true,
            Evidence::CompliancePlan => false,
        }
    }

    /// What is missing, for people reading a refusal.
    pub fn describe(self) -> &'static str {
        match self {
            Evidence::IdvVerified => {
                "no verified identity-verification outcome is on file for this application"
            }
            Evidence::CompliancePlan => "no compliance_plan document is on file",
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Evidence {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Evidence::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or(UnknownName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_serde() {
        #[derive(serde::Deserialize)]
        struct Doc {
            requires: Vec<Evidence>,
        }
        for e in Evidence::ALL {
            assert_eq!(e.as_str().parse::<Evidence>().unwrap(), e);
            let doc: Doc = toml::from_str(&format!("requires = [\"{e}\"]")).unwrap();
            assert_eq!(doc.requires, [e]);
        }
        assert!("idv".parse::<Evidence>().is_err());
    }

    #[test]
    fn only_identity_can_be_checked_by_hand() {
        assert!(Evidence::IdvVerified.manual_check_allowed());
        assert!(!Evidence::CompliancePlan.manual_check_allowed());
    }
}
